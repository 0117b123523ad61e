"""Face-detection protocols: PASCAL VOC matching and AP, FDDB discrete ROC.

Papers.md section 1.12: AFW and PASCAL faces are scored by average precision
(precision-recall over detections pooled from all images), FDDB by the discrete
ROC (number of true positives against the total number of false positives,
a detection being a true positive when its overlap with an annotated face
ellipse exceeds 0.5).

Boxes are [x, y, w, h] in the continuous pixel frame of `hyperface_jax.data.boxes`
(the box spans [x, x + w]); IoU is the continuous one, without the VOC devkit's
"+1 pixel" of inclusive integer corners (documented default: our boxes are floats).

Ignored ground truth (VOC "difficult", too-small faces of a re-annotation):
a detection whose best-overlapping ground truth is ignored is neither a true
nor a false positive. `match_detections` returns it with is_tp False and
`matched_gt` = the ignored index; `ignored_detections` turns that into the mask
to drop before `average_precision_voc`.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy import optimize

from hyperface_jax.data import boxes as box_lib

__all__ = [
  "average_precision_voc",
  "ignored_detections",
  "match_detections",
  "ellipse_rect_overlap",
  "fddb_match_counts",
  "fddb_discrete_roc",
  "tpr_at_false_positives",
]


def _as_boxes(name, b) -> np.ndarray:
  b = np.asarray(b, np.float64).reshape(-1, 4) if np.size(b) else np.zeros((0, 4))
  if b.ndim != 2 or b.shape[1] != 4:
    raise ValueError(f"{name} must be [N, 4] x, y, w, h; got {np.shape(b)}.")
  return b


def match_detections(
  boxes, scores, gt_boxes, iou_threshold: float = 0.5, gt_ignore=None
) -> Tuple[np.ndarray, np.ndarray]:
  """PASCAL VOC greedy matching of one image's detections to its ground truth.

  Detections are visited in descending score (ties keep input order, a stable
  sort). Each takes the ground truth of highest IoU (ignored ones included, as
  the VOC devkit does with "difficult"); if that IoU >= `iou_threshold`:
    * an ignored ground truth -> neither TP nor FP (is_tp False, matched_gt = it);
    * an unmatched one -> TP, and the ground truth is taken;
    * an already taken one -> FP (duplicate detection), matched_gt = -1.
  Otherwise FP with matched_gt = -1.

  Args:
    boxes: [N, 4] detections x, y, w, h.
    scores: [N] confidences (higher = more confident).
    gt_boxes: [M, 4] ground-truth boxes x, y, w, h.
    iou_threshold: VOC minimum overlap (>=, as the VOC devkit's `ovmax >= minoverlap`).
    gt_ignore: optional [M] bool, True for ground truth that is not counted.

  Returns:
    (is_tp [N] bool, matched_gt [N] int64, -1 = none), in the INPUT order of `boxes`.
    False positives are `~is_tp & ~ignored_detections(matched_gt, gt_ignore)`.
  """
  det = _as_boxes("boxes", boxes)
  gt = _as_boxes("gt_boxes", gt_boxes)
  scores = np.asarray(scores, np.float64).reshape(-1)
  if scores.shape[0] != det.shape[0]:
    raise ValueError(f"scores has {scores.shape[0]} entries for {det.shape[0]} boxes.")
  ignore = (
    np.zeros(gt.shape[0], bool) if gt_ignore is None else np.asarray(gt_ignore, bool).reshape(-1)
  )
  if ignore.shape[0] != gt.shape[0]:
    raise ValueError(f"gt_ignore has {ignore.shape[0]} entries for {gt.shape[0]} gt boxes.")
  is_tp = np.zeros(det.shape[0], bool)
  matched = np.full(det.shape[0], -1, np.int64)
  if det.shape[0] == 0 or gt.shape[0] == 0:
    return is_tp, matched
  overlaps = box_lib.iou(det, gt)  # [N, M]
  taken = np.zeros(gt.shape[0], bool)
  for i in np.argsort(-scores, kind="stable"):
    j = int(np.argmax(overlaps[i]))
    if overlaps[i, j] < iou_threshold:
      continue
    if ignore[j]:
      matched[i] = j
    elif not taken[j]:
      taken[j] = True
      is_tp[i] = True
      matched[i] = j
  return is_tp, matched


def ignored_detections(matched_gt, gt_ignore=None) -> np.ndarray:
  """[N] bool: detections that `match_detections` matched to an ignored ground truth."""
  matched_gt = np.asarray(matched_gt, np.int64).reshape(-1)
  if gt_ignore is None:
    return np.zeros(matched_gt.shape, bool)
  gt_ignore = np.asarray(gt_ignore, bool).reshape(-1)
  out = np.zeros(matched_gt.shape, bool)
  hit = matched_gt >= 0
  out[hit] = gt_ignore[matched_gt[hit]]
  return out


def average_precision_voc(scores, is_tp, num_gt: int) -> float:
  """All-point interpolated average precision (PASCAL VOC 2010 and later).

  Detections pooled from many images are ranked by descending score (stable
  for ties); precision is made monotone from the right (the precision envelope)
  and integrated over every recall change:
    AP = sum_k (r_k - r_{k-1}) * max_{k' >= k} p_k'.
  Hand-written because scikit-learn's `average_precision_score` neither
  interpolates nor knows about ground truth that no detection reached (recall
  here is TP / num_gt, not TP / number of positive detections).

  Args:
    scores: [K] detection confidences (ignored detections already removed).
    is_tp: [K] bool, from `match_detections`.
    num_gt: number of non-ignored ground-truth faces over all the images.

  Returns:
    AP in [0, 1]; NaN when num_gt == 0.
  """
  scores = np.asarray(scores, np.float64).reshape(-1)
  is_tp = np.asarray(is_tp, bool).reshape(-1)
  if scores.shape != is_tp.shape:
    raise ValueError(f"scores {scores.shape} and is_tp {is_tp.shape} differ.")
  if num_gt < 0 or int(is_tp.sum()) > num_gt:
    raise ValueError(f"num_gt={num_gt} is less than the {int(is_tp.sum())} true positives.")
  if num_gt == 0:
    return float("nan")
  order = np.argsort(-scores, kind="stable")
  tp = np.cumsum(is_tp[order])
  fp = np.cumsum(~is_tp[order])
  recall = tp / float(num_gt)
  precision = tp / np.maximum(tp + fp, 1)
  mrec = np.concatenate([[0.0], recall, [1.0]])
  mpre = np.concatenate([[0.0], precision, [0.0]])
  mpre = np.maximum.accumulate(mpre[::-1])[::-1]
  change = np.nonzero(mrec[1:] != mrec[:-1])[0]
  return float(np.sum((mrec[change + 1] - mrec[change]) * mpre[change + 1]))


def ellipse_rect_overlap(ellipses, boxes) -> np.ndarray:
  """FDDB overlap: area(E n R) / area(E u R) of every ellipse/rectangle pair.

  The FDDB evaluation rasterises both regions on the image grid; we do the same
  on the pixel centres of the pair's joint extent (1 pixel resolution, pixel
  i centred at i), so values match FDDB's to its own rasterisation error.

  Args:
    ellipses: [M, 5] FDDB ellipses (major_radius, minor_radius, angle rad, cx, cy);
      the major axis makes `angle` with the x axis.
    boxes: [N, 4] detections x, y, w, h.

  Returns:
    float64 [M, N] overlaps in [0, 1].
  """
  ell = np.asarray(ellipses, np.float64).reshape(-1, 5)
  det = _as_boxes("boxes", boxes)
  out = np.zeros((ell.shape[0], det.shape[0]))
  for m, (ra, rb, theta, cx, cy) in enumerate(ell):
    half = max(ra, rb)
    for n, (x, y, w, h) in enumerate(det):
      x0, x1 = np.floor(min(cx - half, x)), np.ceil(max(cx + half, x + w))
      y0, y1 = np.floor(min(cy - half, y)), np.ceil(max(cy + half, y + h))
      if x + w < cx - half or x > cx + half or y + h < cy - half or y > cy + half:
        continue  # disjoint extents: overlap 0
      gx, gy = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
      dx, dy = gx - cx, gy - cy
      u = dx * np.cos(theta) + dy * np.sin(theta)
      v = -dx * np.sin(theta) + dy * np.cos(theta)
      in_e = (u / ra) ** 2 + (v / rb) ** 2 <= 1.0
      in_r = (gx >= x) & (gx < x + w) & (gy >= y) & (gy < y + h)  # half-open: w*h centres
      union = np.count_nonzero(in_e | in_r)
      out[m, n] = np.count_nonzero(in_e & in_r) / union if union else 0.0
  return out


def fddb_match_counts(overlap, scores, threshold: float = 0.5) -> np.ndarray:
  """True positives of one image when keeping its k best detections, k = 0..N.

  FDDB matches detections to faces one-to-one by maximum-weight bipartite
  matching (Hungarian; scipy's `linear_sum_assignment`) on the overlaps, a pair
  counting only when its overlap exceeds `threshold` (discrete score), and it
  redoes the matching at every score threshold. Keeping the k best detections
  of this image is exactly that, so a threshold's global count is the sum of
  these per-image counts.

  Args:
    overlap: [M, N] ellipse/detection overlaps (`ellipse_rect_overlap`).
    scores: [N] detection scores.
    threshold: discrete-score overlap threshold (FDDB: 0.5, strictly greater).

  Returns:
    int64 [N + 1]: TP count with the k highest-scoring detections kept.
  """
  overlap = np.asarray(overlap, np.float64)
  scores = np.asarray(scores, np.float64).reshape(-1)
  order = np.argsort(-scores, kind="stable")
  weights = np.where(overlap > threshold, overlap, 0.0)
  counts = np.zeros(scores.shape[0] + 1, np.int64)
  # A detection without any pair above the threshold never changes the matching, so the
  # assignment is recomputed only when a candidate joins (same result, far fewer solves).
  candidate = weights.any(axis=0) if weights.size else np.zeros(scores.shape[0], bool)
  for k in range(1, scores.shape[0] + 1):
    if not candidate[order[k - 1]]:
      counts[k] = counts[k - 1]
      continue
    sub = weights[:, order[:k][candidate[order[:k]]]]
    rows, cols = optimize.linear_sum_assignment(sub, maximize=True)
    counts[k] = int(np.count_nonzero(sub[rows, cols] > 0))
  return counts


def fddb_discrete_roc(per_image) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """FDDB discrete ROC pooled over images.

  Args:
    per_image: iterable of (scores [N_i], tp_counts [N_i + 1]) from
      `fddb_match_counts`.

  Returns:
    (false_positives [T], true_positives [T], thresholds [T]): one point per
    distinct score, thresholds descending; a detection counts when its
    score >= the threshold.
  """
  entries = []
  for scores, counts in per_image:
    scores = np.asarray(scores, np.float64).reshape(-1)
    counts = np.asarray(counts, np.int64)
    for rank, i in enumerate(np.argsort(-scores, kind="stable")):
      entries.append((scores[i], counts[rank + 1] - counts[rank]))
  if not entries:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
  s = np.array([e[0] for e in entries])
  gain = np.array([e[1] for e in entries], np.int64)
  order = np.argsort(-s, kind="stable")
  s, gain = s[order], gain[order]
  tp = np.cumsum(gain)
  kept = np.arange(1, s.size + 1)
  last = np.nonzero(np.append(s[1:] != s[:-1], True))[0]  # end of each tie group
  return kept[last] - tp[last], tp[last], s[last]


def tpr_at_false_positives(false_positives, true_positives, num_faces: int, max_fp: int) -> float:
  """Highest TP rate on the ROC with at most `max_fp` false positives (0 if none)."""
  fp = np.asarray(false_positives)
  tp = np.asarray(true_positives)
  ok = fp <= max_fp
  if num_faces <= 0:
    return float("nan")
  return float(tp[ok].max() / num_faces) if ok.any() else 0.0
