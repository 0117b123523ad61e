"""`learned` proposals: Fast-HyperFace's proposal network over an image pyramid
(docs/papers.md section 1.11; the network is models/fast_proposal_net.py, trained with
configs/fast_hyperface.py through the one training loop).

Each pyramid level resizes the image so that a face of side s becomes the net's 24 px
window (s runs over s0 * scale_step^k up to min(H, W), like the sliding window, from
s0 = max(min_side, min_side_fraction * min(H, W))), pads it by `border` px of black (the training crops' fill, so windows may hang over the image
edge as training regions do), and runs the net fully convolutionally: output cell (i, j)
scores the 24 px window at (4 j, 4 i) of the padded level. Windows scoring at least
`score_threshold` are mapped back to image pixels (and, with the net's box-regression head,
moved onto the face box each one predicts), reduced by box NMS at `nms_iou`, and the
`max_proposals` best are returned, best first.

Compilation: padded levels are rounded up to multiples of `bucket` px, so the jitted net
compiles once per bucket shape (a handful for any image size), not once per image.
"""

from __future__ import annotations

import functools

import cv2
import jax
import numpy as np

from hyperface_jax.data import boxes as box_lib
from hyperface_jax.data import preprocess
from hyperface_jax.inference import batched
from hyperface_jax.inference.proposals import check_image, square_about_centre, window_sides
from hyperface_jax.models import fast_proposal_net as fpn
from hyperface_jax.registry import PROPOSALS


@functools.lru_cache(maxsize=4)
def _load(workdir: str, step: int):
  config = batched.load_workdir_config(workdir)
  if config.model_name != "fast_proposal_net":
    raise ValueError(
      f"{workdir} holds a {config.model_name!r} model; the learned proposals "
      "need a configs/fast_hyperface.py run (model 'fast_proposal_net')."
    )
  model, variables, _ = batched.load_variables(config, workdir, None if step < 0 else step)

  def forward(v, x):
    """Face probability [B, h, w] and, if the net has the head, box deltas [B, h, w, 4]."""
    out = model.apply(v, x, train=False)
    return jax.nn.softmax(out["detection_map"], -1)[..., 1], out.get("box_regression_map")

  return config, variables, jax.jit(forward)


class LearnedProposals:
  """Callable image -> [N, 4] boxes; see the module docstring. `traces` counts shapes."""

  def __init__(
    self,
    workdir: str,
    step: int = -1,
    score_threshold: float = 0.05,
    max_proposals: int = 300,
    nms_iou: float = 0.7,
    min_side: float = 32.0,
    scale_step: float = 1.25,
    border: int = 8,
    bucket: int = 32,
    min_side_fraction: float = 0.0,
    regress_boxes: bool = True,
  ):
    if not workdir:
      raise ValueError(
        "learned proposals need proposals.learned.workdir: a workdir of "
        "python -m hyperface_jax.main --config=configs/fast_hyperface.py:cpu"
      )
    self.config, self.variables, self._forward = _load(workdir, int(step))
    self.window = int(self.config.input_size)
    self.score_threshold, self.max_proposals, self.nms_iou = score_threshold, max_proposals, nms_iou
    self.min_side, self.scale_step, self.border, self.bucket = min_side, scale_step, border, bucket
    self.min_side_fraction = float(min_side_fraction)
    self.regress_boxes = bool(regress_boxes)

  def score_windows(self, image):
    """All scanned windows: (boxes [N, 4] in image pixels, face probabilities [N]).

    With a box-regression head (configs/fast_hyperface.py, models/fast_proposal_net.py) and
    `regress_boxes`, each window is replaced by the face box it predicts, squared about its
    centre (side sqrt(w h): HyperFace's crops are square, data/sampling.py), as MTCNN's
    P-Net calibrates its windows before NMS (Zhang et al. 2016, section II.A)."""
    image = check_image(image)
    h, w = image.shape[:2]
    normalize = self.config.data.get("normalize", "minus_half")
    levels = []
    # Every level is dispatched before any result is read: JAX runs a level while the
    # host resizes the next one.
    min_side = max(self.min_side, self.min_side_fraction * min(h, w))
    for side in window_sides((h, w), min_side, 1.0, self.scale_step):
      scale = self.window / side
      sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
      level = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_LINEAR)
      ph = -(-(sh + 2 * self.border) // self.bucket) * self.bucket
      pw = -(-(sw + 2 * self.border) // self.bucket) * self.bucket
      canvas = np.zeros((ph, pw, 3), np.uint8)  # black, the training crops' fill
      canvas[self.border : self.border + sh, self.border : self.border + sw] = level
      x = preprocess.normalize(canvas[None], normalize)
      levels.append((sh, sw, self._forward(self.variables, x)))
    all_boxes, all_scores = [], []
    half = self.window / 2
    for sh, sw, (prob, deltas) in levels:
      prob = np.asarray(prob)[0]  # [gh, gw]
      # Window origin in the level (continuous frame) along each grid axis.
      ox = fpn.STRIDE * np.arange(prob.shape[1]) - self.border - 0.5
      oy = fpn.STRIDE * np.arange(prob.shape[0]) - self.border - 0.5
      # Keep windows whose centre lies inside the level (the rest scan padding only).
      cols = np.flatnonzero((ox + half >= -0.5) & (ox + half <= sw - 0.5))
      rows = np.flatnonzero((oy + half >= -0.5) & (oy + half <= sh - 0.5))
      gy, gx = np.meshgrid(rows, cols, indexing="ij")
      sx, sy = w / sw, h / sh
      n = gy.size
      b = np.empty((n, 4))
      b[:, 0] = (ox[gx.ravel()] + 0.5) * sx - 0.5
      b[:, 1] = (oy[gy.ravel()] + 0.5) * sy - 0.5
      b[:, 2] = self.window * sx
      b[:, 3] = self.window * sy
      if deltas is not None and self.regress_boxes:
        b = square_about_centre(
          box_lib.decode_box_deltas(np.asarray(deltas)[0][gy, gx].reshape(-1, 4), b)
        )
      all_boxes.append(b)
      all_scores.append(prob[gy, gx].ravel())
    return np.concatenate(all_boxes), np.concatenate(all_scores)

  def __call__(self, image) -> np.ndarray:
    boxes, scores = self.score_windows(image)
    keep = scores >= self.score_threshold
    return greedy_nms(boxes[keep], scores[keep], self.nms_iou, self.max_proposals)


def greedy_nms(boxes, scores, iou_threshold: float, max_keep: int) -> np.ndarray:
  """The first `max_keep` leaders of greedy NMS (lnms.greedy_groups' leaders), best first.

  Each round compares only the new leader with the boxes still alive, and stops after
  `max_keep` leaders: O(max_keep N) instead of the N x N IoU matrix (1.5 s of a 640x480
  image's proposals for N = 1200 on this 2-core CPU).
  """
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
  boxes = boxes[order]
  x0, y0 = boxes[:, 0], boxes[:, 1]
  x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
  area = boxes[:, 2] * boxes[:, 3]
  alive = np.arange(len(boxes))
  lead = []
  while len(alive) and len(lead) < max_keep:
    i, rest = alive[0], alive[1:]
    lead.append(i)
    iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
    ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
    inter = iw * ih
    alive = rest[inter / (area[i] + area[rest] - inter) <= iou_threshold]
  return boxes[np.asarray(lead, np.int64)] if lead else np.zeros((0, 4))


@PROPOSALS.register("learned")
def learned(**settings):
  """Fast-HyperFace proposals (docs/papers.md 1.11); settings as LearnedProposals."""
  return LearnedProposals(**settings)
