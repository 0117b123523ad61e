"""Bad input everywhere: the committed corpus of tests/fuzz/ (cases.json says what each
case must do). Every refusal is ONE line naming the problem and the expected form; nothing
half-written is left (directory listings are checked); no checkpoint is damaged.

Sections: images (predict reader and CLI, builders' reader), annotations (builders'
parsers), configs (absurd values), cli (exit status and stderr of main.py), batches (NaN /
Inf in a training batch), workdirs, disk_full (writes failing with ENOSPC).
"""

import builtins
import errno
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hyperface_jax import (
  atomic_io,
  checkpointing,
  config_checks,
  metric_writer,
  predict,
  sharding,
  train,
)
from hyperface_jax.data import inputs
from hyperface_jax.data.builders import celeba_lists, fddb, manual, mtfl, w300
from hyperface_jax.inference import image_io
from hyperface_jax.inference.analyzer import Face

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ = os.path.join(REPO, "tests", "fuzz")
with open(os.path.join(FUZZ, "cases.json")) as _f:
  CASES = json.load(_f)


def _one_line(error) -> str:
  text = str(error)
  assert "\n" not in text, f"not one line: {text!r}"
  return text


def _listing(folder):
  return sorted(
    os.path.relpath(os.path.join(r, f), folder) for r, _, fs in os.walk(folder) for f in fs
  )


# ----------------------------------------------------------------------------- images


@pytest.mark.parametrize("name", sorted(CASES["images"]))
def test_image_readers(name, caplog):
  case = CASES["images"][name]
  path = os.path.join(FUZZ, "images", name)
  if case["predict"] == "ok":
    image, conversions = image_io.read_image(path)
    fitted = image_io.fit_to_network(image, min_side=67, max_side=1024, name=path)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert conversions == case["conversions"]
    assert max(fitted.pixels.shape[:2]) <= 1024 and min(fitted.pixels.shape[:2]) >= 8
  else:
    with pytest.raises(image_io.ImageReadError) as e:
      image, _ = image_io.read_image(path)
      image_io.fit_to_network(image, min_side=67, max_side=1024, name=path)
    assert case["predict"] in _one_line(e.value)
    assert e.value.path == path  # the message starts with the file
  reader = manual.ImageReader("fuzz")
  got = reader.read(path)
  if case["builder"] == "ok":
    assert got is not None and got.dtype == np.uint8 and got.shape[2] == 3
  else:  # skipped, listed, and named in the log with the reason
    assert got is None and reader.bad == [path]
    assert f"fuzz: skipping unreadable image {path} (" in caplog.text


class _FakeAnalyzer:
  def __call__(self, images):
    face = Face(
      box=np.array([1.0, 1.0, 4.0, 4.0], np.float32),
      score=0.9,
      landmarks=np.zeros((21, 2), np.float32),
      visibility=np.ones(21, np.float32),
      pose=np.zeros(3, np.float32),
      p_female=0.5,
    )
    return [[face] for _ in images]


def test_predict_cli_on_the_whole_image_corpus(tmp_path, capsys):
  """One predict run over the folder: exit 1, every bad file listed with its reason,
  every good one written, nothing partial."""
  src, out = tmp_path / "in", tmp_path / "out"
  shutil.copytree(os.path.join(FUZZ, "images"), src)
  status = predict.main(
    ["predict", f"--workdir={tmp_path}/wd", f"--input={src}", f"--output={out}", "--min_side=0"],
    analyzer_factory=lambda *a: _FakeAnalyzer(),
  )
  err = capsys.readouterr().err
  bad = {n: c for n, c in CASES["images"].items() if c["predict"] != "ok"}
  assert status == 1
  assert f"FAILED: {len(bad)} of {len(CASES['images'])} input(s)" in err
  for name, case in bad.items():
    line = next(line for line in err.splitlines() if f"{src}/{name}:" in line)
    assert case["predict"] in line, line
  written = _listing(out)
  for name in CASES["images"]:
    stem = os.path.splitext(name)[0]
    mine = [f for f in written if f.startswith(stem + ".") or f.startswith(stem + "_")]
    assert bool(mine) == (name not in bad), (name, mine)
  assert not [f for f in written if ".partial" in f or f.endswith(".tmp")]


# ------------------------------------------------------------------------ annotations

PARSERS = {
  "pts": w300.parse_pts,
  "fddb": lambda p: list(fddb.parse_ellipse_list(p)),
  "mtfl": lambda p: [
    mtfl.parse_line(p, i, line) for i, line in enumerate(open(p).read().splitlines(), 1)
  ],
  "celeba_landmarks": celeba_lists.read_landmarks,
}


@pytest.mark.parametrize("name", sorted(CASES["annotations"]))
def test_annotation_parsers(name):
  case = CASES["annotations"][name]
  path = os.path.join(FUZZ, "annotations", name)
  parse = PARSERS[case["parser"]]
  if case["error"] is None:
    parse(path)
    return
  with pytest.raises(manual.AnnotationError) as e:
    parse(path)
  text = _one_line(e.value)
  assert text.startswith(path), text  # file:line: message
  assert path + (":" if case["error"][0].isdigit() else "") + case["error"] in text, text


