"""End to end: the smoke config trains, resumes exactly, and fails loudly.

Each test runs the real loop in-process on a tiny synth_faces build (24 train
scenes, 8 validation, 8 test) over 8 fake CPU devices.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from hyperface_jax import checkpointing, steps, train
from hyperface_jax.data import inputs
from hyperface_jax.metric_writer import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _smoke_config(data_dir, **over):
  sys.path.insert(0, REPO)
  from configs import smoke  # pylint: disable=g-import-not-at-top

  c = smoke.get_config()
  c.data.data_dir = str(data_dir)
  c.schedule.name = "cosine"
  for k, v in over.items():
    setattr(c, k, v)
  return c


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("tfds")
  inputs.ensure_prepared(_smoke_config(d).data)
  return d


@pytest.fixture(scope="module")
def full_run(data_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("full"))
  results = train.train_and_evaluate(_smoke_config(data_dir), workdir)
  return workdir, results


def test_smoke_run_writes_every_output(full_run):
  workdir, results = full_run
  with open(os.path.join(workdir, "results.json")) as f:
    saved = json.load(f)
  for key in (
    "landmarks/nme",
    "pose/mae_yaw_deg",
    "gender/accuracy",
    "detection/ap",
    "baseline/landmarks/nme",
    "visibility/accuracy",
  ):
    assert key in saved and np.isfinite(saved[key]), key
  assert saved["step"] == 6
  assert saved["landmarks/nme"] == pytest.approx(results["landmarks/nme"])
  for name in ("losses.png", "ced.png", "crops.png", "results.md"):
    assert os.path.getsize(os.path.join(workdir, "report", name)) > 0, name
  records = read_metrics(workdir)
  assert [r["step"] for r in records if "train/loss" in r] == [2, 4, 6]
  for r in records:
    if "train/loss" in r:
      assert r["weight/landmarks"] == 5.0 and r["weight/visibility"] == 0.5
  assert any("val/loss/pose" in r for r in records)
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  assert checkpointing.Checkpointer(workdir).latest_step() == 6


def test_variables_restore_equals_the_train_state_restore_bit_for_bit(full_run, data_dir):
  """The one variables-restore path (checkpointing.restore_variables: inference, model_init,
  surgery) returns exactly the params and model_state of the full train-state restore."""
  from hyperface_jax import sharding  # pylint: disable=g-import-not-at-top
  from hyperface_jax.inference import batched  # pylint: disable=g-import-not-at-top

  workdir, _ = full_run
  config = _smoke_config(data_dir)
  mesh = sharding.make_mesh()
  *_, init = train.build(config, mesh)
  ckpt = checkpointing.Checkpointer(workdir)
  state = train.restore_or_init(config, mesh, init, ckpt)  # the full state, latest step
  ckpt.close()
  want = sharding.to_host({"params": state.params, **state.model_state})
  _, loaded, step = batched.load_variables(batched.load_workdir_config(workdir), workdir)
  assert step == int(state.step) == 6
  for got in (checkpointing.restore_variables(workdir), loaded):
    flat_got, flat_want = (
      {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(t)}
      for t in (got, want)
    )
    assert sorted(flat_got) == sorted(flat_want)
    for name, x in flat_want.items():
      y = flat_got[name]
      assert (y.dtype, y.shape) == (x.dtype, x.shape) and y.tobytes() == x.tobytes(), name


class _Crash(Exception):
  pass


def test_interrupted_and_resumed_run_matches_uninterrupted(
  full_run, data_dir, tmp_path, monkeypatch
):
  workdir_full, _ = full_run
  workdir = str(tmp_path / "resumed")
  real = steps.make_train_step

  def crashing(*args, **kwargs):
    step_fn = real(*args, **kwargs)

    def wrapped(state, batch):
      if int(state.step) == 4:  # after the checkpoint at 3 and the log at 4
        raise _Crash()
      return step_fn(state, batch)

    return wrapped

  monkeypatch.setattr(steps, "make_train_step", crashing)
  with pytest.raises(_Crash):
    train.train_and_evaluate(_smoke_config(data_dir), workdir)
  assert max(r["step"] for r in read_metrics(workdir)) == 4
  monkeypatch.setattr(steps, "make_train_step", real)
  train.train_and_evaluate(_smoke_config(data_dir), workdir)

  full = {r["step"]: r for r in read_metrics(workdir_full) if "train/loss" in r}
  resumed = {r["step"]: r for r in read_metrics(workdir) if "train/loss" in r}
  assert sorted(resumed) == sorted(full) == [2, 4, 6]
  for step in full:
    for key in full[step]:
      if key.startswith(("train/loss", "weight/")):
        assert resumed[step][key] == pytest.approx(full[step][key], rel=1e-5), (step, key)


def _crash_then_resume(config, workdir, monkeypatch, before_step):
  """Runs `config` in `workdir`, crashing just before step `before_step`, then resumes."""
  real = steps.make_train_step

  def crashing(*args, **kwargs):
    step_fn = real(*args, **kwargs)

    def wrapped(state, batch):
      if int(state.step) == before_step - 1:
        raise _Crash()
      return step_fn(state, batch)

    return wrapped

  monkeypatch.setattr(steps, "make_train_step", crashing)
  with pytest.raises(_Crash):
    train.train_and_evaluate(config, workdir)
  monkeypatch.setattr(steps, "make_train_step", real)
  train.train_and_evaluate(config, workdir)


# Schemes whose coefficients move every step (uncertainty) or at an evaluation
# (tcdcn_early_stop: k = 1 and a threshold no criterion falls below, so every auxiliary
# task stops at the first check: the update of step 5, which sees the second evaluation).
MOVING_WEIGHTS = {
  "tcdcn_early_stop": dict(k=1, epsilon=-1e9),
  "uncertainty": dict(lr=0.05),
}


@pytest.mark.slow
@pytest.mark.parametrize("scheme", sorted(MOVING_WEIGHTS))
def test_resumed_run_matches_uninterrupted_with_moving_weights(
  scheme, data_dir, tmp_path, monkeypatch
):
  """8 steps, evaluation every 2, checkpoints at 3, 6, 8; the crash comes before step 5,
  so the resumed run restores the weighting state of step 3 (interval sums, val_count)
  and must take the same decisions."""

  def config():
    c = _smoke_config(data_dir, total_steps=8, eval_every=2, log_every=1)
    c.weighting.name = scheme
    c.weighting[scheme].update(MOVING_WEIGHTS[scheme])
    return c

  full_dir, resumed_dir = str(tmp_path / "full"), str(tmp_path / "resumed")
  train.train_and_evaluate(config(), full_dir)
  _crash_then_resume(config(), resumed_dir, monkeypatch, before_step=5)
  full = {r["step"]: r for r in read_metrics(full_dir) if "train/loss" in r}
  resumed = {r["step"]: r for r in read_metrics(resumed_dir) if "train/loss" in r}
  assert sorted(resumed) == sorted(full) == list(range(1, 9))
  prefixes = ("train/loss", "weight/", "stopped_step/", "tcdcn/", "uncertainty/")
  for step in full:
    keys = [k for k in full[step] if k.startswith(prefixes)]
    assert keys == [k for k in resumed[step] if k.startswith(prefixes)]
    for key in keys:
      assert resumed[step][key] == pytest.approx(full[step][key], rel=1e-5), (step, key)
  pose = [full[s]["weight/pose"] for s in range(1, 9)]
  assert len(set(pose)) > 1, pose  # the weights moved
  if scheme == "tcdcn_early_stop":
    for t in ("detection", "visibility", "pose", "gender"):
      assert [full[s][f"stopped_step/{t}"] for s in range(1, 9)] == [-1] * 4 + [5] * 4, t
      assert [full[s][f"weight/{t}"] == 0 for s in range(1, 9)] == [False] * 5 + [True] * 3, t
    assert all(full[s]["stopped_step/landmarks"] == -1 for s in full)
    # The stopped heads did not move between the checkpoints of steps 6 and 8.
    heads = [
      checkpointing.restore_variables(resumed_dir, step=s)["params"]["heads"] for s in (6, 8)
    ]
    for name in ("fc_pose1", "fc_pose2", "fc_gender2"):
      assert heads[0][name]["kernel"].tobytes() == heads[1][name]["kernel"].tobytes(), name
    assert (
      heads[0]["fc_landmarks2"]["kernel"].tobytes() != heads[1]["fc_landmarks2"]["kernel"].tobytes()
    )


@pytest.mark.parametrize(
  "log_every,bad_step,last_checkpoint",
  # Logging every 2 steps: the bad step 5 is fetched with step 6, a log, evaluation and
  # checkpoint step. Logging never: the bad step 2 is fetched (with the NaN step 3 that
  # follows it) only before the evaluation and checkpoint of step 3.
  [(2, 5, 3), (100, 2, None)],
)
def test_non_finite_loss_stops_naming_step_and_task(
  log_every, bad_step, last_checkpoint, data_dir, tmp_path, monkeypatch
):
  """Metrics are fetched at log, evaluation and checkpoint steps (train.py): the error
  names the first bad step, and no checkpoint of that step or a later one is written."""
  workdir = str(tmp_path / "nan")
  real_load = inputs.load

  def poisoned_load(config):
    data = real_load(config)
    clean = data.train_batch

    def train_batch(step, rows):
      batch = clean(step, rows)
      if step == bad_step:
        batch["pose"] = np.full_like(batch["pose"], np.nan)
      return batch

    data.train_batch = train_batch
    return data

  monkeypatch.setattr(inputs, "load", poisoned_load)
  match = rf"step {bad_step} in task\(s\) \['pose'\]"
  with pytest.raises(train.NonFiniteLossError, match=match):
    train.train_and_evaluate(_smoke_config(data_dir, log_every=log_every), workdir)
  ckpt = checkpointing.Checkpointer(workdir)
  assert ckpt.latest_step() == last_checkpoint
  assert not os.path.exists(os.path.join(workdir, "results.json"))


def test_unknown_config_key_fails_naming_it(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "hyperface_jax.main",
      "--config=configs/smoke.py",
      f"--workdir={tmp_path}",
      "--config.model.widht=0.5",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 2
  assert "error: bad command line" in proc.stderr
  assert "'widht' Did you mean \"width\"" in proc.stderr
  assert "Traceback" not in proc.stderr
