"""Full-image evaluation of the test-time pipeline (docs/papers.md sections 1.8 and 1.12).

Works on any face-scene dataset (docs/design.md section 5: synth_faces, and AFW / FDDB /
PASCAL-format data once built): per image, the pipeline's detections are matched to the
ground-truth face boxes with PASCAL VOC greedy matching at IoU 0.5
(evaluation/detection.py); detection AP is the VOC all-point AP over the pooled
detections. The face tasks are scored on MATCHED detections (true positives) only:
  * landmarks/nme: mean over the true visible points of the point error divided by the
    ground-truth box side sqrt(w * h) -- the normalizer of the region-level evaluator
    (evaluation/evaluators.py), so the two are directly comparable;
  * pose/mae_{roll,pitch,yaw,mean}_deg; gender/accuracy (p_female >= 0.5 -> female);
    visibility/accuracy (predicted visibility > 0.5 vs the truth, all 21 points).
Ground-truth faces without a valid box are ignored (a detection on them is neither a true
nor a false positive); each task uses only faces whose label is valid. With
`min_visible_landmarks` > 0, faces with fewer visible landmarks (where landmarks are
labelled) are ignored the same way, like PASCAL VOC's "difficult" objects: on synth_faces
these are faces hidden by occluders or turned almost fully away (documented option,
default 0 = every face counts; docs/inference.md reports both).

Contract (evaluation/contract.py): `inputs = "images"`, one image per `update(batch,
outputs)`: batch["faces"] is the image's ground truth in the scene schema (other batch keys,
`image` and `image/filename` from evaluation/image_runner.py, are not read) and outputs its
detections (inference/analyzer.py `FaceAnalyzer.detect`). `plots(out_dir)` writes the
precision-recall curve.
"""

from __future__ import annotations

import os
from typing import Dict, List

import numpy as np

from hyperface_jax import registry
from hyperface_jax.evaluation import detection, metrics
from hyperface_jax.evaluation import detection_plots as plots

_SCORED = ("landmarks", "visibility", "pose", "gender")


