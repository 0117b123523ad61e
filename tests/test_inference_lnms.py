"""Landmark-based NMS and plain NMS (docs/papers.md section 1.8 step 4) on hand-worked cases."""

import numpy as np
import pytest

from hyperface_jax.data import boxes as box_lib
from hyperface_jax.data import face_rect, render
from hyperface_jax.inference import lnms

# A 21-point "face" spread over a 20 x 20 square at the origin.
_TEMPLATE = np.stack([np.linspace(0, 20, 21), np.tile([0.0, 20.0, 10.0], 7)], 1)


def _dets(offsets, scores, pose=None, p_female=None, vis=None):
  n = len(offsets)
  lm = np.stack([_TEMPLATE + np.asarray(o, float) for o in offsets])
  return {
    "box": box_lib.box_from_points(lm),
    "score": np.asarray(scores, float),
    "landmarks": lm,
    "visibility": np.ones((n, 21)) if vis is None else np.asarray(vis, float),
    "pose": np.zeros((n, 3)) if pose is None else np.asarray(pose, float),
    "p_female": np.zeros(n) if p_female is None else np.asarray(p_female, float),
  }


def _tight_box(lm, vis, w, h):
  del w, h
  return box_lib.box_from_points(lm, vis > 0.5)


def test_greedy_groups_hand_worked():
  # IoU(A, B) = 90 / 110 = 0.818; C is disjoint.
  boxes = np.array([[0, 0, 10, 10], [1, 0, 10, 10], [20, 20, 10, 10]], float)
  groups = lnms.greedy_groups(boxes, [0.9, 0.95, 0.5], iou_threshold=0.8)
  assert [g.tolist() for g in groups] == [[1, 0], [2]]
  groups = lnms.greedy_groups(boxes, [0.9, 0.95, 0.5], iou_threshold=0.82)  # above 0.818
  assert [g.tolist() for g in groups] == [[1], [0], [2]]


def test_plain_nms_keeps_group_leaders_above_threshold():
  dets = _dets([(0, 0), (1, 0), (60, 60)], [0.9, 0.95, 0.55])
  kept = lnms.plain_nms(dets, iou_threshold=0.5, score_threshold=0.5)
  np.testing.assert_allclose(kept["score"], [0.95, 0.55])
  np.testing.assert_allclose(kept["landmarks"][0], _TEMPLATE + [1, 0])
  assert len(lnms.plain_nms(dets, 0.5, score_threshold=0.6)["score"]) == 1


def test_landmark_nms_medians_of_top_k():
  # One face seen by 4 detections (x offsets 0, 2, 4, 30 -> the last one does not overlap
  # enough) and a second face far away.
  dets = _dets(
    [(0, 0), (2, 0), (4, 0), (30, 0), (100, 100)],
    [0.9, 0.8, 0.7, 0.95, 0.6],
    pose=[[0.1, 0, 0], [0.2, 0, 0], [0.6, 0, 0], [0, 0, 0], [0, 0, 0.3]],
    p_female=[0.9, 0.2, 0.7, 0.1, 0.4],
  )
  out = lnms.landmark_nms(
    dets, (200, 200), iou_threshold=0.6, top_k=3, score_threshold=0.5, box_fn=_tight_box
  )
  # Groups by descending leader score: {3}, {0, 1, 2} (IoU(0,1) = 360/440, IoU(0,2) = 0.67),
  # {4}.
  np.testing.assert_allclose(out["score"], [0.95, 0.9, 0.6])
  np.testing.assert_array_equal(out["group_size"], [1, 3, 1])
  np.testing.assert_allclose(out["landmarks"][1], _TEMPLATE + [2, 0])  # median offset 2
  np.testing.assert_allclose(out["pose"][1], [0.2, 0, 0])
  np.testing.assert_allclose(out["p_female"][1], 0.7)
  np.testing.assert_allclose(out["box"][1], [2, 0, 20, 20])  # from the median landmarks
  # K = 2: the median of two is their mean (offsets 0 and 2 -> 1).
  out2 = lnms.landmark_nms(
    dets, (200, 200), iou_threshold=0.6, top_k=2, score_threshold=0.5, box_fn=_tight_box
  )
  np.testing.assert_allclose(out2["landmarks"][1], _TEMPLATE + [1, 0])
  np.testing.assert_allclose(out2["p_female"][1], 0.55)
  # The score threshold drops the 0.6 face.
  out3 = lnms.landmark_nms(
    dets, (200, 200), iou_threshold=0.6, top_k=2, score_threshold=0.65, box_fn=_tight_box
  )
  assert len(out3["score"]) == 2


