"""Metrics and the region evaluator on hand-worked numbers."""

import numpy as np
import pytest

from hyperface_jax import registry
from hyperface_jax.evaluation import evaluators, metrics


def test_nme_two_points_by_hand():
  pred = np.array([[[0.0, 0.0], [3.0, 4.0]], [[0.0, 0.0], [3.0, 4.0]], [[1.0, 1.0], [2.0, 2.0]]])
  target = np.zeros_like(pred)
  visible = np.array([[1, 1], [1, 0], [0, 0]])
  # Face 0: errors 0 and 5 -> mean 2.5 / 5 = 0.5; face 1: only the exact point; face 2: none.
  out = metrics.nme(pred, target, visible, np.array([5.0, 5.0, 1.0]))
  np.testing.assert_allclose(out[:2], [0.5, 0.0])
  assert np.isnan(out[2])


def test_nme_rejects_bad_input():
  with pytest.raises(ValueError, match="visible"):
    metrics.nme(np.zeros((2, 3, 2)), np.zeros((2, 3, 2)), np.ones((2, 4)), np.ones(2))
  with pytest.raises(ValueError, match="normalizer"):
    metrics.nme(np.zeros((1, 3, 2)), np.zeros((1, 3, 2)), np.ones((1, 3)), np.zeros(1))


def test_ced_auc_failure_by_hand():
  errors = np.array([0.0, 0.05, 0.2, np.nan])  # NaN: a face without visible points
  np.testing.assert_allclose(
    metrics.ced_curve(errors, [0.0, 0.05, 0.1, 0.3]), [1 / 3, 2 / 3, 2 / 3, 1.0]
  )
  # Exact area: mean(clip(1 - e / 0.1, 0, 1)) = (1 + 0.5 + 0) / 3.
  assert metrics.auc_at(errors, 0.1) == pytest.approx(0.5)
  assert metrics.failure_rate(errors, 0.1) == pytest.approx(1 / 3)
  # Independent check: trapezoid integration of the CED on a fine grid.
  t = np.linspace(0, 0.1, 100001)
  numeric = np.trapezoid(metrics.ced_curve(errors, t), t) / 0.1
  assert metrics.auc_at(errors, 0.1) == pytest.approx(numeric, abs=1e-4)


def test_pose_mae_wraps_angles():
  pred = np.radians([[179.0, 10.0, -30.0], [0.0, 0.0, 90.0]])
  target = np.radians([[-179.0, 0.0, -20.0], [0.0, 4.0, 80.0]])
  mae = metrics.pose_mae_deg(pred, target)
  # roll: 2 deg (wrapped, not 358) and 0; pitch: 10 and 4; yaw: 10 and 10.
  assert mae["roll"] == pytest.approx(1.0)
  assert mae["pitch"] == pytest.approx(7.0)
  assert mae["yaw"] == pytest.approx(10.0)
  assert mae["mean"] == pytest.approx(6.0)


def test_accuracies_by_hand():
  assert metrics.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
  pred = np.array([[0.6, 0.4], [0.5, 0.1]])
  target = np.array([[1, 1], [0, 0]])
  # (0.6 -> 1 ok) (0.4 -> 0 wrong) (0.5 -> 1 wrong) (0.1 -> 0 ok).
  assert metrics.visibility_accuracy(pred, target) == 0.5


def test_average_precision_by_hand():
  # Ranked: +, -, +, -. Precision at the two positives: 1/1 and 2/3; each adds recall 1/2.
  ap = metrics.average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
  assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
  assert metrics.average_precision(np.zeros(5), [1, 0, 0, 1, 0]) == pytest.approx(0.4)
  assert np.isnan(metrics.average_precision([0.1, 0.2], [0, 0]))
  with pytest.raises(ValueError, match="0/1"):
    metrics.average_precision([0.1, 0.2], [0, 2])


def _batch():
  """4 rows: 0 face with pose, 1 face without pose, 2 non-face, 3 padding."""
  b = 4
  landmarks = np.zeros((b, 21, 2), np.float32)
  landmarks[0] = (0.3, 0.4)  # pixels (80, 90) in the 100x100 region
  landmarks[0, :5] = (-0.4, -0.4)  # invisible points: must not count
  landmarks[1] = (0.0, 0.1)  # pixels (50, 60)
  visibility = np.ones((b, 21), np.float32)
  visibility[0, :5] = 0
  return {
    "image": np.zeros((b, 8, 8, 3), np.float32),
    "detection": np.array([1, 1, 0, 1], np.int32),
    "detection_mask": np.array([1, 1, 1, 0], np.float32),
    "landmarks": landmarks,
    "visibility": visibility,
    "landmarks_mask": np.array([1, 1, 0, 1], np.float32),
    "visibility_mask": np.array([1, 1, 0, 1], np.float32),
    "pose": np.array(
      [[0, 0.1, np.radians(10)], [0, 0, np.radians(45)], [0, 0, 0], [0, 0, 0]], np.float32
    ),
    "pose_mask": np.array([1, 0, 0, 1], np.float32),
    "gender": np.array([1, 0, 0, 1], np.int32),
    "gender_mask": np.array([1, 1, 0, 1], np.float32),
    "example_mask": np.array([1, 1, 1, 0], np.float32),
    "region": np.tile(np.array([[0, 0, 100, 100]], np.float32), (b, 1)),
    "face_box": np.array([[25, 25, 50, 50]] * 2 + [[0, 0, 0, 0]] * 2, np.float32),
    "iou": np.array([0.9, 0.9, 0.0, 0.9], np.float32),
  }


