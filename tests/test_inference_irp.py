"""Iterative Region Proposals (docs/papers.md section 1.8 step 3) with a fake network."""

import numpy as np
import pytest

from hyperface_jax.data import boxes as box_lib
from hyperface_jax.data import face_rect, face_rect_batched, render
from hyperface_jax.inference import irp

TRUE_BOX = np.array([40.0, 40.0, 50.0, 50.0])


def _fake_network(calls):
  """Face score = IoU of the region with TRUE_BOX; landmarks fixed."""

  def network(images, regions):
    calls.append([len(r) for r in regions])
    out = []
    for reg in regions:
      reg = np.asarray(reg, float).reshape(-1, 4)
      n = len(reg)
      out.append(
        {
          "box": reg,
          "score": box_lib.iou(reg, TRUE_BOX[None])[:, 0],
          "landmarks": np.zeros((n, 21, 2)),
          "visibility": np.ones((n, 21)),
          "pose": np.zeros((n, 3)),
          "p_female": np.full(n, 0.5),
        }
      )
    return out

  return network


def test_irp_keeps_the_better_box_and_drops_weak_candidates():
  regions = np.array([[35, 35, 60, 60], [45, 45, 30, 30], [0, 0, 10, 10]], float)
  images = [np.zeros((160, 160, 3), np.uint8)]
  calls = []
  net = _fake_network(calls)
  dets = net(images, [regions])
  # rect_fn: the true box for the first candidate, a worse one for the second.
  boxes = {0: TRUE_BOX, 1: np.array([100.0, 100.0, 30.0, 30.0])}
  state = {"i": 0}

  def rect_fn(lm, vis, w, h):
    assert (w, h) == (160, 160)
    out = np.stack([boxes[k] for k in range(len(lm))])
    state["i"] += 1
    return out

  out = irp.iterative_region_proposals(
    net, images, dets, iterations=1, score_threshold=0.25, rect_fn=rect_fn
  )[0]
  # IoU scores: 2500/3600 = 0.694, 900/2500 = 0.36, 0 -> the third is dropped.
  assert len(out["score"]) == 2
  np.testing.assert_allclose(out["box"][0], TRUE_BOX)
  np.testing.assert_allclose(out["score"][0], 1.0)
  np.testing.assert_allclose(out["box"][1], [45, 45, 30, 30])  # new box scored 0: kept old
  np.testing.assert_allclose(out["score"][1], 0.36)
  np.testing.assert_array_equal(out["irp_improved"], [1, 0])
  assert calls[-1] == [2]  # only the surviving candidates were re-scored


def test_irp_tie_prefers_the_landmark_box_and_zero_iterations_only_filter():
  images = [np.zeros((160, 160, 3), np.uint8)]
  net = _fake_network([])
  dets = net(images, [np.array([[40, 40, 50, 50.0]])])
  moved = np.array([[40.0, 40.0, 50.0, 50.0]])
  out = irp.iterative_region_proposals(
    net, images, dets, iterations=1, rect_fn=lambda lm, v, w, h: moved
  )[0]
  assert out["irp_improved"][0] == 1  # equal score -> the landmark-fitted box
  out0 = irp.iterative_region_proposals(net, images, dets, iterations=0)[0]
  assert out0["irp_improved"][0] == 0 and len(out0["score"]) == 1


def test_irp_unusable_boxes_are_not_rescored():
  images = [np.zeros((100, 100, 3), np.uint8)]
  calls = []
  net = _fake_network(calls)
  dets = net(images, [np.array([[40, 40, 50, 50.0]])])
  out = irp.iterative_region_proposals(
    net, images, dets, rect_fn=lambda lm, v, w, h: np.full((1, 4), np.nan)
  )[0]
  np.testing.assert_allclose(out["box"][0], [40, 40, 50, 50])
  assert calls[-1] == [0]


