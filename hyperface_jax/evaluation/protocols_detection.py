"""Scene-level face-detection evaluators: AFW/PASCAL AP and the FDDB discrete ROC.

docs/papers.md section 1.12: AFW and PASCAL faces report average precision over detections
pooled from all images; FDDB reports the discrete ROC (true positives against the total
number of false positives). Feed one image at a time:

  ev = EVALUATORS.get("voc_detection_ap")()
  for image: ev.update(boxes, scores, gt_boxes, gt_ignore)
  ev.result(), ev.protocol()
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from hyperface_jax import registry
from hyperface_jax.evaluation import detection


@registry.EVALUATORS.register("voc_detection_ap")
class VocDetectionEvaluator:
  """PASCAL VOC AP (all-point interpolation) with greedy IoU matching per image."""

  def __init__(self, iou_threshold: float = 0.5):
    self.iou_threshold = float(iou_threshold)
    self.reset()

  def reset(self):
    self._scores, self._tp = [], []
    self._num_gt = 0
    self._num_images = 0

  def update(self, boxes, scores, gt_boxes, gt_ignore=None):
    """One image: [N, 4] detections x, y, w, h px, [N] scores, [M, 4] truth, [M] ignore."""
    is_tp, matched = detection.match_detections(
      boxes, scores, gt_boxes, self.iou_threshold, gt_ignore
    )
    keep = ~detection.ignored_detections(matched, gt_ignore)
    self._scores.append(np.asarray(scores, np.float64).reshape(-1)[keep])
    self._tp.append(is_tp[keep])
    num = np.asarray(gt_boxes).reshape(-1, 4).shape[0]
    self._num_gt += num - (0 if gt_ignore is None else int(np.sum(gt_ignore)))
    self._num_images += 1

  def result(self) -> Dict[str, float]:
    scores = np.concatenate(self._scores) if self._scores else np.zeros(0)
    tp = np.concatenate(self._tp) if self._tp else np.zeros(0, bool)
    out = {
      "count/images": float(self._num_images),
      "count/faces": float(self._num_gt),
      "count/detections": float(scores.size),
      "count/true_positives": float(tp.sum()),
    }
    if self._num_gt:
      out["detection/ap"] = detection.average_precision_voc(scores, tp, self._num_gt)
      out["detection/recall"] = float(tp.sum() / self._num_gt)
    return out

  def protocol(self) -> Dict[str, str]:
    return {
      "detection/ap": (
        f"PASCAL VOC: per image, detections in descending score take the ground truth of "
        f"highest IoU if IoU >= {self.iou_threshold:g} (continuous boxes, no +1 pixel); a "
        "taken one makes a duplicate false positive; ignored ground truth removes the "
        "detection. AP = all-point interpolated area under precision-recall (VOC2010+), "
        "detections pooled over images. Units: fraction (x100 = %)."
      )
    }


@registry.EVALUATORS.register("fddb_discrete_roc")
class FddbRocEvaluator:
  """FDDB discrete ROC: Hungarian matching on ellipse/box overlap > 0.5 per threshold."""

  def __init__(
    self,
    overlap_threshold: float = 0.5,
    false_positive_points: Sequence[int] = (100, 500, 1000, 2000),
  ):
    self.overlap_threshold = float(overlap_threshold)
    self.false_positive_points = tuple(int(f) for f in false_positive_points)
    self.reset()

  def reset(self):
    self._per_image = []
    self._num_faces = 0

  def update(self, boxes, scores, ellipses):
    """One image: [N, 4] detections x, y, w, h px, [N] scores, [M, 5] FDDB ellipses."""
    ellipses = np.asarray(ellipses, np.float64).reshape(-1, 5)
    scores = np.asarray(scores, np.float64).reshape(-1)
    overlap = detection.ellipse_rect_overlap(ellipses, boxes)
    self._per_image.append(
      (scores, detection.fddb_match_counts(overlap, scores, self.overlap_threshold))
    )
    self._num_faces += ellipses.shape[0]

  def curve(self):
    """(false_positives [T], true_positive_rate [T], thresholds [T]) of the discrete ROC."""
    fp, tp, thr = detection.fddb_discrete_roc(self._per_image)
    return fp, tp / max(self._num_faces, 1), thr

  def result(self) -> Dict[str, float]:
    fp, tp, _ = detection.fddb_discrete_roc(self._per_image)
    out = {"count/images": float(len(self._per_image)), "count/faces": float(self._num_faces)}
    if self._num_faces:
      for k in self.false_positive_points:
        out[f"detection/fddb_tpr_at_{k}_fp"] = detection.tpr_at_false_positives(
          fp, tp, self._num_faces, k
        )
      if tp.size:
        out["detection/fddb_max_tpr"] = float(tp.max() / self._num_faces)
    return out

  def protocol(self) -> Dict[str, str]:
    return {
      "detection/fddb": (
        "FDDB discrete ROC (docs/papers.md 1.12, 5.4): at every distinct score threshold, "
        "detections >= it are matched one-to-one to the annotated ellipses by maximum-weight "
        f"bipartite matching (Hungarian) on overlap = |E n R| / |E u R| rasterised on "
        f"pixel centres, a pair counting when overlap > {self.overlap_threshold:g}; "
        "TP = matched pairs, FP = the other detections. tpr_at_K_fp = highest TP / "
        "number of faces with at most K false positives over all images."
      )
    }
