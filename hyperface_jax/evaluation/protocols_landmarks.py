"""AFLW landmark/pose protocol on whole faces (HyperFace; docs/papers.md section 1.12).

Unlike `hyperface_regions` (region batches during training), this scores final per-face
predictions in image pixels: `inputs = "faces"` (evaluation/contract.py), fed by
evaluation/face_runner.py `face_pairs` (one row per annotated face, cropped by its box):

  ev = EVALUATORS.get("aflw_landmarks")()
  ev.reset(); ev.update(batch, outputs) ...; ev.result(); ev.protocol(); ev.plots(out_dir)

Batch keys (numpy, one row per face): `landmarks` [B, 21, 2] true pixels, `visibility`
[B, 21], `box` [B, 4], optional `pose` [B, 3] radians, `valid/<field>` flags and
`example_mask` (0 on padding). Outputs: `landmarks` pixels and optional `pose` radians. A
row counts when its `example_mask` and the `valid/` flags of landmarks and box are set; its
pose when `valid/pose` is set too.

The 300-W protocol lives in protocols_w300.py (its names are re-exported here). NMEs are
fractions of the normalizer (x100 = the papers' %), as in evaluators.py.
"""

from __future__ import annotations

import itertools
import os
from typing import Dict, Sequence

import numpy as np

from hyperface_jax import registry
from hyperface_jax.data import schemes
from hyperface_jax.evaluation import ced_plot, metrics
from hyperface_jax.evaluation.evaluators import DEFAULT_YAW_BINS
from hyperface_jax.evaluation.face_runner import require_output, valid_rows
from hyperface_jax.evaluation.protocols_w300 import (  # noqa: F401  (re-exported)
  LEFT_EYE_68,
  OUTER_CORNERS_68,
  RIGHT_EYE_68,
  W300_FOLDERS,
  W300_NORMALISERS,
  W300LandmarkEvaluator,
  w300_normalizer,
  w300_subset,
)


def box_face_size(box) -> np.ndarray:
  """[N] face size sqrt(w * h) of [N, 4] boxes (square AFLW boxes: the side)."""
  box = np.asarray(box, np.float64).reshape(-1, 4)
  return np.sqrt(np.clip(box[:, 2], 0, None) * np.clip(box[:, 3], 0, None))


