"""SIGTERM -> save at the next step boundary, agreed by every process, then exit 0.

Clusters announce a preemption or the end of a time slot with SIGTERM (Slurm's
`--signal=TERM@...`, Kubernetes, spot VMs), usually a few minutes before SIGKILL. The
handler only sets a flag; the training loop asks `stop_requested()` after each step.

Agreement: the signal may reach the processes of a multi-process run at different steps
(or only some of them), and a checkpoint save is collective: every process must save the
same step. So every step the processes all-gather their flags
(`multihost_utils.process_allgather` of one int32) and stop together when any of them saw
the signal. Cost: one tiny collective per step after the loop has already waited for the
step's metrics (train.py fetches them every step to stop on a non-finite loss), so it adds
only its own latency (median 2.1 ms, p90 4.1 ms over gloo between 2 CPU processes of 4
devices on the busy 2-core test machine; NCCL / ICI all-gathers of 4 bytes take microseconds,
not measured here), not a pipeline stall. A single process needs no agreement and reads its flag.
"""

from __future__ import annotations

import signal
import threading
from typing import Optional

import numpy as np
from absl import logging


class Preempted(Exception):
  """The run saved a checkpoint at `step` after SIGTERM and stopped (exit 0 in main.py)."""

  def __init__(self, step: int, directory: str):
    self.step, self.directory = step, directory
    super().__init__(
      f"preempted: SIGTERM received; saved the checkpoint of step {step} in {directory}. "
      "Run the same command again to resume from it."
    )


class Watcher:
  """A SIGTERM handler installed from `install()` (or `with`) to `uninstall()`.

  A second SIGTERM while the first is still being handled goes to the previous handler
  (by default: terminate at once), so an impatient sender can still stop the process.
  """

  def __init__(self, signals=(signal.SIGTERM,)):
    self._signals = tuple(signals)
    self._flag = False
    self._previous = {}

  def install(self) -> "Watcher":
    if threading.current_thread() is threading.main_thread():
      for s in self._signals:
        self._previous[s] = signal.signal(s, self._handle)
    else:  # e.g. a notebook's worker thread: signals cannot be caught here
      logging.warning("Not in the main thread: SIGTERM will not save a checkpoint.")
    return self

  def uninstall(self) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous = {}

  def __enter__(self) -> "Watcher":
    return self.install()

  def __exit__(self, *exc) -> None:
    self.uninstall()

  def _handle(self, signum, frame) -> None:
    previous = self._previous.get(signum)
    if self._flag and callable(previous):  # the second one: as if we were not there
      previous(signum, frame)
      return
    if self._flag and previous == signal.SIG_DFL:
      self.uninstall()
      signal.raise_signal(signum)
      return
    logging.warning(
      "Got %s: saving a checkpoint at the next step boundary, then stopping "
      "(a second one stops at once).",
      signal.Signals(signum).name,
    )
    self._flag = True

  def request(self) -> None:
    """Asks for a stop as SIGTERM does (tests, or code that decides to stop)."""
    self._flag = True

  def stop_requested(self, process_count: Optional[int] = None) -> bool:
    """Whether any process got the signal (collective when several processes run: every
    process must call it at the same step)."""
    import jax  # pylint: disable=g-import-not-at-top

    if (jax.process_count() if process_count is None else process_count) == 1:
      return self._flag
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    flags = multihost_utils.process_allgather(np.array([int(self._flag)], np.int32))
    return bool(np.any(np.asarray(flags)))
