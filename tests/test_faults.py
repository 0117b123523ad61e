"""Preemption and faults: SIGTERM saves at the next step and exits 0; runs killed (-9) at
seeded random points, in a checkpoint save too, resume to exactly the losses of an
uninterrupted run; a truncated or corrupted latest checkpoint is reported and skipped for
the previous one; a config that changes shapes fails with the diff of names and shapes.

The killed runs are subprocesses of tests/fault_driver.py (hyperface_jax.main with the
faults injected), 8 fake CPU devices like the in-process reference run, sharing one
persistent compilation cache so that each start after the first skips XLA compilation.
"""

import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from hyperface_jax import checkpointing, sharding, surgery, train
from hyperface_jax.data import inputs
from hyperface_jax.metric_writer import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(REPO, "tests", "fault_driver.py")
OVERRIDES = dict(total_steps=8, log_every=1, eval_every=4, checkpoint_every=2)
COMPARED = ("train/loss", "train/grad_norm", "train/count", "weight/", "val/loss")
KILL_SEED, KILL_POINTS = 0, 4


def _config(data_dir, **over):
  sys.path.insert(0, REPO)
  from configs import smoke  # pylint: disable=g-import-not-at-top

  c = smoke.get_config()
  c.data.data_dir = str(data_dir)
  for k, v in {**OVERRIDES, **over}.items():
    setattr(c, k, v)
  return c


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
  """The smoke data, an uninterrupted in-process run, and a compilation cache folder."""
  data_dir = tmp_path_factory.mktemp("tfds")
  inputs.ensure_prepared(_config(data_dir).data)
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  train.train_and_evaluate(_config(data_dir), workdir)
  return dict(data_dir=data_dir, workdir=workdir, cache=str(tmp_path_factory.mktemp("xla")))


def _driver(ref, workdir, *, popen=False, **env):
  cmd = [
    sys.executable,
    DRIVER,
    "--config=configs/smoke.py",
    f"--workdir={workdir}",
    f"--config.data.data_dir={ref['data_dir']}",
    *(f"--config.{k}={v}" for k, v in OVERRIDES.items()),
  ]
  env = dict(
    os.environ,
    JAX_COMPILATION_CACHE_DIR=ref["cache"],
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    **env,
  )
  kw = dict(cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  if popen:
    return subprocess.Popen(cmd, **kw)
  return subprocess.run(cmd, timeout=300, **kw)


def _records(workdir):
  return [
    {k: v for k, v in r.items() if k == "step" or k.startswith(COMPARED)}
    for r in read_metrics(workdir)
  ]


def _assert_like_uninterrupted(workdir, ref):
  """Exactly the metrics (every logged loss, count, weight, validation loss) and the final
  parameters, bit for bit, of the uninterrupted run."""
  assert _records(workdir) == _records(ref["workdir"])
  got = checkpointing.restore_variables(workdir, step=8)
  want = checkpointing.restore_variables(ref["workdir"], step=8)
  for (name, x), y in zip(
    jax.tree_util.tree_leaves_with_path(want), jax.tree_util.tree_leaves(got), strict=True
  ):
    assert x.tobytes() == y.tobytes(), jax.tree_util.keystr(name)


def _committed(workdir):
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(d) if n.isdigit())


@pytest.mark.slow
def test_sigterm_saves_at_the_next_step_exits_0_and_resumes_exactly(ref, tmp_path):
  workdir = str(tmp_path / "run")
  proc = _driver(ref, workdir, popen=True, HF_FAULT_SLEEP="0.5")
  metrics = os.path.join(workdir, "metrics.jsonl")
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:  # the first logged step
    if os.path.exists(metrics) and any("train/loss" in r for r in read_metrics(workdir)):
      break
    time.sleep(0.1)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=240)
  assert proc.returncode == 0, err[-3000:]
  match = re.search(
    r"preempted: SIGTERM received; saved the checkpoint of step (\d+) in (\S+)\. "
    r"Run the same command again to resume from it\.",
    out,
  )
  assert match, out[-2000:]
  step = int(match.group(1))
  assert 1 <= step < 8  # stopped early, at a step boundary
  assert match.group(2) == os.path.join(workdir, "checkpoints")
  assert _committed(workdir)[-1] == step
  assert os.path.exists(os.path.join(workdir, "checkpoints", str(step), checkpointing.CHECKSUMS))
  assert max(r["step"] for r in read_metrics(workdir)) == step
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  proc = _driver(ref, workdir)  # the same command again
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"Resumed from {workdir}/checkpoints step {step}." in proc.stderr
  _assert_like_uninterrupted(workdir, ref)


