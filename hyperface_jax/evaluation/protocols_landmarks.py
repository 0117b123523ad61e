"""Dataset landmark/pose protocols on whole faces: AFLW (HyperFace) and 300-W.

Unlike `hyperface_regions` (region batches during training), these score final per-face
predictions in image pixels, e.g. from the test-time pipeline matched to ground truth:

  ev = EVALUATORS.get("aflw_landmarks")()
  ev.update(pred_landmarks=..., landmarks=..., visibility=..., box=..., pose=..., pred_pose=...)
  results, protocol = ev.result(), ev.protocol()

NMEs are fractions of the normalizer (x100 = the papers' %), as in evaluators.py.
"""

from __future__ import annotations

import itertools
from typing import Dict, Optional, Sequence

import numpy as np

from hyperface_jax import registry
from hyperface_jax.data import schemes
from hyperface_jax.evaluation import metrics
from hyperface_jax.evaluation.evaluators import DEFAULT_YAW_BINS

# iBUG-68 eye points (docs/papers.md section 5.9): contours 36-41 (image-left eye), 42-47.
LEFT_EYE_68 = tuple(range(36, 42))
RIGHT_EYE_68 = tuple(range(42, 48))
OUTER_CORNERS_68 = (36, 45)
W300_NORMALISERS = ("inter_pupil", "inter_ocular")


def box_face_size(box) -> np.ndarray:
  """[N] face size sqrt(w * h) of [N, 4] boxes (square AFLW boxes: the side)."""
  box = np.asarray(box, np.float64).reshape(-1, 4)
  return np.sqrt(np.clip(box[:, 2], 0, None) * np.clip(box[:, 3], 0, None))


def w300_normalizer(landmarks68, kind: str) -> np.ndarray:
  """[N] 300-W normalizer of true [N, 68, 2] points (docs/papers.md section 5.9).

  inter_pupil: distance between the eye centres (means of the six contour points);
  inter_ocular: distance between the outer eye corners (points 36 and 45).
  """
  pts = np.asarray(landmarks68, np.float64)
  if kind == "inter_pupil":
    a, b = pts[:, LEFT_EYE_68].mean(axis=1), pts[:, RIGHT_EYE_68].mean(axis=1)
  elif kind == "inter_ocular":
    a, b = pts[:, OUTER_CORNERS_68[0]], pts[:, OUTER_CORNERS_68[1]]
  else:
    raise ValueError(f"unknown 300-W normalizer {kind!r}; expected one of {W300_NORMALISERS}")
  return np.linalg.norm(a - b, axis=-1)


@registry.EVALUATORS.register("aflw_landmarks")
class AflwLandmarkEvaluator:
  """AFLW landmark NME per |yaw| bin and pose MAE (docs/papers.md section 1.12).

  NME of a face = mean over its visible true points of ||pred - true|| / sqrt(w * h) of
  the true face box (the "face size" of docs/papers.md 1.12; AFLW boxes are square, so this is
  the box side). Faces are binned by the |yaw| of the TRUE pose in degrees; faces without
  a valid pose count in the overall NME only; |yaw| beyond the last edge joins the last
  bin. Pose MAE: wrapped absolute error in degrees over faces with a valid true pose.
  """

  def __init__(self, scheme: str = "aflw21", yaw_bins: Sequence[float] = DEFAULT_YAW_BINS):
    if scheme not in ("aflw21", "aflw19"):
      raise ValueError(f"scheme must be 'aflw21' or 'aflw19'; got {scheme!r}")
    self.scheme = scheme
    self.yaw_bins = np.asarray(yaw_bins, np.float64)
    if self.yaw_bins.ndim != 1 or self.yaw_bins.size < 2 or np.any(np.diff(self.yaw_bins) <= 0):
      raise ValueError(f"yaw_bins must be >= 2 increasing edges in degrees; got {yaw_bins}")
    self.reset()

  def reset(self):
    self._errors, self._abs_yaw, self._pose_pred, self._pose_true = [], [], [], []

  def update(
    self, pred_landmarks, landmarks, visibility, box, pose=None, pred_pose=None, pose_valid=None
  ):
    """Adds N faces: [N, 21, 2] px predictions and truth, [N, 21] visibility, [N, 4] true
    box, optional [N, 3] true / predicted (roll, pitch, yaw) radians and [N] pose_valid."""
    pred = np.asarray(pred_landmarks, np.float64)
    true = np.asarray(landmarks, np.float64)
    vis = np.asarray(visibility, np.float64)
    if self.scheme == "aflw19":
      pred, true = schemes.aflw21_to_aflw19(pred), schemes.aflw21_to_aflw19(true)
      vis = schemes.aflw21_to_aflw19(vis)
    size = box_face_size(box)
    self._errors.append(metrics.nme(pred, true, vis, size))
    n = pred.shape[0]
    valid = np.ones(n, bool) if pose_valid is None else np.asarray(pose_valid, bool)
    if pose is None:
      valid = np.zeros(n, bool)
      pose = np.zeros((n, 3))
    pose = np.asarray(pose, np.float64)
    self._abs_yaw.append(
      np.where(valid, np.abs(np.degrees(metrics.wrap_angle(pose[:, 2]))), np.nan)
    )
    if pred_pose is not None and valid.any():
      self._pose_pred.append(np.asarray(pred_pose, np.float64)[valid])
      self._pose_true.append(pose[valid])

  def _bin_names(self):
    return [f"{a:g}_{b:g}" for a, b in itertools.pairwise(self.yaw_bins)]

  def result(self) -> Dict[str, float]:
    errors = np.concatenate(self._errors) if self._errors else np.zeros(0)
    yaw = np.concatenate(self._abs_yaw) if self._abs_yaw else np.zeros(0)
    ok = np.isfinite(errors)
    out = {"count/faces": float(ok.sum())}
    if ok.any():
      out["landmarks/nme"] = float(errors[ok].mean())
    idx = np.minimum(np.searchsorted(self.yaw_bins, yaw, side="right") - 1, len(self.yaw_bins) - 2)
    values = []
    for i, name in enumerate(self._bin_names()):
      sel = ok & np.isfinite(yaw) & (idx == i)
      out[f"count/faces_yaw_{name}"] = float(sel.sum())
      if sel.any():
        values.append(float(errors[sel].mean()))
        out[f"landmarks/nme_yaw_{name}"] = values[-1]
    if len(values) == len(self._bin_names()):
      out["landmarks/nme_yaw_mean"] = float(np.mean(values))
    if self._pose_pred:
      mae = metrics.pose_mae_deg(np.concatenate(self._pose_pred), np.concatenate(self._pose_true))
      out.update({f"pose/mae_{k}_deg": v for k, v in mae.items()})
      out["count/pose"] = float(sum(len(p) for p in self._pose_pred))
    return out

  def protocol(self) -> Dict[str, str]:
    bins = ", ".join(f"[{a:g}, {b:g})" for a, b in itertools.pairwise(self.yaw_bins))
    return {
      "landmarks/nme": (
        f"AFLW ({self.scheme}) NME, docs/papers.md 1.12: per face, mean over "
        "visible true points of the Euclidean pixel error divided by the "
        "face size sqrt(w*h) of the true box; mean over faces. Units: "
        "fraction of face size (x100 = paper %)."
      ),
      "landmarks/yaw_bins": (
        f"|yaw| of the true pose in degrees, bins {bins} (the last "
        "bin includes its upper edge and beyond); nme_yaw_mean = "
        "mean of the bin values."
      ),
      "pose": "mean absolute wrapped angle error in degrees, faces with a valid true pose.",
    }


