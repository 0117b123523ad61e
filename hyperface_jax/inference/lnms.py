"""Landmark-based NMS (papers.md section 1.8 step 4) and plain box NMS (the ablation).

Detections are dicts of numpy arrays with a leading axis N: "box" [N, 4] px, "score" [N],
"landmarks" [N, 21, 2] px, "visibility" [N, 21], "pose" [N, 3] radians, "p_female" [N].

L-NMS, the paper's five steps (papers.md 1.8 step 4) made into a greedy partition:
  1. each detection's box is replaced by the tight box of its visible predicted landmarks;
  2. the best remaining detection and every remaining one whose landmark box overlaps its
     landmark box with IoU > `iou_threshold` form a group (removed from the pool; greedy,
     so every detection votes in exactly one group -- documented default, the paper does
     not say how overlapping groups are resolved);
  3. the `top_k` highest-scoring members of the group are kept;
  4. the output landmarks, visibility, pose and gender probability are the element-wise
     medians over those K members; the score is the group's best score (documented
     default: the paper does not say which score an L-NMS output carries);
  5. the output box is computed from the median landmarks with the FaceRectCalculator
     (papers.md 1.9); if that fails (< 4 visible points) the best member's box is kept.
K, the IoU threshold and the score threshold are unknown in the paper (papers.md 1.8,
section 7 item 2); the defaults live in inference/config.py (IoU 0.5, K 5, score 0.5).

Both NMS variants are written here on numpy (O(N^2) IoU on at most a few hundred
detections): a library NMS (e.g. cv2.dnn.NMSBoxes) returns only indices, while L-NMS
needs the groups themselves, and the hand-written one uses exactly boxes.iou.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np

from hyperface_jax.data import boxes as box_lib
from hyperface_jax.inference import face_rect

Detections = Dict[str, np.ndarray]
_PER_FACE_KEYS = ("landmarks", "visibility", "pose", "p_female")


def select(dets: Detections, index) -> Detections:
  """Rows `index` (indices or bool mask) of every array in `dets`."""
  return {k: np.asarray(v)[index] for k, v in dets.items()}


def empty_like(dets: Detections) -> Detections:
  return select(dets, np.zeros(0, np.int64))


def greedy_groups(boxes, scores, iou_threshold: float) -> list[np.ndarray]:
  """Greedy NMS grouping: groups of indices, each led by its best-scoring member.

  The best remaining box and every remaining box with IoU > `iou_threshold` to it form a
  group; repeated until no box is left. Ties in score keep the input order.

  Returns:
    list of int arrays, in descending order of their leader's score; leader first, the
    others by descending score.
  """
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  scores = np.asarray(scores, np.float64).reshape(-1)
  order = np.argsort(-scores, kind="stable")
  overlaps = box_lib.iou(boxes, boxes)
  alive = np.ones(len(boxes), bool)
  groups = []
  for i in order:
    if not alive[i]:
      continue
    members = order[alive[order] & (overlaps[i, order] > iou_threshold)]
    members = np.concatenate([[i], members[members != i]])
    alive[members] = False
    groups.append(members.astype(np.int64))
  return groups


def plain_nms(dets: Detections, iou_threshold: float = 0.3,
              score_threshold: float = 0.5) -> Detections:
  """Standard box NMS on "box" (the ablation baseline of papers.md 1.8).

  Returns:
    The kept detections (the leader of each group), by descending score.
  """
  keep = np.asarray(dets["score"]) >= score_threshold
  dets = select(dets, keep)
  groups = greedy_groups(dets["box"], dets["score"], iou_threshold)
  return select(dets, np.array([g[0] for g in groups], np.int64))


def landmark_boxes(landmarks, visibility, visibility_threshold: float = 0.5) -> np.ndarray:
  """Tight boxes [N, 4] of the visible landmarks (all 21 where fewer than 2 are visible)."""
  vis = np.asarray(visibility) > visibility_threshold
  vis = np.where(vis.sum(-1, keepdims=True) >= 2, vis, True)
  return box_lib.box_from_points(landmarks, vis)


def landmark_nms(dets: Detections, image_hw: Tuple[int, int], *, iou_threshold: float = 0.5,
                 top_k: int = 5, score_threshold: float = 0.5,
                 visibility_threshold: float = 0.5,
                 box_fn: Optional[Callable] = None) -> Detections:
  """Landmark-based NMS of papers.md section 1.8 step 4 (see the module docstring).

  Args:
    dets: detections of one image (keys of the module docstring).
    image_hw: (H, W), the FaceRectCalculator's camera (papers.md 1.9 step 1).
    iou_threshold: grouping IoU of landmark boxes.
    top_k: members per group that vote in the medians (K >= 1).
    score_threshold: detections below it are dropped before grouping.
    visibility_threshold: landmarks above it count as visible for the landmark boxes
      and for the FaceRectCalculator.
    box_fn: (landmarks [21, 2], visibility [21], W, H) -> box [4]; default
      face_rect.face_rect_from_landmarks.

  Returns:
    One detection per group, by descending score, plus "group_size" [M] int.
  """
  if top_k < 1:
    raise ValueError(f"top_k must be >= 1; got {top_k}.")
  box_fn = box_fn or face_rect.face_rect_from_landmarks
  dets = select(dets, np.asarray(dets["score"]) >= score_threshold)
  if len(dets["score"]) == 0:
    out = empty_like(dets)
    out["group_size"] = np.zeros(0, np.int64)
    return out
  lm_boxes = landmark_boxes(dets["landmarks"], dets["visibility"], visibility_threshold)
  groups = greedy_groups(lm_boxes, dets["score"], iou_threshold)
  h, w = image_hw
  rows = {k: [] for k in ("box", "score", *_PER_FACE_KEYS, "group_size")}
  for members in groups:
    top = members[:top_k]  # members are sorted by descending score
    for k in _PER_FACE_KEYS:
      rows[k].append(np.median(np.asarray(dets[k])[top], axis=0))
    vis = rows["visibility"][-1] > visibility_threshold
    box = np.asarray(box_fn(rows["landmarks"][-1], vis.astype(np.float32), w, h), np.float64)
    if not (np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0):
      box = np.asarray(dets["box"][members[0]], np.float64)
    rows["box"].append(box)
    rows["score"].append(dets["score"][members[0]])
    rows["group_size"].append(len(members))
  return {k: np.asarray(v) for k, v in rows.items()}
