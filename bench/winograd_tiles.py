r"""Train-step speed of HyperFace-AlexNet per choice of Winograd convolutions and tiles.

  PYTHONPATH=. .venv/bin/python bench/winograd_tiles.py [--configs=hyperface_alexnet@32,demo] \
      [--variants="none;3:2;3:2,5:4;3:4,5:4"] [--rounds=8] [--steps=2]

For every config (`NAME[:ARG][@BATCH]`, bench/train_step_lib.py load_config) it builds the
real train step (train_step_lib.build_train_step) once per variant:
- "none": `model.conv_impl="shifted_dw"` (conv1's shifted-matmul weight gradient, every
  other convolution XLA's: the CPU default before models/winograd.py);
- "K:M,...": `model.conv_impl="winograd"` with `model.winograd_tiles=((K, M), ...)`: every
  stride-1 ungrouped K x K convolution as Winograd F(M x M, K x K), whatever its width
  (conv_impl="winograd" applies them to narrow layers too, which "auto" does not);
all with `model.pool_impl="masked_grad"` (the CPU default) on one fixed random region
batch (bench/model_flops.py random_batch). Each round runs every variant for `--steps`
steps in turn (interleaved, so that drift in the machine's speed hits all alike); the table
gives images/s, the median over rounds, and each round's value.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from model_flops import random_batch  # noqa: E402
from train_step_lib import add_host_malloc_flag, build_train_step, load_config  # noqa: E402

from hyperface_jax import host_memory, sharding  # noqa: E402


def parse_variant(text: str):
  """("shifted_dw", ()) for "none", else ("winograd", ((K, M), ...)) for "K:M,..."."""
  if text == "none":
    return "shifted_dw", ()
  try:
    tiles = tuple(tuple(int(v) for v in pair.split(":")) for pair in text.split(","))
  except ValueError:
    tiles = ()
  if not tiles or any(len(p) != 2 for p in tiles):
    raise SystemExit(f"--variants: {text!r} is neither 'none' nor 'K:M,...' (e.g. '3:4,5:4').")
  return "winograd", tiles


class Runner:
  """One compiled train step of `config` with a variant, and its state."""

  def __init__(self, config, variant: str, mesh):
    config = config.copy_and_resolve_references()
    config.model.conv_impl, config.model.winograd_tiles = parse_variant(variant)
    config.model.pool_impl = "masked_grad"
    _, step, self.state = build_train_step(config, mesh, seed=0)
    rows = random_batch(np.random.default_rng(0), config.batch_size, config.input_size)
    self.batch = sharding.global_batch(mesh, rows)
    self.step = step.lower(self.state, self.batch).compile()
    self.rows = config.batch_size
    self.run(1)  # warm-up

  def run(self, num_steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(num_steps):
      self.state, metrics = self.step(self.state, self.batch)
    jax.block_until_ready(metrics)
    return num_steps * self.rows / (time.perf_counter() - t0)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", default="hyperface_alexnet@32,demo")
  parser.add_argument("--variants", default="none;3:2;3:2,5:4;3:4,5:4")
  parser.add_argument("--rounds", type=int, default=8)
  parser.add_argument("--steps", type=int, default=2)
  add_host_malloc_flag(parser)
  args = parser.parse_args()
  host_memory.configure(args.host_malloc)
  variants = args.variants.split(";")
  for v in variants:
    parse_variant(v)  # refuse a typo before compiling anything
  mesh = sharding.make_mesh(jax.devices()[:1])
  print(f"host_malloc={args.host_malloc}; {args.rounds} rounds of {args.steps} steps\n")
  print("| config | Winograd (kernel:tile) | images/s | images/s per round |")
  print("|---|---|---|---|")
  for name in args.configs.split(","):
    runners = {v: Runner(load_config(name), v, mesh) for v in variants}
    rates = {v: [] for v in variants}
    for _ in range(args.rounds):
      for v, runner in runners.items():
        rates[v].append(runner.run(args.steps))
    for v in variants:
      per_round = " ".join(f"{r:.1f}" for r in rates[v])
      print(f"| {name} | {v} | {statistics.median(rates[v]):.1f} | {per_round} |", flush=True)
    del runners


if __name__ == "__main__":
  main()
