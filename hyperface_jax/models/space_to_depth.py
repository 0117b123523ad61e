"""A strided convolution rewritten as a stride-1 one by space-to-depth (CPU speed levers).

An s x s-strided K x K convolution over C channels reads, for output (i, j), the input
rows s*i .. s*i + K - 1. Cut the (zero-padded) input into s x s blocks and stack each
block's pixels as channels: [B, H, W, C] -> [B, H / s, W / s, s * s * C]. The same
convolution is then a stride-1 one with a ceil(K / s) x ceil(K / s) kernel over s * s * C
channels, the original kernel zero-padded to a multiple of s and cut the same way.
For AlexNet's conv1 (11x11 / 4 over 3 channels): a 3x3 kernel over 48 channels, exactly
the same outputs (the padded kernel taps are zeros).

models/fast_conv.py computes conv1's weight gradient this way, models/winograd.py its
forward and gradients (a 3x3 Winograd convolution).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import jax
import jax.numpy as jnp

Padding = Tuple[Tuple[int, int], Tuple[int, int]]


def s2d_kernel_size(kernel_hw: Sequence[int], strides: Sequence[int]) -> Tuple[int, int]:
  """(ceil(KH / sh), ceil(KW / sw)): the kernel of the stride-1 rewrite."""
  return tuple(-(-k // s) for k, s in zip(kernel_hw, strides, strict=True))


def input_s2d(
  x: jax.Array, kernel_hw: Sequence[int], strides: Sequence[int], padding: Padding
) -> jax.Array:
  """The zero-padded input [B, H, W, C] as [B, Ho + k2h - 1, Wo + k2w - 1, sh * sw * C]
  (channel order: block row, block column, channel), for the output Ho x Wo of the
  original (floor-mode) convolution; input rows no output reads are dropped."""
  (kh, kw), (sh, sw) = kernel_hw, strides
  k2h, k2w = s2d_kernel_size(kernel_hw, strides)
  b, h, w, c = x.shape
  ho = (h + sum(padding[0]) - kh) // sh + 1
  wo = (w + sum(padding[1]) - kw) // sw + 1
  hn, wn = (ho - 1 + k2h) * sh, (wo - 1 + k2w) * sw  # input extent the s2d kernel reads
  xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))[:, :hn, :wn]
  xp = jnp.pad(xp, ((0, 0), (0, hn - xp.shape[1]), (0, wn - xp.shape[2]), (0, 0)))
  xs = xp.reshape(b, hn // sh, sh, wn // sw, sw, c).transpose(0, 1, 3, 2, 4, 5)
  return xs.reshape(b, hn // sh, wn // sw, sh * sw * c)


def kernel_s2d(w: jax.Array, strides: Sequence[int]) -> jax.Array:
  """HWIO kernel [KH, KW, C, O] -> [k2h, k2w, sh * sw * C, O] matching input_s2d."""
  (sh, sw), (kh, kw, c, o) = strides, w.shape
  k2h, k2w = s2d_kernel_size((kh, kw), strides)
  wp = jnp.pad(w, ((0, k2h * sh - kh), (0, k2w * sw - kw), (0, 0), (0, 0)))
  wp = wp.reshape(k2h, sh, k2w, sw, c, o).transpose(0, 2, 1, 3, 4, 5)
  return wp.reshape(k2h, k2w, sh * sw * c, o)


def kernel_from_s2d(
  ws: jax.Array, kernel_hw: Sequence[int], strides: Sequence[int], channels: int
) -> jax.Array:
  """The inverse of kernel_s2d (the padded taps dropped): [K', K', s*s*C, O] -> [KH, KW, C, O].
  Offset kh = i * sh + a of the original kernel is s2d offset i, block row a."""
  (kh, kw), (sh, sw) = kernel_hw, strides
  k2h, k2w, _, o = ws.shape
  w = ws.reshape(k2h, k2w, sh, sw, channels, o).transpose(0, 2, 1, 3, 4, 5)
  return w.reshape(k2h * sh, k2w * sw, channels, o)[:kh, :kw]