@registry.EVALUATORS.register("hyperface_full_image")
class FullImageEvaluator:
  """Accumulates per-image detections against scene ground truth; flat results.

  Usage:
    ev = FullImageEvaluator(); ev.reset()
    for batch, dets in image_runner.image_pairs(analyzer, store): ev.update(batch, dets)
    ev.result()  # {"detection/ap": ..., "landmarks/nme": ..., ...}
  """

  inputs = "images"

  def __init__(
    self,
    iou_threshold: float = 0.5,
    visibility_threshold: float = 0.5,
    min_visible_landmarks: int = 0,
  ):
    self.iou_threshold = iou_threshold  # docs/papers.md 1.12: AP at IoU 0.5
    self.min_visible_landmarks = int(min_visible_landmarks)
    self.visibility_threshold = visibility_threshold
    self.reset()

  def reset(self) -> None:
    self._scores, self._tp, self._num_gt, self._images = [], [], 0, 0
    self._pairs = {t: {"pred": [], "true": [], "aux": []} for t in _SCORED}

  def update(self, batch: Dict, dets: Dict[str, np.ndarray]) -> np.ndarray:
    """Adds one image.

    Args:
      batch: {"faces": the image's ground truth in the scene schema (box [F, 4], landmarks
        [F, 21, 2], visibility [F, 21], pose [F, 3], gender [F], valid {name: [F]})}.
      dets: detections "box" [N, 4], "score" [N] and, for the face tasks, "landmarks"
        [N, 21, 2], "visibility" [N, 21], "pose" [N, 3], "p_female" [N].

    Returns:
      matched ground-truth index per detection [N] (-1 = false positive).
    """
    faces = batch["faces"]
    gt_boxes = np.asarray(faces["box"], np.float64).reshape(-1, 4)
    valid = {k: np.asarray(v, bool).reshape(-1) for k, v in faces["valid"].items()}
    ignore = ~valid["box"] | (gt_boxes[:, 2] <= 0) | (gt_boxes[:, 3] <= 0)
    if self.min_visible_landmarks > 0:
      visible = (np.asarray(faces["visibility"]).reshape(len(gt_boxes), -1) > 0.5).sum(-1)
      ignore |= valid["landmarks"] & (visible < self.min_visible_landmarks)
    boxes = np.asarray(dets["box"], np.float64).reshape(-1, 4)
    scores = np.asarray(dets["score"], np.float64).reshape(-1)
    is_tp, matched = detection.match_detections(boxes, scores, gt_boxes, self.iou_threshold, ignore)
    counted = ~detection.ignored_detections(matched, ignore)
    self._scores.append(scores[counted])
    self._tp.append(is_tp[counted])
    self._num_gt += int((~ignore).sum())
    self._images += 1
    for i in np.flatnonzero(is_tp):
      g = matched[i]
      side = float(np.sqrt(gt_boxes[g, 2] * gt_boxes[g, 3]))
      if valid["landmarks"][g] and "landmarks" in dets:
        self._add(
          "landmarks",
          dets["landmarks"][i],
          faces["landmarks"][g],
          (np.asarray(faces["visibility"][g]), side),
        )
      if valid["visibility"][g] and "visibility" in dets:
        self._add("visibility", dets["visibility"][i], faces["visibility"][g], None)
      if valid["pose"][g] and "pose" in dets:
        self._add("pose", dets["pose"][i], faces["pose"][g], None)
      if valid["gender"][g] and int(faces["gender"][g]) >= 0 and "p_female" in dets:
        self._add("gender", dets["p_female"][i], faces["gender"][g], None)
    return np.where(is_tp, matched, -1)

  def _add(self, task, pred, true, aux):
    self._pairs[task]["pred"].append(np.asarray(pred, np.float64))
    self._pairs[task]["true"].append(np.asarray(true, np.float64))
    self._pairs[task]["aux"].append(aux)

  def _pooled(self):
    scores = np.concatenate(self._scores) if self._scores else np.zeros(0)
    tp = np.concatenate(self._tp) if self._tp else np.zeros(0, bool)
    return scores, tp

  def protocol(self) -> Dict[str, str]:
    hidden = (
      f" Faces with fewer than {self.min_visible_landmarks} visible landmarks are ignored."
      if self.min_visible_landmarks > 0
      else ""
    )
    return {
      "detection": (
        "Full test-time pipeline (docs/papers.md 1.8) per image; PASCAL VOC greedy matching "
        f"at IoU >= {self.iou_threshold:g} (evaluation/detection.py), AP = all-point "
        "interpolated over detections pooled from all images; faces without a valid box are "
        "ignored (neither TP nor FP)." + hidden + " Units: fraction (x100 = %)."
      ),
      "landmarks/nme": (
        "On true-positive detections only: mean over the visible true points of the point "
        "error / sqrt(w * h) of the ground-truth box (the region evaluator's normalizer)."
      ),
      "pose": "On true positives: mean absolute roll/pitch/yaw error in degrees.",
      "gender/accuracy": "On true positives with a gender label: p_female >= 0.5 = female.",
      "visibility/accuracy": (
        f"On true positives: predicted visibility > {self.visibility_threshold:g} against "
        "the true visibility of all 21 points."
      ),
    }

  def plots(self, out_dir: str) -> List[str]:
    """Writes `pr_curve.png` (precision against recall of the pooled detections)."""
    curve = plots.precision_recall(*self._pooled(), self._num_gt)
    return [plots.pr_curve_png(os.path.join(out_dir, "pr_curve.png"), {"AP": curve})]

  def result(self) -> Dict[str, float]:
    """Flat metrics; a task with no matched labelled face, and AP without any counted
    face, are left out (contract: no NaN)."""
    scores, tp = self._pooled()
    out = {
      "detection/ap": detection.average_precision_voc(scores, tp, self._num_gt),
      "detection/recall": float(tp.sum()) / max(self._num_gt, 1),
      "count/gt_faces": float(self._num_gt),
      "count/images": float(self._images),
      "count/detections": float(len(scores)),
      "detection/false_positives_per_image": float((~tp).sum()) / max(self._images, 1),
    }
    p = self._pairs
    if p["landmarks"]["pred"]:
      vis = np.stack([a[0] for a in p["landmarks"]["aux"]])
      side = np.array([a[1] for a in p["landmarks"]["aux"]])
      err = metrics.nme(
        np.stack(p["landmarks"]["pred"]), np.stack(p["landmarks"]["true"]), vis, side
      )
      err = err[np.isfinite(err)]
      if len(err):
        out["landmarks/nme"] = float(err.mean())
      out["count/landmarks"] = float(len(err))
    if p["visibility"]["pred"]:
      out["visibility/accuracy"] = metrics.visibility_accuracy(
        np.stack(p["visibility"]["pred"]),
        np.stack(p["visibility"]["true"]),
        self.visibility_threshold,
      )
      out["count/visibility"] = float(len(p["visibility"]["pred"]))
    if p["pose"]["pred"]:
      mae = metrics.pose_mae_deg(np.stack(p["pose"]["pred"]), np.stack(p["pose"]["true"]))
      out.update({f"pose/mae_{k}_deg": v for k, v in mae.items()})
      out["count/pose"] = float(len(p["pose"]["pred"]))
    if p["gender"]["pred"]:
      pred = (np.array(p["gender"]["pred"]) >= 0.5).astype(np.int64)
      out["gender/accuracy"] = metrics.accuracy(pred, np.array(p["gender"]["true"], np.int64))
      out["count/gender"] = float(len(pred))
    return {k: v for k, v in out.items() if not np.isnan(v)}
