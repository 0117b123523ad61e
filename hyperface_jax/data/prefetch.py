"""Training batches computed ahead of the step by worker processes (config.data.workers).

`Prefetcher(train_batch, rows, start, stop, workers=N, prefetch=P)` hands out the host
batches of steps start + 1, start + 2, ..., stop in that order; `get(step)` returns exactly
`train_batch(step, rows)`. A batch is a pure function of (seed, step, host) (data/pipeline.py),
so the workers may compute them in any order and on any schedule: the batches, and hence a
resumed run, are the same as with the inline path (workers=0, the batch built in the
training thread), whatever N and P.

Workers are processes, not threads: region sampling and labelling are small numpy
operations under the GIL (profile of a configs/demo.py batch: cv2.warpAffine, the one call
that releases it, is 7 % of the time), so threads could add at most ~1.1x; each process
adds a core's worth where cores are free (the shared 2-core machine had none to spare).
The processes are forked when the first batch is asked for: they inherit the scene stores
copy-on-write (nothing is pickled to them: a spawned worker, which grain's multiprocess
prefetch uses, first pickles the whole store and imports JAX again, 26-59 s before the
first batch on the 2-core machine). A child runs only numpy and OpenCV (one OpenCV thread,
SIGTERM and SIGINT ignored: the training process saves and stops on a preemption, then
closes the pool), never JAX; the batch function must not call JAX (data/inputs.py reads
the process index once, before the fork). Batches come back pickled through a pipe
(7.5 MiB of float32 pixels for configs/demo.py: a few milliseconds).

Default 0 workers (config_lib.py): on the 2-core CPU machine the step's XLA threads already
use both cores, and workers did not speed the loop up there (bench/input_pipeline.py, load
average ~25 from other jobs: configs/tcdcn_eccv14.py:cpu 243-257 examples/s with 2 workers,
271-310 inline; demo within noise). Workers pay off where the host has cores to spare
beside the accelerator and a batch takes longer to build than a step (small models, crop
datasets with one region per scene, fast accelerators).

At most `max(prefetch, workers)` batches are asked for ahead of the one being consumed.
A worker's exception is raised again by `get` (same type and message; the worker's
traceback is chained as its cause) after the pool is closed. The pool closes after the
batch of `stop` is handed out, on `close()` / leaving a `with` block, on a worker error,
and when the Prefetcher is garbage-collected (e.g. after train.py raised
preemption.Preempted or any other exception).
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import signal
import warnings
import weakref
from typing import Callable, Dict, Optional

import numpy as np

Batch = Dict[str, np.ndarray]

_batch_fn: Optional[Callable[[int, int], Batch]] = None  # set in each forked worker


def _init_worker(fn) -> None:
  """Runs first in each worker process (inherited, not pickled: fork)."""
  global _batch_fn
  _batch_fn = fn
  # The parent handles preemption (hyperface_jax/preemption.py) and Ctrl-C, then closes
  # the pool; a worker killed by the signal sent to the whole process group would break
  # the pool before the parent saved its checkpoint.
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  try:
    import cv2  # pylint: disable=g-import-not-at-top

    cv2.setNumThreads(1)  # no OpenCV thread pool inherited half-initialised from the parent
  except ImportError:  # pragma: no cover
    pass


def _call(step: int, rows: int) -> Batch:
  return _batch_fn(step, rows)


def _shutdown(pool) -> None:
  pool.shutdown(wait=True, cancel_futures=True)


class Prefetcher:
  """The host batches of steps start + 1 .. stop, computed ahead by `workers` processes.

  Args:
    train_batch: `(step, rows) -> dict of numpy arrays`, a pure function of the step
      (data/inputs.py `Data.train_batch`).
    rows: this host's rows per batch (passed to `train_batch`).
    start: the last step already trained (0 for a fresh run, the restored step on resume).
    stop: the last step (config.total_steps).
    workers: worker processes; 0 builds each batch inline in `get`.
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
    self._pool = concurrent.futures.ProcessPoolExecutor(
      self._workers,
      mp_context=multiprocessing.get_context("fork"),
      initializer=_init_worker,
      initargs=(self._fn,),
    )
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
    with warnings.catch_warnings():
      # JAX warns on every fork once it has started (its threads could hold locks the child
      # needs); the workers run only numpy and OpenCV (module docstring). The processes
      # are forked by the first submit.
      warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
      while self._submitted < min(step + self._depth, self._stop):
        self._submitted += 1
        self._pending.append(self._pool.submit(_call, self._submitted, self._rows))
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
