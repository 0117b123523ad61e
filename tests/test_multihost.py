"""A real multi-process run: 2 processes x 4 fake CPU devices, joined by jax.distributed
over localhost (launch/multihost_local.sh), train configs/smoke.py (shrunk to 4 steps) and
end like 1 process x 8 devices.

Tolerances: the two runs execute the same per-device program on the same rows (device d
holds rows 2d, 2d+1 of the global batch in both), but the cross-device sums of the step
(`lax.psum` of losses and gradients over 8 devices) are reduced in another order by gloo
across processes than by XLA inside one process. float32 addition is not associative, so
each sum may differ in its last bits (relative 8 * 2^-24 ~ 5e-7 at most for 8 terms); over 4
Adam steps of lr 0.01 the parameters then differ by ~5e-8 (measured), far below the 1e-3
that a missing or doubled share of the data moves them in one step. Parameters are compared
with atol 1e-6, losses with rel 1e-5. The evaluator's numbers of one checkpoint are
compared bit for bit: the outputs of each row come from one device, no cross-device sum.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from hyperface_jax import checkpointing, train
from hyperface_jax.data import inputs
from hyperface_jax.metric_writer import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESSES, DEVICES_PER_PROCESS = 2, 4
OVERRIDES = dict(total_steps=4, log_every=1, eval_every=2, checkpoint_every=2)

pytestmark = pytest.mark.slow


def _config(data_dir):
  sys.path.insert(0, REPO)
  from configs import smoke  # pylint: disable=g-import-not-at-top

  c = smoke.get_config()
  c.data.data_dir = str(data_dir)
  for k, v in OVERRIDES.items():
    setattr(c, k, v)
  return c


def _flags(data_dir, workdir):
  return [
    "--config=configs/smoke.py",
    f"--workdir={workdir}",
    f"--config.data.data_dir={data_dir}",
    *(f"--config.{k}={v}" for k, v in OVERRIDES.items()),
  ]


def _flat(tree):
  return {
    jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)
  }


def _losses(workdir):
  return {r["step"]: r for r in read_metrics(workdir) if "train/loss" in r}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("tfds")
  inputs.ensure_prepared(_config(d).data)
  return d


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
  two = tmp_path_factory.mktemp("two_processes")
  logs = tmp_path_factory.mktemp("logs")
  proc = subprocess.run(
    [
      "bash",
      os.path.join(REPO, "launch", "multihost_local.sh"),
      f"--num_processes={PROCESSES}",
      f"--devices_per_process={DEVICES_PER_PROCESS}",
      f"--log_dir={logs}",
      *_flags(data_dir, two),
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
    env=dict(os.environ, PYTHON=sys.executable),
  )
  log = {i: (logs / f"process_{i}.log").read_text() for i in range(PROCESSES)}
  assert proc.returncode == 0, (proc.stderr, log[0][-3000:], log[1][-3000:])
  one = tmp_path_factory.mktemp("one_process")
  train.train_and_evaluate(_config(data_dir), str(one))  # 1 process x 8 devices (conftest)
  return dict(data_dir=data_dir, two=str(two), one=str(one), log=log)


def test_two_processes_end_with_the_parameters_of_one(runs):
  assert jax.process_count() == 1 and jax.device_count() == PROCESSES * DEVICES_PER_PROCESS
  for i in range(PROCESSES):
    assert f"{PROCESSES} process(es)" in runs["log"][i]
    # Each process generates only its own rows of every global batch (data/pipeline.py).
    lo = i * 16 // PROCESSES
    assert (
      f"Process {i} of {PROCESSES} generates rows {lo}-{lo + 7} of each global batch of 16 "
      f"({DEVICES_PER_PROCESS} local devices)" in runs["log"][i]
    )
  for step in (2, 4):
    two = _flat(checkpointing.restore_variables(runs["two"], step=step))
    one = _flat(checkpointing.restore_variables(runs["one"], step=step))
    assert sorted(two) == sorted(one)
    for name in one:
      np.testing.assert_allclose(two[name], one[name], rtol=0, atol=1e-6, err_msg=f"{step} {name}")
  start = _flat(checkpointing.restore_variables(runs["one"], step=2))
  end = _flat(checkpointing.restore_variables(runs["one"], step=4))
  assert max(float(np.max(np.abs(end[n] - start[n]))) for n in end) > 1e-3  # it trained
  two, one = _losses(runs["two"]), _losses(runs["one"])
  assert sorted(two) == sorted(one) == [1, 2, 3, 4]
  for step in one:
    for key, value in one[step].items():
      if key.startswith(("train/loss", "weight/", "train/grad_norm")):
        assert two[step][key] == pytest.approx(value, rel=1e-5), (step, key)


def test_only_process_zero_writes_logs_config_and_results(runs):
  two = runs["two"]
  # One line per logged step and evaluation: a second writer would have doubled them.
  steps = [r["step"] for r in read_metrics(two)]
  assert steps == [1, 2, 2, 3, 4, 4], steps
  events = [f for f in os.listdir(os.path.join(two, "tensorboard")) if "tfevents" in f]
  assert len(events) == 1, events
  for name in ("config.json", "results.json", "report/results.md"):
    assert os.path.exists(os.path.join(two, name)), name
  assert not [f for f in os.listdir(two) if ".tmp" in f]
  assert "| metric | model | baseline |" in runs["log"][0]
  assert "| metric | model | baseline |" not in runs["log"][1]
  # Both processes took part in every orbax save.
  for step in (2, 4):
    item = os.path.join(two, "checkpoints", str(step), "default", "array_metadatas")
    assert sorted(os.listdir(item)) == [f"process_{i}" for i in range(PROCESSES)]


def test_two_process_checkpoint_resumes_on_one_process(runs, tmp_path):
  """The checkpoint of step 2 written by 2 processes restores on 1 process (8 devices),
  which continues with the losses of the 2-process run."""
  workdir = str(tmp_path / "resumed")
  shutil.copytree(runs["two"], workdir)
  shutil.rmtree(os.path.join(workdir, "checkpoints", "4"))
  os.remove(os.path.join(workdir, "results.json"))
  train.train_and_evaluate(_config(runs["data_dir"]), workdir)
  resumed, two = _losses(workdir), _losses(runs["two"])
  assert sorted(resumed) == [1, 2, 3, 4]
  for step in (3, 4):
    for key, value in two[step].items():
      if key.startswith(("train/loss", "weight/", "train/grad_norm")):
        assert resumed[step][key] == pytest.approx(value, rel=1e-5), (step, key)
  end = _flat(checkpointing.restore_variables(workdir, step=4))
  want = _flat(checkpointing.restore_variables(runs["two"], step=4))
  for name in want:
    np.testing.assert_allclose(end[name], want[name], rtol=0, atol=1e-6, err_msg=name)


def test_evaluation_of_a_checkpoint_is_identical_on_one_process(runs, tmp_path):
  """The final evaluation of the 2-process run and that of its last checkpoint on 1
  process: every evaluator number bit for bit (the test losses, psum-ed, to rel 1e-6)."""
  workdir = str(tmp_path / "evaluated")
  shutil.copytree(runs["two"], workdir)
  os.remove(os.path.join(workdir, "results.json"))
  results = train.train_and_evaluate(_config(runs["data_dir"]), workdir)  # step 4: no step
  with open(os.path.join(runs["two"], "results.json")) as f:
    two = json.load(f)
  assert two["step"] == 4 and sorted(two) == sorted(
    json.load(open(os.path.join(workdir, "results.json")))
  )
  for key, value in results.items():
    if key.startswith("test/loss/"):
      assert two[key] == pytest.approx(value, rel=1e-6), key
    else:
      assert two[key] == value, key


def test_sigterm_to_one_process_stops_both_at_the_same_step(data_dir, tmp_path):
  """SIGTERM reaches only process 1: the processes agree (an all-gather of their flags
  every step), both save the same step and exit 0, and so does the launcher."""
  pids = tmp_path / "pids"
  pids.mkdir()
  python = tmp_path / "python"  # `python -m hyperface_jax.main` -> tests/fault_driver.py
  python.write_text(
    "#!/usr/bin/env bash\n"
    f'if [[ "$1" == -m ]]; then exec {sys.executable} {REPO}/tests/fault_driver.py "$@"; fi\n'
    f'exec {sys.executable} "$@"\n'
  )
  python.chmod(0o755)
  workdir, logs = tmp_path / "run", tmp_path / "logs"
  flags = [f.replace("total_steps=4", "total_steps=40") for f in _flags(data_dir, workdir)]
  proc = subprocess.Popen(
    [
      "bash",
      os.path.join(REPO, "launch", "multihost_local.sh"),
      f"--num_processes={PROCESSES}",
      f"--devices_per_process={DEVICES_PER_PROCESS}",
      f"--log_dir={logs}",
      *flags,
    ],
    cwd=REPO,
    env=dict(os.environ, PYTHON=str(python), HF_FAULT_SLEEP="0.5", HF_FAULT_PID_DIR=str(pids)),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if (workdir / "metrics.jsonl").exists() and read_metrics(workdir):
      break
    time.sleep(0.2)
  os.kill(int((pids / "pid_1").read_text()), signal.SIGTERM)
  out, err = proc.communicate(timeout=300)
  log = {i: (logs / f"process_{i}.log").read_text() for i in range(PROCESSES)}
  assert proc.returncode == 0, (err, log[0][-2000:], log[1][-2000:])
  assert "Got SIGTERM" in log[1] and "Got SIGTERM" not in log[0]
  steps = set()
  for i in range(PROCESSES):
    found = [
      int(line.split("checkpoint of step ")[1].split()[0])
      for line in log[i].splitlines()
      if line.startswith("preempted: SIGTERM received")
    ]
    assert len(found) == 1, log[i][-2000:]
    steps.add(found[0])
  (step,) = steps  # the same step on both processes
  assert 1 <= step < 40
  assert checkpointing.Checkpointer(str(workdir)).latest_step() == step
  item = workdir / "checkpoints" / str(step) / "default" / "array_metadatas"
  assert sorted(os.listdir(item)) == [f"process_{i}" for i in range(PROCESSES)]