def test_irp_max_candidates_moves_only_the_best_and_keeps_the_rest():
  """Three candidates (IoU scores 0.694, 0.36, 0.8) with max_candidates=2: the two best
  (rows 0 and 2) are re-scored on the true box; row 1 passes through unchanged."""
  regions = np.array([[35, 35, 60, 60], [45, 45, 30, 30], [40, 40, 50, 40]], float)
  images = [np.zeros((160, 160, 3), np.uint8)]
  calls = []
  net = _fake_network(calls)
  dets = net(images, [regions])
  true_boxes = lambda lm, v, w, h: np.repeat(TRUE_BOX[None], len(lm), 0)  # noqa: E731
  out = irp.iterative_region_proposals(net, images, dets, max_candidates=2, rect_fn=true_boxes)[0]
  assert calls[-1] == [2]
  np.testing.assert_array_equal(out["irp_improved"], [1, 0, 1])
  np.testing.assert_allclose(out["box"][1], regions[1])
  np.testing.assert_allclose(out["score"], [1.0, 0.36, 1.0])
  every = irp.iterative_region_proposals(net, images, dets, max_candidates=0, rect_fn=true_boxes)
  np.testing.assert_array_equal(every[0]["irp_improved"], [1, 1, 1])
  with pytest.raises(ValueError, match="max_candidates"):
    irp.iterative_region_proposals(net, images, dets, max_candidates=-1)


def test_boxes_from_landmarks_matches_ground_truth_box():
  ex = render.render_scene(np.random.default_rng([5, 2]))
  f = ex["faces"]
  got = irp.boxes_from_landmarks(f["landmarks"], f["visibility"], ex["image"].shape[:2])
  ok = np.isfinite(got).all(1)
  assert ok.any()
  ious = np.diag(box_lib.iou(got[ok], f["box"][ok]))
  assert np.all(ious > 0.85), ious


def test_batched_face_rects_equal_the_per_face_calculator():
  lms, viss = [], []
  for s in range(12):
    # Every drawn face, hidden ones too: they give the faces with < 4 visible points.
    f = render.render_scene(
      np.random.default_rng([11, s]), render.SceneConfig(min_visible_fraction=0.0)
    )["faces"]
    lms.append(f["landmarks"])
    viss.append(f["visibility"])
  lm, vis = np.concatenate(lms), np.concatenate(viss)
  noisy = lm + np.random.default_rng(0).normal(0, 2, lm.shape)  # predicted-like landmarks
  lm, vis = np.concatenate([lm, noisy]), np.concatenate([vis, vis])
  want = face_rect.face_rect_from_landmarks(lm, vis, 160, 120)
  got = face_rect_batched.face_rects(lm, vis, 160, 120)
  assert np.isnan(want).any() and np.isfinite(want).any()  # both kinds of faces present
  np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
  np.testing.assert_allclose(got, want, atol=1e-4)


def test_irp_keep_both_adds_the_new_boxes_and_refits_only_them():
  """keep="both" on the first test's candidates: both stay as they were; the first one's
  landmark box (TRUE_BOX, IoU score 1.0) is added, the second one's (score 0 < 0.25) is
  not. A second round refits only the added row."""
  regions = np.array([[35, 35, 60, 60], [45, 45, 30, 30], [0, 0, 10, 10]], float)
  images = [np.zeros((160, 160, 3), np.uint8)]
  calls, fitted = [], []
  net = _fake_network(calls)
  dets = net(images, [regions])

  def rect_fn(lm, vis, w, h):
    fitted.append(len(lm))
    out = np.repeat(TRUE_BOX[None], len(lm), 0)
    if len(lm) == 2:  # round 1: the two candidates; the second one's box misses the face
      out[1] = [100.0, 100.0, 30.0, 30.0]
    return out

  out = irp.iterative_region_proposals(net, images, dets, keep="both", rect_fn=rect_fn)[0]
  np.testing.assert_allclose(out["box"], [[35, 35, 60, 60], [45, 45, 30, 30], TRUE_BOX])
  np.testing.assert_allclose(out["score"], [2500 / 3600, 0.36, 1.0])
  np.testing.assert_array_equal(out["irp_improved"], [0, 0, 1])
  assert out["landmarks"].shape == (3, 21, 2) and out["p_female"].shape == (3,)

  fitted.clear()
  two = irp.iterative_region_proposals(
    net, images, dets, iterations=2, keep="both", rect_fn=rect_fn
  )[0]
  assert fitted == [2, 1] and calls[-2:] == [[2], [1]]
  np.testing.assert_allclose(two["box"][3], TRUE_BOX)
  np.testing.assert_array_equal(two["irp_improved"], [0, 0, 1, 2])
  with pytest.raises(ValueError, match="keep must be one of"):
    irp.iterative_region_proposals(net, images, dets, keep="newest")
