"""Winograd minimal-filtering convolution F(m x m, r x r) as an XLA program (CPU speed lever).

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016): an m x m
tile of a stride-1 r x r correlation is

  Y = A^T [ (G g G^T) * (B^T d B) ] A

where d is the (m + r - 1)^2 input tile and g the kernel; the products (*) of all tiles and
channels are (m + r - 1)^2 independent matmuls [tiles, Cin] x [Cin, Cout]. F(5x5, 3x3)
(the default for 3x3 kernels, models/alexnet.py WINOGRAD_TILES) does 49 multiplies per 25
outputs instead of 225 (4.6x fewer; F(4x4, 3x3) 36 per 16, 4x), F(4x4, 5x5) 64 instead of
400 (6.25x). The transforms are adds, subtracts and small constant factors that XLA fuses
into loops.

Why by hand: XLA's CPU backend has no Winograd convolution, and on this CPU its direct
convolutions (YNNPACK) run HyperFace-AlexNet's conv2..conv5 slower than PyTorch's oneDNN
(README "Against PyTorch"). Written with jnp ops, the function is differentiable as it stands:
its input and weight gradients are the transposed transforms around the same batched
matmuls, so the backward passes get the same saving. No library offers this for JAX.

Numerics: the transforms are exact in real arithmetic; in float32 the result differs from
`lax.conv_general_dilated` by rounding only (relative to the output's scale ~1e-6 for
F(2, 3), ~1e-5 for F(4, 3), F(5, 3), F(2, 5) and F(4, 5); tests/test_winograd.py,
bench/winograd_error.py). The matrices are built here for any (m, r) from the
interpolation points 0, 1, -1, 2, -2, 1/2, -1/2, ... and infinity (Lavin & Gray section 4),
the choice that keeps their entries small.
"""

from __future__ import annotations

import functools
import itertools
from fractions import Fraction
from typing import Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from hyperface_jax.models import space_to_depth

Padding = Tuple[Tuple[int, int], Tuple[int, int]]

# Finite interpolation points in the order they are taken (plus the point at infinity).
_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0)