@registry.EVALUATORS.register("w300_landmarks")
class W300LandmarkEvaluator:
  """300-W 68-point NME on the common / challenging / full subsets (docs/papers.md 5.9).

  NME of a face = mean over the 68 points of ||pred - true|| / normalizer, for each of
  the inter-pupil and inter-ocular normalizers (`w300_normalizer`). `full` is the mean
  over all faces of common and challenging (689 faces), unless fed directly.
  """

  def __init__(self, normalizers: Sequence[str] = W300_NORMALISERS):
    for kind in normalizers:
      w300_normalizer(np.zeros((0, 68, 2)), kind)  # validates the name
    self.normalizers = tuple(normalizers)
    self.reset()

  def reset(self):
    self._errors: Dict[str, Dict[str, list]] = {}

  def update(
    self, pred_landmarks68, landmarks68, subset: str, visibility68: Optional[np.ndarray] = None
  ):
    """Adds N faces of `subset` (e.g. "common", "challenging"): [N, 68, 2] pixels."""
    pred = np.asarray(pred_landmarks68, np.float64)
    true = np.asarray(landmarks68, np.float64)
    vis = np.ones(true.shape[:2]) if visibility68 is None else visibility68
    per = self._errors.setdefault(subset, {k: [] for k in self.normalizers})
    for kind in self.normalizers:
      per[kind].append(metrics.nme(pred, true, vis, w300_normalizer(true, kind)))

  def result(self) -> Dict[str, float]:
    errors = {s: {k: np.concatenate(v) for k, v in per.items()} for s, per in self._errors.items()}
    if "full" not in errors and {"common", "challenging"} <= set(errors):
      errors["full"] = {
        k: np.concatenate([errors["common"][k], errors["challenging"][k]]) for k in self.normalizers
      }
    out = {}
    for subset, per in errors.items():
      for kind, e in per.items():
        out[f"landmarks/nme_{kind}/{subset}"] = float(np.nanmean(e))
      out[f"count/faces/{subset}"] = float(np.isfinite(per[self.normalizers[0]]).sum())
    return out

  def protocol(self) -> Dict[str, str]:
    return {
      "landmarks/nme_inter_pupil": (
        "300-W NME (docs/papers.md 5.9): mean over the 68 points of "
        "the pixel error / distance between the true eye "
        "centres (means of points 36-41 and 42-47)."
      ),
      "landmarks/nme_inter_ocular": (
        "300-W NME: normalizer = distance between the true outer eye corners (points 36 and 45)."
      ),
      "subsets": (
        "common = LFPW test + Helen test (554), challenging = iBUG (135), full = "
        "both pooled per face (689). Units: fraction (x100 = %)."
      ),
    }
