"""`python -m hyperface_jax.main` with faults injected from the environment (used by
tests/test_faults.py; not a test module).

  HF_FAULT_SLEEP=S       every train step first sleeps S seconds (time to send SIGTERM)
  HF_FAULT_PID_DIR=D     writes this process's pid to D/pid_<JAX_PROCESS_ID or 0>
  HF_FAULT_KILL=KIND:N   SIGKILL this process at a point of step N:
                           step       before step N runs
                           save       inside the save of step N: its files are written,
                                      orbax has not committed (renamed) them yet
                           checksums  after orbax committed step N, before its checksums
"""

import os
import signal
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import app  # noqa: E402
from orbax.checkpoint._src.path import atomicity  # noqa: E402

from hyperface_jax import checkpointing, main, steps  # noqa: E402


def _die(where: str) -> None:
  print(f"fault_driver: SIGKILL {where}", flush=True)
  os.kill(os.getpid(), signal.SIGKILL)


def _install() -> None:
  if os.environ.get("HF_FAULT_PID_DIR"):
    name = f"pid_{os.environ.get('JAX_PROCESS_ID', '0')}"
    with open(os.path.join(os.environ["HF_FAULT_PID_DIR"], name), "w") as f:
      f.write(str(os.getpid()))
  sleep = float(os.environ.get("HF_FAULT_SLEEP", "0"))
  kind, _, n = os.environ.get("HF_FAULT_KILL", "").partition(":")
  n = int(n) if n else -1
  real_step = steps.make_train_step

  def make_train_step(*args, **kwargs):
    step_fn = real_step(*args, **kwargs)

    def wrapped(state, batch):
      if kind == "step" and int(state.step) == n - 1:
        _die(f"before step {n}")
      if sleep:
        time.sleep(sleep)
      return step_fn(state, batch)

    return wrapped

  steps.make_train_step = make_train_step
  if kind == "save":
    real_finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize(self):
      if self._final_path.name == str(n):
        _die(f"in the save of step {n}, before its commit")
      return await real_finalize(self)

    atomicity.AtomicRenameTemporaryPath.finalize = finalize
  if kind == "checksums":
    real_checksums = checkpointing.file_checksums

    def file_checksums(step_dir):
      if os.path.basename(os.fspath(step_dir)) == str(n):
        _die(f"after the commit of step {n}, before its checksums")
      return real_checksums(step_dir)

    checkpointing.file_checksums = file_checksums


if __name__ == "__main__":
  if sys.argv[1:3] == ["-m", "hyperface_jax.main"]:  # used as $PYTHON by launch/*.sh
    sys.argv = [sys.argv[0], *sys.argv[3:]]
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  _install()
  app.run(main.main, flags_parser=main.parse_flags)
