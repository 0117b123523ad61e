"""Iterative Region Proposals (docs/papers.md section 1.8 step 3).

For every candidate whose face score is at least `score_threshold`, a new, better-fitting
box is computed from its predicted landmarks with the AFLW FaceRectCalculator (docs/papers.md
1.9, data/face_rect.py); the network runs again on the new boxes -- of all images
together, in the same fixed-size batches -- and each candidate keeps whichever of the old
and new box has the higher face score, with that box's predictions (`keep="better"`, the
paper's rule), or both boxes go on to L-NMS as separate detections (`keep="both"`, the
pipeline's documented default, inference/config.py: with few proposals per face, L-NMS
then votes over twice the boxes). Candidates below the threshold are dropped (TK keeps
det > 0.25 between stages, docs/papers.md 1.8). The number of iterations is unknown in the
paper ([?], TK: 3 stages); default 1 (inference/config.py).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from hyperface_jax.data import face_rect_batched
from hyperface_jax.inference.lnms import Detections, select

# Network: (images, list of regions [N_i, 4]) -> list of detection dicts (batched.py).
NetworkFn = Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], list]
# What a round keeps of a candidate and its new box (module docstring).
KEEP_MODES = ("better", "both")


def boxes_from_landmarks(
  landmarks,
  visibility,
  image_hw,
  visibility_threshold: float = 0.5,
  rect_fn: Optional[Callable] = None,
) -> np.ndarray:
  """FaceRectCalculator boxes [N, 4] of predicted landmarks; NaN rows where it fails."""
  rect_fn = rect_fn or face_rect_batched.face_rects  # all candidates in one numpy pass
  h, w = image_hw
  vis = (np.asarray(visibility) > visibility_threshold).astype(np.float32)
  if len(vis) == 0:
    return np.zeros((0, 4), np.float64)
  return np.asarray(rect_fn(np.asarray(landmarks), vis, w, h), np.float64).reshape(-1, 4)


def _usable(boxes, image_hw, min_side: float = 4.0) -> np.ndarray:
  """Finite boxes with a side of at least `min_side` px that touch the image."""
  h, w = image_hw
  ok = np.all(np.isfinite(boxes), axis=1)
  b = np.where(ok[:, None], boxes, 0.0)
  ok &= (b[:, 2] >= min_side) & (b[:, 3] >= min_side)
  ok &= (b[:, 0] < w) & (b[:, 1] < h) & (b[:, 0] + b[:, 2] > 0) & (b[:, 1] + b[:, 3] > 0)
  return ok


def iterative_region_proposals(
  network: NetworkFn,
  images: Sequence[np.ndarray],
  detections: Sequence[Detections],
  *,
  iterations: int = 1,
  score_threshold: float = 0.25,
  visibility_threshold: float = 0.5,
  tie_tolerance: float = 1e-3,
  max_candidates: int = 0,
  keep: str = "better",
  rect_fn: Optional[Callable] = None,
) -> list[Detections]:
  """Runs IRP on the detections of several images at once.

  Args:
    network: batched network function (images, regions per image) -> detections per image.
    images: the uint8 RGB images.
    detections: per image, the network outputs of its proposals ("box", "score", ...).
    iterations: IRP rounds (0 = only the score filter).
    score_threshold: candidates with a lower face score are dropped before each round.
    visibility_threshold: predicted visibility above it marks a landmark as visible.
    tie_tolerance: the new box wins when its score >= old score - tie_tolerance. Softmax
      face scores saturate at 1.0 on clear faces, so a strict ">" would never move an
      already-confident box; at (near) equal scores the landmark-fitted box is preferred,
      since fitting the box is what IRP is for (documented default 1e-3; docs/papers.md 1.8
      says only "the higher score").
    max_candidates: per image, only the best-scoring this many candidates get a new box
      (0 = all); the others pass through with their proposal box (a latency bound:
      candidates of one face mostly share its landmark box; docs/inference.md).
    keep: "better" (each candidate keeps the better of its old and new box) or "both"
      (the candidate stays as it was and its new box, if it scores >= score_threshold,
      is added as one more detection; the next round refits only the boxes added by
      this one, so each round adds at most one box per candidate).
    rect_fn: FaceRectCalculator override (tests).

  Returns:
    Per image, the surviving candidates with, per candidate, the better of its boxes
    and that box's predictions (`keep="better"`), or the candidates followed by the new
    boxes (`keep="both"`); "irp_improved" [N] counts the rounds that moved a row's box
    (for an added box, its parent's count + 1).
  """
  if iterations < 0:
    raise ValueError(f"iterations must be >= 0; got {iterations}.")
  if max_candidates < 0:
    raise ValueError(f"max_candidates must be >= 0 (0 = all); got {max_candidates}.")
  if keep not in KEEP_MODES:
    raise ValueError(f"keep must be one of {KEEP_MODES}; got {keep!r}.")
  current, frontier = [], []
  for dets in detections:
    dets = select(dets, np.asarray(dets["score"]) >= score_threshold)
    dets["irp_improved"] = np.zeros(len(dets["score"]), np.int64)
    current.append(dets)
    frontier.append(np.ones(len(dets["score"]), bool))  # the rows this round refits
  for _ in range(iterations):
    new_boxes, usable = [], []
    for img, dets, todo in zip(images, current, frontier, strict=True):
      boxes = np.full((len(todo), 4), np.nan)
      boxes[todo] = boxes_from_landmarks(
        np.asarray(dets["landmarks"])[todo],
        np.asarray(dets["visibility"])[todo],
        img.shape[:2],
        visibility_threshold,
        rect_fn,
      )
      ok = _usable(boxes, img.shape[:2])
      if max_candidates and todo.sum() > max_candidates:
        order = [j for j in np.argsort(-np.asarray(dets["score"]), kind="stable") if todo[j]]
        ok[order[max_candidates:]] = False  # the rest keep their boxes
      usable.append(ok)
      new_boxes.append(boxes[ok])
    rescored = network(images, new_boxes)
    for i, (dets, ok, new) in enumerate(zip(current, usable, rescored, strict=True)):
      idx = np.flatnonzero(ok)
      if keep == "both":
        current[i], frontier[i] = _add_new_boxes(dets, idx, new, score_threshold)
        continue
      better = new["score"] >= np.asarray(dets["score"])[idx] - tie_tolerance
      rows, src = idx[better], np.flatnonzero(better)
      merged = {k: np.array(v, copy=True) for k, v in dets.items()}
      for k, v in new.items():
        if k in merged:
          merged[k] = merged[k].astype(np.result_type(merged[k], v))
          merged[k][rows] = v[src]
      merged["irp_improved"][rows] += 1
      current[i] = merged
  return current


def _add_new_boxes(dets: Detections, parents, new: Detections, score_threshold: float):
  """`dets` followed by the rescored new boxes of rows `parents` that score >=
  `score_threshold`; and the mask of the added rows (the next round's frontier)."""
  keep = np.asarray(new["score"]) >= score_threshold
  added = {k: np.asarray(new[k])[keep] for k in dets if k != "irp_improved"}
  added["irp_improved"] = np.asarray(dets["irp_improved"])[parents[keep]] + 1
  merged = {
    k: np.concatenate([np.asarray(v), added[k].astype(np.result_type(np.asarray(v), added[k]))])
    for k, v in dets.items()
  }
  frontier = np.concatenate([np.zeros(len(dets["score"]), bool), np.ones(int(keep.sum()), bool)])
  return merged, frontier