# ---------------------------------------------------------------------------- configs


def _smoke_config(**over):
  sys.path.insert(0, REPO)
  from configs import smoke  # pylint: disable=g-import-not-at-top

  c = smoke.get_config()
  for key, value in over.items():
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    value = float(value) if value in ("nan", "inf") else value
    node[leaf] = tuple(value) if isinstance(value, list) else value
  return c


class _NoCheckpoint:
  def latest_step(self):
    return None


def _config_outcome(config):
  """What train_and_evaluate runs before any data: the checks, the device split of the
  batch, the model's first trace."""
  config_checks.check(config)
  mesh = sharding.make_mesh()
  sharding.check_batch_size(config.batch_size, mesh)
  sharding.check_batch_size(config.eval_batch_size, mesh, "eval_batch_size")
  *_, init = train.build(config, mesh)
  train.restore_or_init(config, mesh, init, _NoCheckpoint())


@pytest.mark.parametrize("case", CASES["configs"], ids=lambda c: c["id"])
def test_absurd_config_values(case):
  with pytest.raises(ValueError) as e:
    _config_outcome(_smoke_config(**case["set"]))
  assert case["error"] in _one_line(e.value), str(e.value)


def test_every_shipped_config_passes_the_checks():
  sys.path.insert(0, os.path.join(REPO, "tests"))
  import importlib.util  # pylint: disable=g-import-not-at-top

  from test_configs_light import VARIANTS  # pylint: disable=g-import-not-at-top

  for name, args in VARIANTS.items():
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(REPO, "configs", name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for arg in args:
      assert config_checks.problems(module.get_config(arg)) == [], (name, arg)


@pytest.mark.parametrize("case", CASES["cli"], ids=lambda c: c["id"])
def test_main_cli_refuses_with_one_line(case, tmp_path):
  workdir = tmp_path / "run"
  if case.get("workdir_is_a_file"):
    workdir.write_text("a file")
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "hyperface_jax.main",
      "--config=configs/smoke.py",
      f"--workdir={workdir}",
      f"--config.data.data_dir={tmp_path}/no_data",
      *case["args"],
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == case["status"], proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and case["error"] in errors[0], proc.stderr[-2000:]
  assert _listing(tmp_path) == (["run"] if case.get("workdir_is_a_file") else [])


# ---------------------------------------------------------------------------- batches


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("tfds")
  inputs.ensure_prepared(_smoke_config(**{"data.data_dir": str(d)}).data)
  return d


@pytest.mark.parametrize("case", CASES["batches"], ids=lambda c: c["id"])
def test_non_finite_batch_stops_naming_the_task(case, data_dir, tmp_path, monkeypatch):
  workdir = str(tmp_path / "run")
  real_load = inputs.load

  def poisoned_load(config):
    data = real_load(config)
    clean = data.train_batch

    def train_batch(step, rows):
      batch = clean(step, rows)
      if step == 3:
        batch[case["key"]] = np.full_like(batch[case["key"]], float(case["value"]))
      return batch

    data.train_batch = train_batch
    return data

  monkeypatch.setattr(inputs, "load", poisoned_load)
  config = _smoke_config(
    **{"data.data_dir": str(data_dir), "total_steps": 4, "checkpoint_every": 2, "log_every": 1}
  )
  with pytest.raises(train.NonFiniteLossError) as e:
    train.train_and_evaluate(config, workdir)
  assert case["error"] in _one_line(e.value)
  assert "the last good checkpoint was left intact" in str(e.value)
  # The checkpoint of step 2 is complete and intact; nothing of step 3 exists.
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2"]
  assert checkpointing.verify_checksums(os.path.join(workdir, "checkpoints", "2")) is None
  assert checkpointing.restore_variables(workdir)["params"]
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  assert [r["step"] for r in metric_writer.read_metrics(workdir)] == [1, 2]
  assert not [f for f in _listing(workdir) if f.endswith(".tmp")]


# --------------------------------------------------------------------------- workdirs


@pytest.mark.parametrize("case", CASES["workdirs"], ids=lambda c: c["id"])
def test_workdir_that_is_a_file(case, tmp_path):
  (tmp_path / "file").write_text("x")
  workdir = tmp_path / "file" if case["id"] == "workdir_is_a_file" else tmp_path / "file" / "run"
  with pytest.raises(NotADirectoryError) as e:
    train.make_workdir(str(workdir))
  text = _one_line(e.value)
  assert f"--workdir={workdir}" in text and case["error"] in text
  assert "expected a folder, or a path where one can be created" in text
  assert _listing(tmp_path) == ["file"] and (tmp_path / "file").read_text() == "x"


# -------------------------------------------------------------------------- disk full


class _FullDisk:
  """builtins.open whose files opened for writing under `match` accept half the data,
  then raise OSError(ENOSPC), as a full disk does."""

  def __init__(self, match):
    self.match, self.real, self.hits = match, builtins.open, 0

  def __call__(self, file, mode="r", *args, **kwargs):
    f = self.real(file, mode, *args, **kwargs)
    if any(c in mode for c in "wax") and self.match(os.fspath(file)):
      self.hits += 1
      real_write = f.write

      def write(data):
        real_write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))

      f.write = write
    return f


