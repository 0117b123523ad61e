"""Tests of box utilities, region sampling and IoU labelling (docs/papers.md sections 1.4, 1.5)."""

import numpy as np
import pytest
from scene_fixtures import KEYS, make_faces  # noqa: F401

from hyperface_jax.data import boxes, sampling


def centred_square(face, iou):
  """A square concentric with square `face` [x, y, s, s] and the given IoU (< 1)."""
  x, y, s, _ = face
  side = s * np.sqrt(iou)  # inside the face: IoU = side^2 / s^2
  return [x + s / 2 - side / 2, y + s / 2 - side / 2, side, side]


def test_iou_hand_worked():
  a = np.array([[0, 0, 10, 10]])
  b = np.array(
    [[0, 0, 10, 10], [5, 0, 10, 10], [5, 5, 10, 10], [2, 2, 4, 4], [20, 20, 5, 5], [10, 0, 5, 5]]
  )
  # inter/union: 100/100, 50/150, 25/175, 16/100, disjoint, touching edge.
  np.testing.assert_allclose(boxes.iou(a, b)[0], [1, 1 / 3, 1 / 7, 0.16, 0, 0])
  assert boxes.iou(b, a).shape == (6, 1)
  np.testing.assert_allclose(boxes.iou(b, a)[:, 0], boxes.iou(a, b)[0])
  assert boxes.iou(a, [[0, 0, 0, 0]])[0, 0] == 0  # degenerate box: no NaN


def test_box_conversions_and_points():
  b = np.array([[1.0, 2.0, 3.0, 4.0]])
  np.testing.assert_allclose(boxes.xywh_to_corners(b), [[1, 2, 4, 6]])
  np.testing.assert_allclose(boxes.corners_to_xywh(boxes.xywh_to_corners(b)), b)
  pts = np.array([[1, 2], [3, 7], [100, 100]], np.float32)
  np.testing.assert_allclose(boxes.box_from_points(pts, [1, 1, 0]), [1, 2, 2, 5])
  np.testing.assert_allclose(boxes.box_from_points(pts), [1, 2, 99, 98])
  np.testing.assert_allclose(boxes.box_from_points(pts, [0, 0, 0]), [0, 0, 0, 0])
  # Mirror in a 20 px wide image: x -> 19 - x - w; twice is the identity.
  np.testing.assert_allclose(boxes.flip_boxes(b, 20), [[15, 2, 3, 4]])
  np.testing.assert_allclose(boxes.flip_boxes(boxes.flip_boxes(b, 20), 20), b)
  # Half of [-5.5, 4.5] x [0, 10] lies left of the image edge -0.5.
  np.testing.assert_allclose(boxes.inside_fraction([[-5.5, 0, 10, 10]], (50, 50)), [0.5])
  with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
    boxes.iou(np.zeros((2, 3)), b)


def test_label_rules_hand_placed():
  face = [100.0, 100.0, 100.0, 100.0]
  faces = make_faces([face])
  faces["landmarks"][0, 0] = (175.0, 130.0)
  regions = np.array(
    [face, centred_square(face, 0.4), centred_square(face, 0.2), [300, 300, 50, 50]]
  )
  lab = sampling.label_regions(regions, faces)
  np.testing.assert_allclose(lab["iou"], [1.0, 0.4, 0.2, 0.0], atol=1e-6)
  np.testing.assert_array_equal(lab["detection"], [1, 0, 0, 0])
  np.testing.assert_array_equal(lab["detection_mask"], [1, 0, 1, 1])
  np.testing.assert_array_equal(lab["landmarks_mask"], [1, 1, 0, 0])
  np.testing.assert_array_equal(lab["visibility_mask"], [1, 1, 0, 0])
  np.testing.assert_array_equal(lab["pose_mask"], [1, 0, 0, 0])
  np.testing.assert_array_equal(lab["gender_mask"], [1, 0, 0, 0])
  np.testing.assert_array_equal(lab["gender"], [1, 0, 0, 0])
  np.testing.assert_allclose(lab["pose"][0], faces["pose"][0])
  np.testing.assert_allclose(lab["pose"][1:], 0)
  # docs/papers.md section 1.5: region centre (150, 150), size 100 -> (0.25, -0.2).
  np.testing.assert_allclose(lab["landmarks"][0, 0], [0.25, -0.2], atol=1e-6)
  side = regions[1, 2]
  np.testing.assert_allclose(lab["landmarks"][1, 0], [25 / side, -20 / side], rtol=1e-5)
  np.testing.assert_allclose(lab["landmarks"][2:], 0)
  np.testing.assert_allclose(lab["visibility"][:2], faces["visibility"][[0, 0]])
  np.testing.assert_allclose(lab["face_box"][:3], [face] * 3)
  np.testing.assert_allclose(lab["face_box"][3], 0)
  np.testing.assert_allclose(lab["region"], regions, rtol=1e-6)


