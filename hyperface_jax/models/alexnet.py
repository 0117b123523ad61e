"""AlexNet (CaffeNet order) backbone of HyperFace-AlexNet, returning every named feature map."""

from __future__ import annotations

import functools
from typing import Any, Dict, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperface_jax.models.fast_conv import FastConv, conv_algorithm
from hyperface_jax.models.fast_pool import max_pool_masked_grad, resolve_pool_impl
from hyperface_jax.models.layers import conv_norm_relu, local_response_norm, scale_channels
from hyperface_jax.models.space_to_depth import s2d_kernel_size

# He initialisation for ReLU layers: keeps activation variance through the stack when
# training from scratch (pretrained AlexNet weights replace it by name later).
relu_init = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")

# (kernel size, output tile) of the convolutions that conv_impl="winograd" / "auto" compute
# as Winograd F(tile x tile, kernel x kernel) (models/winograd.py): conv2's 5x5 with 4x4
# output tiles, conv3..conv5's 3x3 (and conv1's, 3x3 after space-to-depth) with 5x5 ones.
# On the 2-core CPU, HyperFace-AlexNet at batch 32 trained at (images/s, medians of
# interleaved rounds, bench/winograd_tiles.py): before conv1 was included, 19.5 with none,
# 22.5 with 3x3 tiles of 2 alone, 25.4 with 3x3 / 2 and 5x5 / 4, 28.2 with 3x3 / 4 and
# 5x5 / 4, 29.6 with 3x3 / 5 and 5x5 / 4; with conv1, 30.5 for 3x3 / 4 against 31.6 for
# 3x3 / 5 (12 rounds; 28.6 / 30.1 / 25.2 for tiles 4 / 5 / 6 in 8 rounds). Tiles of 5
# fit the maps: conv1's 55 x 55 output is 11 x 11 tiles, conv3..conv5's 13 x 13 is
# computed as 15 x 15 (16 x 16 with 4). Float32 error against XLA's convolution: ~1e-5 of
# the output's scale for F(4, 3), F(5, 3) and F(4, 5) (tests/test_winograd.py); F(5, 5)
# and F(7, 3) reach 2-5e-4 (bench/winograd_error.py), so they are not used.
WINOGRAD_TILES = ((3, 5), (5, 4))


def winograd_tile_map(pairs) -> Dict[int, int]:
  """{kernel size: output tile} of `winograd_tiles`, refusing anything but (int, int) pairs
  of positive sizes (a config value such as ((3, 4), (5, 4)))."""
  try:
    tiles = {int(k): int(m) for k, m in pairs}
  except (TypeError, ValueError):
    tiles = None
  if tiles is None or any(k < 1 or m < 1 for k, m in tiles.items()):
    raise ValueError(
      f"model.winograd_tiles must be ((kernel size, output tile), ...) of positive ints, "
      f"e.g. ((3, 4), (5, 4)); got {pairs!r}."
    )
  return tiles


