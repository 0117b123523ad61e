r"""Max |exported - JAX| of every export format on real inputs (docs/export.md's table).

  PYTHONPATH=. .venv/bin/python bench/export_check.py [--workdir=RUN ...] [--output=FILE.json]

Without --workdir it makes the two runs of tests/test_export.py (randomly initialised
checkpoints): the HyperFace network at the smoke size (configs/smoke.py: width 1/8, 67 px)
and the Fast-HyperFace proposal net (configs/fast_hyperface.py:cpu, width 0.5), exported
as the per-crop network ("network") and, for the proposal run, as the dense score map over
whole image levels ("proposals"). Each is exported in every format with batch 4 (2 for the
dense map) and a dynamic batch (hyperface_jax.export.export), then run in the format's
runtime on synth_faces crops / levels (hyperface_jax/export/golden.py: batch 3 and 7 when
dynamic; levels 56 x 72 and 40 x 104) and compared with the JAX model. Prints a markdown
table: per case the largest difference over all outputs, the export time (conversion,
writing, no check) and the model's size on disk. Needs requirements-export.lock.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time

import jax

from hyperface_jax import checkpointing, sharding, train
from hyperface_jax.export import api, golden, runtime, target

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(name, arg=None):
  spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(REPO, "configs", name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def make_runs(root: str):
  """{"hyperface": smoke run, "fast": proposal-net run}, random init (as the tests)."""
  fast = _config("fast_hyperface.py", "cpu")
  fast.model.width = 0.5
  runs = {}
  for name, config, seed in (("hyperface", _config("smoke.py"), 0), ("fast", fast, 1)):
    path = os.path.join(root, name)
    _, _, _, _, init = train.build(config, sharding.make_mesh())
    ckpt = checkpointing.Checkpointer(path)
    ckpt.save(2, jax.jit(init)(jax.random.PRNGKey(seed)))
    ckpt.close()
    train._write_config(config, path)
    runs[name] = path
  return runs


def _size(path: str) -> int:
  if os.path.isfile(path):
    return os.path.getsize(path)
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", action="append", help="runs to export (default: made here)")
  parser.add_argument("--output", help="also write the rows as JSON here")
  args = parser.parse_args()
  tmp = tempfile.mkdtemp(prefix="export_check_")
  runs = (
    {os.path.basename(os.path.normpath(w)): w for w in args.workdir}
    if args.workdir
    else make_runs(tmp)
  )
  rows = []
  print("| run | model | format | batch | max abs diff | outputs | export s | size KB |")
  print("|---|---|---|---|---|---|---|---|")
  for run, workdir in runs.items():
    models = ["network"]
    if target.build_target(workdir).config.model_name == target.PROPOSAL_MODEL:
      models.append("proposals")
    for model in models:
      for batch in (4 if model == "network" else 2, "dynamic"):
        for fmt in runtime.FORMATS:
          out = os.path.join(tmp, f"{run}_{model}_{fmt}_{batch}")
          t0 = time.perf_counter()
          api.export(workdir, fmt, out, batch=batch, model=model, check=False)
          seconds = time.perf_counter() - t0
          ref = target.build_target(workdir, model=model, batch=batch)
          diffs = golden.compare(out, ref)
          row = dict(
            run=run,
            model=model,
            format=fmt,
            batch=batch,
            max_abs_diff=max(diffs.values()),
            per_output=diffs,
            export_seconds=seconds,
            size_bytes=_size(os.path.join(out, runtime.MODEL_FILES[fmt])),
          )
          rows.append(row)
          print(
            f"| {run} | {model} | {fmt} | {batch} | {row['max_abs_diff']:.2e} | "
            f"{', '.join(sorted(diffs))} | {seconds:.1f} | {row['size_bytes'] / 1024:.0f} |",
            flush=True,
          )
  if args.output:
    with open(args.output, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  main()
