r"""Input pipeline throughput against what the train step consumes (data/prefetch.py).

  PYTHONPATH=. .venv/bin/python bench/input_pipeline.py [--configs=demo,face_crops:synth]
      [--workers=0,1,2,4] [--batches=40] [--loop_steps=60] [--loop_workers=0,1,2]

For each config (`NAME` or `NAME:ARG` of configs/NAME.py, its training split loaded as
train.py loads it):
- pipeline crops/s: regions per second handed out by `prefetch.Prefetcher` with 0 (inline),
  1, 2, 4 worker threads over `--batches` consecutive steps, timed from the first batch
  on (the first batch is reported apart, as "start s");
- step images/s: the real jitted train step of steps.py (the config's model, losses,
  weighting, optimiser) on one fixed batch of the pipeline, on the default mesh of
  train.py, after a warm-up step: what the step consumes when input costs nothing;
- loop examples/s (`--loop_steps` > 0): a short real run of train.train_and_evaluate with
  `config.data.workers` = each of `--loop_workers` (validation and checkpoints only at the
  end, 8 evaluation scenes), the mean `train/examples_per_sec` of metrics.jsonl after the
  first logging window (which holds the compilation).

Prints markdown tables and the load average before and after (other jobs may share the
machine: the numbers are then lower bounds and move between runs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from train_step_lib import (  # noqa: E402  (bench/)
  add_host_malloc_flag,
  build_train_step,
  images_per_second,
  load_config,
)

from hyperface_jax import host_memory, sharding, train  # noqa: E402
from hyperface_jax.data import inputs, prefetch  # noqa: E402
from hyperface_jax.metric_writer import read_metrics  # noqa: E402


def pipeline_rate(data, rows: int, workers: int, batches: int, prefetch_depth: int):
  """(crops/s after the first batch, seconds to the first batch)."""
  t0 = time.perf_counter()
  with prefetch.Prefetcher(
    data.train_batch, rows, 0, batches + 1, workers=workers, prefetch=prefetch_depth
  ) as p:
    p.get(1)
    t1 = time.perf_counter()
    for step in range(2, batches + 2):
      p.get(step)
    t2 = time.perf_counter()
  return batches * rows / (t2 - t1), t1 - t0


def step_rate(config, batch, num_steps: int) -> float:
  """Images/s of the real train step on one fixed batch (train.py's mesh)."""
  mesh = sharding.make_mesh()
  _, step, state = build_train_step(config, mesh)
  batch = sharding.global_batch(mesh, batch)
  return images_per_second(step, state, batch, num_steps, config.batch_size)


def loop_rate(name: str, workers: int, num_steps: int, log_every: int) -> float:
  """Mean train/examples_per_sec of a short real run after its first logging window."""
  config = load_config(name)
  config.total_steps = num_steps
  config.log_every = log_every
  config.eval_every = config.checkpoint_every = 10 * num_steps
  config.data.max_eval_scenes = 8
  config.data.workers = workers
  with tempfile.TemporaryDirectory() as workdir:
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):  # results table
      train.train_and_evaluate(config, workdir)
    rates = [
      m["train/examples_per_sec"]
      for m in read_metrics(workdir)
      if "train/examples_per_sec" in m and m["step"] > log_every
    ]
  return float(np.mean(rates))


def _load() -> str:
  return " ".join(open("/proc/loadavg").read().split()[:3])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", default="demo,face_crops:synth")
  parser.add_argument("--workers", default="0,1,2,4")
  parser.add_argument("--batches", type=int, default=40)
  parser.add_argument("--prefetch", type=int, default=0, help="0: 2 x workers")
  parser.add_argument("--steps", type=int, default=5, help="timed train steps")
  parser.add_argument("--loop_steps", type=int, default=60)
  parser.add_argument("--loop_workers", default="0,1,2")
  parser.add_argument("--log_every", type=int, default=20)
  add_host_malloc_flag(parser)
  args = parser.parse_args(argv)
  host_memory.configure(args.host_malloc)  # before the first large allocation
  workers = [int(w) for w in args.workers.split(",")]
  load_before = _load()
  rows = []
  for name in args.configs.split(","):
    config = load_config(name)
    data = inputs.load(config)
    n = config.batch_size // jax.process_count()
    pipe = {
      w: pipeline_rate(data, n, w, args.batches, args.prefetch or max(2 * w, 1)) for w in workers
    }
    consume = step_rate(config, data.train_batch(1, n), args.steps)
    rows.append((name, config.batch_size, config.input_size, pipe, consume))
    del data
  print(f"\nload average (1, 5, 15 min) before: {load_before}; after: {_load()}\n")
  head = " | ".join(f"{w} workers crops/s (start s)" for w in workers)
  print(f"| config | batch | input | {head} | step images/s | best pipeline / step |")
  print("|---|---|---|" + "---|" * len(workers) + "---|---|")
  for name, batch, size, pipe, consume in rows:
    cells = " | ".join(f"{pipe[w][0]:.0f} ({pipe[w][1]:.1f})" for w in workers)
    best = max(v[0] for v in pipe.values())
    print(f"| {name} | {batch} | {size} | {cells} | {consume:.0f} | {best / consume:.1f}x |")
  if args.loop_steps > 0:
    print()
    loop_workers = [int(w) for w in args.loop_workers.split(",")]
    name = args.configs.split(",")[0]
    rates = [(w, loop_rate(name, w, args.loop_steps, args.log_every)) for w in loop_workers]
    print(f"\nfull loop, {name}, {args.loop_steps} steps (load average after: {_load()})\n")
    print("| data.workers | loop examples/s |")
    print("|---|---|")
    for w, r in rates:  # a repeated value is run (and listed) again
      print(f"| {w} | {r:.1f} |")


if __name__ == "__main__":
  main()
