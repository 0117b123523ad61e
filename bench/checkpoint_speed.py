r"""What asynchronous checkpointing saves per step, on configs/demo.py's model.

  PYTHONPATH=. .venv/bin/python bench/checkpoint_speed.py [--steps=24] [--every=4] \
      [--rounds=2] [--batch_size=64]

Builds configs/demo.py's model, optimiser and tasks through train.build and runs the real
jitted data-parallel train step (steps.make_train_step) on random region batches over all
local devices, saving the whole train state with checkpointing.Checkpointer every
`--every` steps, once with `async_save=False` (the save blocks until the files and their
checksums are on disk) and once with `async_save=True` (the save returns once the state is
off the devices; files and checksums are written in the background, the next save and
`close` wait for them). Each step is waited for (block_until_ready), as the training loop
does when it fetches the step's metrics. Reported per mode: the mean time of a training
step, of a step that saves (step + save call), of the whole loop per step including the
final `close`, and the blocking time of the save call. Modes alternate for `--rounds`
rounds so that load from other processes spreads over both; the best round is reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.train_step_lib import build_train_step  # noqa: E402
from bench.weighting_step_time import random_batch  # noqa: E402
from configs import demo  # noqa: E402
from hyperface_jax import checkpointing, sharding  # noqa: E402


def setup(batch_size: int):
  """(jitted step, initial state, batches) of the demo config."""
  config = demo.get_config()
  config.batch_size = batch_size
  mesh = sharding.make_mesh()
  _, step, state = build_train_step(config, mesh, seed=0)
  rng = np.random.default_rng(0)
  batches = [sharding.global_batch(mesh, random_batch(config, batch_size, rng)) for _ in range(2)]
  state, metrics = step(state, batches[0])  # compile
  jax.block_until_ready((state, metrics))
  return step, state, batches


def run(step, state, batches, *, steps_: int, every: int, async_save: bool):
  """Times `steps_` steps saving every `every`; returns (state, timings in seconds)."""
  workdir = tempfile.mkdtemp(prefix="ckpt_speed_")
  ckpt = checkpointing.Checkpointer(workdir, max_to_keep=2, async_save=async_save)
  plain, saving, save_calls = [], [], []
  t_start = time.perf_counter()
  for i in range(1, steps_ + 1):
    t0 = time.perf_counter()
    state, metrics = step(state, batches[i % len(batches)])
    jax.block_until_ready((state, metrics))
    if i % every == 0:
      t1 = time.perf_counter()
      ckpt.save(i, state)
      save_calls.append(time.perf_counter() - t1)
      saving.append(time.perf_counter() - t0)
    else:
      plain.append(time.perf_counter() - t0)
  ckpt.close()
  total = time.perf_counter() - t_start
  shutil.rmtree(workdir, ignore_errors=True)
  return state, dict(
    plain=statistics.mean(plain),
    saving=statistics.mean(saving),
    save_call=statistics.mean(save_calls),
    per_step=total / steps_,
  )


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=24)
  parser.add_argument("--every", type=int, default=4)
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--batch_size", type=int, default=64)
  args = parser.parse_args()
  step, state, batches = setup(args.batch_size)
  size = sum(x.nbytes for x in jax.tree.leaves(state))
  results = {False: [], True: []}
  for _ in range(args.rounds):
    for mode in (False, True):
      state, r = run(step, state, batches, steps_=args.steps, every=args.every, async_save=mode)
      results[mode].append(r)
  devices = jax.devices()
  print(
    f"configs/demo.py model, train state {size / 2**20:.1f} MiB, batch {args.batch_size}, "
    f"{len(devices)} x {devices[0].device_kind}; {args.steps} steps saving every "
    f"{args.every}, best of {args.rounds} alternating rounds\n"
  )
  print(
    "| checkpointing | step (ms) | step + save (ms) | save call (ms) | loop per step incl. close (ms) |"
  )
  print("|---|---|---|---|---|")
  for mode, name in ((False, "synchronous"), (True, "asynchronous")):
    best = min(results[mode], key=lambda r: r["per_step"])
    print(
      f"| {name} | {1e3 * best['plain']:.0f} | {1e3 * best['saving']:.0f} | "
      f"{1e3 * best['save_call']:.0f} | {1e3 * best['per_step']:.0f} |"
    )


if __name__ == "__main__":
  main()
