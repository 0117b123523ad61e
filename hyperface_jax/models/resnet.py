"""ResNet-50/101/152 backbones (bottleneck blocks) with named stage outputs.

HyperFace-ResNet builds on ImageNet ResNet-101 (docs/papers.md section 1.10). The module names
follow the original Caffe release (Kaiming He's deploy prototxts), so a Caffe model
converts by name and every block output has the name the HyperFace-ResNet fusion refers
to (`res3a`, `res4a`, `res5c`, ...):

  conv1, bn_conv1                       stem 7x7/2 conv + BN (+ ReLU), then pool1 3x3/2
  res{s}{b}/branch2a|2b|2c              1x1 -> 3x3 -> 1x1 bottleneck convs (no bias)
  res{s}{b}/bn_branch2a|2b|2c           their BatchNorms (Caffe BatchNorm + Scale in one)
  res{s}{b}/branch1, bn_branch1         projection shortcut (first block of every stage)

Block letters b (Caffe's): ResNet-50 (and -26) uses a, b, c, ...; ResNet-101/152 use a, b, c in
stages 2 and 5 and a, b1, b2, ... in stages 3 and 4 (res4b22 is ResNet-101's last res4
block). torchvision's `layer{s-1}.{i}` is block i of stage s (convert/torchvision.py).

Feature maps returned (after ReLU): "conv1" (stride 2), "pool1" (4), every block output
"res2a" .. "res5c" (strides 4, 8, 16, 32 for stages 2..5), and the stage aliases "res2",
"res3", "res4", "res5" (the last block of each stage, e.g. res5 = res5c).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import logging

from hyperface_jax.models.layers import norm_axis

# Blocks per stage (res2..res5), He et al. 2016 table 1; 26 (2 blocks per stage, as timm's
# resnet26) is not an ImageNet release: it serves the CPU variant and fast tests.
DEPTHS: Dict[int, Tuple[int, int, int, int]] = {
  26: (2, 2, 2, 2),
  50: (3, 4, 6, 3),
  101: (3, 4, 23, 3),
  152: (3, 8, 36, 3),
}
STAGE_MULTIPLIERS = (1, 2, 4, 8)  # bottleneck width per stage / base width (64 in ResNets)
EXPANSION = 4
BN_EPSILON = 1e-5  # torchvision's and Caffe's BatchNorm default
# He (fan_out) init for convs, as torchvision's ResNet (kaiming_normal_, mode="fan_out").
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

_LOGGED_NORM_CHOICES = set()


def log_norm_choice(model: str, axis_name: Any) -> None:
  """Logs once per (model, axis) whether BatchNorm statistics are synchronised."""
  axis_name = norm_axis(axis_name)
  key = (model, axis_name)
  if key in _LOGGED_NORM_CHOICES:
    return
  _LOGGED_NORM_CHOICES.add(key)
  if axis_name is None:
    logging.info("%s: BatchNorm statistics are per device (model.norm_axis_name=None).", model)
  else:
    logging.info(
      "%s: BatchNorm statistics synchronised over mesh axis %r "
      "(set model.norm_axis_name=None for per-device statistics).",
      model,
      axis_name,
    )


def block_names(depth: int) -> List[List[str]]:
  """Caffe block names per stage, e.g. [["res2a", "res2b", "res2c"], ["res3a", ...], ...]."""
  if depth not in DEPTHS:
    raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth}.")
  names = []
  for stage, blocks in zip((2, 3, 4, 5), DEPTHS[depth], strict=True):
    if depth in (26, 50) or stage in (2, 5):
      suffixes = [chr(ord("a") + i) for i in range(blocks)]
    else:  # ResNet-101/152 deploy prototxts: a, b1, b2, ...
      suffixes = ["a"] + [f"b{i}" for i in range(1, blocks)]
    names.append([f"res{stage}{s}" for s in suffixes])
  return names


def ceil_mode_padding(size: int, window: int, stride: int, pad: int) -> Tuple[int, int]:
  """(low, high) padding that makes a VALID pool reproduce Caffe's ceil-mode pooling."""
  out = math.ceil((size + 2 * pad - window) / stride) + 1
  if (out - 1) * stride >= size + pad:  # Caffe drops a window starting in the padding
    out -= 1
  return pad, (out - 1) * stride + window - size - pad


def batch_norm(name: str, train: bool, axis_name: Any, dtype: Any) -> nn.BatchNorm:
  # momentum 0.9 = torchvision's 0.1 (Flax counts the kept fraction).
  return nn.BatchNorm(
    use_running_average=not train,
    momentum=0.9,
    epsilon=BN_EPSILON,
    axis_name=norm_axis(axis_name) if train else None,
    dtype=dtype,
    name=name,
  )


