"""Our train step against PyTorch's on the same network, loss, optimiser, batch and fp32.

  .venv/bin/python bench/vs_pytorch.py [--configs=hyperface_alexnet@32,demo] [--rounds=3] \
      [--steps=3] [--impls=xla/xla,shifted_dw/masked_grad,auto/auto] [--torch_compile] \
      [--host_malloc=retain|system]
  .venv/bin/python bench/vs_pytorch.py --layers

For each config (`NAME`, `NAME:ARG` of configs/NAME.py, `@N` sets the batch size, else the
config's) it builds
- ours: the real data-parallel train step of hyperface_jax.steps on one device, built as
  hyperface_jax/train.py `build` does (the config's model, task losses, weighting and
  optimiser), once per `--impls` entry CONV/POOL (config.model.conv_impl,
  models/fast_conv.py, and config.model.pool_impl, models/fast_pool.py);
- PyTorch eager: tests/torch_reference.py HyperFaceAlexNet (the same layers and channel
  counts: backbone, fusion conv1a / conv3a / conv_all / fc_full, five heads), the same
  weighted task losses (docs/papers.md 1.6) and optimiser (SGD momentum + weight decay, or
  Adam), NCHW float32;
- with --torch_compile, also `torch.compile` of that model (a failure is reported, not
  raised);
then times `--rounds` rounds, each running every implementation for `--steps` steps in
turn (interleaved, so that other load on the machine hits all of them alike), after one
warm-up step each. It prints a markdown table of images/s (median over rounds), the
median per-round ratio ours / PyTorch eager, and the GFLOP/s each achieves: FLOPs of
our step with XLA's direct convolutions (`conv_impl="xla"`) from XLA's cost analysis
(`compiled.cost_analysis()`, a multiply-add = 2 FLOPs, as bench/model_flops.py; the same
count is used for every implementation and for PyTorch, which run the same network: for
Winograd convolutions, which multiply less, it is an effective rate)
against this machine's fp32 matmul rate, measured here with numpy and jax (2048 x 2048).
"images per CPU-s" divides by the CPU time of this process (all its threads) instead of
the wall clock: on a machine shared with other jobs it moves less with their load.
`--layers` prints only the CPU time of the layers the speed levers change: conv1's weight
gradient (models/fast_conv.py) and the max-pools (XLA's reduce_window gradient, the
masked-slice gradient of models/fast_pool.py, and a slice formulation of the forward that
was not adopted: 10-15 % faster, and a change to what the ONNX exporter rewrites).
Both run in this one process under `--host_malloc` (hyperface_jax/host_memory.py):
"retain" (the default, what hyperface_jax.main sets) has glibc keep freed memory mapped,
"system" keeps glibc's defaults, under which both steps re-fault their large temporaries
in every step; the allocator setting speeds up both implementations.
Random region batches with every task labelled (bench/model_flops.py random_batch).
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
from jax import lax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # torch_reference.py

from model_flops import flops, random_batch  # noqa: E402  (bench/)
from train_step_lib import add_host_malloc_flag, build_train_step, load_config  # noqa: E402  (bench/)

from hyperface_jax import host_memory, sharding  # noqa: E402
from hyperface_jax.models import alexnet, fast_conv, fast_pool, space_to_depth  # noqa: E402
from hyperface_jax.models.fusion import fused_grid  # noqa: E402
from hyperface_jax.models.layers import scale_channels  # noqa: E402


def matmul_peak(n: int = 2048, repeats: int = 5) -> dict:
  """Best-of-`repeats` fp32 GFLOP/s of an n x n matmul in numpy and in jitted jax."""
  rng = np.random.default_rng(0)
  a = rng.normal(size=(n, n)).astype(np.float32)
  b = rng.normal(size=(n, n)).astype(np.float32)
  out = {}
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - t0)
  out["numpy"] = 2 * n**3 / best / 1e9
  mm = jax.jit(jnp.matmul)
  ja, jb = jnp.asarray(a), jnp.asarray(b)
  mm(ja, jb).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    mm(ja, jb).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  out["jax"] = 2 * n**3 / best / 1e9
  return out


def conv1_space_to_depth(x, w):
  """A candidate formulation of conv1's forward (the `--layers` lever table): the 11x11 / 4
  convolution as a 3x3 / 1 one over the 4x4 space-to-depth input (48 channels), the kernel
  zero-padded to 12x12; the same values."""
  xs = space_to_depth.input_s2d(x, w.shape[:2], (4, 4), ((0, 0), (0, 0)))
  ws = space_to_depth.kernel_s2d(w, (4, 4))
  return lax.conv_general_dilated(
    xs, ws, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )


def conv1_im2col(x, w):
  """A candidate formulation of conv1's forward (the `--layers` lever table): the 121
  strided slices of the input that the kernel offsets see, concatenated into patches
  [B, 55, 55, 363], times the kernel as one [363, 96] matmul; the same values. Its weight
  gradient would be the patches' transpose times dy, again one matmul."""
  b, h, _, c = x.shape
  k, s = w.shape[0], 4
  ho = (h - k) // s + 1
  cols = [
    lax.slice(x, (0, i, j, 0), (b, i + s * (ho - 1) + 1, j + s * (ho - 1) + 1, c), (1, s, s, 1))
    for i in range(k)
    for j in range(k)
  ]  # offset (i, j) in row-major order, as the kernel's HWIO reshape
  return jnp.concatenate(cols, axis=-1) @ w.reshape(k * k * c, -1)