def _perfect_outputs(batch):
  out = {
    "landmarks": batch["landmarks"].copy(),
    "visibility": batch["visibility"].copy(),
    "pose": batch["pose"].copy(),
    "gender": np.eye(2, dtype=np.float32)[batch["gender"]] * 10,
    "detection": np.eye(2, dtype=np.float32)[batch["detection"]] * 10,
  }
  # The padding row is wildly wrong: it must be ignored.
  out["landmarks"][3] += 100.0
  out["pose"][3] += 1.0
  out["gender"][3] = (10, -10)
  out["detection"][3] = (10, -10)
  return out


def test_evaluator_perfect_predictions_and_masks():
  ev = registry.EVALUATORS.get("hyperface_regions")()
  ev.reset()
  batch = _batch()
  ev.update(batch, _perfect_outputs(batch))
  res = ev.result()
  assert res["landmarks/nme"] == 0.0
  assert res["landmarks/nme_yaw_0_30"] == 0.0
  assert "landmarks/nme_yaw_30_60" not in res  # row 1 (yaw 45) has no valid pose
  assert res["count/landmarks_yaw_30_60"] == 0
  assert res["landmarks/auc_0.1"] == 1.0 and res["landmarks/failure_rate_0.1"] == 0.0
  assert res["visibility/accuracy"] == 1.0
  assert res["pose/mae_mean_deg"] == pytest.approx(0.0, abs=1e-6)
  assert res["gender/accuracy"] == 1.0
  assert res["detection/ap"] == 1.0 and res["detection/accuracy"] == 1.0
  assert (
    res["count/examples"],
    res["count/landmarks"],
    res["count/pose"],
    res["count/gender"],
    res["count/detection"],
  ) == (3, 2, 1, 2, 3)
  assert all(isinstance(v, float) for v in res.values())
  assert set(ev.protocol()) >= {"landmarks/nme", "landmarks/yaw_bins", "pose"}


def test_evaluator_errors_and_baselines_by_hand():
  batch = _batch()
  out = _perfect_outputs(batch)
  out["landmarks"][0] += (0.1, 0.0)  # 10 px off in a 50 px face: NME 0.2
  ev = evaluators.HyperFaceRegionEvaluator()
  ev.update(batch, out)  # baselines may be set after update
  ev.set_baselines(
    mean_landmarks=np.zeros((21, 2)),
    mean_pose=np.zeros(3),
    majority_gender=1,
    mean_visibility=np.full(21, 0.4),
    majority_detection=1,
  )
  res = ev.result()
  assert res["landmarks/nme"] == pytest.approx(0.1)  # (0.2 + 0) / 2
  assert res["landmarks/nme_yaw_0_30"] == pytest.approx(0.2)
  # Mean shape = region centre (50, 50): row 0 visible points at (80, 90) -> 50 px / 50;
  # row 1 at (50, 60) -> 10 px / 50.
  assert res["baseline/landmarks/nme"] == pytest.approx((1.0 + 0.2) / 2)
  assert res["baseline/landmarks/nme_yaw_0_30"] == pytest.approx(1.0)
  assert res["baseline/landmarks/failure_rate_0.1"] == 1.0
  assert res["baseline/pose/mae_roll_deg"] == pytest.approx(0.0)
  assert res["baseline/pose/mae_pitch_deg"] == pytest.approx(np.degrees(0.1), rel=1e-5)
  assert res["baseline/pose/mae_yaw_deg"] == pytest.approx(10.0, rel=1e-5)
  assert res["baseline/gender/accuracy"] == 0.5  # labels 1, 0 vs majority 1
  assert res["baseline/visibility/accuracy"] == pytest.approx(5 / 42)  # predicts all invisible
  assert res["baseline/detection/ap"] == pytest.approx(2 / 3)
  assert res["baseline/detection/accuracy"] == pytest.approx(2 / 3)
  arr = ev.arrays()
  np.testing.assert_allclose(arr["landmarks/errors"], [0.2, 0.0], atol=1e-6)
  np.testing.assert_allclose(arr["landmarks/abs_yaw_deg"][0], 10.0, rtol=1e-5)
  assert np.isnan(arr["landmarks/abs_yaw_deg"][1])


def test_evaluator_rejects_missing_face_box():
  batch = _batch()
  batch["face_box"][0] = 0
  ev = evaluators.HyperFaceRegionEvaluator()
  with pytest.raises(ValueError, match="face_box"):
    ev.update(batch, _perfect_outputs(batch))


def test_baseline_stats_by_hand():
  batch = _batch()
  stats = evaluators.baseline_stats(batch)
  # Landmark rows 0, 1 (row 3 is padding); points 0-4 only visible in row 1.
  np.testing.assert_allclose(stats["mean_landmarks"][0], (0.0, 0.1), atol=1e-6)
  np.testing.assert_allclose(stats["mean_landmarks"][10], (0.15, 0.25), atol=1e-6)
  np.testing.assert_allclose(stats["mean_visibility"][:5], 0.5)
  np.testing.assert_allclose(stats["mean_visibility"][5:], 1.0)
  np.testing.assert_allclose(stats["mean_pose"], (0, 0.1, np.radians(10)), rtol=1e-6)
  assert stats["majority_gender"] == 0  # tie 1 vs 1 goes to 0
  assert stats["majority_detection"] == 1  # labels 1, 1, 0
  # A list of batches gives the same statistics as their concatenation.
  twice = evaluators.baseline_stats([batch, batch])
  np.testing.assert_allclose(twice["mean_landmarks"], stats["mean_landmarks"])
