"""Landmark-based NMS (docs/papers.md section 1.8 step 4) and plain box NMS (the ablation).

Detections are dicts of numpy arrays with a leading axis N: "box" [N, 4] px, "score" [N],
"landmarks" [N, 21, 2] px, "visibility" [N, 21], "pose" [N, 3] radians, "p_female" [N].

L-NMS, the paper's five steps (docs/papers.md 1.8 step 4) made into a greedy partition:
  1. each detection's box is replaced by the tight box of its visible predicted landmarks;
  2. the best remaining detection and every remaining one whose landmark box overlaps its
     landmark box with IoU > `iou_threshold` form a group (removed from the pool; greedy,
     so every detection votes in exactly one group -- documented default, the paper does
     not say how overlapping groups are resolved);
  3. the `top_k` highest-scoring members of the group are kept;
  4. the output landmarks, visibility, pose and gender probability are the element-wise
     medians over those K members; the score is the group's best score (`score_mode=
     "max"`, documented default: the paper does not say which score an L-NMS output
     carries) or the sum of the K best scores divided by K (`"top_k_mean"`: missing
     members count as 0, so a face supported by many overlapping windows outranks a
     lone confident window -- the voting of Viola-Jones' min_neighbors; measured on
     synth_faces validation scenes in docs/inference.md);
  5. the output box is computed from the median landmarks with the FaceRectCalculator
     (docs/papers.md 1.9); if that fails (< 4 visible points) the best member's box is kept.
K, the IoU threshold and the score threshold are unknown in the paper (docs/papers.md 1.8,
section 7 item 2). This module's function defaults are the paper's L-NMS; the pipeline's
measured defaults (grouping on the detections' boxes, box voting, top-K mean score) live
in inference/config.py.

Both NMS variants are written here on numpy (O(N^2) IoU on at most a few hundred
detections): a library NMS (e.g. cv2.dnn.NMSBoxes) returns only indices, while L-NMS
needs the groups themselves, and the hand-written one uses exactly boxes.iou.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np

from hyperface_jax.data import boxes as box_lib
from hyperface_jax.data import face_rect

Detections = Dict[str, np.ndarray]
_PER_FACE_KEYS = ("landmarks", "visibility", "pose", "p_female")

# The paper's L-NMS (docs/papers.md 1.8 step 4): the defaults of `landmark_nms`, and of the
# pipeline's `nms` settings except the documented defaults inference/config.py sets
# instead (iou_threshold, group_by, output_box, score_mode). bench/full_image_eval.py runs
# it as the "L-NMS (paper)" variant.
PAPER_LNMS = {
  "iou_threshold": 0.5,  # docs/papers.md 1.8 suggests 0.5 [?]
  "top_k": 5,  # docs/papers.md 1.8 suggests K = 5 [?]
  "score_threshold": 0.5,  # final detections (TK final det > 0.5)
  "visibility_threshold": 0.5,  # landmarks counted as visible for the L-NMS boxes
  "score_mode": "max",  # documented default: the paper does not say (module docstring)
  "group_by": "landmark_boxes",  # step 4.1-4.2
  "output_box": "median_landmarks",  # step 4.5
}


def select(dets: Detections, index) -> Detections:
  """Rows `index` (indices or bool mask) of every array in `dets`."""
  return {k: np.asarray(v)[index] for k, v in dets.items()}


def empty_like(dets: Detections) -> Detections:
  return select(dets, np.zeros(0, np.int64))


def greedy_groups(
  boxes, scores, iou_threshold: float, overlaps: Optional[np.ndarray] = None
) -> list[np.ndarray]:
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
  if overlaps is None:
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


SCORE_MODES = ("max", "top_k_mean")
GROUP_BY = ("landmark_boxes", "boxes", "either")
OUTPUT_BOXES = ("median_landmarks", "leader", "vote")


def _check_choice(name: str, value: str, choices) -> None:
  if value not in choices:
    raise ValueError(f"{name} must be one of {choices}; got {value!r}.")


def group_score(scores, score_mode: str = "max", top_k: int = 5) -> float:
  """A group's output score from its members' scores (sorted descending).

  "max": the best score; "top_k_mean": sum of the `top_k` best / top_k (absent members
  count as 0).
  """
  _check_choice("score_mode", score_mode, SCORE_MODES)
  scores = np.asarray(scores, np.float64)
  if score_mode == "max":
    return float(scores[0])
  return float(scores[:top_k].sum() / top_k)


def _by_score(dets: Detections) -> Detections:
  return select(dets, np.argsort(-np.asarray(dets["score"]), kind="stable"))


def plain_nms(
  dets: Detections,
  iou_threshold: float = 0.3,
  score_threshold: float = 0.5,
  score_mode: str = "max",
  top_k: int = 5,
) -> Detections:
  """Standard box NMS on "box" (the ablation baseline of docs/papers.md 1.8).

  Each group keeps its leader (best score); with score_mode="top_k_mean" the leader
  carries the group score of `group_score`.

  Returns:
    The kept detections, by descending (group) score.
  """
  _check_choice("score_mode", score_mode, SCORE_MODES)
  keep = np.asarray(dets["score"]) >= score_threshold
  dets = select(dets, keep)
  groups = greedy_groups(dets["box"], dets["score"], iou_threshold)
  out = select(dets, np.array([g[0] for g in groups], np.int64))
  out["score"] = np.array(
    [group_score(dets["score"][g], score_mode, top_k) for g in groups], np.float64
  ).reshape(-1)
  return _by_score(out)


def landmark_boxes(landmarks, visibility, visibility_threshold: float = 0.5) -> np.ndarray:
  """Tight boxes [N, 4] of the visible landmarks (all 21 where fewer than 2 are visible)."""
  vis = np.asarray(visibility) > visibility_threshold
  vis = np.where(vis.sum(-1, keepdims=True) >= 2, vis, True)
  return box_lib.box_from_points(landmarks, vis)


def landmark_nms(
  dets: Detections,
  image_hw: Tuple[int, int],
  *,
  iou_threshold: float = PAPER_LNMS["iou_threshold"],
  top_k: int = PAPER_LNMS["top_k"],
  score_threshold: float = PAPER_LNMS["score_threshold"],
  visibility_threshold: float = PAPER_LNMS["visibility_threshold"],
  score_mode: str = PAPER_LNMS["score_mode"],
  group_by: str = PAPER_LNMS["group_by"],
  output_box: str = PAPER_LNMS["output_box"],
  box_fn: Optional[Callable] = None,
) -> Detections:
  """Landmark-based NMS of docs/papers.md section 1.8 step 4 (see the module docstring);
  the defaults are the paper's (`PAPER_LNMS`).

  Args:
    dets: detections of one image (keys of the module docstring).
    image_hw: (H, W), the FaceRectCalculator's camera (docs/papers.md 1.9 step 1).
    iou_threshold: grouping IoU of landmark boxes.
    top_k: members per group that vote in the medians (K >= 1).
    score_threshold: detections below it are dropped before grouping.
    visibility_threshold: landmarks above it count as visible for the landmark boxes
      and for the FaceRectCalculator.
    score_mode: "max" or "top_k_mean" (group_score; module docstring step 4).
    group_by: what the grouping IoU is computed on: "landmark_boxes" (docs/papers.md 1.8
      step 4.1-4.2), "boxes" (the detections' own proposal / IRP boxes, as plain NMS),
      or "either" (the larger of the two IoUs). With "boxes", a window on a face whose
      predicted landmarks scatter (a face part, a window cutting through the face)
      votes in that face's group instead of surviving as a false positive of its own.
    output_box: "median_landmarks" (docs/papers.md 1.8 step 4.5: FaceRectCalculator box of
      the median landmarks), "leader" (the best member's own box, as plain NMS) or
      "vote" (the score-weighted mean of the top-K members' boxes: box voting, Gidaris
      & Komodakis 2015, which averages out the jitter of single windows).
    box_fn: (landmarks [21, 2], visibility [21], W, H) -> box [4]; default
      face_rect.face_rect_from_landmarks.

  Returns:
    One detection per group, by descending score, plus "group_size" [M] int.
  """
  if top_k < 1:
    raise ValueError(f"top_k must be >= 1; got {top_k}.")
  _check_choice("score_mode", score_mode, SCORE_MODES)
  _check_choice("group_by", group_by, GROUP_BY)
  _check_choice("output_box", output_box, OUTPUT_BOXES)
  box_fn = box_fn or face_rect.face_rect_from_landmarks
  dets = select(dets, np.asarray(dets["score"]) >= score_threshold)
  if len(dets["score"]) == 0:
    out = empty_like(dets)
    out["group_size"] = np.zeros(0, np.int64)
    return out
  lm_boxes = landmark_boxes(dets["landmarks"], dets["visibility"], visibility_threshold)
  overlaps = None  # greedy_groups' IoU of lm_boxes ("landmark_boxes")
  if group_by == "boxes":
    overlaps = box_lib.iou(dets["box"], dets["box"])
  elif group_by == "either":
    overlaps = np.maximum(box_lib.iou(lm_boxes, lm_boxes), box_lib.iou(dets["box"], dets["box"]))
  groups = greedy_groups(lm_boxes, dets["score"], iou_threshold, overlaps)
  h, w = image_hw
  rows = {k: [] for k in ("box", "score", *_PER_FACE_KEYS, "group_size")}
  for members in groups:
    top = members[:top_k]  # members are sorted by descending score
    for k in _PER_FACE_KEYS:
      rows[k].append(np.median(np.asarray(dets[k])[top], axis=0))
    vis = rows["visibility"][-1] > visibility_threshold
    box = np.full(4, np.nan)
    if output_box == "vote":
      weight = np.asarray(dets["score"], np.float64)[top]
      box = (weight[:, None] * np.asarray(dets["box"], np.float64)[top]).sum(0) / weight.sum()
    if output_box == "median_landmarks":
      box = np.asarray(box_fn(rows["landmarks"][-1], vis.astype(np.float32), w, h), np.float64)
    if not (np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0):
      box = np.asarray(dets["box"][members[0]], np.float64)
    rows["box"].append(box)
    rows["score"].append(group_score(dets["score"][members], score_mode, top_k))
    rows["group_size"].append(len(members))
  return _by_score({k: np.asarray(v) for k, v in rows.items()})