def slice_max_pool(x):
  """A candidate formulation of models/alexnet.py max_pool_3x3_s2 (the `--layers` lever
  table): the maximum of the 9 strided slices a 3x3 / 2 window covers, the same values."""
  b, h, w, c = x.shape
  ho, wo = (h - 3) // 2 + 1, (w - 3) // 2 + 1
  out = None
  for i in range(3):
    for j in range(3):
      window = lax.slice(x, (0, i, j, 0), (b, i + 2 * ho - 1, j + 2 * wo - 1, c), (1, 2, 2, 1))
      out = window if out is None else jnp.maximum(out, window)
  return out


class JaxRunner:
  """Our train step (steps.make_train_step) on one device, fed one fixed batch, with
  config.model.conv_impl and pool_impl from `impls` = "CONV/POOL"."""

  def __init__(self, config, impls: str, batch_np):
    conv_impl, _, pool_impl = impls.partition("/")
    self.name = f"ours (conv {conv_impl}, pool {pool_impl or 'xla'})"
    self._build(config, conv_impl, pool_impl or "xla", batch_np)

  def _build(self, config, conv_impl, pool_impl, batch_np):
    config = config.copy_and_resolve_references()
    config.model.conv_impl = conv_impl
    config.model.pool_impl = pool_impl
    mesh = sharding.make_mesh(jax.devices()[:1])
    _, step, self.state = build_train_step(config, mesh, seed=0)
    self.batch = sharding.global_batch(mesh, batch_np)
    self.step = step.lower(self.state, self.batch).compile()
    self.flops = flops(self.step)
    self.loss = None

  def run(self, n: int) -> None:
    for _ in range(n):
      self.state, metrics = self.step(self.state, self.batch)
    self.loss = float(jax.block_until_ready(metrics["train/loss"]))


class TorchRunner:
  """tests/torch_reference.py HyperFaceAlexNet with the config's losses and optimiser."""

  def __init__(self, config, batch_np, compile_model: bool = False):
    import torch
    import torch_reference as tr

    self.torch, self.tr = torch, tr
    self.name = "PyTorch torch.compile" if compile_model else "PyTorch eager"
    m = config.model
    width, groups = m.width, m.conv_groups
    if groups != 1:
      raise ValueError("vs_pytorch: only conv_groups=1 is built in PyTorch.")
    torch.manual_seed(0)
    model = tr.HyperFaceAlexNet(
      conv=tuple(scale_channels(c, width) for c in (96, 256, 384, 384, 256)),
      fused=scale_channels(256, width),
      fusion=scale_channels(m.get("fusion_channels", 192), width),
      fc_full=scale_channels(m.get("fc_full", 3072), width),
      grid=fused_grid(config.input_size)[0],
      head_width=m.get("head_width", 512),
      dropout=m.dropout,
      batch_norm=m.norm == "batch",
      lrn=m.lrn,
    ).train()
    opt = config.optim
    if opt.name == "sgd":
      self.optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=opt.momentum,
        nesterov=opt.nesterov,
        weight_decay=opt.weight_decay,
      )
    elif opt.name == "adam":
      self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    else:
      raise ValueError(f"vs_pytorch: optimiser {opt.name!r} is not built in PyTorch.")
    self.model = torch.compile(model) if compile_model else model
    self.weights = dict(config.weighting.weights)
    b = batch_np
    self.batch = {
      "image": torch.from_numpy(np.ascontiguousarray(b["image"].transpose(0, 3, 1, 2))),
      "detection": torch.from_numpy(b["detection"].astype(np.int64)),
      "landmarks": torch.from_numpy(b["landmarks"]),
      "visibility": torch.from_numpy(b["visibility"]),
      "pose": torch.from_numpy(b["pose"]),
      "gender": torch.from_numpy(b["gender"].astype(np.int64)),
    }
    self.loss = None

  def run(self, n: int) -> None:
    for _ in range(n):
      self.optimizer.zero_grad(set_to_none=True)
      loss = self.tr.hyperface_loss(self.model(self.batch["image"]), self.batch, self.weights)
      loss.backward()
      self.optimizer.step()
    self.loss = float(loss.detach())