def kill_points(seed=KILL_SEED, n=KILL_POINTS):
  """`n` distinct kill points (kind, step) drawn with `seed`, in the order a run meets
  them, at least one inside a checkpoint save and one between a commit and its checksums."""
  order = {"step": 0, "save": 1, "checksums": 2}
  candidates = [("step", s) for s in range(2, 9)]
  candidates += [(k, s) for k in ("save", "checksums") for s in (2, 4, 6, 8)]
  rng = random.Random(seed)
  while True:
    points = rng.sample(candidates, n)
    if {"save", "checksums"} <= {k for k, _ in points}:
      return sorted(points, key=lambda p: (p[1], order[p[0]]))


@pytest.mark.slow
def test_runs_killed_at_random_points_resume_to_the_same_losses(ref, tmp_path):
  """One workdir, killed (SIGKILL) at each point in turn, each run resuming from what the
  previous kill left; then a run to the end."""
  workdir = str(tmp_path / "run")
  points = kill_points()
  print("kill points:", points)
  for kind, step in points:
    proc = _driver(ref, workdir, HF_FAULT_KILL=f"{kind}:{step}")
    assert proc.returncode == -signal.SIGKILL, (kind, step, proc.stderr[-3000:])
    assert "fault_driver: SIGKILL" in proc.stdout
    committed = _committed(workdir)
    if kind == "save":  # written, never committed: only the temporary exists
      assert step not in committed
      assert [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if "tmp" in n]
    if kind == "checksums":  # committed; no checksums (accepted unchecked on resume)
      assert committed[-1] == step
      assert not os.path.exists(
        os.path.join(workdir, "checkpoints", str(step), checkpointing.CHECKSUMS)
      )
  proc = _driver(ref, workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert not [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if "tmp" in n]
  _assert_like_uninterrupted(workdir, ref)


def _abstract(config):
  mesh = sharding.make_mesh()
  *_, init = train.build(config, mesh)
  return checkpointing.abstract_with_sharding(
    jax.eval_shape(init, train.prng_key(config)), sharding.replicated(mesh)
  )


def _biggest_file(step_dir):
  files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs]
  return max(files, key=os.path.getsize)


def test_truncated_latest_checkpoint_is_reported_and_skipped(ref, tmp_path, caplog):
  """The run restores step 6 instead of the truncated 8, redoes steps 7 and 8 and ends
  exactly like the uninterrupted run; the damaged step is kept aside as damaged_8."""
  workdir = str(tmp_path / "run")
  shutil.copytree(ref["workdir"], workdir)
  os.remove(os.path.join(workdir, "results.json"))
  victim = _biggest_file(os.path.join(workdir, "checkpoints", "8"))
  size = os.path.getsize(victim)
  with open(victim, "r+b") as f:
    f.truncate(size // 2)
  rel = os.path.relpath(victim, os.path.join(workdir, "checkpoints", "8"))
  with caplog.at_level(logging.ERROR):
    train.train_and_evaluate(_config(ref["data_dir"]), workdir)
  line = (
    f"Checkpoint step 8 in {workdir}/checkpoints is damaged: {rel} has {size // 2} bytes, "
    f"{size} when saved (truncated). Moved to {workdir}/checkpoints/damaged_8; "
    "restoring step 6 instead."
  )
  assert line in caplog.text
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "6", "8", "damaged_8"]
  _assert_like_uninterrupted(workdir, ref)


