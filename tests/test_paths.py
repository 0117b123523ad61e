"""Workdir, data_dir and model_init paths go through etils.epath, so cloud URLs (gs://,
s3://) work as well as local folders; and in a multi-process run only process 0 builds a
missing dataset.

There is no cloud here: the URL tests use `epath.testing.mock_epath()`, which serves
every epath call from the local filesystem (a "gs://bucket/run" path lands in
./gs:/bucket/run under the test's folder), and a static check that the modules open and
list files only through epath (a builtin `open` or `os.path.exists` would not reach a
bucket).
"""

import ast
import json
import os

import numpy as np
import pytest
from etils import epath

from hyperface_jax import atomic_io, checkpointing, metric_writer, model_init, train
from hyperface_jax.data import inputs

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hyperface_jax")
EPATH_MODULES = (
  "train.py",
  "metric_writer.py",
  "atomic_io.py",
  "checkpointing.py",
  "model_init.py",
)
# os functions that touch the filesystem (string-only ones like os.fspath stay allowed).
FS_CALLS = {
  "makedirs", "mkdir", "remove", "unlink", "replace", "rename", "listdir", "scandir",
  "walk", "rmdir", "stat", "exists", "isdir", "isfile", "getsize", "lexists",
}  # fmt: skip


@pytest.mark.parametrize("module", EPATH_MODULES)
def test_modules_touch_files_only_through_epath(module):
  tree = ast.parse(open(os.path.join(PACKAGE, module)).read())
  bad = []
  for node in ast.walk(tree):
    if not isinstance(node, ast.Call):
      continue
    f = node.func
    if isinstance(f, ast.Name) and f.id == "open":
      bad.append(f"line {node.lineno}: open()")
    if isinstance(f, ast.Attribute) and f.attr in FS_CALLS:
      base = ast.unparse(f.value)
      if base in ("os", "os.path", "shutil"):
        bad.append(f"line {node.lineno}: {base}.{f.attr}()")
  assert not bad, f"{module} bypasses etils.epath: {bad}"


@pytest.fixture
def fake_cloud(tmp_path, monkeypatch):
  """gs:// URLs served from tmp_path by epath's mock backend (which etils only uses for
  gs:// when TensorFlow is not installed: its check is patched)."""
  from etils.epath import gpath  # pylint: disable=g-import-not-at-top

  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)
  with epath.testing.mock_epath():
    yield tmp_path / "gs:" / "bucket"


def test_a_cloud_workdir_through_the_same_api(fake_cloud):
  workdir = "gs://bucket/runs/a"
  train.make_workdir(workdir)
  assert (fake_cloud / "runs" / "a").is_dir()
  atomic_io.write_json_atomic(f"{workdir}/results.json", {"x": 1.5})
  assert json.loads((fake_cloud / "runs/a/results.json").read_text()) == {"x": 1.5}
  # metrics.jsonl: object stores cannot append; the object is rewritten whole.
  writer = metric_writer.MetricWriter(workdir, tensorboard=False, primary=True)
  for step in (1, 2, 3):
    writer.write(step, {"train/loss": np.float32(step / 2)})
  writer.close()
  assert [r["step"] for r in metric_writer.read_metrics(workdir)] == [1, 2, 3]
  metric_writer.MetricWriter(workdir, resume_step=2, tensorboard=False, primary=True)
  assert [r["train/loss"] for r in metric_writer.read_metrics(workdir)] == [0.5, 1.0]
  assert sorted(os.listdir(fake_cloud / "runs" / "a")) == ["metrics.jsonl", "results.json"]
  # checkpoint checksums are read and written through epath as well
  step_dir = f"{workdir}/checkpoints/7"
  epath.Path(step_dir).mkdir(parents=True)
  epath.Path(step_dir, "data").write_bytes(b"abc" * 1000)
  sums = checkpointing.file_checksums(step_dir)
  assert sums == {"data": [3000, __import__("zlib").crc32(b"abc" * 1000)]}
  atomic_io.write_json_atomic(f"{step_dir}/{checkpointing.CHECKSUMS}", sums)
  assert checkpointing.verify_checksums(step_dir) is None
  epath.Path(step_dir, "data").write_bytes(b"abc")
  assert "has 3 bytes, 3000 when saved (truncated)" in checkpointing.verify_checksums(step_dir)


def test_model_init_reads_converted_weights_from_a_url(fake_cloud):
  directory = "gs://bucket/weights/alexnet"
  epath.Path(directory).mkdir(parents=True)
  kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
  with epath.Path(directory, model_init.CONVERTED_FILE).open("wb") as f:
    np.savez(f, **{"params/backbone/conv1/kernel": kernel})
  epath.Path(directory, model_init.CONVERTED_META).write_text(json.dumps({"arch": "alexnet"}))
  variables, source = model_init.read_variables(directory)
  np.testing.assert_array_equal(variables["params"]["backbone"]["conv1"]["kernel"], kernel)
  assert "converted alexnet" in source and directory in source
  with pytest.raises(FileNotFoundError, match="gs://bucket/nothing' does not exist"):
    model_init.read_variables("gs://bucket/nothing")


def test_local_epath_objects_work_like_strings(tmp_path):
  workdir = epath.Path(tmp_path) / "run"
  train.make_workdir(workdir)
  ckpt = checkpointing.Checkpointer(workdir)
  state = {"params": {"w": np.arange(4, dtype=np.float32)}, "model_state": {}}
  ckpt.save(5, state)
  ckpt.close()
  item = checkpointing.resolve_checkpoint(workdir)
  assert item == os.path.join(str(workdir), "checkpoints", "5", "default")
  assert checkpointing.checkpoint_step(epath.Path(item)) == 5
  np.testing.assert_array_equal(
    checkpointing.restore_variables(workdir)["params"]["w"], state["params"]["w"]
  )


class _FakeBuilder:
  prepared = False
  builds = []

  def __init__(self, process):
    self.process = process

  def is_prepared(self):
    return _FakeBuilder.prepared

  def download_and_prepare(self):
    _FakeBuilder.builds.append(self.process)
    _FakeBuilder.prepared = True


@pytest.mark.parametrize("process", [0, 1])
def test_only_process_zero_builds_a_missing_dataset(process, monkeypatch):
  """Two processes simulated one at a time: process 0 builds, process 1 only waits at the
  broadcast (the barrier) and then checks that it sees the dataset."""
  import jax  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  _FakeBuilder.prepared, _FakeBuilder.builds = False, []
  barrier = []
  monkeypatch.setattr(tfds, "builder", lambda *a, **k: _FakeBuilder(process))
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "process_index", lambda: process)

  def broadcast(x):
    barrier.append(process)
    if process == 1:  # process 0 built it meanwhile
      _FakeBuilder.prepared = True
    return x if process == 0 else np.int32(1)

  monkeypatch.setattr(multihost_utils, "broadcast_one_to_all", broadcast)
  config = {"name": "synth_faces", "data_dir": "/mnt/cluster/tfds", "prepare_if_missing": True}
  inputs.ensure_prepared(config)
  assert _FakeBuilder.builds == ([0] if process == 0 else [])
  assert barrier == [process]
  # A process that does not see process 0's dataset (a data_dir on a local disk).
  if process == 1:
    _FakeBuilder.prepared = False
    monkeypatch.setattr(multihost_utils, "broadcast_one_to_all", lambda x: np.int32(1))
    with pytest.raises(FileNotFoundError, match="must be a folder every host shares"):
      inputs.ensure_prepared(config)
    assert _FakeBuilder.builds == []