def _state():
  return {"params": {"w": np.arange(64, dtype=np.float32)}, "model_state": {}}


def _fail_metadata_writes(monkeypatch):
  """orbax writes a step's _METADATA through async_path.write_text (its array data goes
  through TensorStore, out of Python's reach): that write fails with ENOSPC."""
  from orbax.checkpoint._src.path import async_path  # pylint: disable=g-import-not-at-top

  real = async_path.write_text

  async def failing(path, text):
    if path.name == "_METADATA":
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return await real(path, text)

  monkeypatch.setattr(async_path, "write_text", failing)


@pytest.mark.parametrize("case", CASES["disk_full"], ids=lambda c: c["id"])
def test_full_disk(case, tmp_path, monkeypatch):
  workdir = tmp_path / "run"
  workdir.mkdir()
  name = case["id"]
  if name in ("config_json", "results_json", "metrics_truncation"):
    target = {
      "config_json": "config.json",
      "results_json": "results.json",
      "metrics_truncation": "metrics.jsonl",
    }[name]
    old = '{"step": 1}\n{"step": 2}\n{"step": 3}\n'
    (workdir / target).write_text(old)
    full = _FullDisk(lambda p: p.endswith(".tmp"))
    monkeypatch.setattr(builtins, "open", full)
    with pytest.raises(atomic_io.WriteError) as e:
      if name == "config_json":
        train._write_config(_smoke_config(), str(workdir))  # pylint: disable=protected-access
      elif name == "results_json":
        atomic_io.write_json_atomic(workdir / target, {"landmarks/nme": 0.1})
      else:  # a resumed run drops the lines after its checkpoint: a rewrite
        metric_writer.MetricWriter(str(workdir), resume_step=1, tensorboard=False, primary=True)
    monkeypatch.undo()
    assert full.hits == 1
    text = _one_line(e.value)
    assert f"could not write {workdir / target}: no space left on the device" in text
    assert f"{target} was left as it was (expected: a writable folder with free space)" in text
    assert e.value.errno == errno.ENOSPC
    assert _listing(workdir) == [target] and (workdir / target).read_text() == old
    return
  ckpt = checkpointing.Checkpointer(str(workdir), async_save=name != "checkpoint_sync")
  ckpt.save(1, _state())
  ckpt.wait()
  before = _listing(workdir)
  if name == "checksums_only":  # orbax committed step 2; only its checksums cannot be written
    monkeypatch.setattr(builtins, "open", _FullDisk(lambda p: "checksums.json" in p))
    ckpt.save(2, _state())
    ckpt.close()
    monkeypatch.undo()
    steps = sorted(os.listdir(workdir / "checkpoints"))
    assert steps == ["1", "2"]
    assert not (workdir / "checkpoints" / "2" / checkpointing.CHECKSUMS).exists()
    assert not [f for f in _listing(workdir) if f.endswith(".tmp")]
    assert checkpointing.restore_variables(str(workdir), step=2)["params"]["w"][5] == 5
    return
  _fail_metadata_writes(monkeypatch)
  with pytest.raises(atomic_io.WriteError) as e:
    ckpt.save(2, _state())
    ckpt.wait()
  monkeypatch.undo()
  ckpt.close()
  text = _one_line(e.value)
  assert text.startswith(f"[Errno {errno.ENOSPC}] {case['error']} in {workdir}/checkpoints: ")
  assert "no space left on the device; nothing of step 2 was left" in text
  assert "the earlier checkpoints [1] are untouched" in text
  assert _listing(workdir) == before  # not a byte of step 2 remains
  assert checkpointing.verify_checksums(workdir / "checkpoints" / "1") is None
  np.testing.assert_array_equal(
    checkpointing.restore_variables(str(workdir))["params"]["w"], _state()["params"]["w"]
  )


def test_the_corpus_is_what_make_corpus_writes(tmp_path):
  """The committed files are those tests/fuzz/make_corpus.py writes (seeded)."""
  sys.path.insert(0, FUZZ)
  import make_corpus  # pylint: disable=g-import-not-at-top

  for name, data in make_corpus.images().items():
    with open(os.path.join(FUZZ, "images", name), "rb") as f:
      committed = f.read()
    if name.endswith((".jpg", ".gif", ".tif")) and name not in ("empty.jpg", "random_bytes.jpg"):
      continue  # encoders may differ between Pillow versions; the committed bytes rule
    assert committed == data, name
  for name, text in make_corpus.ANNOTATIONS.items():
    with open(os.path.join(FUZZ, "annotations", name)) as f:
      assert f.read() == text, name
  assert sorted(os.listdir(os.path.join(FUZZ, "images"))) == sorted(CASES["images"])
  assert sorted(os.listdir(os.path.join(FUZZ, "annotations"))) == sorted(CASES["annotations"])
