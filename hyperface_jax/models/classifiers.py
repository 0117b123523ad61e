"""ImageNet classifiers around the HyperFace backbones (targets of weight conversion).

Parameter rule (surgery relies on it): a classifier's params are
`{"backbone": <exactly the backbone tree HyperFace uses>, "classifier": {...}}`, so a
converted backbone transplants into HyperFace-AlexNet / HyperFace-ResNet by name
(docs/papers.md sections 1.3 and 1.10: HyperFace starts from ImageNet weights).

Registered models: "resnet50", "resnet101", "resnet152" (global average pool + fc 1000),
"alexnet_torchvision" (torchvision's AlexNet) and "alexnet_caffe" (BVLC AlexNet /
CaffeNet with LRN and 2 groups). Each maps NHWC float32 images to 1000 logits.
"""

from __future__ import annotations

from typing import Any, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hyperface_jax.models.alexnet import CAFFENET_CHANNELS, TORCHVISION_CHANNELS, AlexNetBackbone
from hyperface_jax.models.resnet import backbone_of, global_avg_pool, log_norm_choice
from hyperface_jax.registry import MODELS

NUM_CLASSES = 1000


def adaptive_avg_pool(x: jax.Array, output_size: Tuple[int, int]) -> jax.Array:
  """torch.nn.AdaptiveAvgPool2d on NHWC: bin i spans [floor(i H / n), ceil((i + 1) H / n)).

  Written as two averaging matrices (static shapes), so any input size works under jit.
  """

  def matrix(size: int, n: int) -> np.ndarray:
    m = np.zeros((n, size), np.float32)
    for i in range(n):
      lo, hi = (i * size) // n, -((-(i + 1) * size) // n)
      m[i, lo:hi] = 1.0 / (hi - lo)
    return m

  mh = matrix(x.shape[1], output_size[0])
  mw = matrix(x.shape[2], output_size[1])
  return jnp.einsum("ih,jw,bhwc->bijc", mh, mw, x.astype(jnp.float32)).astype(x.dtype)


class ResNetClassifier(nn.Module):
  """ImageNet ResNet: backbone -> global average pool -> fc 1000.

  Attributes:
    depth: 50, 101 or 152.
    base_width: ResNet base width (64; models/resnet.py).
    stride_in_1x1: original Caffe stride placement (models/resnet.py).
    caffe_pool: Caffe ceil-mode pool1 (models/resnet.py).
    num_classes: classifier outputs.
    norm_axis_name: mesh axis of synchronised BatchNorm statistics (None: per device).
    dtype: computation dtype; logits are float32.
  """

  depth: int = 101
  base_width: int = 64
  stride_in_1x1: bool = False
  caffe_pool: bool = False
  num_classes: int = NUM_CLASSES
  norm_axis_name: Any = None
  dtype: Any = jnp.float32

  def __post_init__(self):
    super().__post_init__()
    log_norm_choice(f"resnet{self.depth}", self.norm_axis_name)

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    feats = backbone_of(self)(images, train)
    return LinearHead(self.num_classes, dtype=self.dtype, name="classifier")(
      global_avg_pool(feats["res5"])
    )


class LinearHead(nn.Module):
  """The ResNet classifier: one dense layer "fc" (logits in float32)."""

  num_classes: int = NUM_CLASSES
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(x).astype(jnp.float32)


@MODELS.register("resnet50")
class ResNet50(ResNetClassifier):
  depth: int = 50


@MODELS.register("resnet101")
class ResNet101(ResNetClassifier):
  depth: int = 101


@MODELS.register("resnet152")
class ResNet152(ResNetClassifier):
  depth: int = 152


class AlexNetHead(nn.Module):
  """fc6 -> ReLU -> dropout -> fc7 -> ReLU -> dropout -> fc8 (both AlexNet heads).

  torchvision applies its dropouts before fc6 and fc7 and Caffe after fc6 and fc7;
  they differ only in training, where both drop the input of fc7 and one more layer.
  """

  hidden: Sequence[int] = (4096, 4096)
  num_classes: int = NUM_CLASSES
  dropout: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    for i, width in enumerate(self.hidden):
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
      x = nn.relu(nn.Dense(width, dtype=self.dtype, name=f"fc{6 + i}")(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name=f"fc{6 + len(self.hidden)}")(x)


class AlexNetClassifier(nn.Module):
  """ImageNet AlexNet: AlexNetBackbone -> pool5 (-> adaptive 6x6 pool) -> fc6, fc7, fc8.

  Attributes:
    conv_channels, conv1_pad, lrn, conv_groups, lrn_before_pool: AlexNetBackbone fields.
    adaptive_pool: torchvision's AdaptiveAvgPool2d((6, 6)) before fc6 (identity at 224).
    hidden: widths of fc6 and fc7 (4096, 4096).
    num_classes: fc8 outputs.
    dropout: rate in the head (training only).
    dtype: computation dtype; logits are float32.
  """

  conv_channels: Tuple[int, int, int, int, int] = CAFFENET_CHANNELS
  conv1_pad: int = 0
  lrn: bool = True
  conv_groups: int = 2
  lrn_before_pool: bool = False
  adaptive_pool: bool = False
  hidden: Tuple[int, int] = (4096, 4096)
  num_classes: int = NUM_CLASSES
  dropout: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    feats = AlexNetBackbone(
      conv_channels=tuple(self.conv_channels),
      conv1_pad=self.conv1_pad,
      lrn=self.lrn,
      conv_groups=self.conv_groups,
      lrn_before_pool=self.lrn_before_pool,
      dtype=self.dtype,
      name="backbone",
    )(images, train)
    x = feats["pool5"]
    if self.adaptive_pool:
      x = adaptive_avg_pool(x, (6, 6))
    # fc6 reads the map flattened in NHWC (H, W, C) order; converters permute Caffe's and
    # torch's (C, H, W) order into it.
    x = x.reshape((x.shape[0], -1))
    return AlexNetHead(
      hidden=tuple(self.hidden),
      num_classes=self.num_classes,
      dropout=self.dropout,
      dtype=self.dtype,
      name="classifier",
    )(x, train).astype(jnp.float32)


@MODELS.register("alexnet_torchvision")
class TorchvisionAlexNet(AlexNetClassifier):
  conv_channels: Tuple[int, int, int, int, int] = TORCHVISION_CHANNELS
  conv1_pad: int = 2
  lrn: bool = False
  conv_groups: int = 1
  adaptive_pool: bool = True


@MODELS.register("alexnet_caffe")
class CaffeAlexNet(AlexNetClassifier):
  pass
