"""Numpy evaluation metrics: landmark NME and CED, pose MAE, accuracies, AP.

Pure numpy on host arrays (the evaluator `device_get`s model outputs first), so
the same functions serve training-time evaluation, `predict` and the report.
Protocols follow docs/papers.md section 1.12.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as sk_metrics


def _check_shape(name, array, shape):
  """Raises ValueError unless `array.shape` matches `shape` (None = any)."""
  ok = array.ndim == len(shape) and all(
    s is None or s == a for s, a in zip(shape, array.shape, strict=False)
  )
  if not ok:
    raise ValueError(f"{name} has shape {array.shape}; expected {shape} (None = any size).")


def nme(pred, target, visible, normalizer) -> np.ndarray:
  """Per-face normalized mean error over visible points (docs/papers.md section 1.12).

  Args:
    pred: [N, K, 2] predicted points.
    target: [N, K, 2] true points, same units as `pred`.
    visible: [N, K] 1 where the true point is visible (only those count).
    normalizer: [N] positive per-face normalizer (e.g. face size), same units.

  Returns:
    [N] float64: mean over visible points of ||pred - target|| / normalizer;
    NaN for faces without visible points (callers exclude them).
  """
  pred = np.asarray(pred, np.float64)
  target = np.asarray(target, np.float64)
  visible = np.asarray(visible, np.float64)
  normalizer = np.asarray(normalizer, np.float64)
  _check_shape("pred", pred, (None, None, 2))
  _check_shape("target", target, pred.shape)
  _check_shape("visible", visible, pred.shape[:2])
  _check_shape("normalizer", normalizer, pred.shape[:1])
  if np.any(normalizer <= 0):
    raise ValueError(f"normalizer must be > 0 for every face; got min {normalizer.min()}.")
  dist = np.linalg.norm(pred - target, axis=-1)  # [N, K]
  weight = (visible > 0.5).astype(np.float64)
  count = weight.sum(axis=1)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean = (dist * weight).sum(axis=1) / count
  return np.where(count > 0, mean / normalizer, np.nan)


def _finite(errors) -> np.ndarray:
  errors = np.asarray(errors, np.float64).reshape(-1)
  return errors[np.isfinite(errors)]


def ced_curve(errors, thresholds) -> np.ndarray:
  """Cumulative error distribution: fraction of errors <= each threshold.

  Args:
    errors: [N] per-face errors; NaN entries (no visible points) are dropped.
    thresholds: [T] thresholds.

  Returns:
    [T] fractions in [0, 1] (all NaN when no finite error is left).
  """
  errors = _finite(errors)
  thresholds = np.asarray(thresholds, np.float64)
  if errors.size == 0:
    return np.full(thresholds.shape, np.nan)
  return (errors[None, :] <= thresholds.reshape(-1, 1)).mean(axis=1).reshape(thresholds.shape)


def auc_at(errors, limit: float) -> float:
  """Area under the CED curve on [0, limit], divided by `limit` (so in [0, 1]).

  Computed exactly rather than on a threshold grid: the CED is a step function
  and the integral of 1[e <= t] over t in [0, L] is max(0, L - e), hence
  AUC = mean(clip(1 - e / L, 0, 1)).

  Args:
    errors: [N] per-face errors; NaN entries are dropped.
    limit: upper end of the integration range (> 0).

  Returns:
    The normalized area, NaN when there are no finite errors.
  """
  if limit <= 0:
    raise ValueError(f"limit must be > 0; got {limit}.")
  errors = _finite(errors)
  if errors.size == 0:
    return float("nan")
  return float(np.clip(1.0 - errors / limit, 0.0, 1.0).mean())


def failure_rate(errors, limit: float) -> float:
  """Fraction of faces whose error exceeds `limit` (NaN entries dropped)."""
  errors = _finite(errors)
  if errors.size == 0:
    return float("nan")
  return float((errors > limit).mean())


def wrap_angle(angle):
  """Wraps radians into [-pi, pi) so that 179 deg vs -179 deg differ by 2 deg."""
  return (np.asarray(angle, np.float64) + np.pi) % (2.0 * np.pi) - np.pi


def pose_abs_error_deg(pred, target) -> np.ndarray:
  """[N, 3] absolute wrapped angle errors in degrees (roll, pitch, yaw)."""
  pred = np.asarray(pred, np.float64)
  target = np.asarray(target, np.float64)
  _check_shape("pred", pred, (None, 3))
  _check_shape("target", target, pred.shape)
  return np.degrees(np.abs(wrap_angle(pred - target)))


def pose_mae_deg(pred, target) -> dict[str, float]:
  """Mean absolute pose error in degrees (docs/papers.md section 1.12).

  Args:
    pred: [N, 3] predicted (roll, pitch, yaw) in radians.
    target: [N, 3] true (roll, pitch, yaw) in radians.

  Returns:
    {"roll", "pitch", "yaw", "mean"} in degrees; "mean" averages the three.
    NaN everywhere when N == 0.
  """
  err = pose_abs_error_deg(pred, target)
  if err.shape[0] == 0:
    return {k: float("nan") for k in ("roll", "pitch", "yaw", "mean")}
  mae = err.mean(axis=0)
  return {
    "roll": float(mae[0]),
    "pitch": float(mae[1]),
    "yaw": float(mae[2]),
    "mean": float(mae.mean()),
  }


def accuracy(pred_labels, labels) -> float:
  """Fraction of equal labels; NaN for empty input."""
  pred_labels = np.asarray(pred_labels).reshape(-1)
  labels = np.asarray(labels).reshape(-1)
  if pred_labels.shape != labels.shape:
    raise ValueError(f"pred_labels {pred_labels.shape} and labels {labels.shape} differ.")
  if labels.size == 0:
    return float("nan")
  return float((pred_labels == labels).mean())


def visibility_accuracy(pred, target, threshold: float = 0.5) -> float:
  """Per-point accuracy of regressed visibility thresholded at `threshold`.

  Args:
    pred: [N, K] regressed visibility (or probabilities).
    target: [N, K] true visibility in {0, 1}.
    threshold: pred >= threshold counts as visible.

  Returns:
    Fraction of the N*K points classified correctly; NaN when N == 0.
  """
  pred = np.asarray(pred, np.float64)
  target = np.asarray(target, np.float64)
  _check_shape("pred", pred, (None, None))
  _check_shape("target", target, pred.shape)
  return accuracy(pred >= threshold, target >= 0.5)


def average_precision(scores, labels) -> float:
  """Average precision of `scores` ranking positives (labels == 1) first.

  Uses scikit-learn's `average_precision_score` (a well-kept reference beats a
  hand-written one): AP = sum_n (R_n - R_{n-1}) P_n over score thresholds,
  without interpolation; tied scores form one threshold, so a constant score
  gives AP = positive rate.

  Args:
    scores: [N] higher = more likely a face.
    labels: [N] 1 positive, 0 negative.

  Returns:
    AP in [0, 1]; NaN when there is no positive.
  """
  scores = np.asarray(scores, np.float64).reshape(-1)
  labels = np.asarray(labels).reshape(-1)
  if scores.shape != labels.shape:
    raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ.")
  if not np.isin(labels, (0, 1)).all():
    raise ValueError(f"labels must be 0/1; got values {np.unique(labels)}.")
  if labels.sum() == 0:
    return float("nan")
  return float(sk_metrics.average_precision_score(labels, scores))
