"""Scene-level face-detection evaluators: AFW/PASCAL AP and the FDDB discrete ROC.

docs/papers.md section 1.12: AFW and PASCAL faces report average precision over detections
pooled from all images; FDDB reports the discrete ROC (true positives against the total
number of false positives). Both follow the evaluator contract (evaluation/contract.py) with
`inputs = "images"` and take ONE image per `update(batch, outputs)`:

  batch    {"faces": the image's faces in the scene schema (box [F, 4] x, y, w, h px,
            valid {"box": [F]}, optional "ignore" [F] bool, FDDB's "ellipse" [F, 5]),
            "image/filename": str (FDDB's detection file), ...}
  outputs  {"box": [N, 4] x, y, w, h px, "score": [N]} (inference/analyzer.py
            FaceAnalyzer.detect of that image; other keys are not read)

  ev = registry.EVALUATORS.get("voc_detection_ap")()
  for batch, outputs in image_runner.image_pairs(analyzer, store): ev.update(batch, outputs)
  ev.result(), ev.protocol(), ev.plots(out_dir)

`voc_detection_ap` can also apply the rules of the ECCV'14 evaluation toolbox of Mathias et
al. that docs/papers.md section 1.12 names for the published AFW/PASCAL numbers (read in
marcopede/face-eval, copy at bairdzhang/smallhardface:external/marcopede-face-eval-*/
plot_AP.py, database.py, VOCpr.py): faces narrower or lower than 30 px are ignored
(`min_face_size`), detections with neither side above 21 px are dropped
(`min_detection_size`), and the detections' boxes are calibrated to the annotation style by
the mean translation and scale of their true positives (`calibration_iterations`, the
toolbox's 5). All three default to off, which is plain PASCAL VOC.
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence

import numpy as np

from hyperface_jax import registry
from hyperface_jax.evaluation import detection
from hyperface_jax.evaluation import detection_plots as plots


def _ground_truth(faces, min_face_size: float = 0.0):
  """(boxes [F, 4], ignore [F]): no valid box, an `ignore` flag or a small face = ignored."""
  boxes = np.asarray(faces["box"], np.float64).reshape(-1, 4)
  valid = faces.get("valid", {}).get("box")
  ignore = np.zeros(len(boxes), bool) if valid is None else ~np.asarray(valid, bool).reshape(-1)
  if "ignore" in faces:
    ignore |= np.asarray(faces["ignore"], bool).reshape(-1)
  if min_face_size > 0:
    ignore |= (boxes[:, 2] < min_face_size) | (boxes[:, 3] < min_face_size)
  return boxes, ignore


def _transform(boxes, t) -> np.ndarray:
  """Boxes moved by (tx, ty) box sizes and scaled by (sx, sy) about their centres."""
  tx, ty, sx, sy = t
  if (tx, ty, sx, sy) == (0.0, 0.0, 1.0, 1.0):
    return boxes  # bit-exact: no round trip through the centre
  c = boxes[:, :2] + 0.5 * boxes[:, 2:] + boxes[:, 2:] * [tx, ty]
  size = boxes[:, 2:] * [sx, sy]
  return np.concatenate([c - 0.5 * size, size], axis=1)


@registry.EVALUATORS.register("voc_detection_ap")
class VocDetectionEvaluator:
  """PASCAL VOC AP (all-point interpolation) with greedy IoU matching per image."""

  inputs = "images"

  def __init__(
    self,
    iou_threshold: float = 0.5,
    min_face_size: float = 0.0,
    min_detection_size: float = 0.0,
    calibration_iterations: int = 0,
  ):
    self.iou_threshold = float(iou_threshold)
    self.min_face_size = float(min_face_size)
    self.min_detection_size = float(min_detection_size)
    self.calibration_iterations = int(calibration_iterations)
    self.reset()

  def reset(self):
    self._images: List[tuple] = []  # (boxes, scores, gt_boxes, gt_ignore) per image

  def update(self, batch, outputs):
    """Adds one image (module docstring)."""
    gt, ignore = _ground_truth(batch["faces"], self.min_face_size)
    boxes = np.asarray(outputs["box"], np.float64).reshape(-1, 4)
    scores = np.asarray(outputs["score"], np.float64).reshape(-1)
    if self.min_detection_size > 0:  # the toolbox keeps w > m or h > m (VOCpr.filterdet)
      keep = (boxes[:, 2] > self.min_detection_size) | (boxes[:, 3] > self.min_detection_size)
      boxes, scores = boxes[keep], scores[keep]
    self._images.append((boxes, scores, gt, ignore))

  def _match(self, t=(0.0, 0.0, 1.0, 1.0)):
    """Pooled (scores, is_tp, num_gt, [tx, ty, sx, sy] of every true positive)."""
    scores, tps, offsets, num_gt = [], [], [], 0
    for boxes, s, gt, ignore in self._images:
      boxes = _transform(boxes, t)
      is_tp, matched = detection.match_detections(boxes, s, gt, self.iou_threshold, ignore)
      keep = ~detection.ignored_detections(matched, ignore)
      scores.append(s[keep])
      tps.append(is_tp[keep])
      num_gt += int((~ignore).sum())
      d, g = boxes[is_tp], gt[matched[is_tp]]
      shift = (g[:, :2] + 0.5 * g[:, 2:] - d[:, :2] - 0.5 * d[:, 2:]) / d[:, 2:]
      offsets.append(np.concatenate([shift, g[:, 2:] / d[:, 2:]], axis=1))
    cat = lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape)  # noqa: E731
    return cat(scores, 0), cat(tps, 0).astype(bool), num_gt, cat(offsets, (0, 4))

  def _calibrated(self):
    """The toolbox's evaluate_optim: match, fit the mean TP offset, move every box, repeat;
    the last matching (after iterations - 1 moves) is scored. Returns (match, total t)."""
    t = np.array([0.0, 0.0, 1.0, 1.0])
    for it in range(self.calibration_iterations):
      match = self._match(tuple(t))
      if it == self.calibration_iterations - 1 or not len(match[3]):
        break
      tx, ty, sx, sy = match[3].mean(axis=0)
      # composing "move by (tx, ty) sizes, then scale" onto the previous transform
      t = np.array([t[0] + tx * t[2], t[1] + ty * t[3], t[2] * sx, t[3] * sy])
    return match, t

  def result(self) -> Dict[str, float]:
    scores, tp, num_gt, _ = self._match()
    out = {
      "count/images": float(len(self._images)),
      "count/faces": float(num_gt),
      "count/detections": float(scores.size),
      "count/true_positives": float(tp.sum()),
    }
    if num_gt:
      out["detection/ap"] = detection.average_precision_voc(scores, tp, num_gt)
      out["detection/recall"] = float(tp.sum() / num_gt)
      if self.calibration_iterations > 0:
        (s, t_tp, _, _), t = self._calibrated()
        out["detection/ap_calibrated"] = detection.average_precision_voc(s, t_tp, num_gt)
        out.update({f"detection/calibration/{k}": float(v) for k, v in zip("xywh", t, strict=True)})
    return out

  def protocol(self) -> Dict[str, str]:
    text = {
      "detection/ap": (
        f"PASCAL VOC: per image, detections in descending score take the ground truth of "
        f"highest IoU if IoU >= {self.iou_threshold:g} (continuous boxes, no +1 pixel); a "
        "taken one makes a duplicate false positive; ignored ground truth removes the "
        "detection. AP = all-point interpolated area under precision-recall (VOC2010+), "
        "detections pooled over images. Units: fraction (x100 = %)."
      )
    }
    rules = []
    if self.min_face_size > 0:
      rules.append(f"faces with w or h < {self.min_face_size:g} px are ignored")
    if self.min_detection_size > 0:
      rules.append(f"detections with w and h <= {self.min_detection_size:g} px are dropped")
    if rules:
      text["detection/ap"] += " ECCV'14 toolbox rules: " + "; ".join(rules) + "."
    if self.calibration_iterations > 0:
      text["detection/ap_calibrated"] = (
        "AP after the ECCV'14 toolbox's box calibration (VOCpr.evaluate_optim): "
        f"{self.calibration_iterations} rounds of matching; after each but the last, every "
        "detection box is moved by the mean centre offset (in box sizes) and scaled by the "
        "mean size ratio of the true positives' ground truth. detection/calibration/x, y = "
        "total centre shift in box sizes, w, h = total scale."
      )
    return text

  def curves(self) -> Dict[str, tuple]:
    """{label: (recall [K], precision [K])} of the plain and the calibrated matching."""
    scores, tp, num_gt, _ = self._match()
    out = {"AP": plots.precision_recall(scores, tp, num_gt)}
    if self.calibration_iterations > 0 and num_gt:
      (s, t_tp, _, _), _ = self._calibrated()
      out["calibrated AP"] = plots.precision_recall(s, t_tp, num_gt)
    return out

  def plots(self, out_dir: str) -> List[str]:
    """Writes `pr_curve.png` (precision against recall); returns the paths written."""
    path = os.path.join(out_dir, "pr_curve.png")
    return [plots.pr_curve_png(path, self.curves())]


@registry.EVALUATORS.register("fddb_discrete_roc")
class FddbRocEvaluator:
  """FDDB discrete ROC: Hungarian matching on ellipse/box overlap > 0.5 per threshold."""

  inputs = "images"

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
    self._detections = []  # (image path, boxes, scores) for the FDDB detection file
    self._num_faces = 0

  def update(self, batch, outputs):
    """Adds one image (module docstring); its faces need the `ellipse` field."""
    faces = batch["faces"]
    if "ellipse" not in faces:
      raise KeyError("fddb_discrete_roc needs the faces' 'ellipse' field (FDDB's ellipses).")
    ellipses = np.asarray(faces["ellipse"], np.float64).reshape(-1, 5)
    boxes = np.asarray(outputs["box"], np.float64).reshape(-1, 4)
    scores = np.asarray(outputs["score"], np.float64).reshape(-1)
    overlap = detection.ellipse_rect_overlap(ellipses, boxes)
    self._per_image.append(
      (scores, detection.fddb_match_counts(overlap, scores, self.overlap_threshold))
    )
    self._detections.append((str(batch.get("image/filename", "")), boxes, scores))
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

  def plots(self, out_dir: str) -> List[str]:
    """Writes `discrete_roc.png` (TP rate against false positives); returns its path."""
    fp, tpr, _ = self.curve()
    return [plots.roc_png(os.path.join(out_dir, "discrete_roc.png"), fp, tpr)]

  def write_files(self, out_dir: str) -> List[str]:
    """Writes `fddb_detections.txt` (the official detection-output format, images in the
    order they were fed) and `fddb_DiscROC.txt` ("tpr fp threshold" per line, lowest
    threshold first, as the FDDB tool writes its DiscROC.txt); returns the paths."""
    det = os.path.join(out_dir, "fddb_detections.txt")
    with open(det, "w") as f:
      f.write(format_fddb_detections(self._detections))
    fp, tpr, thr = self.curve()
    roc = os.path.join(out_dir, "fddb_DiscROC.txt")
    with open(roc, "w") as f:
      rows = zip(tpr[::-1], fp[::-1], thr[::-1], strict=True)
      f.writelines(f"{r:.6f} {int(n)} {s:.6f}\n" for r, n, s in rows)
    return [det, roc]


def format_fddb_detections(records) -> str:
  """FDDB detection-output text (docs/papers.md section 5.4): per image its path line, the
  number of detections, then `left top width height score` per detection.

  Args:
    records: iterable of (image path without extension, boxes [N, 4] x, y, w, h, scores [N]).

  Returns:
    The text, detections of an image in descending score.
  """
  lines = []
  for path, boxes, scores in records:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    lines += [path, str(len(scores))]
    for i in np.argsort(-scores, kind="stable"):
      x, y, w, h = boxes[i]
      lines.append(f"{x:.3f} {y:.3f} {w:.3f} {h:.3f} {scores[i]:.6f}")
  return "".join(line + "\n" for line in lines)
