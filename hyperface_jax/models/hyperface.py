"""HyperFace-AlexNet (docs/papers.md section 1.2): AlexNet backbone -> hyperfeature fusion -> heads.

Param tree: {"backbone": {"conv1".."conv5"}, "fusion": {"conv1a", "conv3a", "conv_all",
"fc_full"}, "heads": {"fc_<task>1", "fc_<task>2", ...}}. The backbone names match AlexNet's,
so R-CNN_Face / ImageNet AlexNet convs can be transplanted by name (docs/papers.md section 1.3).
"""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperface_jax.models.alexnet import WINOGRAD_TILES, AlexNetBackbone
from hyperface_jax.models.fusion import HyperFusion
from hyperface_jax.models.heads import DEFAULT_TASKS, TaskHeads
from hyperface_jax.registry import MODELS


@MODELS.register("hyperface_alexnet")
class HyperFaceAlexNet(nn.Module):
  """The HyperFace-AlexNet multi-task network.

  Attributes:
    width: channel multiplier of backbone and fusion (fc_full too), not of the 512 heads.
    dropout: rate after fc_full and after each 512 head layer (documented default 0.5,
      docs/papers.md section 1.2 notes).
    lrn: use norm1/norm2 (Caffe LRN).
    conv_groups: 2 reproduces BVLC AlexNet's grouped conv2/conv4/conv5.
    conv1a_input: "norm1" (TK) or "max1" (docs/papers.md 1.2 [?]).
    fusion_channels: conv_all channels (192).
    fc_full: hyperfeature width (3072).
    head_width: width of each fc_<task>1 (512).
    num_landmarks: landmarks predicted (21, AFLW).
    tasks: heads to build (default all five).
    extra_tasks: more heads as ((name, output_shape), ...), e.g. (("landmarks68", (68, 2)),).
    norm: "none" (the paper) or "batch": BatchNorm after every conv, a documented option
      for training from scratch (models/layers.py conv_norm_relu).
    norm_axis_name: mesh axis for synchronised BatchNorm statistics ("data" inside the
      data-parallel step; None = per-device statistics).
    dtype: computation dtype; params are float32, outputs float32.
    conv_impl: the backbone's convolutions, "xla", "shifted_dw", "winograd" or "auto"
      (models/alexnet.py).
    winograd_tiles: ((kernel size, output tile), ...) of its Winograd convolutions.
    pool_impl: the backbone's max-pools, "xla", "masked_grad" or "auto" (models/alexnet.py).
  """

  width: float = 1.0
  dropout: float = 0.5
  lrn: bool = True
  conv_groups: int = 1
  conv1a_input: str = "norm1"
  fusion_channels: int = 192
  fc_full: int = 3072
  head_width: int = 512
  num_landmarks: int = 21
  tasks: Sequence[str] = DEFAULT_TASKS
  extra_tasks: Tuple[Tuple[str, Tuple[int, ...]], ...] = ()
  norm: str = "none"
  norm_axis_name: Any = None
  dtype: Any = jnp.float32
  conv_impl: str = "xla"
  pool_impl: str = "xla"
  winograd_tiles: Tuple[Tuple[int, int], ...] = WINOGRAD_TILES

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> Dict[str, jax.Array]:
    """Predicts every task for a batch of region crops.

    Args:
      images: float32 [B, S, S, 3] normalized crops, S a valid size (227 in the paper; see
        hyperface_jax.models.fusion for the valid sizes).
      train: enables dropout, drawing from the "dropout" rng stream.

    Returns:
      Dict with "detection" [B, 2] logits, "landmarks" [B, L, 2], "visibility" [B, L],
      "pose" [B, 3] radians, "gender" [B, 2] logits (those in `tasks`).
    """
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(
        f"HyperFaceAlexNet expects images [B, S, S, 3] (NHWC), got shape {images.shape}."
      )
    feats = AlexNetBackbone(
      width=self.width,
      conv_groups=self.conv_groups,
      lrn=self.lrn,
      norm=self.norm,
      norm_axis_name=self.norm_axis_name,
      dtype=self.dtype,
      conv_impl=self.conv_impl,
      pool_impl=self.pool_impl,
      winograd_tiles=tuple(tuple(p) for p in self.winograd_tiles),
      name="backbone",
    )(images, train)
    hyper = HyperFusion(
      width=self.width,
      conv1a_input=self.conv1a_input,
      fusion_channels=self.fusion_channels,
      fc_full=self.fc_full,
      dropout=self.dropout,
      norm=self.norm,
      norm_axis_name=self.norm_axis_name,
      dtype=self.dtype,
      name="fusion",
    )(feats, train)
    return TaskHeads(
      tasks=tuple(self.tasks),
      num_landmarks=self.num_landmarks,
      head_width=self.head_width,
      dropout=self.dropout,
      extra_tasks=self.extra_tasks,
      dtype=self.dtype,
      name="heads",
    )(hyper, train)