@functools.lru_cache(maxsize=None)
def transforms(m: int, r: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(A^T [m, a], G [a, r], B^T [a, a]) of F(m, r), a = m + r - 1, in float64.

  A^T and G are the Vandermonde matrices of the points (the point at infinity picks the
  leading coefficient); B^T is solved from the defining identity
  sum_j A^T[i, j] G[j, k] B^T[j, n] = [n == i + k] (every output i is the correlation
  sum_k d[i + k] g[k]) and checked exactly in rational arithmetic. Each row j of B^T is then scaled to a smallest
  nonzero entry of +-1 and row j of G by the inverse, which gives the integer data
  transforms of the paper (for F(2, 3): rows (1, 0, -1, 0), (0, 1, 1, 0), ...).
  """
  a = m + r - 1
  if m < 1 or r < 1 or a - 1 > len(_POINTS):
    raise ValueError(f"Winograd F({m}, {r}) needs m, r >= 1 and m + r - 2 <= {len(_POINTS)}.")
  at = [[Fraction(0)] * a for _ in range(m)]
  g = [[Fraction(0)] * r for _ in range(a)]
  for j, p in enumerate(_POINTS[: a - 1]):
    for i in range(m):
      at[i][j] = Fraction(p) ** i
    g[j] = [Fraction(p) ** k for k in range(r)]
  at[m - 1][a - 1] = g[a - 1][r - 1] = Fraction(1)
  # Unknowns B^T[j, n] (a * a of them), one equation per (i, k, n); solved in float64,
  # then snapped to the small fractions they are and checked exactly.
  system = np.zeros((m, r, a, a, a))
  for i, k, n in itertools.product(range(m), range(r), range(a)):
    system[i, k, n, :, n] = [float(at[i][j] * g[j][k]) for j in range(a)]
  target = [float(n == i + k) for i, k, n in itertools.product(range(m), range(r), range(a))]
  solution = np.linalg.lstsq(system.reshape(m * r * a, a * a), target, rcond=None)[0]
  bt = [
    [Fraction(float(v)).limit_denominator(10**6) for v in row] for row in solution.reshape(a, a)
  ]
  for i, k, n in itertools.product(range(m), range(r), range(a)):
    if sum(at[i][j] * g[j][k] * bt[j][n] for j in range(a)) != (n == i + k):
      raise AssertionError(f"Winograd F({m}, {r}): no exact B^T for these points.")
  for j, row in enumerate(bt):
    scale = min(abs(v) for v in row if v)
    bt[j] = [v / scale for v in row]
    g[j] = [v * scale for v in g[j]]
  return tuple(np.array(x, np.float64) for x in (at, g, bt))


def _combine(matrix: np.ndarray, parts: Sequence[jax.Array]) -> list:
  """[sum_l matrix[j, l] * parts[l] for each row j], skipping zeros and unit factors."""
  out = []
  for row in matrix:
    acc = None
    for c, part in zip(row, parts, strict=True):
      if abs(c) < 1e-12:
        continue
      term = part if c == 1 else -part if c == -1 else part * np.float32(c)
      acc = term if acc is None else acc + term
    out.append(acc if acc is not None else jnp.zeros_like(parts[0]))
  return out


def _tiles(bt: np.ndarray, x: jax.Array, axis: int, tiles: int, m: int, new_axis: int) -> jax.Array:
  """B^T applied along `axis` to every tile (m apart): the a transformed rows stacked on a
  new axis `new_axis`, `tiles` entries left on `axis`."""
  a = bt.shape[1]
  rows = [lax.slice_in_dim(x, n, n + m * (tiles - 1) + 1, m, axis) for n in range(a)]
  return jnp.stack(_combine(bt, rows), axis=new_axis)


def _untile(at: np.ndarray, x: jax.Array, axis: int) -> jax.Array:
  """A^T applied to the leading axis of x [a, ...]: the m outputs stacked at `axis` of the
  result (counted without the consumed leading axis)."""
  return jnp.stack(_combine(at, [x[j] for j in range(x.shape[0])]), axis=axis)


def conv2d(
  x: jax.Array,
  w: jax.Array,
  padding: Padding,
  tile: int = 2,
  strides: Tuple[int, int] = (1, 1),
) -> jax.Array:
  """Ungrouped NHWC / HWIO correlation by Winograd F(tile x tile, r x r).

  Equal to `lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=("NHWC",
  "HWIO", "NHWC"))` up to float rounding, for square kernels. A strided convolution is
  first rewritten as a stride-1 one by space-to-depth (models/space_to_depth.py; conv1
  11x11 / 4 becomes 3x3 over 48 channels), so r is then ceil(K / s).

  Args:
    x: input [B, H, W, Cin].
    w: kernel [K, K, Cin, Cout].
    padding: ((top, bottom), (left, right)) zero padding.
    tile: m, the output tile's side.
    strides: (s, s).

  Returns:
    [B, Ho, Wo, Cout], Ho = (H + top + bottom - K) // s + 1 (likewise Wo).
  """
  if tuple(strides) != (1, 1):
    x = space_to_depth.input_s2d(x, w.shape[:2], strides, padding)
    w = space_to_depth.kernel_s2d(w, strides)
    padding = ((0, 0), (0, 0))
  r, r2, cin, cout = w.shape
  if r != r2 or x.shape[-1] != cin:
    raise ValueError(f"winograd.conv2d: kernel {w.shape} must be square HWIO over input {x.shape}.")
  at, g, bt = transforms(tile, r)
  a = tile + r - 1
  # The transforms scale by constants up to 10 and add up to 8 terms: in bfloat16 they
  # would lose most of its 8 bits, so a lower-precision input is computed in float32 and
  # the result cast back.
  dtype = x.dtype
  x, w = (
    x.astype(jnp.promote_types(dtype, jnp.float32)),
    w.astype(jnp.promote_types(w.dtype, jnp.float32)),
  )
  b, h, wd, _ = x.shape
  (pt, pb), (pl, pr) = padding
  ho, wo = h + pt + pb - r + 1, wd + pl + pr - r + 1
  nh, nw = -(-ho // tile), -(-wo // tile)
  # Zero rows and columns up to whole tiles; the extra outputs are cropped at the end.
  xp = jnp.pad(
    x, ((0, 0), (pt, tile * nh + r - 1 - h - pt), (pl, tile * nw + r - 1 - wd - pl), (0, 0))
  )
  # Each operation below acts on all tiles at once: a strided slices and their sums per
  # axis (not a * a), which keeps the compiled program small.
  v = _tiles(bt, _tiles(bt, xp, 1, nh, tile, 0), 3, nw, tile, 1)  # [a, a, B, nh, nw, Cin]
  v = v.reshape(a * a, b * nh * nw, cin)
  gm = jnp.asarray(g, w.dtype)
  u = jnp.einsum("ai,ijck,bj->abck", gm, w, gm).reshape(a * a, cin, cout)
  prod = jnp.einsum("ptc,pck->ptk", v, u).reshape(a, a, b, nh, nw, cout)
  y = _untile(at, _untile(at, prod, 3), 4)  # [B, nh, m, nw, m, Cout]
  return y.reshape(b, nh * tile, nw * tile, cout)[:, :ho, :wo].astype(dtype)
