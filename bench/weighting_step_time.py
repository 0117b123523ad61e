r"""Train-step time of every task weighting relative to `static`, on the demo model.

  PYTHONPATH=. .venv/bin/python bench/weighting_step_time.py [--steps=5] [--batch_size=64]

Builds configs/demo.py's model, optimiser and tasks (HyperFace-AlexNet width 0.5 with
BatchNorm, 99x99 input, batch 64, Adam) through train.build, swaps
`config.weighting.name`, and times the real jitted data-parallel train step
(steps.make_train_step) on random region batches over all local devices: two warm-up
steps each (compilation), then `--steps` round-robin rounds of one step per weighting,
each waited for with block_until_ready (round-robin spreads the load of other processes
over all weightings; the minimum is the least disturbed). Prints a markdown table. What
the extra time is:
  * gradnorm: per-task gradients of fusion/fc_full only (the heads' backward pass T times);
  * pcgrad: per-task gradients of every shared parameter (T backward passes through the
    backbone and fusion, T x their size in memory) and their Gram matrix;
  * famo (same_batch): one more forward pass with the updated parameters;
  * the others: a few scalar operations per task.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import study_lib  # noqa: E402
from configs import demo  # noqa: E402
from hyperface_jax import sharding, steps, tasks, train  # noqa: E402

SCHEMES = study_lib.WEIGHTING_SCHEMES


def random_batch(config, n: int, rng: np.random.Generator) -> dict:
  """A region batch of the config's tasks: random images, labels and ~70 % masks."""
  s = config.input_size
  batch = {
    "image": rng.uniform(-0.5, 0.5, size=(n, s, s, 3)).astype(np.float32),
    "example_mask": np.ones(n, np.float32),
  }
  for t in tasks.resolve(config.tasks):
    for key, (shape, dtype) in t.labels.items():
      if np.dtype(dtype).kind in "iu":  # class labels: 0/1 are valid for every head
        batch[key] = rng.integers(0, 2, size=(n, *shape)).astype(np.int32)
      else:
        batch[key] = rng.normal(scale=0.2, size=(n, *shape)).astype(np.float32)
    batch[t.mask_key] = (rng.random(n) < 0.7).astype(np.float32)
  return batch


def make_runner(name: str, batch_size: int, num_batches: int):
  """A compiled, warmed-up `run()` of one train step of weighting `name` (blocking)."""
  config = demo.get_config()
  config.weighting.name = name
  config.batch_size = batch_size
  mesh = sharding.make_mesh()
  model, loss_fn, optimizer, weigher, init = train.build(config, mesh)
  holder = [jax.jit(init, out_shardings=sharding.replicated(mesh))(jax.random.PRNGKey(0))]
  step = steps.make_train_step(
    mesh, model=model, loss_fn=loss_fn, optimizer=optimizer, weighting=weigher, seed=0
  )
  rng = np.random.default_rng(0)
  batches = [
    sharding.global_batch(mesh, random_batch(config, batch_size, rng)) for _ in range(num_batches)
  ]
  count = [0]

  def run():
    holder[0], metrics = step(holder[0], batches[count[0] % num_batches])
    count[0] += 1
    jax.block_until_ready((holder[0], metrics))

  for _ in range(2):  # compilation, then one more warm step
    run()
  return run


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=5, help="timed steps per weighting")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--schemes", default=",".join(SCHEMES))
  args = parser.parse_args()
  names = args.schemes.split(",")
  runners = {name: make_runner(name, args.batch_size, 2) for name in names}
  times = {name: [] for name in names}
  # Round-robin rounds, so that load from other processes spreads over every weighting.
  for _ in range(args.steps):
    for name, run in runners.items():
      t0 = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - t0)
  devices = jax.devices()
  print(
    f"configs/demo.py model (99x99, width 0.5, BatchNorm, Adam), batch {args.batch_size}, "
    f"{len(devices)} x {devices[0].device_kind}; {args.steps} round-robin rounds after "
    "2 warm-up steps each\n"
  )
  print("| weighting | ms / step (min) | ms / step (median) | min relative to static |")
  print("|---|---|---|---|")
  base = min(times["static"]) if "static" in times else None
  for name, ts in times.items():
    rel = f"{min(ts) / base:.2f}x" if base else "-"
    print(f"| {name} | {1e3 * min(ts):.0f} | {1e3 * statistics.median(ts):.0f} | {rel} |")


if __name__ == "__main__":
  main()
