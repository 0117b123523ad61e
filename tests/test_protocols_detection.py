"""Detection protocols: VOC matching and AP, FDDB overlap and discrete ROC."""

import numpy as np
import pytest

from hyperface_jax import registry
from hyperface_jax.evaluation import contract, detection, protocols_detection


def _image(gt_boxes, boxes, scores, gt_ignore=None, ellipses=None, filename="img"):
  """(batch, outputs) of one image in the "images" contract (evaluation/contract.py)."""
  gt = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
  faces = {"box": gt, "valid": {"box": np.ones(len(gt), bool)}}
  if gt_ignore is not None:
    faces["ignore"] = np.asarray(gt_ignore, bool)
  if ellipses is not None:
    faces["ellipse"] = np.asarray(ellipses, np.float64)
  outputs = {"box": np.asarray(boxes, np.float64).reshape(-1, 4), "score": np.asarray(scores)}
  return {"faces": faces, "image/filename": filename}, outputs


def _ap_by_integration(scores, is_tp, num_gt, grid=200001):
  """Independent route: integrate max{precision at recall >= r} over r on a fine grid."""
  order = np.argsort(-np.asarray(scores), kind="stable")
  tp = np.cumsum(np.asarray(is_tp)[order])
  prec = tp / np.arange(1, len(order) + 1)
  rec = tp / num_gt
  r = (np.arange(grid) + 0.5) / grid
  best = np.array([prec[rec >= x].max() if np.any(rec >= x) else 0.0 for x in r[::1000]])
  return best.mean()


def test_match_hand_worked():
  gt = [[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10]]
  ignore = [False, False, True]
  boxes = [
    [0, 0, 10, 10],  # 0.9 -> TP gt0
    [1, 0, 10, 10],  # 0.8 -> duplicate of gt0 (IoU 9/11) -> FP
    [20, 5, 10, 10],  # 0.7 -> IoU 50/150 = 1/3 < 0.5 -> FP
    [40, 0, 10, 10],  # 0.6 -> ignored gt2
    [100, 0, 5, 5],
  ]  # 0.95 -> nothing -> FP
  scores = [0.9, 0.8, 0.7, 0.6, 0.95]
  is_tp, matched = detection.match_detections(boxes, scores, gt, 0.5, ignore)
  assert is_tp.tolist() == [True, False, False, False, False]
  assert matched.tolist() == [0, -1, -1, 2, -1]
  assert detection.ignored_detections(matched, ignore).tolist() == [0, 0, 0, 1, 0]
  # Order of visits is by score: the higher of two overlapping detections wins.
  is_tp, _ = detection.match_detections(
    [[1, 0, 10, 10], [0, 0, 10, 10]], [0.99, 0.5], [[0, 0, 10, 10]]
  )
  assert is_tp.tolist() == [True, False]


def test_average_precision_hand_worked_and_integrated():
  # Ranked TP, FP, TP, FP with 3 faces: envelope 1 on (0, 1/3], 2/3 on (1/3, 2/3], 0 after.
  scores, tp = [0.9, 0.8, 0.7, 0.6], [True, False, True, False]
  assert detection.average_precision_voc(scores, tp, 3) == pytest.approx(5 / 9)
  rng = np.random.default_rng(0)
  s = rng.uniform(size=40)
  t = rng.uniform(size=40) < 0.6
  num_gt = int(t.sum()) + 5
  assert detection.average_precision_voc(s, t, num_gt) == pytest.approx(
    _ap_by_integration(s, t, num_gt), abs=2e-3
  )
  assert np.isnan(detection.average_precision_voc([], [], 0))
  with pytest.raises(ValueError, match="true positives"):
    detection.average_precision_voc([1.0], [True], 0)