@pytest.mark.parametrize("damage", ["corrupted", "metadata", "missing"])
def test_damaged_latest_checkpoint_falls_back_to_the_previous(damage, ref, tmp_path, caplog):
  workdir = str(tmp_path / "run")
  shutil.copytree(os.path.join(ref["workdir"], "checkpoints"), os.path.join(workdir, "checkpoints"))
  step_dir = os.path.join(workdir, "checkpoints", "8")
  if damage == "corrupted":  # flipped bytes: orbax itself reads them back without complaint
    victim = _biggest_file(step_dir)
    with open(victim, "r+b") as f:
      f.seek(os.path.getsize(victim) // 2)
      data = f.read(16)
      f.seek(os.path.getsize(victim) // 2)
      f.write(bytes(b ^ 0xFF for b in data))
    problem = "has another CRC-32 than when saved (corrupted)"
  elif damage == "metadata":
    with open(os.path.join(step_dir, "default", "_METADATA"), "w") as f:
      f.write('{"tree_metadata": ')
    problem = "its metadata is unreadable"
  else:
    victim = _biggest_file(step_dir)
    os.remove(victim)
    problem = f"{os.path.relpath(victim, step_dir)} is missing"
  ckpt = checkpointing.Checkpointer(workdir)
  with caplog.at_level(logging.ERROR):
    state = ckpt.restore(_abstract(_config(ref["data_dir"])))
  ckpt.close()
  assert int(state.step) == 6
  assert "Checkpoint step 8 in" in caplog.text and problem in caplog.text
  assert "restoring step 6 instead" in caplog.text
  want = checkpointing.restore_variables(ref["workdir"], step=6)["params"]
  got = sharding.to_host(state.params)
  assert all(
    x.tobytes() == y.tobytes()
    for x, y in zip(jax.tree_util.tree_leaves(want), jax.tree_util.tree_leaves(got), strict=True)
  )


def test_every_checkpoint_damaged_is_an_error_naming_each(ref, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(os.path.join(ref["workdir"], "checkpoints"), os.path.join(workdir, "checkpoints"))
  for step in (4, 6, 8):
    with open(os.path.join(workdir, "checkpoints", str(step), "default", "_METADATA"), "w") as f:
      f.write("{")
  ckpt = checkpointing.Checkpointer(workdir)
  with pytest.raises(checkpointing.CheckpointDamagedError) as e:
    ckpt.restore(_abstract(_config(ref["data_dir"])))
  ckpt.close()
  for step in (8, 6, 4):
    assert f"step {step}: its metadata is unreadable" in str(e.value)


@pytest.mark.parametrize("change", ["width", "head"])
def test_restoring_with_other_shapes_fails_with_the_diff(change, ref, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(os.path.join(ref["workdir"], "checkpoints"), os.path.join(workdir, "checkpoints"))
  before = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  config = _config(ref["data_dir"])
  if change == "width":
    config.model.width = 0.25
  else:
    config.model.extra_tasks = (("landmarks68", (68, 2)),)  # a head the checkpoint lacks
  ckpt = checkpointing.Checkpointer(workdir)
  with pytest.raises(checkpointing.CheckpointMismatchError) as e:
    ckpt.restore(_abstract(config))
  ckpt.close()
  message = str(e.value)
  assert f"checkpoint {workdir}/checkpoints step 8" in message
  if change == "width":
    assert "mis-shaped" in message and "missing" not in message
    assert re.search(r"params/backbone/conv1/kernel \(loaded \(11, 11, 3, \d+\), model", message)
    assert "arrays of the optimiser / weighting state that mirror them" in message
  else:
    assert re.search(
      r"missing \(in the model, not in the loaded tree\), 4: params/heads/fc_landmarks681/", message
    ), message
    assert "mis-shaped" not in message
  assert "config.json" in message
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == before  # nothing moved
  assert isinstance(e.value, surgery.ParamMismatchError)  # main.py: exit 2, no traceback


def test_async_saves_complete_before_close_with_checksums(ref, tmp_path):
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  assert ckpt.async_save
  state = {"w": np.arange(1000, dtype=np.float32), "step": np.int32(3)}
  for step in (1, 2, 3):
    ckpt.save(step, state)  # each waits for the previous one
  ckpt.close()
  for step in (1, 2, 3):
    step_dir = tmp_path / "checkpoints" / str(step)
    sums = json.loads((step_dir / checkpointing.CHECKSUMS).read_text())
    assert sums == checkpointing.file_checksums(step_dir)
    assert checkpointing.verify_checksums(step_dir) is None