def test_top_k_mean_score_ranks_well_supported_groups_first():
  # Same detections as above. top_k_mean with K = 3: group {3} (one member, 0.95) scores
  # 0.95 / 3 = 0.3167, group {0, 1, 2} (0.9 + 0.8 + 0.7) / 3 = 0.8, group {4} 0.6 / 3 = 0.2,
  # so the three-window face now comes first.
  dets = _dets([(0, 0), (2, 0), (4, 0), (30, 0), (100, 100)], [0.9, 0.8, 0.7, 0.95, 0.6])
  out = lnms.landmark_nms(
    dets,
    (200, 200),
    iou_threshold=0.6,
    top_k=3,
    score_threshold=0.5,
    score_mode="top_k_mean",
    box_fn=_tight_box,
  )
  np.testing.assert_allclose(out["score"], [0.8, 0.95 / 3, 0.2])
  np.testing.assert_array_equal(out["group_size"], [3, 1, 1])
  np.testing.assert_allclose(out["landmarks"][0], _TEMPLATE + [2, 0])
  # Plain NMS at IoU 0.6 groups the same way on the tight boxes.
  kept = lnms.plain_nms(dets, 0.6, 0.5, score_mode="top_k_mean", top_k=3)
  np.testing.assert_allclose(kept["score"], [0.8, 0.95 / 3, 0.2])
  np.testing.assert_allclose(kept["landmarks"][0], _TEMPLATE)  # the group leader (0.9)
  assert lnms.group_score([0.9, 0.8], "top_k_mean", top_k=4) == pytest.approx(0.425)
  # Box voting: the score-weighted mean of the top-3 boxes x = 0, 2, 4 (scores 0.9, 0.8,
  # 0.7): (0 * 0.9 + 2 * 0.8 + 4 * 0.7) / 2.4 = 11 / 6; grouping on the boxes themselves
  # gives the same groups here (the boxes are the landmark boxes).
  voted = lnms.landmark_nms(
    dets,
    (200, 200),
    iou_threshold=0.6,
    top_k=3,
    score_threshold=0.5,
    group_by="boxes",
    output_box="vote",
    box_fn=_tight_box,
  )
  np.testing.assert_allclose(voted["box"][1], [11 / 6, 0, 20, 20])
  np.testing.assert_allclose(voted["landmarks"][1], _TEMPLATE + [2, 0])
  leader = lnms.landmark_nms(
    dets,
    (200, 200),
    iou_threshold=0.6,
    top_k=3,
    score_threshold=0.5,
    output_box="leader",
    box_fn=_tight_box,
  )
  np.testing.assert_allclose(leader["box"][1], [0, 0, 20, 20])
  # Grouping on the boxes: a detection whose landmarks sit elsewhere but whose box is on
  # the face joins the face's group (landmark-box grouping would keep it apart).
  odd = _dets([(0, 0), (30, 0)], [0.9, 0.8])
  odd["box"][1] = odd["box"][0]
  assert len(lnms.landmark_nms(odd, (200, 200), iou_threshold=0.5, box_fn=_tight_box)["score"]) == 2
  assert (
    len(
      lnms.landmark_nms(odd, (200, 200), iou_threshold=0.5, group_by="boxes", box_fn=_tight_box)[
        "score"
      ]
    )
    == 1
  )
  with pytest.raises(ValueError, match="group_by"):
    lnms.landmark_nms(dets, (200, 200), group_by="points")
  with pytest.raises(ValueError, match="output_box"):
    lnms.landmark_nms(dets, (200, 200), output_box="mean")
  with pytest.raises(ValueError, match="score_mode"):
    lnms.landmark_nms(dets, (200, 200), score_mode="mean")
  with pytest.raises(ValueError, match="score_mode"):
    lnms.plain_nms(dets, score_mode="sum")


def test_landmark_boxes_use_visible_points_only():
  lm = _TEMPLATE[None].copy()
  vis = np.ones((1, 21))
  vis[0, -1] = 0.2  # the point at x = 20 is invisible
  np.testing.assert_allclose(lnms.landmark_boxes(lm, vis), [[0, 0, 19, 20]])
  # Fewer than 2 visible points: all points are used.
  np.testing.assert_allclose(lnms.landmark_boxes(lm, np.zeros((1, 21))), [[0, 0, 20, 20]])


def test_landmark_nms_box_is_face_rect_of_true_landmarks():
  ex = render.render_scene(np.random.default_rng([3, 1]))
  f = ex["faces"]
  dets = {
    "box": f["box"][:1].astype(float),
    "score": np.array([0.99]),
    "landmarks": f["landmarks"][:1].astype(float),
    "visibility": f["visibility"][:1].astype(float),
    "pose": f["pose"][:1],
    "p_female": np.array([0.3]),
  }
  h, w = ex["image"].shape[:2]
  out = lnms.landmark_nms(dets, (h, w))
  want = face_rect.face_rect_from_landmarks(f["landmarks"][0], f["visibility"][0], w, h)
  np.testing.assert_allclose(out["box"][0], want)
  assert box_lib.iou(out["box"][:1], f["box"][:1])[0, 0] > 0.85


def test_landmark_nms_empty_and_bad_k():
  dets = _dets([(0, 0)], [0.1])
  out = lnms.landmark_nms(dets, (50, 50), box_fn=_tight_box)
  assert out["box"].shape == (0, 4) and out["landmarks"].shape == (0, 21, 2)
  with pytest.raises(ValueError, match="top_k"):
    lnms.landmark_nms(dets, (50, 50), top_k=0)