def compare(name: str, args, peak: float) -> list:
  config = load_config(name)
  n = config.batch_size
  batch_np = random_batch(np.random.default_rng(0), n, config.input_size)
  # The network's FLOPs: of the step with XLA's direct convolutions, whichever --impls run
  # (a Winograd convolution, models/winograd.py, does fewer multiplies for the same result;
  # the GFLOP/s column is then an effective rate, comparable across implementations).
  step_flops = JaxRunner(config, "xla/xla", batch_np).flops
  runners = [JaxRunner(config, impl, batch_np) for impl in args.impls.split(",")]
  runners.append(TorchRunner(config, batch_np))
  notes = []
  if args.torch_compile:
    try:
      compiled = TorchRunner(config, batch_np, compile_model=True)
      compiled.run(1)  # compiles here, so that a failure is caught and reported
      runners.append(compiled)
    except Exception as e:  # noqa: BLE001  (any compile failure is reported, not raised)
      notes.append(f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
  for r in runners:
    r.run(1)  # warm-up (compilation)
  ips = {r.name: [] for r in runners}
  cpu = {r.name: [] for r in runners}  # images per CPU-second of this process (all threads)
  for _ in range(args.rounds):
    for r in runners:
      t0, c0 = time.perf_counter(), time.process_time()
      r.run(args.steps)
      ips[r.name].append(args.steps * n / (time.perf_counter() - t0))
      cpu[r.name].append(args.steps * n / (time.process_time() - c0))
  torch_eager = ips["PyTorch eager"]
  rows = []
  for r in runners:
    ratio = statistics.median(a / b for a, b in zip(ips[r.name], torch_eager, strict=True))
    rate = statistics.median(ips[r.name])
    gflops = step_flops * rate / n / 1e9
    rows.append(
      dict(
        config=name,
        input=config.input_size,
        batch=n,
        impl=r.name,
        ips=rate,
        ips_all=ips[r.name],
        ips_cpu=statistics.median(cpu[r.name]),
        ratio=ratio,
        gflops=gflops,
        peak_frac=gflops / peak,
        step_gflop=step_flops / 1e9,
        loss=r.loss,
        notes=notes,
      )
    )
  return rows


def _cpu_seconds(fn, *args, repeats: int = 4) -> float:
  """Least CPU time (this process, all threads) of one call of jitted `fn`."""
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    c0 = time.process_time()
    jax.block_until_ready(fn(*args))
    best = min(best, time.process_time() - c0)
  return best


def layer_levers(batch: int = 32) -> None:
  """CPU seconds of forward + backward of the two layers the levers change, at 227 px:
  conv1 (XLA vs the shifted-matmul weight gradient) and the 3x3 / 2 max-pools after conv1,
  conv2 and conv5 (XLA's gradient, models/fast_pool.py's, a slice forward), as a table."""
  rng = np.random.default_rng(0)
  rows = []
  x = jnp.asarray(rng.normal(size=(batch, 227, 227, 3)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(11, 11, 3, 96)) * 0.05, jnp.float32)
  args = ((4, 4), ((0, 0), (0, 0)), 1)
  dy = jnp.asarray(rng.normal(size=(batch, 55, 55, 96)), jnp.float32)
  forwards = (
    ("xla", jax.jit(lambda x_, w_: fast_conv._forward(x_, w_, *args))),
    ("space-to-depth 3x3 over 48 channels", jax.jit(conv1_space_to_depth)),
    ("im2col patches + one matmul", jax.jit(conv1_im2col)),
  )
  reference = np.asarray(forwards[0][1](x, w))
  for name, fwd in forwards:
    # Every candidate computes the same convolution (float32 summation order aside).
    np.testing.assert_allclose(
      np.asarray(fwd(x, w)), reference, rtol=0, atol=1e-4 * abs(reference).max()
    )
    rows.append(("conv1 forward", name, _cpu_seconds(fwd, x, w)))
  for name, conv in (("xla", fast_conv._forward), ("shifted_dw", fast_conv.conv2d_shifted_dw)):
    # x and dy are arguments: closed over, XLA would fold the weight gradient to a constant.
    grad = jax.jit(jax.grad(lambda w_, x_, d_, c=conv: jnp.sum(c(x_, w_, *args) * d_)))
    rows.append(("conv1 forward + weight gradient", name, _cpu_seconds(grad, w, x, dy)))
  for shape in ((batch, 55, 55, 96), (batch, 27, 27, 256), (batch, 13, 13, 256)):
    a = jnp.asarray(rng.normal(size=shape), jnp.float32)
    g = jnp.asarray(rng.normal(size=alexnet.max_pool_3x3_s2(a).shape), jnp.float32)
    pools = (
      ("reduce_window (XLA gradient)", alexnet.max_pool_3x3_s2),
      (
        "reduce_window, masked-slice gradient",
        lambda v: fast_pool.max_pool_masked_grad(v, (3, 3), (2, 2)),
      ),
      ("9 slices (XLA gradient)", slice_max_pool),
    )
    for name, pool in pools:
      grad = jax.jit(jax.grad(lambda a_, g_, pool=pool: jnp.sum(pool(jax.nn.relu(a_)) * g_)))
      rows.append(
        (f"max-pool {shape[1]}x{shape[2]}x{shape[3]} fwd + bwd", name, _cpu_seconds(grad, a, g))
      )
  print(f"\n| layer (batch {batch}) | implementation | CPU ms |\n|---|---|---|")
  for layer, name, sec in rows:
    print(f"| {layer} | {name} | {1e3 * sec:.0f} |")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", default="hyperface_alexnet@32,demo")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=3, help="steps per implementation per round")
  parser.add_argument(
    "--impls",
    default="xla/xla,shifted_dw/masked_grad,auto/auto",
    help="comma-separated CONV/POOL pairs of config.model.conv_impl / pool_impl",
  )
  parser.add_argument("--torch_compile", action="store_true")
  parser.add_argument("--layers", action="store_true", help="only the per-layer lever table")
  add_host_malloc_flag(parser)  # one setting for both implementations
  args = parser.parse_args()
  host_memory.configure(args.host_malloc)  # before the first large allocation
  if args.layers:
    layer_levers()
    return
  peaks = matmul_peak()
  peak = max(peaks.values())
  print(
    f"fp32 2048x2048 matmul: numpy {peaks['numpy']:.0f} GFLOP/s, jax {peaks['jax']:.0f} "
    f"GFLOP/s; load average {os.getloadavg()[0]:.2f}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
    f"host_malloc={args.host_malloc}"
  )
  rows = [row for name in args.configs.split(",") for row in compare(name, args, peak)]
  print(
    "\n| config | input | batch | implementation | images/s | ours / PyTorch eager "
    "| GFLOP/s | of matmul peak | images per CPU-s | images/s per round |"
  )
  print("|---|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    rounds = " ".join(f"{v:.1f}" for v in r["ips_all"])
    print(
      f"| {r['config']} | {r['input']} | {r['batch']} | {r['impl']} | {r['ips']:.1f} | "
      f"{r['ratio']:.2f}x | {r['gflops']:.0f} | {100 * r['peak_frac']:.0f} % | {r['ips_cpu']:.1f} | {rounds} |"
    )
  for name in dict.fromkeys(r["config"] for r in rows):
    first = next(r for r in rows if r["config"] == name)
    print(f"\n{name}: {first['step_gflop']:.1f} GFLOP per train step (XLA cost analysis).")
    for note in first["notes"]:
      print(f"{name}: {note}")
  print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  main()
