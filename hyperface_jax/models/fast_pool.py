"""Max-pooling whose gradient is a masked scatter of strided slices (CPU speed lever).

JAX differentiates `lax.reduce_window(max)` through `select_and_gather_add`, which XLA's CPU
backend lowers to a variadic reduce-window over (value, iota) pairs followed by selects:
in the HyperFace-AlexNet train step the three 3x3 / stride-2 pools' backward took ~10 % of
the step for almost no FLOPs (README "Against PyTorch", jax.profiler trace).
`max_pool_masked_grad` keeps the forward (`lax.reduce_window`, the same values as
`nn.max_pool`) and gives the backward as a `jax.custom_vjp`: for every window offset
(i, j) in row-major order, the strided slice of the input that the offset sees is compared
with the pooled output; the first offset that attains the window's maximum receives the
output's cotangent, which is added back at the slice's positions (`lax.pad` with interior
padding = stride - 1). Every operation is elementwise, so XLA fuses the whole backward
into a few loops. In isolation (bench/vs_pytorch.py --layers, batch 32) the three pools'
forward + backward take 4-8x less CPU time than XLA's (545 -> 111 CPU ms); with the host
allocator keeping freed memory (hyperface_jax/host_memory.py; then 160 + 103 + 24 ->
34 + 26 + 4 CPU ms) also less wall time in the whole step (README "Against PyTorch"), so
`"auto"` picks it on CPU.

Ties go to the first maximum in row-major order within the window, as in XLA's
`select_and_scatter_add` with the `ge` selector that `jax.grad` of a max-pool uses; only
where several inputs of a window are equal (e.g. zeros after ReLU) can the position that
receives the gradient differ from jax.grad's, never its total (tests/test_fast_pool.py).
"""

from __future__ import annotations

import functools
from typing import Tuple

import jax
import jax.numpy as jnp
from jax import lax

# "auto": "masked_grad" on the CPU backend, where it was measured faster once the host
# allocator keeps freed memory (README "Against PyTorch", bench/vs_pytorch.py: under
# host_malloc=retain hyperface_alexnet 18.1 -> 18.8 and 19.9 -> 21.0 images/s, the demo
# 271 -> 299 and 272 -> 273, in two runs; under glibc's defaults it saved CPU time but not
# wall time); "xla" on accelerators (not measured there).
POOL_IMPLS = ("xla", "masked_grad", "auto")


def resolve_pool_impl(pool_impl: str) -> str:
  """ "xla" or "masked_grad" for a POOL_IMPLS name ("auto" looks at jax.default_backend()),
  else a ValueError naming them."""
  if pool_impl not in POOL_IMPLS:
    raise ValueError(f"pool_impl must be one of {POOL_IMPLS}, got {pool_impl!r}.")
  if pool_impl == "auto":
    return "masked_grad" if jax.default_backend() == "cpu" else "xla"
  return pool_impl


def _pool(x: jax.Array, window: Tuple[int, int], strides: Tuple[int, int]) -> jax.Array:
  init = jnp.array(-jnp.inf, x.dtype)
  return lax.reduce_window(x, init, lax.max, (1, *window, 1), (1, *strides, 1), "VALID")


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool_masked_grad(x: jax.Array, window: Tuple[int, int], strides: Tuple[int, int]):
  """VALID max-pool of NHWC `x` (as `nn.max_pool`) with the masked-slice backward.

  Args:
    x: input [B, H, W, C].
    window: (wh, ww), a tuple of ints.
    strides: (sh, sw), a tuple of ints.

  Returns:
    [B, (H - wh) // sh + 1, (W - ww) // sw + 1, C].
  """
  return _pool(x, window, strides)


def _fwd(x, window, strides):
  y = _pool(x, window, strides)
  return y, (x, y)


def _bwd(window, strides, res, g):
  x, y = res
  b, h, w, c = x.shape
  _, ho, wo, _ = y.shape
  sh, sw = strides
  zero = jnp.zeros((), g.dtype)
  dx = jnp.zeros(x.shape, g.dtype)
  taken = jnp.zeros(y.shape, bool)
  for i in range(window[0]):
    for j in range(window[1]):
      hi, wj = i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1
      xs = lax.slice(x, (0, i, j, 0), (b, hi, wj, c), (1, sh, sw, 1))  # what (i, j) sees
      first = (xs == y) & ~taken  # the first maximum of each window (row-major order)
      taken = taken | first
      dx = dx + lax.pad(
        jnp.where(first, g, zero),
        zero,
        ((0, 0, 0), (i, h - hi, sh - 1), (j, w - wj, sw - 1), (0, 0, 0)),
      )
  return (dx,)


max_pool_masked_grad.defvjp(_fwd, _bwd)
