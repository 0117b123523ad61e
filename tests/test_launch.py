"""launch/: every script's --dry_run output, and multihost_local.sh's process handling
(waits for all, fails if one fails and kills the rest, forwards SIGTERM) with stand-in
processes instead of Python."""

import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(REPO, "launch")
FLAGS = ["--config=configs/smoke.py", "--workdir=/tmp/run dir", "--config.lr=0.5"]


def _run(script, *args, env=None, **kwargs):
  return subprocess.run(
    ["bash", os.path.join(LAUNCH, script), *args],
    capture_output=True,
    text=True,
    timeout=60,
    env=dict(os.environ, PYTHON=sys.executable, **(env or {})),
    **kwargs,
  )


def test_local_dry_run_prints_the_main_command():
  proc = _run("local.sh", "--dry_run", *FLAGS)
  assert proc.returncode == 0, proc.stderr
  assert shlex.split(proc.stdout) == [sys.executable, "-m", "hyperface_jax.main", *FLAGS]
  assert proc.stdout.count("\n") == 1


@pytest.mark.parametrize("script", ["local.sh", "multihost_local.sh", "slurm.sbatch", "tpu_vm.sh"])
def test_every_script_needs_config_and_workdir(script):
  extra = {"multihost_local.sh": ["--num_processes=2"], "tpu_vm.sh": ["--tpu=t", "--zone=z"]}
  proc = _run(script, "--dry_run", "--config=configs/smoke.py", *extra.get(script, []))
  assert proc.returncode == 2
  assert "need --config=FILE[:ARG] and --workdir=DIR" in proc.stderr


