"""Full-image evaluator (evaluation/full_image.py): hand-worked AP, NME, pose, gender."""

import math

import numpy as np

from hyperface_jax import registry
from hyperface_jax.evaluation import full_image  # noqa: F401  (registers)

_LM = np.stack([np.arange(21.0), np.arange(21.0)], 1)  # any 21 points


def _faces(boxes, valid_box=None, vis=None, pose=None, gender=None):
  n = len(boxes)
  vb = np.ones(n, bool) if valid_box is None else np.asarray(valid_box)
  return {
    "box": np.asarray(boxes, np.float32),
    "landmarks": np.stack([_LM] * n),
    "visibility": np.ones((n, 21)) if vis is None else np.asarray(vis),
    "pose": np.zeros((n, 3)) if pose is None else np.asarray(pose),
    "gender": np.zeros(n, np.int64) if gender is None else np.asarray(gender),
    "valid": {
      k: vb.copy() if k == "box" else np.ones(n, bool)
      for k in ("box", "landmarks", "visibility", "pose", "gender")
    },
  }


def _batch(*args, **kwargs):
  """One image's `batch` of the "images" contract: only `faces` is read."""
  return {"faces": _faces(*args, **kwargs)}


def _dets(boxes, scores, offset=None, pose=None, p_female=None):
  n = len(boxes)
  lm = np.zeros((n, 21, 2)) + _LM + (0 if offset is None else np.asarray(offset)[:, None, :])
  return {
    "box": np.asarray(boxes, float),
    "score": np.asarray(scores, float),
    "landmarks": lm,
    "visibility": np.ones((n, 21)),
    "pose": np.zeros((n, 3)) if pose is None else np.asarray(pose),
    "p_female": np.zeros(n) if p_female is None else np.asarray(p_female),
  }


def test_hand_worked_ap_nme_pose_gender():
  ev = registry.EVALUATORS.get("hyperface_full_image")()
  ev.reset()
  # Image 1: two faces; a TP (0.9, landmarks off by (3, 4) px = 5 px on a 10 px face),
  # a duplicate (0.8, FP) and a TP (0.7, exact landmarks).
  vis = np.ones((2, 21))
  vis[0, :11] = 0  # only 10 visible points on face 0; they alone count in its NME
  ev.update(
    _batch([[0, 0, 10, 10], [20, 20, 10, 10]], vis=vis, gender=[1, 0], pose=[[0, 0, 0], [0, 0, 0]]),
    _dets(
      [[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 10, 10]],
      [0.9, 0.8, 0.7],
      offset=np.array([[3, 4], [0, 0], [0, 0]]),
      pose=[[math.radians(10), 0, 0], [0, 0, 0], [0, math.radians(-20), 0]],
      p_female=[0.8, 0.1, 0.6],
    ),
  )
  # Image 2: one face, one far false positive with the highest score.
  ev.update(_batch([[0, 0, 20, 20]]), _dets([[50, 50, 10, 10]], [0.95]))
  r = ev.result()
  # Ranked: 0.95 F, 0.9 T, 0.8 F, 0.7 T; 3 faces. Precision 0, 1/2, 1/3, 1/2 at recall
  # 0, 1/3, 1/3, 2/3 -> envelope 1/2 on both recall steps -> AP = 2/3 * 1/2 = 1/3.
  np.testing.assert_allclose(r["detection/ap"], 1 / 3)
  np.testing.assert_allclose(r["detection/recall"], 2 / 3)
  np.testing.assert_allclose(r["detection/false_positives_per_image"], 1.0)
  np.testing.assert_allclose(r["landmarks/nme"], (5 / 10 + 0.0) / 2)
  np.testing.assert_allclose(r["pose/mae_roll_deg"], 5.0)  # (10 + 0) / 2
  np.testing.assert_allclose(r["pose/mae_pitch_deg"], 10.0)
  np.testing.assert_allclose(r["pose/mae_mean_deg"], 5.0)
  np.testing.assert_allclose(r["gender/accuracy"], 0.5)  # face 0 right, face 1 wrong
  assert r["count/gt_faces"] == 3 and r["count/landmarks"] == 2


def test_invalid_ground_truth_is_ignored_not_a_false_positive():
  ev = full_image.FullImageEvaluator()
  faces = _batch([[0, 0, 10, 10], [40, 40, 10, 10]], valid_box=[True, False])
  matched = ev.update(faces, _dets([[40, 40, 10, 10], [0, 0, 10, 10]], [0.9, 0.8]))
  np.testing.assert_array_equal(matched, [-1, 0])
  r = ev.result()
  assert r["count/gt_faces"] == 1 and r["count/detections"] == 1
  np.testing.assert_allclose(r["detection/ap"], 1.0)


def test_no_detections_gives_zero_ap_and_no_face_metrics():
  ev = full_image.FullImageEvaluator()
  ev.update(_batch([[0, 0, 10, 10]]), _dets(np.zeros((0, 4)), np.zeros(0)))
  r = ev.result()
  assert r["detection/ap"] == 0.0 and "landmarks/nme" not in r


def test_min_visible_landmarks_ignores_hidden_faces():
  vis = np.ones((2, 21))
  vis[1, 2:] = 0  # face 1 shows only 2 landmarks
  faces = _batch([[0, 0, 10, 10], [40, 40, 10, 10]], vis=vis)
  dets = _dets([[40, 40, 10, 10], [0, 0, 10, 10]], [0.9, 0.8])
  strict = full_image.FullImageEvaluator()
  strict.update(faces, _dets(np.zeros((0, 4)), np.zeros(0)))
  assert strict.result()["count/gt_faces"] == 2
  lenient = full_image.FullImageEvaluator(min_visible_landmarks=4)
  lenient.update(faces, _dets([[40, 40, 10, 10]], [0.9]))  # on the hidden face: ignored
  r = lenient.result()
  assert r["count/gt_faces"] == 1 and r["count/detections"] == 0 and r["detection/ap"] == 0
  lenient.reset()
  lenient.update(faces, dets)
  np.testing.assert_allclose(lenient.result()["detection/ap"], 1.0)


def test_follows_the_contract_and_plots(tmp_path):
  from hyperface_jax.evaluation import contract

  contract.check(full_image.FullImageEvaluator, "hyperface_full_image")
  ev = full_image.FullImageEvaluator()
  assert ev.inputs == "images"
  ev.update(_batch([[0, 0, 10, 10]]), _dets([[0, 0, 10, 10], [30, 30, 5, 5]], [0.9, 0.4]))
  assert "detection" in ev.protocol()
  (path,) = ev.plots(str(tmp_path))
  assert path == str(tmp_path / "pr_curve.png") and (tmp_path / "pr_curve.png").stat().st_size
  empty = full_image.FullImageEvaluator()
  no_faces = {"faces": {"box": np.zeros((0, 4)), "valid": {"box": np.zeros(0, bool)}}}
  empty.update(no_faces, _dets(np.zeros((0, 4)), np.zeros(0)))
  assert "detection/ap" not in empty.result()  # no counted face: left out, not NaN