@registry.EVALUATORS.register("aflw_landmarks")
class AflwLandmarkEvaluator:
  """AFLW landmark NME per |yaw| bin and pose MAE (docs/papers.md section 1.12).

  NME of a face = mean over its visible true points of ||pred - true|| / sqrt(w * h) of
  the true face box (the "face size" of docs/papers.md 1.12; AFLW boxes are square, so this is
  the box side). Faces are binned by the |yaw| of the TRUE pose in degrees; faces without
  a valid pose count in the overall NME only; |yaw| beyond the last edge joins the last
  bin. Pose MAE: wrapped absolute error in degrees over faces with a valid true pose.
  """

  inputs = "faces"

  def __init__(self, scheme: str = "aflw21", yaw_bins: Sequence[float] = DEFAULT_YAW_BINS):
    """Args: "aflw21" or "aflw19" (without the ears), |yaw| bin edges in degrees."""
    if scheme not in ("aflw21", "aflw19"):
      raise ValueError(f"scheme must be 'aflw21' or 'aflw19'; got {scheme!r}")
    self.scheme = scheme
    self.yaw_bins = np.asarray(yaw_bins, np.float64)
    if self.yaw_bins.ndim != 1 or self.yaw_bins.size < 2 or np.any(np.diff(self.yaw_bins) <= 0):
      raise ValueError(f"yaw_bins must be >= 2 increasing edges in degrees; got {yaw_bins}")
    self.reset()

  def reset(self):
    """Forgets everything accumulated by `update`."""
    self._errors, self._abs_yaw, self._pose_pred, self._pose_true = [], [], [], []

  def update(self, batch: dict, outputs: dict):
    """Adds the rows of one face batch (keys in the module docstring)."""
    ok = valid_rows(batch, "landmarks", "box")
    pred = require_output(outputs, "landmarks", "aflw_landmarks")[ok]
    true = np.asarray(batch["landmarks"], np.float64)[ok]
    vis = np.asarray(batch["visibility"], np.float64)[ok]
    if "valid/visibility" in batch:
      vis = vis * (np.asarray(batch["valid/visibility"])[ok, None] > 0.5)
    if self.scheme == "aflw19":
      pred, true = schemes.aflw21_to_aflw19(pred), schemes.aflw21_to_aflw19(true)
      vis = schemes.aflw21_to_aflw19(vis)
    self._errors.append(metrics.nme(pred, true, vis, box_face_size(np.asarray(batch["box"])[ok])))
    if "pose" in batch:
      pose = np.asarray(batch["pose"], np.float64)[ok]
      valid = valid_rows(batch, "pose")[ok]
    else:
      pose, valid = np.zeros((len(true), 3)), np.zeros(len(true), bool)
    self._abs_yaw.append(
      np.where(valid, np.abs(np.degrees(metrics.wrap_angle(pose[:, 2]))), np.nan)
    )
    if "pose" in outputs and valid.any():
      self._pose_pred.append(np.asarray(outputs["pose"], np.float64)[ok][valid])
      self._pose_true.append(pose[valid])

  def _bin_names(self):
    return [f"{a:g}_{b:g}" for a, b in itertools.pairwise(self.yaw_bins)]

  def arrays(self) -> Dict[str, np.ndarray]:
    """Per-face `landmarks/errors` (NaN: no visible point) and `landmarks/abs_yaw_deg`."""
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    return {"landmarks/errors": cat(self._errors), "landmarks/abs_yaw_deg": cat(self._abs_yaw)}

  def _bin_index(self, yaw):
    idx = np.searchsorted(self.yaw_bins, yaw, side="right") - 1
    return np.minimum(idx, len(self.yaw_bins) - 2)

  def result(self) -> Dict[str, float]:
    """Flat floats: nme, nme per yaw bin and their mean, pose MAE, counts."""
    arr = self.arrays()
    errors, yaw = arr["landmarks/errors"], arr["landmarks/abs_yaw_deg"]
    ok = np.isfinite(errors)
    out = {"count/faces": float(ok.sum())}
    if ok.any():
      out["landmarks/nme"] = float(errors[ok].mean())
    idx = self._bin_index(yaw)
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
    """Human-readable protocol notes, written under "protocol" in results.json."""
    bins = ", ".join(f"[{a:g}, {b:g})" for a, b in itertools.pairwise(self.yaw_bins))
    return {
      "landmarks/nme": (
        f"AFLW ({self.scheme}) NME, docs/papers.md 1.12: per face, mean over "
        "visible true points of the Euclidean pixel error divided by the "
        "face size sqrt(w*h) of the true box; mean over faces. Units: "
        "fraction of face size (x100 = paper %). Each face is cropped by its own true "
        "box (evaluation/face_runner.py)."
      ),
      "landmarks/yaw_bins": (
        f"|yaw| of the true pose in degrees, bins {bins} (the last "
        "bin includes its upper edge and beyond); nme_yaw_mean = "
        "mean of the bin values."
      ),
      "pose": "mean absolute wrapped angle error in degrees, faces with a valid true pose.",
    }

  def plots(self, out_dir: str) -> list:
    """ced.png: CED of the NME over all faces and per |yaw| bin; returns [paths]."""
    arr = self.arrays()
    errors, yaw = arr["landmarks/errors"], arr["landmarks/abs_yaw_deg"]
    idx = self._bin_index(yaw)
    by_yaw = {
      f"|yaw| {a:g}-{b:g}": errors[np.isfinite(yaw) & (idx == i)]
      for i, (a, b) in enumerate(itertools.pairwise(self.yaw_bins))
    }
    path = ced_plot.plot_ced(
      [("all faces", {"model": errors}), ("by |yaw| of the true pose", by_yaw)],
      os.path.join(out_dir, "ced.png"),
      "NME (fraction of face size sqrt(w*h))",
      title=f"AFLW ({self.scheme})",
    )
    return [path] if path else []