def test_voc_evaluator_pools_images():
  ev = registry.EVALUATORS.get("voc_detection_ap")()
  contract.check(type(ev), "voc_detection_ap")
  assert ev.inputs == "images"
  ev.update(*_image([[0, 0, 10, 10]], [[0, 0, 10, 10], [50, 50, 10, 10]], [0.9, 0.8]))
  ev.update(
    *_image(
      [[0, 0, 10, 10], [30, 30, 8, 8], [60, 60, 9, 9]],
      [[0, 0, 10, 10]],
      [0.7],
      gt_ignore=[False, False, True],
    )
  )
  r = ev.result()
  # pooled: 0.9 TP, 0.8 FP, 0.7 TP with 3 counted faces -> same as the hand-worked 5/9
  assert r["detection/ap"] == pytest.approx(5 / 9)
  assert r["count/faces"] == 3 and r["detection/recall"] == pytest.approx(2 / 3)
  assert "VOC" in ev.protocol()["detection/ap"]


def test_ellipse_overlap_analytic():
  # Ellipse (ra 20, rb 10) fully inside a 40 x 20 box around it: overlap = pi*200 / 800.
  o = detection.ellipse_rect_overlap([[20, 10, 0, 50, 50]], [[30, 40, 40, 20]])
  assert o[0, 0] == pytest.approx(np.pi * 200 / 800, abs=0.02)
  # Rotation by 90 degrees needs a 20 x 40 box; a far box gives 0.
  o = detection.ellipse_rect_overlap(
    [[20, 10, np.pi / 2, 50, 50]], [[40, 30, 20, 40], [0, 0, 5, 5]]
  )
  assert o[0, 0] == pytest.approx(np.pi * 200 / 800, abs=0.02) and o[0, 1] == 0


def test_fddb_roc_hand_worked():
  ev = registry.EVALUATORS.get("fddb_discrete_roc")(false_positive_points=(0, 1, 2))
  contract.check(type(ev), "fddb_discrete_roc")
  face = [20, 10, 0, 50, 50]  # the 40 x 20 box [30, 40] matches it (~0.79)
  good, bad = [30, 40, 40, 20], [0, 0, 10, 10]
  # 2nd "good" is a duplicate
  ev.update(*_image(np.zeros((1, 4)), [good, bad, good], [0.9, 0.8, 0.3], ellipses=[face]))
  ev.update(
    *_image(np.zeros((2, 4)), [bad, good], [0.95, 0.5], ellipses=[face, [5, 5, 0, 200, 200]])
  )
  fp, tpr, thr = ev.curve()
  # thresholds 0.95 (FP), 0.9 (TP), 0.8 (FP), 0.5 (TP), 0.3 (duplicate -> FP); 3 faces
  np.testing.assert_allclose(thr, [0.95, 0.9, 0.8, 0.5, 0.3])
  np.testing.assert_array_equal(fp, [1, 1, 2, 2, 3])
  np.testing.assert_allclose(tpr, np.array([0, 1, 1, 2, 2]) / 3)
  r = ev.result()
  assert r["detection/fddb_tpr_at_0_fp"] == 0.0
  assert r["detection/fddb_tpr_at_1_fp"] == pytest.approx(1 / 3)
  assert r["detection/fddb_tpr_at_2_fp"] == pytest.approx(2 / 3)


def test_fddb_hungarian_beats_greedy():
  # Detection A overlaps faces 1 and 2, B only face 1: greedy A->1 would leave B unmatched;
  # the bipartite matching gives 2 true positives.
  overlap = np.array([[0.9, 0.8], [0.7, 0.0]])  # rows faces, cols detections (A, B)
  counts = detection.fddb_match_counts(overlap, [0.9, 0.8])
  np.testing.assert_array_equal(counts, [0, 1, 2])


def _brute_force_tp(weights):
  """Max-weight one-to-one matching by enumeration; returns its number of positive pairs."""
  import itertools

  m, n = weights.shape
  best = (0.0, 0)
  for cols in itertools.permutations(range(n), min(m, n)):
    for rows in itertools.permutations(range(m), min(m, n)):
      w = [weights[r, c] for r, c in zip(rows, cols, strict=True)]
      best = max(best, (round(sum(w), 12), sum(x > 0 for x in w)))
  return best[1]