def test_multihost_local_dry_run_prints_one_command_per_process():
  # The test environment's 8-device XLA flag (tests/conftest.py) is replaced, others kept.
  env = {"XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=8"}
  proc = _run(
    "multihost_local.sh",
    "--num_processes=3",
    "--devices_per_process=4",
    "--dry_run",
    *FLAGS,
    env=env,
  )
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert len(lines) == 3
  ports = set()
  for i, line in enumerate(lines):
    words = shlex.split(line)
    assert words[0] == "env"
    k = words.index(sys.executable)
    envs = dict(w.split("=", 1) for w in words[1:k])
    assert words[k:] == [sys.executable, "-m", "hyperface_jax.main", "--multihost", *FLAGS]
    assert envs["JAX_PLATFORMS"] == "cpu"
    assert envs["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=4"
    assert envs["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] == "gloo"
    assert (envs["JAX_NUM_PROCESSES"], envs["JAX_PROCESS_ID"]) == ("3", str(i))
    host, port = envs["JAX_COORDINATOR_ADDRESS"].split(":")
    assert host == "127.0.0.1" and 1024 <= int(port) < 65536
    ports.add(port)
  assert len(ports) == 1  # one coordinator


@pytest.mark.parametrize(
  "bad", ["--num_processes=0", "--num_processes=two", "--devices_per_process=-1"]
)
def test_multihost_local_refuses_bad_counts(bad):
  args = ["--num_processes=2", bad] if "devices" in bad else [bad]
  proc = _run("multihost_local.sh", "--dry_run", *args, *FLAGS)
  assert proc.returncode == 2
  assert "must be a positive integer" in proc.stderr and "usage:" in proc.stderr


def test_slurm_dry_run_prints_the_srun_line():
  proc = _run("slurm.sbatch", "--dry_run", *FLAGS)
  assert proc.returncode == 0, proc.stderr
  assert shlex.split(proc.stdout) == [
    "srun",
    "--kill-on-bad-exit=1",
    sys.executable,
    "-m",
    "hyperface_jax.main",
    "--multihost",
    *FLAGS,
  ]
  with open(os.path.join(LAUNCH, "slurm.sbatch")) as f:
    directives = [line.split()[1] for line in f if line.startswith("#SBATCH")]
  opts = dict(d.lstrip("-").split("=", 1) for d in directives if "=" in d)
  # One task per GPU (jax gives a process the GPU of its SLURM_LOCALID).
  assert opts["ntasks-per-node"] == opts["gpus-per-node"]
  assert opts["signal"].startswith("TERM@") and "--requeue" in directives


def test_tpu_vm_dry_run_prints_the_gcloud_command():
  flags = [*FLAGS, "--config.name=it's"]
  proc = _run(
    "tpu_vm.sh", "--tpu=my-tpu", "--zone=us-central2-b", "--project=p1", "--dry_run", *flags
  )
  assert proc.returncode == 0, proc.stderr
  words = shlex.split(proc.stdout)
  assert words[:-1] == [
    "gcloud",
    "compute",
    "tpus",
    "tpu-vm",
    "ssh",
    "my-tpu",
    "--zone=us-central2-b",
    "--project=p1",
    "--worker=all",
  ]
  assert words[-1].startswith("--command=")
  remote = shlex.split(words[-1][len("--command=") :])
  assert remote == [
    "cd",
    "hyperface_jax",
    "&&",
    ".venv/bin/python",
    "-m",
    "hyperface_jax.main",
    "--multihost",
    *flags,
  ]
  proc = _run("tpu_vm.sh", "--dry_run", *FLAGS)
  assert proc.returncode == 2 and "need --tpu=NAME and --zone=ZONE" in proc.stderr


# A stand-in for the Python of the processes: `-c` (the free-port probe) goes to the real
# Python; a "process" writes its id to $MARK_DIR, then sleeps or exits as $BEHAVIOUR says
# (a word per process id: ok, fail, hang), and on SIGTERM writes a mark and exits 0.
FAKE_PYTHON = r"""#!/usr/bin/env bash
if [[ "$1" == -c ]]; then exec "$REAL_PYTHON" "$@"; fi
echo "args $*"
touch "$MARK_DIR/started_$JAX_PROCESS_ID"
trap 'touch "$MARK_DIR/term_$JAX_PROCESS_ID"; exit 0' TERM
read -ra behaviour <<<"$BEHAVIOUR"
case "${behaviour[$JAX_PROCESS_ID]}" in
  ok) sleep 0.5; exit 0 ;;
  fail) sleep 1; echo "failing" >&2; exit 3 ;;
  hang) for _ in $(seq 600); do sleep 0.1; done; exit 0 ;;
esac
"""


@pytest.fixture
def fake_python(tmp_path):
  path = tmp_path / "python"
  path.write_text(FAKE_PYTHON)
  path.chmod(0o755)
  marks = tmp_path / "marks"
  marks.mkdir()
  return {"PYTHON": str(path), "REAL_PYTHON": sys.executable, "MARK_DIR": str(marks)}, marks


def _launch(fake_env, behaviour, **kwargs):
  env = dict(os.environ, **fake_env, BEHAVIOUR=behaviour)
  args = ["--num_processes=%d" % len(behaviour.split()), *FLAGS]
  return subprocess.Popen(
    ["bash", os.path.join(LAUNCH, "multihost_local.sh"), *args],
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    **kwargs,
  )


def test_multihost_local_waits_for_every_process(fake_python):
  env, marks = fake_python
  proc = _launch(env, "ok ok ok")
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == 0, err
  assert sorted(os.listdir(marks)) == ["started_0", "started_1", "started_2"]
  for i in range(3):
    assert f"[process {i}] args -m hyperface_jax.main --multihost" in out


def test_multihost_local_fails_and_kills_the_rest_when_one_fails(fake_python):
  env, marks = fake_python
  t0 = time.time()
  proc = _launch(env, "hang fail hang")
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == 3, (out, err)
  assert time.time() - t0 < 30  # the hanging processes were killed, not waited for
  assert "process 1 (pid" in err and "exited with status 3; killing the other 2" in err
  assert "[process 1] failing" in err
  assert not [m for m in os.listdir(marks) if m.startswith("term_")]  # SIGKILL, not TERM


def test_multihost_local_forwards_sigterm(fake_python):
  env, marks = fake_python
  proc = _launch(env, "hang hang")
  deadline = time.time() + 30
  while len(os.listdir(marks)) < 2 and time.time() < deadline:
    time.sleep(0.1)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == 0, err
  assert "got SIGTERM; forwarding it to 2 process(es)" in err
  assert sorted(m for m in os.listdir(marks) if m.startswith("term_")) == ["term_0", "term_1"]
