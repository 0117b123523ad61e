"""Model cost: params, XLA-counted GFLOPs per image, train-step images/s.

  .venv/bin/python bench/model_flops.py [--configs=hyperface_alexnet,demo] [--steps=5]
  .venv/bin/python bench/model_flops.py --steps=2 --batch=8 \
      --configs=imagenet:resnet101,hyperface_resnet101,hyperface_resnet101:cpu

For each config (`NAME` or `NAME:ARG` of configs/NAME.py): the model it names, the real
data-parallel train step of hyperface_jax.steps (losses, task weighting, optimiser of
that config) on one device, fed random region batches of the config's batch size (or
--batch). `imagenet:MODEL` is an ImageNet classifier of the registry (e.g. resnet101) at
224x224 with a softmax cross-entropy, SGD-momentum train step updating BatchNorm
statistics, the step that fine-tunes converted weights. GFLOPs come from
`compiled.cost_analysis()["flops"]` (XLA's count: a multiply-add is 2 FLOPs) of the step
with XLA's direct convolutions (`model.conv_impl="xla"`): the network's FLOPs, whichever
formulation trains (a Winograd convolution multiplies less for the same result).
Images/s is wall-clock over `--steps` steps after one warm-up step, on whatever
machine runs this; the README names the machine for its numbers.

  .venv/bin/python bench/model_flops.py --configs=hyperface_alexnet --dtype=bfloat16 \
      --devices=0 --batch=256 --steps=20 [--json=rows.json]

--dtype sets config.compute_dtype (bfloat16: mixed precision, float32 parameters);
--devices=0 runs the data-parallel step over every device (the batch is global). The MFU
column divides the model FLOPs rate by the devices' peak (bench/accelerator_expect.py),
for the device kinds whose peak is known (not CPUs).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

import jax
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # accelerator_expect

from train_step_lib import (  # noqa: E402  (bench/)
  add_host_malloc_flag,
  build_train_step,
  images_per_second,
  load_config,
)

from hyperface_jax import host_memory, registry, sharding  # noqa: E402


def random_batch(rng, n, size):
  """A region batch of the contract with every task labelled."""
  return dict(
    image=rng.uniform(-0.5, 0.5, (n, size, size, 3)).astype(np.float32),
    detection=rng.integers(0, 2, n).astype(np.int32),
    detection_mask=np.ones(n, np.float32),
    landmarks=rng.normal(0, 0.2, (n, 21, 2)).astype(np.float32),
    visibility=np.ones((n, 21), np.float32),
    landmarks_mask=np.ones(n, np.float32),
    visibility_mask=np.ones(n, np.float32),
    pose=rng.normal(0, 0.3, (n, 3)).astype(np.float32),
    pose_mask=np.ones(n, np.float32),
    gender=rng.integers(0, 2, n).astype(np.int32),
    gender_mask=np.ones(n, np.float32),
    example_mask=np.ones(n, np.float32),
  )


def flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan")))


def measure(
  name: str, num_steps: int, batch_size: int = 0, dtype: str = "float32", num_devices: int = 1
) -> dict:
  """One row of the table: `num_devices` (0: all) run the data-parallel step of `name` on
  global batches of `batch_size` (0: the config's) with `config.compute_dtype = dtype`;
  `num_steps` 0 only counts FLOPs (ips is then nan)."""
  if name.startswith("imagenet:"):
    return measure_classifier(name.split(":", 1)[1], num_steps, batch_size or 32, dtype=dtype)
  config = load_config(name)
  if batch_size:
    config.batch_size = batch_size
  config.compute_dtype = dtype
  devices = jax.devices()[: num_devices or None]
  mesh = sharding.make_mesh(devices)
  sharding.check_batch_size(config.batch_size, mesh)
  model, step, state = build_train_step(config, mesh, seed=0)
  n, size = config.batch_size, config.input_size
  batch = sharding.global_batch(mesh, random_batch(np.random.default_rng(0), n, size))
  # The network's FLOPs are counted with XLA's direct convolutions: a Winograd convolution
  # (models/winograd.py, `conv_impl="auto"` on CPU) computes the same layer with fewer
  # multiplies, so images/s x these FLOPs is an effective rate, comparable across
  # implementations and machines.
  counting = model, step, state
  conv_impl = config.model.get("conv_impl", "xla")
  if conv_impl == "winograd" or (conv_impl == "auto" and jax.default_backend() == "cpu"):
    direct = config.copy_and_resolve_references()
    direct.model.conv_impl = "xla"
    counting = build_train_step(direct, mesh, seed=0)
  # The compiled step is the per-device program (shard_map): its FLOPs are those of n /
  # len(devices) images.
  step_flops = flops(counting[1].lower(counting[2], batch).compile()) * len(devices)
  variables = {"params": state.params, **state.model_state}
  forward = jax.jit(lambda v, x: counting[0].apply(v, x, train=False))
  one = jax.ShapeDtypeStruct((n // len(devices), size, size, 3), np.float32)  # a device's rows
  fwd_flops = flops(forward.lower(variables, one).compile())
  ips = float("nan")
  if num_steps:
    ips = images_per_second(step, state, batch, num_steps, n)
  params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
  width = config.model.get("width", config.model.get("base_width"))
  return dict(
    config=name,
    input=size,
    width=width,
    norm=config.model.get("norm", "batch"),
    params=params,
    fwd=fwd_flops / (n // len(devices)) / 1e9,
    train=step_flops / n / 1e9,
    batch=n,
    ips=ips,
    dtype=dtype,
    devices=len(devices),
    device_kind=devices[0].device_kind,
  )


def measure_classifier(
  model_name: str, num_steps: int, n: int, size: int = 224, dtype: str = "float32"
) -> dict:
  """An ImageNet classifier's train step (cross-entropy, SGD momentum 0.9, BN updates) on
  one device."""
  kwargs = {} if dtype == "float32" else {"dtype": jax.numpy.dtype(dtype)}
  model = registry.MODELS.get(model_name)(**kwargs)
  rng = np.random.default_rng(0)
  images = rng.normal(size=(n, size, size, 3)).astype(np.float32)
  labels = rng.integers(0, 1000, n)
  variables = jax.jit(model.init)(jax.random.key(0), images[:1])
  params, stats = variables["params"], variables.get("batch_stats", {})
  optimizer = optax.sgd(0.01, momentum=0.9)
  opt_state = optimizer.init(params)

  def loss_fn(p, s, x, y):
    logits, new = model.apply(
      {"params": p, "batch_stats": s},
      x,
      train=True,
      mutable=["batch_stats"],
      rngs={"dropout": jax.random.key(0)},
    )
    logits = logits.astype(np.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new

  @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
  def step(p, s, o, x, y):
    (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, s, x, y)
    updates, o = optimizer.update(grads, o, p)
    return optax.apply_updates(p, updates), new["batch_stats"], o, loss

  step_flops = flops(step.lower(params, stats, opt_state, images, labels).compile())
  forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
  fwd_flops = flops(forward.lower(variables, images).compile())
  ips = float("nan")
  if num_steps:
    params, stats, opt_state, loss = step(params, stats, opt_state, images, labels)
    jax.block_until_ready(loss)
    t0 = time.perf_counter()
    for _ in range(num_steps):
      params, stats, opt_state, loss = step(params, stats, opt_state, images, labels)
    jax.block_until_ready(loss)
    ips = num_steps * n / (time.perf_counter() - t0)
  return dict(
    config=f"imagenet:{model_name}",
    input=size,
    width=64,
    norm="batch",
    params=sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params)),
    fwd=fwd_flops / n / 1e9,
    train=step_flops / n / 1e9,
    batch=n,
    ips=ips,
    dtype=dtype,
    devices=1,
    device_kind=jax.devices()[0].device_kind,
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", default="hyperface_alexnet,demo")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument(
    "--batch", type=int, default=0, help="batch size (default: the config's; 32 for imagenet:*)"
  )
  parser.add_argument(
    "--dtype",
    default="float32",
    choices=("float32", "bfloat16"),
    help="config.compute_dtype (params stay float32)",
  )
  parser.add_argument(
    "--devices", type=int, default=1, help="devices of the data-parallel step (0: all)"
  )
  parser.add_argument("--json", default="", help="also write the rows to this JSON file")
  add_host_malloc_flag(parser)
  args = parser.parse_args()
  host_memory.configure(args.host_malloc)  # before the first large allocation
  rows = [
    measure(name, args.steps, args.batch, args.dtype, args.devices)
    for name in args.configs.split(",")
  ]
  print_table(rows)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


def print_table(rows) -> None:
  """The markdown table; MFU = images/s x train FLOPs/img / (devices x peak bf16 or fp32
  FLOP/s of the device kind, bench/accelerator_expect.py), where the peak is known."""
  from accelerator_expect import peak_tflops  # pylint: disable=g-import-not-at-top

  print(
    "| config | input | width | norm | params | fwd GFLOPs/img | train-step GFLOPs/img "
    "| dtype | devices | batch | train images/s | MFU |"
  )
  print("|---|---|---|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    peak = peak_tflops(r["device_kind"], r["dtype"])
    mfu = r["ips"] * r["train"] * 1e9 / (r["devices"] * peak * 1e12) if peak else None
    print(
      f"| {r['config']} | {r['input']} | {r['width']} | {r['norm']} | {r['params']:,} | "
      f"{r['fwd']:.3f} | {r['train']:.3f} | {r['dtype']} | {r['devices']} x "
      f"{r['device_kind']} | {r['batch']} | {r['ips']:.1f} | "
      f"{'n/a' if mfu is None or mfu != mfu else f'{100 * mfu:.1f} %'} |"
    )


if __name__ == "__main__":
  main()