def test_fddb_match_counts_equal_brute_force():
  rng = np.random.default_rng(1)
  for _ in range(20):
    overlap = rng.uniform(0, 1, size=(3, 4)) * (rng.uniform(size=(3, 4)) < 0.6)
    scores = rng.uniform(size=4)
    counts = detection.fddb_match_counts(overlap, scores)
    order = np.argsort(-scores, kind="stable")
    weights = np.where(overlap > 0.5, overlap, 0.0)
    for k in range(5):
      assert counts[k] == _brute_force_tp(weights[:, order[:k]]), (overlap, scores, k)


def test_voc_toolbox_size_rules():
  ev = protocols_detection.VocDetectionEvaluator(min_face_size=30, min_detection_size=21)
  # face 1 (20 px) is ignored; the 20 x 20 detection is dropped, the 22 x 5 one kept (FP).
  ev.update(
    *_image(
      [[0, 0, 40, 40], [100, 0, 20, 20]],
      [[0, 0, 40, 40], [100, 0, 20, 20], [60, 60, 22, 5], [101, 0, 20, 22]],
      [0.5, 0.9, 0.8, 0.7],
    )
  )
  r = ev.result()
  # [101, 0, 20, 22] (0.7) hits the ignored face: removed. Ranked 0.8 FP, 0.5 TP -> AP 1/2.
  assert r["count/faces"] == 1 and r["count/detections"] == 2
  assert r["detection/ap"] == pytest.approx(0.5)
  assert "w or h < 30 px are ignored" in ev.protocol()["detection/ap"]


def test_voc_box_calibration_hand_worked():
  # Detections 20 % too large and shifted right by 1/12 of their size: after one round of
  # calibration (mean offset tx = -1/12, scale 10/12) the third one, at IoU 0.40 before,
  # overlaps its face at 0.54 and becomes a true positive.
  ev = protocols_detection.VocDetectionEvaluator(calibration_iterations=2)
  ev.update(*_image([[0, 0, 10, 10]], [[0, -1, 12, 12]], [0.9]))  # IoU 100/144
  ev.update(*_image([[100, 100, 20, 20]], [[100, 98, 24, 24]], [0.8]))
  ev.update(*_image([[0, 0, 10, 10]], [[3, -1, 12, 12]], [0.7]))  # IoU 70/174
  r = ev.result()
  assert r["detection/ap"] == pytest.approx(2 / 3)  # TP, TP, FP over 3 faces
  assert r["detection/ap_calibrated"] == pytest.approx(1.0)
  assert r["detection/calibration/x"] == pytest.approx(-1 / 12)
  assert r["detection/calibration/y"] == pytest.approx(0.0)
  assert r["detection/calibration/w"] == pytest.approx(10 / 12)
  assert "detection/ap_calibrated" in ev.protocol()
  assert set(ev.curves()) == {"AP", "calibrated AP"}
  # One iteration = one matching without any move: the plain AP.
  one = protocols_detection.VocDetectionEvaluator(calibration_iterations=1)
  for args in ev._images:  # pylint: disable=protected-access
    one._images.append(args)  # pylint: disable=protected-access
  assert one.result()["detection/ap_calibrated"] == pytest.approx(2 / 3)


def test_plots_are_written(tmp_path):
  ev = protocols_detection.VocDetectionEvaluator()
  ev.update(*_image([[0, 0, 10, 10]], [[0, 0, 10, 10], [50, 50, 5, 5]], [0.9, 0.3]))
  assert ev.plots(str(tmp_path)) == [str(tmp_path / "pr_curve.png")]
  roc = protocols_detection.FddbRocEvaluator()
  roc.update(*_image(np.zeros((1, 4)), [[30, 40, 40, 20]], [0.9], ellipses=[[20, 10, 0, 50, 50]]))
  assert roc.plots(str(tmp_path)) == [str(tmp_path / "discrete_roc.png")]
  assert (tmp_path / "discrete_roc.png").stat().st_size > 0
  with pytest.raises(KeyError, match="ellipse"):
    roc.update(*_image(np.zeros((1, 4)), [], []))