def test_label_validity_and_matching():
  faces = make_faces(
    [[0, 0, 50, 50], [100, 0, 50, 50]],
    gender=[-1, 0],
    valid={"pose": [True, False], "landmarks": [False, True]},
  )
  regions = np.array([[0, 0, 50, 50], [100, 0, 50, 50], [90, 0, 50, 50]])
  lab = sampling.label_regions(regions, faces)
  # Gender -1 masks; pose invalid masks; matched face = argmax IoU.
  np.testing.assert_array_equal(lab["gender_mask"], [0, 1, 1])
  np.testing.assert_array_equal(lab["pose_mask"], [1, 0, 0])
  np.testing.assert_array_equal(lab["landmarks_mask"], [0, 1, 1])
  np.testing.assert_allclose(lab["face_box"][2], [100, 0, 50, 50])
  np.testing.assert_allclose(lab["iou"][2], 40 * 50 / (2 * 2500 - 40 * 50))
  # An invalid box is never matched.
  faces["valid"]["box"][:] = False
  lab = sampling.label_regions(regions, faces)
  np.testing.assert_array_equal(lab["detection"], [0, 0, 0])
  np.testing.assert_allclose(lab["iou"], 0)


def test_label_no_faces_and_threshold_override():
  lab = sampling.label_regions(np.array([[0, 0, 10, 10]]), make_faces([]))
  assert lab["detection"][0] == 0 and lab["detection_mask"][0] == 1
  assert lab["landmarks_mask"][0] == 0 and lab["iou"][0] == 0
  face = [0.0, 0.0, 100.0, 100.0]
  lab = sampling.label_regions(
    np.array([centred_square(face, 0.45)]), make_faces([face]), {"detection_positive": 0.4}
  )
  assert lab["detection"][0] == 1 and lab["pose_mask"][0] == 0
  with pytest.raises(ValueError, match="detection_pos"):
    sampling.label_regions(np.array([face]), make_faces([face]), {"detection_pos": 0.4})


def test_sample_regions_balance_and_geometry():
  faces = make_faces([[60, 40, 80, 80], [200, 150, 60, 60]])
  hw = (300, 400)
  for seed in range(10):
    rng = np.random.default_rng(seed)
    reg = sampling.sample_regions(rng, hw, faces["box"], faces["valid"]["box"], 16, 0.5)
    assert reg.shape == (16, 4) and reg.dtype == np.float32
    np.testing.assert_allclose(reg[:, 2], reg[:, 3])  # squares
    m = boxes.iou(reg, faces["box"]).max(axis=1)
    assert (m > 0.5).sum() == 8  # exact per scene when feasible
    assert np.all(boxes.inside_fraction(reg, hw) >= 0.5)
    # 4 near-face regions (IoU <= 0.5, > 0) and 4 clean background ones.
    assert ((m <= 0.5) & (m > 0.05)).sum() >= 4
    assert (m < 0.35).sum() >= 4
  # No faces: only background, sides within 0.15-0.9 of min(H, W), fully inside.
  reg = sampling.sample_regions(
    np.random.default_rng(0), hw, np.zeros((0, 4)), np.zeros(0, bool), 32, 0.5
  )
  assert np.all((reg[:, 2] >= 0.15 * 300 - 1e-3) & (reg[:, 2] <= 0.9 * 300 + 1e-3))
  np.testing.assert_allclose(boxes.inside_fraction(reg, hw), 1.0)


