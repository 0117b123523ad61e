"""Trivial-baseline statistics (mean shape, mean pose, majority class) from training regions.

The region evaluator reports each metric beside the same metric of a trivial
predictor fitted on the TRAINING regions (mean over masked rows), so a number
can be judged against "predicting the average".
"""

from __future__ import annotations

import numpy as np

_KEYS = (
  "example_mask",
  "detection",
  "detection_mask",
  "landmarks",
  "visibility",
  "landmarks_mask",
  "visibility_mask",
  "pose",
  "pose_mask",
  "gender",
  "gender_mask",
)


def masked_rows(batch, name, example):
  """Boolean rows where the example is real and `name` (a [B] mask) is 1."""
  return example & (np.asarray(batch[name]) > 0.5)


def _masked_mean(values, weight):
  """Weighted mean over axis 0; NaN where the weight sums to 0."""
  total = weight.sum(axis=0)
  with np.errstate(invalid="ignore", divide="ignore"):
    return (values * weight).sum(axis=0) / total


def baseline_stats(regions) -> dict[str, np.ndarray]:
  """Trivial-baseline statistics from TRAINING regions (mean over masked rows).

  Args:
    regions: dict of numpy arrays per the region batch contract (the whole
      training set or a large sample; `example_mask` optional), or a list of
      such dicts, which are concatenated.

  Returns:
    Keyword arguments for `HyperFaceRegionEvaluator.set_baselines`:
    mean_landmarks [21, 2] (region-normalized; per point over rows where the
    point is visible, falling back to 0 = region centre for never-visible
    points), mean_pose [3] radians, majority_gender int, mean_visibility [21],
    majority_detection int.
  """
  if isinstance(regions, (list, tuple)):
    keys = [k for k in _KEYS if k in regions[0]]  # skip images: not needed, large
    regions = {k: np.concatenate([np.asarray(r[k]) for r in regions]) for k in keys}
  n = np.asarray(regions["detection"]).shape[0]
  example = np.asarray(regions.get("example_mask", np.ones(n))) > 0.5
  lm_rows = masked_rows(regions, "landmarks_mask", example).astype(np.float64)
  vis = np.asarray(regions["visibility"], np.float64)
  point_weight = (lm_rows[:, None] * (vis > 0.5))[..., None]  # [N, 21, 1]
  mean_landmarks = np.nan_to_num(
    _masked_mean(np.asarray(regions["landmarks"], np.float64), point_weight)
  )
  vis_rows = masked_rows(regions, "visibility_mask", example).astype(np.float64)
  mean_visibility = np.nan_to_num(_masked_mean(vis, vis_rows[:, None]), nan=1.0)
  pose_rows = masked_rows(regions, "pose_mask", example).astype(np.float64)
  mean_pose = np.nan_to_num(
    _masked_mean(np.asarray(regions["pose"], np.float64), pose_rows[:, None])
  )
  gender_rows = masked_rows(regions, "gender_mask", example)
  # Ties (including no labelled row) go to the lower label, 0 (male).
  majority_gender = int(
    np.bincount(np.asarray(regions["gender"])[gender_rows], minlength=2).argmax()
  )
  det_rows = masked_rows(regions, "detection_mask", example)
  majority_detection = int(
    np.bincount(np.asarray(regions["detection"])[det_rows], minlength=2).argmax()
  )
  return {
    "mean_landmarks": mean_landmarks.astype(np.float32),
    "mean_pose": mean_pose.astype(np.float32),
    "majority_gender": majority_gender,
    "mean_visibility": mean_visibility.astype(np.float32),
    "majority_detection": majority_detection,
  }
