"""Fast-HyperFace's proposal network (docs/papers.md section 1.11): a tiny fully-convolutional
face / non-face classifier.

The paper only says that Fast-HyperFace replaces selective search by "a fast, high-recall
face detector" ([?] which one, docs/papers.md 1.11 and section 7 item 4). Documented choice: a
cascade-CNN / MTCNN-P-Net-style fully-convolutional net. Trained on S x S region crops
(S = 24 by default) it outputs "detection" logits [B, 2], exactly like HyperFace's
detection head, so it trains through the ONE training loop with the HyperFace detection
loss (the declared detection task, tasks.py) and IoU labels (docs/papers.md 1.4). Applied to a whole
image it outputs a dense score map "detection_map" [B, h, w, 2] in which cell (i, j) scores
the S x S window at (STRIDE * j, STRIDE * i): inference/fast_proposals.py runs it over an
image pyramid.

Layers (VALID convolutions; S = 24): conv3 16 -> pool2 -> conv3 32 -> conv3 32 -> pool2 ->
conv3 64 -> conv1 2 (face / non-face) and, with `box_regression`, conv1 4 (box deltas);
total stride 4, receptive field 24 x 24.
"""

from __future__ import annotations

from typing import Any, Dict

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperface_jax.models.layers import conv_norm_relu
from hyperface_jax.registry import MODELS

STRIDE = 4  # two 2x2 max pools
RECEPTIVE_FIELD = 24


def _conv(features, kernel, name, dtype):
  return nn.Conv(features, (kernel, kernel), padding="VALID", dtype=dtype, name=name)


@MODELS.register("fast_proposal_net")
class FastProposalNet(nn.Module):
  """Fully-convolutional face / non-face scorer.

  Attributes:
    width: channel multiplier.
    norm: "none" or "batch" (BatchNorm for training from scratch, models/layers.py).
    norm_axis_name: mesh axis for synchronised BatchNorm statistics (None = per device).
    box_regression: also regress each window's face box (the "box_regression" task,
      hyperface_jax/tasks.py: 4 deltas of data/boxes.py `encode_box_deltas`), as MTCNN's
      P-Net does (Zhang et al. 2016); inference/fast_proposals.py then moves every window
      onto its face before NMS.
    dtype: computation dtype.
  """

  width: float = 1.0
  norm: str = "batch"
  norm_axis_name: Any = None
  box_regression: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> Dict[str, jax.Array]:
    """Scores crops ([B, 24, 24, 3] -> "detection" [B, 2], with `box_regression`
    "box_regression" [B, 4]) or whole images (a bigger input -> "detection_map"
    [B, h, w, 2], "box_regression_map" [B, h, w, 4], h = (H - 24) // 4 + 1 for H divisible
    by 4).

    Args:
      images: float32 [B, H, W, 3] normalized as the training crops, H, W >= 24.
      train: BatchNorm in training mode.
    """
    # Each side compared on its own (not min(H, W)): with symbolic H, W (hyperface_jax.export)
    # only `H >= 24`-style comparisons are decidable.
    if (
      images.ndim != 4
      or images.shape[-1] != 3
      or any(d < RECEPTIVE_FIELD for d in images.shape[1:3])
    ):
      raise ValueError(
        f"FastProposalNet expects images [B, H, W, 3] with H, W >= "
        f"{RECEPTIVE_FIELD}; got {images.shape}."
      )
    w = lambda c: max(4, int(round(c * self.width)))
    kw = dict(norm=self.norm, train=train, axis_name=self.norm_axis_name)
    x = conv_norm_relu(_conv(w(16), 3, "conv1", self.dtype), images, name="conv1", **kw)
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = conv_norm_relu(_conv(w(32), 3, "conv2", self.dtype), x, name="conv2", **kw)
    x = conv_norm_relu(_conv(w(32), 3, "conv3", self.dtype), x, name="conv3", **kw)
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = conv_norm_relu(_conv(w(64), 3, "conv4", self.dtype), x, name="conv4", **kw)
    logits = nn.Conv(2, (1, 1), dtype=self.dtype, name="score")(x).astype(jnp.float32)
    out = {"detection": logits}
    if self.box_regression:
      out["box_regression"] = nn.Conv(4, (1, 1), dtype=self.dtype, name="box")(x).astype(
        jnp.float32
      )
    if logits.shape[1:3] == (1, 1):
      return {k: v.reshape(v.shape[0], v.shape[-1]) for k, v in out.items()}
    return {f"{k}_map": v for k, v in out.items()}
