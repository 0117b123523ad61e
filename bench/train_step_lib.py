"""The real train step of a config, for the benchmarks that time it.

bench/model_flops.py, bench/vs_pytorch.py, bench/input_pipeline.py and
bench/checkpoint_speed.py all time hyperface_jax's own step: `train.build` (the config's
model, task losses, weighting and optimiser), the initial state as a run without a
checkpoint starts (`train.restore_or_init`), and `steps.make_train_step`, the jitted
data-parallel step `train.py` runs.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import Any, NamedTuple

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hyperface_jax import host_memory, steps, train  # noqa: E402


def load_config(name: str):
  """configs/NAME.py's config for `NAME[:ARG][@BATCH]` (`@N` sets the batch size)."""
  name, _, batch = name.partition("@")
  module, _, arg = name.partition(":")
  config = importlib.import_module(f"configs.{module}").get_config(arg or None)
  if batch:
    config.batch_size = int(batch)
  return config


class NoCheckpoint:
  """A checkpoint manager with nothing saved: `train.restore_or_init` initialises."""

  def latest_step(self):
    return None


class TrainStep(NamedTuple):
  model: Any
  step: Any  # (state, batch) -> (state, metrics), jitted over `mesh`
  state: Any  # the initial train state


def build_train_step(config, mesh, seed: int | None = None) -> TrainStep:
  """The model, jitted train step and initial state of `config` on `mesh`, as train.py
  builds them (dropout and region keys from `seed`, default config.seed)."""
  jax.config.update("jax_default_prng_impl", config.prng_impl)
  model, loss_fn, optimizer, weigher, init = train.build(config, mesh)
  state = train.restore_or_init(config, mesh, init, NoCheckpoint())
  step = steps.make_train_step(
    mesh,
    model=model,
    loss_fn=loss_fn,
    optimizer=optimizer,
    weighting=weigher,
    seed=config.seed if seed is None else seed,
    prng_impl=config.get("prng_impl"),
  )
  return TrainStep(model, step, state)


def images_per_second(step, state, batch, num_steps: int, rows: int) -> float:
  """Images/s of `num_steps` calls of `step` on one fixed batch of `rows` images, after a
  warm-up call (compilation)."""
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  t0 = time.perf_counter()
  for _ in range(num_steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  return num_steps * rows / (time.perf_counter() - t0)


def add_host_malloc_flag(parser) -> None:
  """--host_malloc of an argparse bench: the glibc malloc mode of its process
  (hyperface_jax/host_memory.py), by default "retain", as hyperface_jax.main trains; call
  `host_memory.configure(args.host_malloc)` first thing after parsing."""
  parser.add_argument(
    "--host_malloc",
    default="retain",
    choices=host_memory.MODES,
    help="glibc malloc mode of this process (host_memory.py; retain: as hyperface_jax.main)",
  )
