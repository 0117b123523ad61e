# Two commands set everything up on a fresh machine (README):
#   make demo   create/reuse .venv, build synth_faces, train configs/demo.py,
#               evaluate and write runs/demo/{results.json,report/}, then train the
#               proposal net of the default full-image pipeline into runs/demo/proposals
#   make test   create/reuse .venv and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_STAMP := $(VENV)/.installed-torch
EXPORT_STAMP := $(VENV)/.installed-export
DATA_DIR ?= tfds_data
PYTEST_ARGS ?=

.PHONY: demo test lint format install clean bench

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# torch (CPU build) for the torchvision-conversion tests only; see requirements-torch.lock.
$(TORCH_STAMP): $(STAMP) requirements-torch.lock
	$(BIN)/python -m pip install -q -r requirements-torch.lock
	$(BIN)/python -m pip install -q --no-deps $$(sed -n 's/^# no-deps: //p' requirements-torch.lock)
	touch $(TORCH_STAMP)

# ONNX / TFLite export and runtimes (hyperface_jax/export); --no-deps: see requirements-export.lock.
$(EXPORT_STAMP): $(STAMP) requirements-export.lock
	$(BIN)/python -m pip install -q --no-deps -r requirements-export.lock
	touch $(EXPORT_STAMP)

demo: $(STAMP)
	$(BIN)/python -m hyperface_jax.data.prepare synth_faces --data_dir=$(DATA_DIR)
	rm -rf runs/demo
	$(BIN)/python -m hyperface_jax.main --config=configs/demo.py --workdir=runs/demo \
	  --config.data.data_dir=$(DATA_DIR)
	# Fast-HyperFace's proposal net in runs/demo/proposals: the default full-image pipeline
	# (inference/config.py proposals.name="auto") finds it there (docs/inference.md).
	$(BIN)/python -m hyperface_jax.main --config=configs/fast_hyperface.py:cpu \
	  --workdir=runs/demo/proposals --config.data.data_dir=$(DATA_DIR)

test: $(STAMP) $(TORCH_STAMP) $(EXPORT_STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS) tests

LINT_PATHS := hyperface_jax configs tests bench $(wildcard launch)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

format: $(STAMP)
	$(BIN)/ruff format $(LINT_PATHS)

bench: $(STAMP)
	$(BIN)/python bench/model_flops.py
	$(BIN)/python bench/render_speed.py

clean:
	rm -rf runs $(DATA_DIR)
