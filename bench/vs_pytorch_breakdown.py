r"""Where our train step loses to PyTorch's: per phase of the step and per convolution.

  .venv/bin/python bench/vs_pytorch_breakdown.py [--configs=hyperface_alexnet@32] \
      [--rounds=3] [--host_malloc=retain|system]

The profile evidence behind bench/vs_pytorch.py's ratio, measured the same way (one
process, one glibc malloc setting, hyperface_jax/host_memory.py; rounds that run every
candidate in turn, so the machine's drift hits all alike; medians of wall milliseconds):

- phases, per config: the forward pass alone (PyTorch under `no_grad`), the forward and
  backward pass (gradients of the weighted task losses with respect to the parameters;
  jax.grad of `model.apply` + the config's task losses, as steps.py computes them), and
  the whole train step (ours: steps.make_train_step, the step train.py runs; PyTorch:
  bench/vs_pytorch.py TorchRunner, forward + backward + optimiser step);
- convolutions: HyperFace-AlexNet's conv1..conv5 at batch 32 as one layer each (random
  NCHW / NHWC tensors of the paper's shapes), forward and forward + the gradients training
  needs (conv1: the weight only, its input is the image; conv2..5: input and weight).
  Ours is the layer as the model computes it (models/fast_conv.py conv_algorithm) with
  `conv_impl="auto"` (on CPU all five as Winograd convolutions, models/winograd.py; conv1
  through space-to-depth) and with "shifted_dw" (XLA's convolutions; conv1's weight
  gradient as shifted matmuls), the default before the Winograd convolutions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from model_flops import random_batch
from train_step_lib import add_host_malloc_flag, build_train_step, load_config
from vs_pytorch import TorchRunner

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hyperface_jax import host_memory, sharding, train  # noqa: E402
from hyperface_jax.models import alexnet, fast_conv, winograd  # noqa: E402

# HyperFace-AlexNet's convolutions at 227 px (docs/papers.md 1.2): name, input size,
# in / out channels, kernel, stride, padding, whether the input gradient is needed.
CONVS = (
  ("conv1 11x11/4, 3->96", 227, 3, 96, 11, 4, 0, False),
  ("conv2 5x5, 96->256", 27, 96, 256, 5, 1, 2, True),
  ("conv3 3x3, 256->384", 13, 256, 384, 3, 1, 1, True),
  ("conv4 3x3, 384->384", 13, 384, 384, 3, 1, 1, True),
  ("conv5 3x3, 384->256", 13, 384, 256, 3, 1, 1, True),
)


def _timed(fn) -> float:
  """Wall milliseconds of one call of `fn` (its result waited for)."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  return 1e3 * (time.perf_counter() - t0)


def interleaved(candidates: dict, rounds: int) -> dict:
  """Median wall ms of each candidate (name -> zero-argument callable), after a warm-up
  call each, over `rounds` rounds that call every candidate once in turn."""
  for fn in candidates.values():
    jax.block_until_ready(fn())
  times = {name: [] for name in candidates}
  for _ in range(rounds):
    for name, fn in candidates.items():
      times[name].append(_timed(fn))
  return {name: statistics.median(v) for name, v in times.items()}


def phase_candidates(config_name: str) -> dict:
  """{phase: (ours, PyTorch)} zero-argument callables of one config's train step."""
  import torch

  config = load_config(config_name)
  mesh = sharding.make_mesh(jax.devices()[:1])
  model, loss_fn, *_ = train.build(config, mesh)
  if getattr(model, "norm_axis_name", None):  # BatchNorm statistics of this one device
    model = model.clone(norm_axis_name=None)
  _, step, state = build_train_step(config, mesh, seed=0)
  batch_np = random_batch(np.random.default_rng(0), config.batch_size, config.input_size)
  weights = dict(config.weighting.weights)
  params, model_state = jax.device_get(state.params), jax.device_get(state.model_state)
  local = {k: jnp.asarray(v) for k, v in batch_np.items()}

  def weighted_loss(params, batch, rng):
    out, _ = model.apply(
      {"params": params, **model_state},
      batch["image"],
      train=True,
      rngs={"dropout": rng},
      mutable=list(model_state),
    )
    return sum(weights[t] * s / jnp.maximum(c, 1.0) for t, (s, c) in loss_fn(out, batch).items())

  forward, grads = jax.jit(weighted_loss), jax.jit(jax.grad(weighted_loss))
  key = jax.random.key(0)
  holder = {"state": state, "batch": sharding.global_batch(mesh, batch_np)}

  def our_step():
    holder["state"], metrics = step(holder["state"], holder["batch"])
    return metrics

  ref = TorchRunner(config, batch_np)

  def torch_forward():
    with torch.no_grad():
      return float(ref.tr.hyperface_loss(ref.model(ref.batch["image"]), ref.batch, ref.weights))

  def torch_grads():
    ref.optimizer.zero_grad(set_to_none=True)
    ref.tr.hyperface_loss(ref.model(ref.batch["image"]), ref.batch, ref.weights).backward()

  return {
    "forward": (lambda: forward(params, local, key), torch_forward),
    "forward + backward": (lambda: grads(params, local, key), torch_grads),
    "whole train step": (our_step, lambda: ref.run(1)),
  }