def test_sample_regions_iou_spread_and_fallback():
  faces = make_faces([[100, 100, 100, 100]])
  rng = np.random.default_rng(1)
  ious = np.concatenate(
    [
      boxes.iou(
        sampling.sample_regions(rng, (400, 400), faces["box"], faces["valid"]["box"], 32, 0.5),
        faces["box"],
      )[:, 0]
      for _ in range(20)
    ]
  )
  pos = ious[ious > 0.5]
  assert pos.max() > 0.85 and np.mean(pos > 0.7) > 0.08  # positives spread up to ~1
  near = ious[(ious > 0) & (ious <= 0.5)]
  assert near.min() < 0.3 and np.mean(near > 0.35) > 0.3  # landmark-only regions exist
  # A face filling the image: no clean background exists; still the right count.
  big = make_faces([[0, 0, 50, 50]])
  reg = sampling.sample_regions(
    np.random.default_rng(0), (50, 50), big["box"], big["valid"]["box"], 10, 0.5
  )
  assert reg.shape == (10, 4)
  assert (boxes.iou(reg, big["box"])[:, 0] > 0.5).sum() >= 5


def test_near_regions_wider_jitter_gives_hard_negatives():
  # The demo's tight jitter (0.8-1.3 x side, shift 0.15) almost never yields IoU <= 0.5,
  # so near regions fall back to background; a wider near jitter makes regions that cut
  # through the face (0.2 <= IoU <= 0.5: near misses and landmark-only regions).
  faces = make_faces([[100, 100, 60, 60]])
  tight = dict(scale_range=(0.8, 1.3), shift_range=0.15)
  wide = dict(tight, near_scale_range=(0.35, 2.5), near_shift_range=0.6)

  def ious(cfg, seed):
    rng = np.random.default_rng(seed)
    reg = sampling.sample_regions(
      rng, (400, 400), faces["box"], faces["valid"]["box"], 32, 0.0, dict(cfg, near_fraction=1.0)
    )
    return boxes.iou(reg, faces["box"])[:, 0]

  narrow_ious = np.concatenate([ious(tight, s) for s in range(5)])
  wide_ious = np.concatenate([ious(wide, s) for s in range(5)])
  assert np.all(wide_ious <= 0.5) and np.all(narrow_ious <= 0.5)
  hard = lambda m: np.mean((m >= 0.2) & (m <= 0.5))
  assert hard(wide_ious) > 0.5 > 0.1 > hard(narrow_ious)  # measured: 0.66 vs 0.03
  # The wide jitter leaves the positives' distribution alone (same seed, same positives).
  a = sampling.sample_regions(
    np.random.default_rng(3), (400, 400), faces["box"], faces["valid"]["box"], 4, 1.0, tight
  )
  b = sampling.sample_regions(
    np.random.default_rng(3), (400, 400), faces["box"], faces["valid"]["box"], 4, 1.0, wide
  )
  np.testing.assert_array_equal(a, b)


