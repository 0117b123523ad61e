"""HyperFace fusion CNN: conv1a(max1/norm1) + conv3a(conv3) + pool5 -> conv_all -> fc_full.

Grid arithmetic (docs/papers.md section 1.2, [D]). With VALID convs and floor-mode 3x3/2 pools,
an input of S pixels gives
  conv1 a = floor((S - 11) / 4) + 1,  max1 b = floor((a - 3) / 2) + 1,
  max2 c = floor((b - 3) / 2) + 1 (= conv3),  pool5 d = floor((c - 3) / 2) + 1,
  conv1a floor(b / 4),  conv3a floor(c / 2).
For S = 35 + 32 g: a = 7 + 8 g, b = 3 + 4 g, c = 1 + 2 g, and conv1a = conv3a = pool5 = g.
The three grids also agree for S = 35 + 32 g + r with r in 1..7 (the last r input rows and
columns are then ignored), and for no other S. Examples: 227 -> 6x6 (the paper),
131 -> 3x3, 99 -> 2x2, 67 -> 1x1. At S = 35 + 32 g every pooled extent minus 3 is even, so
Caffe's ceil-mode pooling gives the same shapes.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperface_jax.models.alexnet import relu_init
from hyperface_jax.models.layers import conv_norm_relu, scale_channels

VALID_SIZES_DOC = (
  "S = 35 + 32*g + r with g >= 1 and r in 0..7 (r > 0 ignores the last r "
  "pixels); e.g. 67 -> 1x1, 99 -> 2x2, 131 -> 3x3, 227 -> 6x6 fused grid"
)


def fused_grid(input_size: int) -> Tuple[int, int, int]:
  """Spatial extents of (conv1a, conv3a, pool5) for a square input of `input_size` pixels.

  Args:
    input_size: image height (or width) in pixels.

  Returns:
    The three extents; the input is usable by HyperFusion iff they are equal and > 0.
  """
  a = (input_size - 11) // 4 + 1
  b = (a - 3) // 2 + 1
  c = (b - 3) // 2 + 1
  d = (c - 3) // 2 + 1
  return b // 4, c // 2, d


def valid_input_sizes(max_size: int = 300) -> List[int]:
  """All input sizes <= max_size whose three fused grids agree (see module docstring)."""
  return [
    s for s in range(11, max_size + 1) if len(set(fused_grid(s))) == 1 and fused_grid(s)[0] > 0
  ]


class HyperFusion(nn.Module):
  """Fuses max1/norm1, conv3 and pool5 into the 3072-d hyperfeature (docs/papers.md 1.2 rows 4, 8,
  12-14).

  Attributes:
    width: multiplies every channel count (fc_full too), min 8.
    conv1a_input: "norm1" (TK's choice: conv1a after LRN) or "max1" (the map the paper names
      as fused); docs/papers.md section 1.2 marks this [?].
    fused_channels: output channels of conv1a and conv3a (256 in the paper).
    fusion_channels: output channels of conv_all (192).
    fc_full: width of the fully connected hyperfeature (3072).
    dropout: rate after fc_full (documented default 0.5, docs/papers.md section 1.2 notes).
    norm: "none" (the paper) or "batch" (layers.conv_norm_relu).
    norm_axis_name: mesh axis over which BatchNorm statistics are synchronised.
    dtype: computation dtype.
  """

  width: float = 1.0
  conv1a_input: str = "norm1"
  fused_channels: int = 256
  fusion_channels: int = 192
  fc_full: int = 3072
  dropout: float = 0.5
  norm: str = "none"
  norm_axis_name: Any = None
  dtype: Any = jnp.float32

  def block(self, name, x, features, kernel, stride, train):
    return conv_norm_relu(
      self.conv(name, features, kernel, stride),
      x,
      norm=self.norm,
      train=train,
      axis_name=self.norm_axis_name,
      name=name,
    )

  def conv(self, name: str, features: int, kernel: int, stride: int) -> nn.Conv:
    return nn.Conv(
      scale_channels(features, self.width),
      (kernel, kernel),
      strides=(stride, stride),
      padding="VALID",
      kernel_init=relu_init,
      dtype=self.dtype,
      name=name,
    )

  @nn.compact
  def __call__(self, feats: Dict[str, jax.Array], train: bool = False) -> jax.Array:
    """Fuses backbone feature maps.

    Args:
      feats: dict from AlexNetBackbone (needs conv1a_input, "conv3" and "pool5").
      train: enables dropout (rng stream "dropout").

    Returns:
      Hyperfeature [B, fc_full * width].
    """
    if self.conv1a_input not in ("norm1", "max1"):
      raise ValueError(
        f"HyperFusion.conv1a_input must be 'norm1' or 'max1', got {self.conv1a_input!r}."
      )
    # Row 4: conv1a 4x4/4 brings the 27x27 level-1 map to 6x6.
    c1a = self.block("conv1a", feats[self.conv1a_input], self.fused_channels, 4, 4, train)
    # Row 8: conv3a 2x2/2 brings 13x13 conv3 to 6x6.
    c3a = self.block("conv3a", feats["conv3"], self.fused_channels, 2, 2, train)
    pool5 = feats["pool5"]
    grids = [t.shape[1:3] for t in (c1a, c3a, pool5)]
    if len(set(grids)) != 1:
      raise ValueError(
        f"HyperFusion: fused maps disagree in spatial size: conv1a {c1a.shape}, conv3a "
        f"{c3a.shape}, pool5 {pool5.shape} (input {feats['conv1'].shape[1:3]} is not a "
        f"valid HyperFace-AlexNet input size). Valid sizes: {VALID_SIZES_DOC}."
      )
    # Row 12: channel concat (768 channels at width 1), row 13: 1x1 conv_all to 192.
    x = jnp.concatenate([c1a, c3a, pool5.astype(c1a.dtype)], axis=-1)
    x = self.block("conv_all", x, self.fusion_channels, 1, 1, train)
    x = x.reshape((x.shape[0], -1))
    # Row 14: fc_full 3072 + ReLU, dropout after it (documented default, TK).
    x = nn.Dense(
      scale_channels(self.fc_full, self.width),
      kernel_init=relu_init,
      dtype=self.dtype,
      name="fc_full",
    )(x)
    x = nn.relu(x)
    return nn.Dropout(self.dropout, deterministic=not train)(x)
