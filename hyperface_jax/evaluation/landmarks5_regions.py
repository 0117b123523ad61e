"""TCDCN's landmark protocol on region batches, with every task's metric and baselines.

Registered as evaluator "tcdcn_regions" (`inputs = "regions"`, evaluation/contract.py): the
evaluator of the TCDCN training runs (configs/tcdcn_eccv14.py, configs/tcdcn_tpami16.py).

  ev = EVALUATORS.get("tcdcn_regions")(failure_threshold=0.1)
  ev.set_baselines(**baselines.baseline_stats(train_regions))   # mean shape, majorities
  ev.reset(); ev.update(batch, outputs) ...; ev.result(); ev.protocol()

Reports
  * every declared task's own metrics (`task_metrics`: `<task>/accuracy`,
    `landmarks5/error_region`, ...) with `baseline/<task>/<metric>` of the trivial constant
    prediction fitted on the training regions (baselines.task_constants: the mean shape,
    the majority class, the per-attribute majority);
  * for the 5-point task (and the 68-point one of the fine-tuning) the TCDCN protocol
    (docs/papers.md section 2.1 [M]): truth and prediction are de-normalized from the
    region to pixels (boxes.denormalize_landmarks), a point's error is its Euclidean
    distance divided by the TRUE inter-ocular distance, a face's NME the mean over its
    visible points (the points the loss trains, visibility > 0.5), and a face fails when
    its NME exceeds `failure_threshold` (10 %): `<task>/nme_interocular`,
    `<task>/failure_rate_0.1`, with the same numbers of the mean shape as
    `baseline/<task>/...`. Inter-ocular = distance between the eye centres: points 0, 1 of
    the 5-point scheme; for 68 points the centres of the two eyes' six points (36-41,
    42-47, "inter-pupil" as the 300-W tables of docs/papers.md 2.2). Faces whose two true
    eye centres are closer than `min_interocular_px` (a full profile) are left out of the
    inter-ocular numbers (counted in `count/<task>_interocular`);
  * `<task>/nme_box`: the same errors divided by the face box side sqrt(w h) of the
    region's face (`face_box`; HyperFace's normalizer, docs/papers.md 1.12), which stays
    finite on profiles;
  * `<task>/nme_interocular/<pose class>` and `<task>/failure_rate_0.1/<pose class>` when
    the batch carries `pose_class` labels
    (tasks.POSE_CLASSES: the inter-ocular distance shrinks with |yaw|, so the profile
    classes dominate the mean);
  * per-attribute accuracies of `attributes22` (`attributes22/accuracy/<name>`).
All numbers are exact ratios of sums over the rows with example_mask and the task mask 1.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from hyperface_jax import registry, tasks
from hyperface_jax.data.boxes import denormalize_landmarks
from hyperface_jax.evaluation import metrics
from hyperface_jax.evaluation.baselines import masked_rows
from hyperface_jax.evaluation.task_metrics import TaskMetricsEvaluator

# task -> (label key of the points, of the visibility, left-eye indices, right-eye indices)
EYES = {
  "landmarks5": ("landmarks5", "visibility5", (0,), (1,)),
  "landmarks68": ("landmarks68", "visibility68", tuple(range(36, 42)), tuple(range(42, 48))),
}
# Documented default: below 1 px the eye centres coincide (a full profile) and the ratio
# means nothing; such faces are left out of the inter-ocular numbers.
MIN_INTEROCULAR_PX = 1.0


def interocular(points_px, left, right) -> np.ndarray:
  """[N] distance between the centres of the `left` and `right` eye points of [N, K, 2]."""
  p = np.asarray(points_px, np.float64)
  return np.linalg.norm(p[:, list(left)].mean(1) - p[:, list(right)].mean(1), axis=-1)


@registry.EVALUATORS.register("tcdcn_regions")
class TCDCNRegionEvaluator:
  """Region-level TCDCN evaluation (module docstring)."""

  inputs = "regions"

  def __init__(self, failure_threshold: float = 0.1, min_interocular_px=MIN_INTEROCULAR_PX):
    """Args: the failure threshold (fraction of the inter-ocular distance) and the
    smallest true inter-ocular distance in pixels that is scored."""
    if failure_threshold <= 0:
      raise ValueError(f"failure_threshold must be > 0; got {failure_threshold}.")
    self.failure_threshold = float(failure_threshold)
    self.min_interocular_px = float(min_interocular_px)
    self._generic = TaskMetricsEvaluator()
    self._constants: Dict[str, np.ndarray] = {}
    self.reset()

  def set_baselines(self, task_constants=None, **_hyperface_stats):
    """Trivial constant predictions per task (baselines.baseline_stats "task_constants")."""
    self._constants = {k: np.asarray(v) for k, v in dict(task_constants or {}).items()}
    self._generic.set_baselines(task_constants=self._constants)

  def reset(self):
    """Forgets everything accumulated by `update`."""
    self._generic.reset()
    self._parts: Dict[str, List[np.ndarray]] = {}
    self._attr = {}  # (prefix, index) -> [correct, count]

  def _add(self, key, value):
    self._parts.setdefault(key, []).append(np.asarray(value))

  def update(self, batch: dict, outputs: dict):
    """Adds one region batch (region batch contract) and its outputs (numpy)."""
    self._generic.update(batch, outputs)
    example = np.asarray(batch["example_mask"]) > 0.5
    for task, (points_key, vis_key, left, right) in EYES.items():
      if f"{task}_mask" in batch and task in outputs:
        self._update_points(batch, outputs, example, task, points_key, vis_key, left, right)
    if "attributes22_mask" in batch and "attributes22" in outputs:
      rows = masked_rows(batch, "attributes22_mask", example)
      labels = np.asarray(batch["attributes22"])[rows] > 0
      preds = {"": np.asarray(outputs["attributes22"])[rows] > 0}
      if "attributes22" in self._constants:
        preds["baseline/"] = np.broadcast_to(self._constants["attributes22"] > 0, labels.shape)
      for prefix, pred in preds.items():
        correct = (pred == labels).sum(0)
        for i in range(labels.shape[1]):
          acc = self._attr.setdefault((prefix, i), [0.0, 0.0])
          acc[0] += float(correct[i])
          acc[1] += float(labels.shape[0])

  def _update_points(self, batch, outputs, example, task, points_key, vis_key, left, right):
    rows = masked_rows(batch, f"{task}_mask", example)
    if not rows.any():
      return
    region = np.asarray(batch["region"], np.float64)[rows]
    target = denormalize_landmarks(np.asarray(batch[points_key])[rows], region)
    visible = np.asarray(batch[vis_key])[rows]
    eyes = interocular(target, left, right)
    face = np.asarray(batch["face_box"], np.float64)[rows]
    side = np.sqrt(np.maximum(face[:, 2] * face[:, 3], 0.0))
    scored = eyes >= self.min_interocular_px
    preds = {"": np.asarray(outputs[task])[rows]}
    if task in self._constants:
      preds["baseline/"] = np.broadcast_to(self._constants[task], preds[""].shape)
    pose = np.full(len(target), -1)
    if "pose_class_mask" in batch and "pose_class" in batch:
      ok = (np.asarray(batch["pose_class_mask"]) > 0.5)[rows]
      pose = np.where(ok, np.asarray(batch["pose_class"])[rows], -1)
    self._add(f"{task}/pose_class", pose[scored])
    for prefix, pred in preds.items():
      pred_px = denormalize_landmarks(pred, region)
      err_box = metrics.nme(pred_px, target, visible, np.where(side > 0, side, 1.0))
      self._add(f"{prefix}{task}/errors_box", np.where(side > 0, err_box, np.nan))
      err = metrics.nme(pred_px[scored], target[scored], visible[scored], eyes[scored])
      self._add(f"{prefix}{task}/errors", err)

  def arrays(self) -> Dict[str, np.ndarray]:
    """Per-face arrays: `<task>/errors` (inter-ocular NME), `<task>/errors_box`, their
    `baseline/` twins and `<task>/pose_class` (-1 unknown), concatenated over batches."""
    return {k: np.concatenate(v) for k, v in self._parts.items()}

  def result(self) -> Dict[str, float]:
    """Flat metrics (module docstring); undefined ones are left out."""
    out = dict(self._generic.result())
    arr = self.arrays()
    thr = f"{self.failure_threshold:g}"
    for task in EYES:
      if f"{task}/errors" not in arr:
        continue
      out[f"count/{task}_interocular"] = float(np.isfinite(arr[f"{task}/errors"]).sum())
      for prefix in ("", "baseline/"):
        err, box = arr.get(f"{prefix}{task}/errors"), arr.get(f"{prefix}{task}/errors_box")
        if err is None:
          continue
        ok = np.isfinite(err)
        if ok.any():
          out[f"{prefix}{task}/nme_interocular"] = float(err[ok].mean())
          out[f"{prefix}{task}/failure_rate_{thr}"] = metrics.failure_rate(
            err, self.failure_threshold
          )
        if box is not None and np.isfinite(box).any():
          out[f"{prefix}{task}/nme_box"] = float(np.nanmean(box))
        pose = arr[f"{task}/pose_class"]
        for c, name in enumerate(tasks.POSE_CLASSES):
          sel = ok & (pose == c)
          if sel.any():
            out[f"{prefix}{task}/nme_interocular/{name}"] = float(err[sel].mean())
            out[f"{prefix}{task}/failure_rate_{thr}/{name}"] = metrics.failure_rate(
              err[sel], self.failure_threshold
            )
            if not prefix:
              out[f"count/{task}_interocular/{name}"] = float(sel.sum())
    for (prefix, i), (correct, count) in self._attr.items():
      if count > 0:
        out[f"{prefix}attributes22/accuracy/{tasks.ATTRIBUTES22[i]}"] = correct / count
    return {k: float(v) for k, v in out.items() if np.isfinite(v)}

  def protocol(self) -> Dict[str, str]:
    """How each number is computed (module docstring)."""
    thr = f"{self.failure_threshold:g}"
    notes = dict(self._generic.protocol())
    for task, (_, _, left, _) in EYES.items():
      eyes = "points 0 and 1" if len(left) == 1 else "centres of points 36-41 and 42-47"
      notes[f"{task}/nme_interocular"] = (
        "mean over faces of (mean over visible points of the pixel error) / true "
        f"inter-ocular distance ({eyes}); faces with eye centres closer than "
        f"{self.min_interocular_px:g} px left out (docs/papers.md 2.1, TCDCN protocol)."
      )
      notes[f"{task}/failure_rate_{thr}"] = (
        f"fraction of faces whose inter-ocular NME exceeds {self.failure_threshold:g}."
      )
      notes[f"{task}/nme_box"] = (
        "mean over faces of the same point errors / face box side sqrt(w h) (face_box)."
      )
    notes["baseline"] = (
      "baseline/<key>: the same metric of a constant prediction fitted on the training "
      "regions (evaluation/baselines.py task_constants): mean shape, majority class, "
      "per-attribute majority."
    )
    return notes
