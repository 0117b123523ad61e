"""Training batches computed ahead of the step by worker threads (config.data.workers).

`Prefetcher(train_batch, rows, start, stop, workers=N, prefetch=P)` hands out the host
batches of steps start + 1, start + 2, ..., stop in that order; `get(step)` returns exactly
`train_batch(step, rows)`. A batch is a pure function of (seed, step, host) (data/pipeline.py),
so the workers may compute them in any order and on any schedule: the batches, and hence a
resumed run, are the same as with the inline path (workers=0, the batch built in the
training thread), whatever N and P.

Workers are threads. Forked processes were measured first (they share the scene stores
copy-on-write and start in under 2 s), but a process forked after JAX has started its
thread pools can inherit a lock that one of those threads held and block forever: the test
suite hung that way once the JAX-heavy tests had run in the same process, as JAX's fork
warning says it may. Spawned processes avoid that but must first receive the whole scene
store and import JAX again (grain 0.2.18's multiprocess prefetch: 26-59 s before the first
batch on the 2-core machine). Threads are safe and start at once; region sampling is
mostly small numpy operations under the GIL (profile of a configs/demo.py batch:
cv2.warpAffine, the one call that releases it, is 7 % of the time), so on this data they
overlap batch building with the device step rather than multiply it.

Default 0 workers (config_lib.py): the inline path already overlaps one batch with each
(asynchronously dispatched) step, and on the shared 2-core CPU machine the step's XLA
threads use both cores (bench/input_pipeline.py). Workers help where the host has cores
to spare beside an accelerator and a batch takes longer to build than a step.

At most `max(prefetch, workers)` batches are asked for ahead of the one being consumed.
A worker's exception is raised again by `get` (the original exception) after the pool is
closed. The pool closes after the batch of `stop` is handed out, on `close()` / leaving a
`with` block, on a worker error, and when the Prefetcher is garbage-collected (e.g. after
train.py raised preemption.Preempted or any other exception).
"""

from __future__ import annotations

import collections
import concurrent.futures
import weakref
from typing import Callable, Dict

import numpy as np

Batch = Dict[str, np.ndarray]


def _shutdown(pool) -> None:
  pool.shutdown(wait=True, cancel_futures=True)


class Prefetcher:
  """The host batches of steps start + 1 .. stop, computed ahead by `workers` threads.

  Args:
    train_batch: `(step, rows) -> dict of numpy arrays`, a pure function of the step
      (data/inputs.py `Data.train_batch`).
    rows: this host's rows per batch (passed to `train_batch`).
    start: the last step already trained (0 for a fresh run, the restored step on resume).
    stop: the last step (config.total_steps).
    workers: worker threads; 0 builds each batch inline in `get`.
    prefetch: batches asked for ahead of the one consumed (at least `workers` are).
  """

  def __init__(
    self,
    train_batch: Callable[[int, int], Batch],
    rows: int,
    start: int,
    stop: int,
    *,
    workers: int = 0,
    prefetch: int = 2,
  ):
    if workers < 0 or prefetch < 1:
      raise ValueError(f"Need workers >= 0 and prefetch >= 1; got {workers}, {prefetch}.")
    self._fn, self._rows = train_batch, rows
    self._next, self._stop = start + 1, stop
    self._workers, self._depth = workers, max(prefetch, workers)
    self._submitted = start  # the last step asked for
    self._pending = collections.deque()  # futures of steps _next, _next + 1, ...
    self._pool = None
    self._finalizer = None

  def _start(self) -> None:
    self._pool = concurrent.futures.ThreadPoolExecutor(self._workers, "prefetch")
    # Closes the pool when this object is collected; holds the pool, never `self`.
    self._finalizer = weakref.finalize(self, _shutdown, self._pool)

  def get(self, step: int) -> Batch:
    """The batch of `step`, which must be the next step (start + 1, then + 2, ...)."""
    if step != self._next or step > self._stop:
      raise ValueError(
        f"Prefetcher.get({step}): expected step {self._next} (steps are handed out in "
        f"order up to {self._stop})."
      )
    self._next += 1
    if self._workers == 0:
      return self._fn(step, self._rows)
    if self._pool is None:
      self._start()
    while self._submitted < min(step + self._depth, self._stop):
      self._submitted += 1
      self._pending.append(self._pool.submit(self._fn, self._submitted, self._rows))
    future = self._pending.popleft()
    try:
      batch = future.result()
    except BaseException:
      self.close()
      raise
    if step == self._stop:
      self.close()
    return batch

  def close(self) -> None:
    """Cancels what was not started and waits for the running batches (idempotent)."""
    self._pending.clear()
    if self._finalizer is not None:
      self._finalizer()  # runs _shutdown once

  def __enter__(self) -> "Prefetcher":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
