"""What the multi-run studies in bench/ share: in-process runs that resume, cached data
stores, mean +- std cells and the step a validation curve first reaches a threshold.

Each run is `train.train_and_evaluate` in the study's process (one JAX start-up) in its own
workdir; a finished run (results.json present) is not re-run, so an interrupted study
resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from hyperface_jax import train
from hyperface_jax.data import inputs
from hyperface_jax.metric_writer import read_metrics

# The task-weighting schemes of hyperface_jax/weighting/ in the order the studies' tables
# list them (the paper-less baseline first, then TCDCN's two, then the later schemes).
WEIGHTING_SCHEMES = (
  "static",
  "tcdcn_early_stop",
  "tcdcn_dynamic",
  "uncertainty",
  "gradnorm",
  "dwa",
  "pcgrad",
  "famo",
)


def cache_stores() -> None:
  """Reads each TFDS split once for the whole study (inputs._store memoized by its
  arguments: a store is a pure function of them and is not modified). Falls back to no
  cache if the private helper is renamed."""
  original = getattr(inputs, "_store", None)
  if original is None:
    return
  cache = {}

  def cached(src, split, max_examples, fields):
    key = json.dumps(
      [
        src["name"],
        src["data_dir"],
        dict(src.get("builder_config") or {}),
        split,
        max_examples,
        sorted(fields),
      ],
      sort_keys=True,
      default=str,
    )
    if key not in cache:
      cache[key] = original(src, split, max_examples, fields)
    return cache[key]

  inputs._store = cached


def skip_report() -> None:
  """No report/ per run (matplotlib plots take seconds; results.json is still written)."""
  from hyperface_jax.evaluation import report  # pylint: disable=g-import-not-at-top

  report.write_report = lambda *a, **k: []


def shorten(
  c, *, seed: int, steps: int, warmup: int, data_dir: str = "", batch=None, eval_every=None
):
  """A study's overrides of a config: seed, length, warm-up, one checkpoint at the end, no
  report crops; `batch` and `eval_every` (also the log interval) when given."""
  c.seed = seed
  c.total_steps = steps
  if batch:
    c.batch_size = batch
  if eval_every:
    c.eval_every = eval_every
    c.log_every = eval_every
  c.checkpoint_every = steps
  c.keep_checkpoints = 1
  c.schedule.warmup_steps = warmup
  c.report.num_crops = 0
  if data_dir:
    c.data.data_dir = data_dir
  return c


def train_once(config, workdir: str) -> Tuple[dict, List[dict]]:
  """Trains `config` in `workdir` unless results.json is there; returns (results, metrics
  rows of metrics.jsonl)."""
  if not os.path.exists(os.path.join(workdir, "results.json")):
    t0 = time.time()
    with contextlib.redirect_stdout(io.StringIO()):  # the runner prints a results table
      train.train_and_evaluate(config, workdir)
    print(f"  {workdir}: {time.time() - t0:.0f} s", flush=True)
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  return results, read_metrics(workdir)


def curve(rows: Sequence[dict], key: str) -> List[Tuple[int, float]]:
  """(step, value) of every metrics row that has `key` (e.g. a validation loss)."""
  return [(r["step"], r[key]) for r in rows if key in r]


def step_time(rows: Sequence[dict], batch_size: int) -> float:
  """Median seconds per step from the logged examples/s, the first log (compilation)
  left out; NaN when fewer than two logs."""
  rates = [r["train/examples_per_sec"] for r in rows if "train/examples_per_sec" in r][1:]
  return batch_size / float(np.median(rates)) if rates else float("nan")


def stopped_steps(rows: Sequence[dict]) -> Dict[str, float]:
  """The last logged `stopped_step/<task>` of each task (-1: never stopped)."""
  stopped = {}
  for r in rows:
    for k, v in r.items():
      if k.startswith("stopped_step/"):
        stopped[k[len("stopped_step/") :]] = v
  return stopped


def mean_std(values, fmt: str = "{:.4f}") -> str:
  """'mean +- std' (sample std) of the finite values; '-' when there are none."""
  v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
  if v.size == 0:
    return "-"
  return (fmt + " +- " + fmt).format(v.mean(), v.std(ddof=1) if v.size > 1 else 0.0)


def reach_step(val: Sequence[Tuple[int, float]], threshold: float) -> Optional[int]:
  """The first step whose value is <= threshold (None: never)."""
  return next((s for s, v in val if v <= threshold), None)


def reach_cell(curves: Sequence[Sequence[Tuple[int, float]]], threshold: float) -> str:
  """Mean first step reaching `threshold` over the runs that reached it, and how many did."""
  got = [s for s in (reach_step(c, threshold) for c in curves) if s is not None]
  if not got:
    return f"- (0/{len(curves)})"
  return f"{np.mean(got):.0f} ({len(got)}/{len(curves)} reached)"


def write_markdown(path: str, lines: Sequence[str]) -> None:
  """Writes the study's markdown atomically (a crash leaves the previous file) and prints it."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    f.write("\n".join(lines))
  os.replace(path + ".tmp", path)
  print("\n".join(lines))


def seeded_runs(
  workdir: str, seeds: int, make: Callable[[int], object], summarize: Callable[[dict, list], dict]
) -> List[dict]:
  """Runs (or reuses) `make(seed)` in workdir/seed<k> for each seed; returns the summaries."""
  out = []
  for s in range(seeds):
    results, rows = train_once(make(s), os.path.join(workdir, f"seed{s}"))
    out.append(summarize(results, rows))
  return out
