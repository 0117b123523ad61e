"""Temporal smoothing of the faces of a video: an exponential moving average over tracks.

Each frame's faces are matched to the previous frame's (smoothed) faces by box IoU with
the Hungarian algorithm (`scipy.optimize.linear_sum_assignment`); a pair with IoU below
`iou_threshold` (documented default 0.3) is not a match. A matched face continues its
track and its landmarks and box become

    smoothed = alpha * previous_smoothed + (1 - alpha) * current

(alpha = the weight of the past; 0 switches smoothing off). Visibility, pose, gender and
score are the current frame's. An unmatched face starts a new track (new id); a track not
matched in a frame ends (no memory across gaps, documented default: a face lost for one
frame restarts unsmoothed, which never drags landmarks towards a stale position).
Track ids are 0, 1, 2, ... in order of appearance.
"""

from __future__ import annotations

import dataclasses
from typing import List, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from hyperface_jax.data import boxes as box_lib

DEFAULT_IOU_THRESHOLD = 0.3  # documented default


class LandmarkSmoother:
  """Tracks faces over consecutive frames and smooths their landmarks and boxes."""

  def __init__(self, alpha: float, iou_threshold: float = DEFAULT_IOU_THRESHOLD):
    if not 0.0 <= alpha < 1.0:
      raise ValueError(f"smoothing alpha must be in [0, 1), got {alpha}")
    self.alpha, self.iou_threshold = float(alpha), float(iou_threshold)
    self._previous: List[Tuple[int, object]] = []  # (track id, smoothed face)
    self._next_id = 0

  def match(self, previous_boxes, boxes) -> List[Tuple[int, int]]:
    """(previous index, current index) pairs of the IoU assignment above the threshold."""
    if len(previous_boxes) == 0 or len(boxes) == 0:
      return []
    overlap = box_lib.iou(np.asarray(previous_boxes, np.float64), np.asarray(boxes, np.float64))
    rows, cols = linear_sum_assignment(-overlap)
    return [
      (int(r), int(c))
      for r, c in zip(rows, cols, strict=True)
      if overlap[r, c] >= self.iou_threshold
    ]

  def update(self, faces: Sequence) -> List[Tuple[int, object]]:
    """Smooths one frame's faces (dataclasses with box, landmarks, ...).

    Returns:
      (track id, smoothed face) for every face, in the input order.
    """
    matches = dict(
      (c, r) for r, c in self.match([f.box for _, f in self._previous], [f.box for f in faces])
    )
    out = []
    for i, face in enumerate(faces):
      if i in matches:
        track, past = self._previous[matches[i]]
        a = self.alpha
        face = dataclasses.replace(
          face,
          box=a * np.asarray(past.box, np.float64) + (1 - a) * np.asarray(face.box),
          landmarks=(
            a * np.asarray(past.landmarks, np.float64) + (1 - a) * np.asarray(face.landmarks)
          ),
        )
      else:
        track, self._next_id = self._next_id, self._next_id + 1
      out.append((track, face))
    self._previous = out
    return out