def _gradients(conv, args, needs_dx: bool):
  """(x, w, dy) -> the output and the gradients training needs of `conv`: (y, (dX, dW)),
  or (y, (dW,)) for a layer whose input is the image. The output is returned so that the
  forward pass is computed, as PyTorch's forward + backward does (for a linear layer the
  gradients alone do not need it, and XLA would drop it)."""

  def grads(x, w, dy):
    if needs_dx:
      y, vjp = jax.vjp(lambda x_, w_: conv(x_, w_, *args), x, w)
    else:
      y, vjp = jax.vjp(lambda w_: conv(x, w_, *args), w)
    return y, vjp(dy)

  return grads


def model_conv(k: int, s: int, pad: int, size: int, cin: int, cout: int, conv_impl: str):
  """(name, (x, w, strides, padding, groups) -> y): the layer as models/alexnet.py computes
  it with `conv_impl` on this backend (alexnet.conv_formulation)."""
  algorithm, tile = alexnet.conv_formulation(
    conv_impl,
    alexnet.WINOGRAD_TILES,
    kernel=k,
    stride=s,
    pad=pad,
    groups=1,
    in_shape=(size, size, cin),
    features=cout,
  )
  if algorithm == "winograd":
    k2 = -(-k // s)
    name = f"Winograd F({tile}x{tile}, {k2}x{k2})"
    return name, lambda x, w, strides, padding, groups: winograd.conv2d(
      x, w, padding, tile, strides
    )
  if algorithm == "shifted_dw":
    return "shifted-matmul dW", fast_conv.conv2d_shifted_dw
  return "XLA", fast_conv._forward


def conv_candidates(batch: int = 32) -> dict:
  """{(layer, pass, formulation): (ours, PyTorch)} zero-argument callables of CONVS."""
  import torch

  rng = np.random.default_rng(0)
  out = {}
  for name, size, cin, cout, k, s, pad, needs_dx in CONVS:
    x = rng.normal(size=(batch, size, size, cin)).astype(np.float32)
    w = (rng.normal(size=(k, k, cin, cout)) * 0.05).astype(np.float32)
    ho = (size + 2 * pad - k) // s + 1
    dy = rng.normal(size=(batch, ho, ho, cout)).astype(np.float32)
    jx, jw, jdy = jnp.asarray(x), jnp.asarray(w), jnp.asarray(dy)
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    tx.requires_grad_(needs_dx)
    tw = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))).requires_grad_(True)
    tdy = torch.from_numpy(np.ascontiguousarray(dy.transpose(0, 3, 1, 2)))

    def t_fwd(tx=tx, tw=tw, s=s, pad=pad):
      with torch.no_grad():
        return torch.nn.functional.conv2d(tx, tw, stride=s, padding=pad)

    def t_bwd(tx=tx, tw=tw, tdy=tdy, s=s, pad=pad):
      tw.grad = tx.grad = None
      torch.nn.functional.conv2d(tx, tw, stride=s, padding=pad).backward(tdy)

    grads = "dX + dW" if needs_dx else "dW"
    args = ((s, s), ((pad, pad), (pad, pad)), 1)
    # The default ("auto") and the formulation before Winograd ("shifted_dw": conv1's
    # shifted-matmul weight gradient, XLA's convolution elsewhere).
    for impl in ("shifted_dw", "auto"):
      label, conv = model_conv(k, s, pad, size, cin, cout, impl)
      fwd = jax.jit(lambda x_, w_, c=conv, a=args: c(x_, w_, *a))
      bwd = jax.jit(_gradients(conv, args, needs_dx))
      out[(name, "forward", f"({label})")] = (lambda f=fwd, a=(jx, jw): f(*a), t_fwd)
      out[(name, f"forward + {grads}", f"({label})")] = (
        lambda f=bwd, a=(jx, jw, jdy): f(*a),
        t_bwd,
      )
  return out


def table(title: str, pairs: dict, rounds: int) -> None:
  flat = {}
  for key, (ours, theirs) in pairs.items():
    flat[(key, "ours")], flat[(key, "PyTorch")] = ours, theirs
  ms = interleaved(flat, rounds)
  print(f"\n| {title} | ours ms | PyTorch eager ms | ours / PyTorch time |\n|---|---|---|---|")
  for key in pairs:
    a, b = ms[(key, "ours")], ms[(key, "PyTorch")]
    label = " ".join(key) if isinstance(key, tuple) else key
    print(f"| {label} | {a:.0f} | {b:.0f} | {a / b:.2f} |")


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--configs", default="hyperface_alexnet@32")
  p.add_argument("--rounds", type=int, default=3)
  add_host_malloc_flag(p)
  args = p.parse_args()
  host_memory.configure(args.host_malloc)
  print(f"load average {os.getloadavg()[0]:.2f}; host_malloc={args.host_malloc}")
  for name in [c for c in args.configs.split(",") if c]:
    table(f"{name} phase", phase_candidates(name), args.rounds)
  table("HyperFace-AlexNet layer, batch 32", conv_candidates(), args.rounds)
  print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  main()