def conv_formulation(
  conv_impl: str,
  winograd_tiles,
  *,
  kernel: int,
  stride: int,
  pad: int,
  groups: int,
  in_shape: Tuple[int, int, int],
  features: int,
) -> Tuple[str, int]:
  """(algorithm, Winograd tile) of a square conv over an input [H, W, C]: the layer's
  multiply-adds per image and its kernel after space-to-depth decide (fast_conv.py
  conv_algorithm); the tile only matters for "winograd"."""
  tiles = winograd_tile_map(winograd_tiles)
  h, w, cin = in_shape
  ho, wo = ((n + 2 * pad - kernel) // stride + 1 for n in (h, w))
  (k2, _) = s2d_kernel_size((kernel, kernel), (stride, stride))
  algorithm = conv_algorithm(
    conv_impl,
    kernel=kernel,
    stride=stride,
    groups=groups,
    macs_per_image=ho * wo * features * kernel * kernel * cin // groups,
    winograd_kernels=tuple(tiles),
  )
  return algorithm, tiles.get(k2, 2)


# Channels of conv1..conv5: docs/papers.md section 1.2 (CaffeNet / BVLC AlexNet) and torchvision's
# AlexNet ("One weird trick" variant, no LRN, no groups).
CAFFENET_CHANNELS = (96, 256, 384, 384, 256)
TORCHVISION_CHANNELS = (64, 192, 384, 256, 256)


def max_pool_3x3_s2(x: jax.Array, pool_impl: str = "xla") -> jax.Array:
  """AlexNet 3x3 / stride 2 max-pool, VALID (floor) mode.

  Caffe pools in ceil mode; both agree at 227 and at every size HyperFusion accepts
  (35 + 32 g, where every pooled extent minus 3 is even), see fusion.py. `pool_impl`
  "masked_grad" gives the same values with models/fast_pool.py's gradient.
  """
  if resolve_pool_impl(pool_impl) == "masked_grad":
    return max_pool_masked_grad(x, (3, 3), (2, 2))
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class AlexNetBackbone(nn.Module):
  """AlexNet conv1..pool5 (docs/papers.md section 1.2, rows 1-11).

  Attributes:
    width: multiplies every channel count (rounded to a multiple of conv_groups, min 8).
    conv_groups: feature_group_count of conv2, conv4, conv5 (1 = TK / CaffeNet without
      groups, 2 = BVLC AlexNet, needed only to load its weights; docs/papers.md section 1.2).
    lrn: apply norm1/norm2 (Caffe LRN, size 5, alpha 1e-4, beta 0.75, k 1); when False the
      "norm" maps equal the pooled maps.
    norm: "none" (the paper) or "batch" (BatchNorm after every conv; layers.conv_norm_relu).
    norm_axis_name: mesh axis over which BatchNorm statistics are synchronised.
    dtype: computation dtype (params stay float32).
    conv_channels: output channels of conv1..conv5 at width 1 (CaffeNet / the paper:
      96, 256, 384, 384, 256; torchvision's AlexNet: 64, 192, 384, 256, 256).
    conv1_pad: zero padding of conv1 (0 in Caffe and the paper, 2 in torchvision).
    lrn_before_pool: BVLC AlexNet order conv -> LRN -> pool in levels 1 and 2 (False:
      CaffeNet / the paper's order conv -> pool -> LRN). "max1"/"norm1" (and level 2)
      are then both the pooled map after LRN, so the fusion reads the same level.
    conv_impl: "xla" (nn.Conv), "shifted_dw" (the strided conv1 is models/fast_conv.py's
      FastConv, the same convolution with its weight gradient computed as shifted
      matmuls on a space-to-depth input), "winograd" (every convolution with a kernel in
      `winograd_tiles` as a Winograd convolution, models/winograd.py) or "auto" (on the
      CPU backend "winograd" for the convolutions of >= 50 M multiply-adds per image,
      the others as "shifted_dw"; "xla" on accelerators): CPU speed levers measured by
      bench/vs_pytorch.py. Parameters and values (up to float rounding) are the same.
    winograd_tiles: ((kernel size, output tile), ...) of the Winograd convolutions.
    pool_impl: "xla" (nn.max_pool) or "masked_grad": the three 3x3 / 2 max-pools get
      models/fast_pool.py's gradient (same values, a CPU speed lever measured by
      bench/vs_pytorch.py). "auto": "masked_grad" on the CPU backend, "xla" elsewhere.

  The torchvision AlexNet is `conv_channels=TORCHVISION_CHANNELS, conv1_pad=2, lrn=False,
  conv_groups=1` (models/classifiers.py); parameter names are the same in every variant.
  """

  width: float = 1.0
  conv_groups: int = 1
  lrn: bool = True
  norm: str = "none"
  norm_axis_name: Any = None
  dtype: Any = jnp.float32
  conv_channels: Tuple[int, int, int, int, int] = CAFFENET_CHANNELS
  conv1_pad: int = 0
  lrn_before_pool: bool = False
  conv_impl: str = "xla"
  pool_impl: str = "xla"
  winograd_tiles: Tuple[Tuple[int, int], ...] = WINOGRAD_TILES

  def pool(self, x: jax.Array) -> jax.Array:
    return max_pool_3x3_s2(x, self.pool_impl)

  def channels(self, n: int) -> int:
    """Scaled channel count of a layer with n channels in the paper."""
    return scale_channels(n, self.width, self.conv_groups)

  def conv(
    self, name: str, x: jax.Array, features: int, kernel: int, stride: int, pad: int, groups: int
  ) -> nn.Module:
    # conv_impl (models/fast_conv.py conv_algorithm) changes how a convolution is computed,
    # never its parameters or values (up to float rounding): large convolutions become
    # Winograd convolutions (models/winograd.py; conv1 by space-to-depth as 3x3 over 48
    # channels), a strided one that does not gets the shifted-matmul weight gradient (on
    # CPU XLA's is the slowest of the backbone per FLOP, bench/vs_pytorch.py --layers).
    algorithm, tile = conv_formulation(
      self.conv_impl,
      self.winograd_tiles,
      kernel=kernel,
      stride=stride,
      pad=pad,
      groups=groups,
      in_shape=x.shape[1:],
      features=features,
    )
    module = nn.Conv
    if algorithm != "xla":
      module = functools.partial(FastConv, algorithm=algorithm, winograd_tile=tile)
    return module(
      features,
      (kernel, kernel),
      strides=(stride, stride),
      padding=((pad, pad), (pad, pad)),
      feature_group_count=groups,
      kernel_init=relu_init,
      dtype=self.dtype,
      name=name,
    )

  def local_norm(self, x: jax.Array) -> jax.Array:
    # docs/papers.md section 1.2 row 3: Caffe AlexNet LRN constants (alpha divided by size).
    return local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=1.0) if self.lrn else x

  def block(self, name, x, features, kernel, stride, pad, groups=1, train=False):
    conv = self.conv(name, x, features, kernel, stride, pad, groups)
    return conv_norm_relu(
      conv, x, norm=self.norm, train=train, axis_name=self.norm_axis_name, name=name
    )

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> Dict[str, jax.Array]:
    """Runs the backbone.

    Args:
      x: images [B, H, W, 3] (NHWC), 227 x 227 in the paper.
      train: BatchNorm uses batch statistics (only matters with norm="batch").

    Returns:
      Dict of feature maps "conv1", "max1", "norm1", "conv2", "max2", "norm2", "conv3",
      "conv4", "conv5", "pool5" (all after ReLU where the layer has one).
    """
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"AlexNetBackbone expects images [B, H, W, 3] (NHWC), got shape {x.shape}.")
    if x.shape[1] < 67 or x.shape[2] < 67:
      raise ValueError(
        f"AlexNetBackbone needs inputs of at least 67 x 67 (pool5 >= 1 x 1), "
        f"got {x.shape[1]} x {x.shape[2]}."
      )
    g = self.conv_groups
    c1, c2, c3, c4, c5 = (self.channels(n) for n in self.conv_channels)
    f = {}
    x = x.astype(self.dtype)
    # Row 1: conv1 11x11/4, VALID (padding 2 in torchvision), ungrouped in every variant.
    f["conv1"] = self.block("conv1", x, c1, 11, 4, self.conv1_pad, train=train)
    self.pool_and_norm(f, "1", f["conv1"])  # rows 2-3: max1 (fused by HyperFace), norm1
    # Row 5: conv2 5x5 pad 2 (2 groups in BVLC AlexNet).
    f["conv2"] = self.block("conv2", f["norm1"], c2, 5, 1, 2, g, train)
    self.pool_and_norm(f, "2", f["conv2"])  # row 6
    # Rows 7, 9, 10: conv3 is ungrouped in BVLC AlexNet, conv4 and conv5 are grouped.
    f["conv3"] = self.block("conv3", f["norm2"], c3, 3, 1, 1, train=train)
    f["conv4"] = self.block("conv4", f["conv3"], c4, 3, 1, 1, g, train)
    f["conv5"] = self.block("conv5", f["conv4"], c5, 3, 1, 1, g, train)
    f["pool5"] = self.pool(f["conv5"])  # row 11 (fused)
    return f

  def pool_and_norm(self, f: Dict[str, jax.Array], level: str, x: jax.Array) -> None:
    """Sets f["max<level>"] and f["norm<level>"] in CaffeNet or BVLC AlexNet order."""
    if self.lrn_before_pool:  # BVLC AlexNet: conv -> ReLU -> LRN -> pool
      f[f"max{level}"] = f[f"norm{level}"] = self.pool(self.local_norm(x))
    else:  # CaffeNet and the paper: conv -> ReLU -> pool -> LRN
      f[f"max{level}"] = self.pool(x)
      f[f"norm{level}"] = self.local_norm(f[f"max{level}"])