def test_window_negatives_come_from_the_test_time_pyramid():
  # negative_source="windows": non-positive regions drawn from the test-time pyramid.
  # Near ones overlap the face with 0 < IoU <= 0.5, many of them face PARTS (a window
  # smaller than the face, mostly inside it), which jitter around the face box (scale
  # 0.8-1.3) never produces; background ones have IoU < 0.35 and, like the test-time
  # windows, some reach past the image edge, which random background squares never do.
  faces = make_faces([[50, 40, 70, 70]])
  cfg = dict(
    scale_range=(0.8, 1.3),
    shift_range=0.15,
    negative_source="windows",
    window_min_side=32.0,
    window_scale_step=1.3,
    window_stride_fraction=0.3,
    window_border_fraction=0.4,
  )

  def regions(near_fraction, source):
    return np.concatenate(
      [
        sampling.sample_regions(
          np.random.default_rng(s),
          (160, 160),
          faces["box"],
          faces["valid"]["box"],
          16,
          0.0,
          dict(cfg, near_fraction=near_fraction, negative_source=source),
        )
        for s in range(10)
      ]
    )

  def part_share(r):
    inside = boxes.intersection(r, faces["box"])[:, 0] / (r[:, 2] * r[:, 3])
    return np.mean((r[:, 2] < 70) & (inside > 0.7))

  near = regions(1.0, "windows")
  m = boxes.iou(near, faces["box"])[:, 0]
  assert np.all((m > 0) & (m <= 0.5))
  # Sides within half a pyramid step of the pyramid [32, 160].
  assert near[:, 2].min() >= 32 / np.sqrt(1.3) - 1e-4
  assert near[:, 2].max() <= 160 * np.sqrt(1.3) + 1e-4
  assert part_share(near) > 0.1 > part_share(regions(1.0, "random"))  # measured 0.2 vs 0
  background = regions(0.0, "windows")
  assert np.all(boxes.iou(background, faces["box"])[:, 0] < 0.35)
  outside = lambda r: np.mean(boxes.inside_fraction(r, (160, 160)) < 0.999)
  assert outside(background) > 0.2 and outside(regions(0.0, "random")) == 0.0  # 0.5 vs 0
  # The positives are untouched by the negative source (same seed, same positives).
  a = sampling.sample_regions(
    np.random.default_rng(3),
    (160, 160),
    faces["box"],
    faces["valid"]["box"],
    4,
    1.0,
    dict(cfg, negative_source="random"),
  )
  b = sampling.sample_regions(
    np.random.default_rng(3), (160, 160), faces["box"], faces["valid"]["box"], 4, 1.0, cfg
  )
  np.testing.assert_array_equal(a, b)
  # A face filling an image whose pyramid is one window (the image itself, IoU 1): no
  # window qualifies, so the regions fall back to the random scheme's lowest-IoU squares.
  big = make_faces([[-0.5, -0.5, 100, 100]])
  reg = sampling.sample_regions(
    np.random.default_rng(0),
    (100, 100),
    big["box"],
    big["valid"]["box"],
    4,
    0.0,
    dict(cfg, window_min_side=100.0, window_border_fraction=0.0),
  )
  assert reg.shape == (4, 4) and np.all(boxes.inside_fraction(reg, (100, 100)) > 0.99)
  with pytest.raises(ValueError, match="negative_source"):
    sampling.sample_regions(
      np.random.default_rng(0),
      (100, 100),
      big["box"],
      big["valid"]["box"],
      4,
      0.0,
      dict(cfg, negative_source="grid"),
    )


def test_near_count_is_stochastically_rounded():
  # 1 non-positive region per scene at near_fraction 0.5: near in about half the scenes.
  faces = make_faces([[100, 100, 60, 60]])
  # Tiny background squares in a large image never touch the face; near ones always do.
  cfg = dict(near_scale_range=(0.35, 2.5), near_shift_range=0.6, negative_side_range=(0.01, 0.02))
  near = 0
  for seed in range(400):
    reg = sampling.sample_regions(
      np.random.default_rng(seed), (1000, 1000), faces["box"], faces["valid"]["box"], 1, 0.0, cfg
    )
    near += int(boxes.iou(reg, faces["box"])[0, 0] > 0.0)
  assert 150 < near < 250  # binomial(400, 0.5): mean 200, sd 10


def test_bad_inputs():
  faces = make_faces([[0, 0, 10, 10]])
  del faces["landmarks"]
  with pytest.raises(ValueError, match=r"'landmarks'.*\[1, 21, 2\]"):
    sampling.label_regions(np.zeros((1, 4)), faces)
  faces = make_faces([[0, 0, 10, 10]])
  faces["pose"] = np.zeros((1, 2))
  with pytest.raises(ValueError, match=r"pose has shape \(1, 2\); expected \[1, 3\]"):
    sampling.label_regions(np.zeros((1, 4)), faces)
  with pytest.raises(ValueError, match="positive_fraction"):
    sampling.sample_regions(
      np.random.default_rng(0), (10, 10), np.zeros((0, 4)), np.zeros(0, bool), 4, 1.5
    )
  with pytest.raises(ValueError, match="face_valid"):
    sampling.sample_regions(
      np.random.default_rng(0), (10, 10), np.zeros((2, 4)), np.zeros(1, bool), 4
    )
