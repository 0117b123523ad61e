"""Trivial-baseline statistics (mean shape, mean pose, majority class) from training regions.

The region evaluator reports each metric beside the same metric of a trivial
predictor fitted on the TRAINING regions (mean over masked rows), so a number
can be judged against "predicting the average".
"""

from __future__ import annotations

import numpy as np

from hyperface_jax import registry, tasks

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


def _with_absent_tasks(regions):
  """A run without some HyperFace task (e.g. R-CNN_Face: detection only) has no labels for
  it: those rows get zero masks, so its statistic is the documented fallback (0 = region
  centre, zero pose, class 0, visibility 1) and no metric of it is reported."""
  n = len(next(iter(np.asarray(v) for k, v in regions.items() if k in _KEYS)))
  out = dict(regions)
  out.setdefault("example_mask", np.ones(n, np.float32))
  shapes = {"detection": (), "landmarks": (21, 2), "visibility": (21,), "pose": (3,), "gender": ()}
  for key, shape in shapes.items():
    if f"{key}_mask" not in out:
      out[f"{key}_mask"] = np.zeros(n, np.float32)
    if key not in out:
      out[key] = np.zeros((n,) + shape, np.int64 if shape == () else np.float32)
  return out


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
    majority_detection int, and task_constants ({task: constant prediction} of every
    declared task in the regions, `task_constants`).
  """
  constants = task_constants(regions)
  if isinstance(regions, (list, tuple)):
    keys = [k for k in _KEYS if k in regions[0]]  # skip images: not needed, large
    regions = {k: np.concatenate([np.asarray(r[k]) for r in regions]) for k in keys}
  regions = _with_absent_tasks(regions)
  n = np.asarray(regions["example_mask"]).shape[0]
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
    "task_constants": constants,
  }


def task_constants(regions) -> dict[str, np.ndarray]:
  """The trivial constant prediction of every declared task present in `regions`.

  For each registered task (hyperface_jax/tasks.py) whose labels and `<task>_mask` are in
  the regions, from the rows with example_mask and the task's mask 1, by its loss:
    softmax_cross_entropy: one-hot logits of the majority class (ties: the lower class);
    sigmoid_cross_entropy: logits +1 / -1 per output, the output's majority (ties: -1);
    visibility_weighted_l2: the mean shape, per point over the rows where it is visible
      (0 = region centre for a never-visible point);
    mean_squared_error: the mean label.
  Evaluators score these with the task's own `metrics` (baseline/<task>/<metric>).

  Args:
    regions: a region dict of numpy arrays or a list of them (concatenated).
  Returns:
    {task: float32 array of the task's output_shape}; tasks without a labelled row or with
    another loss are left out.
  """
  if isinstance(regions, (list, tuple)):
    keys = [k for k in regions[0] if not k.startswith("image")]
    regions = {k: np.concatenate([np.asarray(r[k]) for r in regions]) for k in keys}
  first = next(iter(regions.values()))
  n = np.asarray(first).shape[0]
  example = np.asarray(regions.get("example_mask", np.ones(n))) > 0.5
  out = {}
  for name in registry.TASKS.names():
    task = tasks.get(name)
    if task.mask_key not in regions or any(k not in regions for k in task.labels):
      continue
    rows = masked_rows(regions, task.mask_key, example)
    if not rows.any():
      continue
    labels = [np.asarray(regions[k])[rows] for k in task.labels]
    shape = tuple(task.output_shape)
    if task.loss == "softmax_cross_entropy":
      counts = np.bincount(labels[0].astype(np.int64).reshape(-1), minlength=shape[-1])
      const = np.eye(shape[-1], dtype=np.float32)[int(counts.argmax())]
    elif task.loss == "sigmoid_cross_entropy":
      positive = (labels[0] > 0).mean(axis=0)
      const = np.where(positive > 0.5, 1.0, -1.0)
    elif task.loss == "visibility_weighted_l2":
      points, vis = labels[0].astype(np.float64), (labels[1] > 0.5)[..., None]
      const = np.nan_to_num(_masked_mean(points, vis.astype(np.float64)))
    elif task.loss == "mean_squared_error":
      const = labels[0].astype(np.float64).mean(axis=0)
    else:
      continue
    out[name] = np.asarray(const, np.float32).reshape(shape)
  return out
