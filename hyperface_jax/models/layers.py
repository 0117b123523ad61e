"""Small layers shared by the HyperFace backbones: Caffe-style LRN and channel scaling."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def local_response_norm(
  x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> jax.Array:
  """Caffe ACROSS_CHANNELS local response normalization (CaffeNet/AlexNet norm1, norm2).

  out[..., c] = x[..., c] / (k + alpha / size * sum_{c' in window(c)} x[..., c']**2) ** beta

  The window holds `size` channels centred on c (Caffe's pre_pad = (size - 1) // 2 before,
  the rest after) and is zero-padded at the channel borders. Caffe divides alpha by the
  window size; Chainer/TK does not and uses k = 2 (docs/papers.md section 1.2, row 3): pass
  `alpha * size, k=2.0` to reproduce TK.

  Args:
    x: array [..., C], channels last (NHWC).
    size: number of channels in the window (odd in AlexNet: 5).
    alpha: scale, divided by `size` as in Caffe.
    beta: exponent.
    k: additive constant.

  Returns:
    Array of x's shape and dtype. The sum is computed in float32 so bfloat16 activations
    do not lose the small alpha * x**2 term.
  """
  if size < 1:
    raise ValueError(f"local_response_norm: size must be >= 1, got {size}.")
  if x.ndim < 1:
    raise ValueError(f"local_response_norm: x must have a channel axis, got shape {x.shape}.")
  xf = x.astype(jnp.float32)
  pre = (size - 1) // 2
  post = size - 1 - pre
  window = (1,) * (x.ndim - 1) + (size,)
  padding = ((0, 0),) * (x.ndim - 1) + ((pre, post),)
  sq_sum = lax.reduce_window(xf * xf, 0.0, lax.add, window, (1,) * x.ndim, padding)
  scale = k + (alpha / size) * sq_sum
  return (xf * scale ** (-beta)).astype(x.dtype)


def scale_channels(channels: int, width: float, groups: int = 1, minimum: int = 8) -> int:
  """`channels * width` rounded (half up) to a multiple of `groups`, at least `minimum`.

  Args:
    channels: the paper's channel count (docs/papers.md section 1.2).
    width: width multiplier (1.0 = paper size).
    groups: the result must divide into this many groups (feature_group_count).
    minimum: lower bound, itself rounded up to a multiple of `groups`.

  Returns:
    The scaled channel count.
  """
  if width <= 0:
    raise ValueError(f"width must be > 0, got {width}.")
  if groups < 1:
    raise ValueError(f"groups must be >= 1, got {groups}.")
  n = int(math.floor(channels * width / groups + 0.5))  # half up, not banker's rounding
  return max(n, math.ceil(minimum / groups)) * groups


NORMS = ("none", "batch")


def norm_axis(axis_name):
  """The mesh axis name, or None for None, "" and "None"/"none" (what an absl override
  `--config.model.norm_axis_name=None` of a string field delivers)."""
  return None if axis_name in (None, "", "None", "none") else axis_name


def conv_norm_relu(conv: "nn.Conv", x, *, norm: str, train: bool, axis_name=None, name: str):
  """conv -> [BatchNorm] -> ReLU.

  `norm="none"` is the paper's AlexNet (docs/papers.md section 1.2 has no BatchNorm).
  `norm="batch"` is a documented option for training from scratch without the
  R-CNN_Face / ImageNet initialisation the paper relies on (docs/papers.md 1.3): the
  CPU demo uses it. Statistics are synchronised over `axis_name` (the 'data'
  mesh axis inside the data-parallel step) when given.
  """
  if norm not in NORMS:
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
  y = conv(x)
  if norm == "batch":
    y = nn.BatchNorm(
      use_running_average=not train,
      momentum=0.9,
      axis_name=norm_axis(axis_name) if train else None,
      name=f"{name}_bn",
    )(y)
  return nn.relu(y)