class Bottleneck(nn.Module):
  """1x1 -> 3x3 -> 1x1 residual block; the projection shortcut when `project`.

  Attributes:
    width: bottleneck channels (output is 4x).
    stride: spatial stride of the block (1 or 2).
    project: use a 1x1 projection shortcut (branch1).
    stride_in_1x1: put the stride in branch2a (original Caffe ResNet) instead of the 3x3
      branch2b (torchvision "v1.5", the default).
    norm_axis_name: mesh axis of synchronised BatchNorm statistics (None: per device).
    dtype: computation dtype.
  """

  width: int
  stride: int = 1
  project: bool = False
  stride_in_1x1: bool = False
  norm_axis_name: Any = None
  dtype: Any = jnp.float32

  def conv(self, name, features, kernel, stride):
    pad = (kernel - 1) // 2  # torchvision / Caffe: explicit symmetric padding
    return nn.Conv(
      features,
      (kernel, kernel),
      strides=(stride, stride),
      padding=((pad, pad), (pad, pad)),
      use_bias=False,
      kernel_init=conv_init,
      dtype=self.dtype,
      name=name,
    )

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    bn = lambda n: batch_norm(f"bn_{n}", train, self.norm_axis_name, self.dtype)
    s1, s3 = (self.stride, 1) if self.stride_in_1x1 else (1, self.stride)
    y = nn.relu(bn("branch2a")(self.conv("branch2a", self.width, 1, s1)(x)))
    y = nn.relu(bn("branch2b")(self.conv("branch2b", self.width, 3, s3)(y)))
    y = bn("branch2c")(self.conv("branch2c", self.width * EXPANSION, 1, 1)(y))
    shortcut = x
    if self.project:
      shortcut = bn("branch1")(self.conv("branch1", self.width * EXPANSION, 1, self.stride)(x))
    return nn.relu(y + shortcut)


class ResNet(nn.Module):
  """ResNet backbone conv1 .. res5c (no classifier).

  Attributes:
    depth: 50, 101 (HyperFace-ResNet, docs/papers.md 1.10) or 152; 26 for small variants.
    base_width: stem channels and res2 bottleneck width (64 in every published ResNet;
      smaller for CPU variants and test fixtures). Stage s has base_width * 2**(s-2)
      bottleneck channels and 4x that at its output.
    stride_in_1x1: False = torchvision v1.5 (stride in the 3x3 conv, the default);
      True = Kaiming He's original Caffe ResNet (stride in the first 1x1 conv).
    caffe_pool: pool1 in Caffe's ceil mode without padding (the Caffe release) instead
      of torchvision's floor mode with padding 1. Same output size, shifted windows.
    norm_axis_name: mesh axis over which BatchNorm statistics are synchronised in
      training ("data" inside the data-parallel step, from the config); None = per device.
    dtype: computation dtype (params stay float32).
  """

  depth: int = 101
  base_width: int = 64
  stride_in_1x1: bool = False
  caffe_pool: bool = False
  norm_axis_name: Any = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> Dict[str, jax.Array]:
    """Runs the backbone.

    Args:
      x: images [B, H, W, 3] (NHWC), normalized as the weights expect.
      train: BatchNorm uses (synchronised) batch statistics and updates batch_stats.

    Returns:
      Dict of feature maps, see the module docstring for the names.
    """
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"ResNet expects images [B, H, W, 3] (NHWC), got shape {x.shape}.")
    if min(x.shape[1:3]) < 32:
      raise ValueError(
        f"ResNet needs inputs of at least 32 x 32 (res5 >= 1 x 1), got {x.shape[1]} x {x.shape[2]}."
      )
    names = block_names(self.depth)
    f = {}
    x = nn.Conv(
      self.base_width,
      (7, 7),
      strides=(2, 2),
      padding=((3, 3), (3, 3)),
      use_bias=False,
      kernel_init=conv_init,
      dtype=self.dtype,
      name="conv1",
    )(x.astype(self.dtype))
    f["conv1"] = x = nn.relu(batch_norm("bn_conv1", train, self.norm_axis_name, self.dtype)(x))
    if self.caffe_pool:
      pads = [ceil_mode_padding(n, 3, 2, 0) for n in x.shape[1:3]]
    else:
      pads = [(1, 1), (1, 1)]
    f["pool1"] = x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=pads)
    for stage, (mult, stage_names) in enumerate(zip(STAGE_MULTIPLIERS, names, strict=True)):
      for i, name in enumerate(stage_names):
        x = Bottleneck(
          self.base_width * mult,
          stride=2 if (i == 0 and stage > 0) else 1,
          project=i == 0,
          stride_in_1x1=self.stride_in_1x1,
          norm_axis_name=self.norm_axis_name,
          dtype=self.dtype,
          name=name,
        )(x, train)
        f[name] = x
      f[f"res{stage + 2}"] = x
    return f


def global_avg_pool(x: jax.Array) -> jax.Array:
  """Mean over the spatial axes, in float32 ([B, H, W, C] -> [B, C])."""
  return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


def backbone_of(module: nn.Module) -> "ResNet":
  """The ResNet named "backbone" built from `module`'s fields (depth, base_width,
  stride_in_1x1, caffe_pool, norm_axis_name, dtype): the one place the classifiers and
  HyperFace-ResNet construct it, so their backbone trees stay identical (transplanting)."""
  return ResNet(
    module.depth,
    base_width=module.base_width,
    stride_in_1x1=module.stride_in_1x1,
    caffe_pool=module.caffe_pool,
    norm_axis_name=module.norm_axis_name,
    dtype=module.dtype,
    name="backbone",
  )
