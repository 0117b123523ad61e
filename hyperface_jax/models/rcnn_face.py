"""R-CNN_Face (docs/papers.md section 1.3): AlexNet fine-tuned as a face / non-face region classifier.

HyperFace-AlexNet initialises conv1-conv5 from this network (configs/rcnn_face.py, then
configs/hyperface_alexnet.py with `model_init` = its workdir). Param tree:
{"backbone": <the tree HyperFaceAlexNet's "backbone" uses, for the same width / groups /
norm>, "classifier": {"fc6", "fc7", "fc8"}} (the classifier naming rule of
models/classifiers.py), so the convs transplant by name and the fc layers are dropped.
"""

from __future__ import annotations

from typing import Any, Dict

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperface_jax.models.alexnet import AlexNetBackbone
from hyperface_jax.models.classifiers import AlexNetHead
from hyperface_jax.registry import MODELS


@MODELS.register("rcnn_face_alexnet")
class RCNNFaceAlexNet(nn.Module):
  """AlexNet conv1..pool5 -> fc6 -> fc7 -> fc8 (2 logits, index 1 = face).

  Attributes:
    width: channel multiplier of the backbone and of fc6 (as HyperFaceAlexNet.width).
    conv_groups, lrn, norm, norm_axis_name: AlexNetBackbone fields; use the values of the
      HyperFace config that will load this network's convs.
    fc6, fc7: widths of the hidden fc layers. docs/papers.md 1.3: TK uses fc6 4096 -> fc7 512
      -> fc8 2 (documented default; the paper's sizes are unknown, and they do not matter
      since HyperFace discards the fc layers). fc6 is scaled by `width`, fc7 is not.
    dropout: rate before fc6 and fc7 (training only; documented default 0.5, AlexNet).
    dtype: computation dtype; logits are float32.
  """

  width: float = 1.0
  conv_groups: int = 1
  lrn: bool = True
  norm: str = "none"
  norm_axis_name: Any = None
  fc6: int = 4096
  fc7: int = 512
  dropout: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> Dict[str, jax.Array]:
    """Face / non-face logits for a batch of region crops.

    Args:
      images: float32 [B, S, S, 3] normalized crops (227 x 227 in the paper, S >= 67).
      train: enables dropout (rng stream "dropout") and BatchNorm batch statistics.

    Returns:
      {"detection": float32 [B, 2] logits}: only the detection task, so the HyperFace
      loss and evaluator compute nothing else (config.tasks = ("detection",),
      evaluation/detection_regions.py).
    """
    feats = AlexNetBackbone(
      width=self.width,
      conv_groups=self.conv_groups,
      lrn=self.lrn,
      norm=self.norm,
      norm_axis_name=self.norm_axis_name,
      dtype=self.dtype,
      name="backbone",
    )(images, train)
    x = feats["pool5"].reshape((images.shape[0], -1))  # NHWC flatten order
    fc6 = max(8, int(round(self.fc6 * self.width)))
    logits = AlexNetHead(
      hidden=(fc6, self.fc7),
      num_classes=2,
      dropout=self.dropout,
      dtype=self.dtype,
      name="classifier",
    )(x, train)
    return {"detection": logits.astype(jnp.float32)}
