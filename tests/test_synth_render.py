"""Tests of the synthetic face renderer: labels checked against independent geometry."""

import numpy as np
import pytest

from hyperface_jax.data import face_model as fm
from hyperface_jax.data import render, schemes
from hyperface_jax.data import render_relations as rr

W = 160


@pytest.fixture(scope="module")
def scenes():
  return [render.render_scene(np.random.default_rng([7, i])) for i in range(60)]


def _faces(scenes):
  for ex in scenes:
    f = ex["faces"]
    for j in range(len(f["box"])):
      yield ex, {k: (v[j] if k != "valid" else None) for k, v in f.items()}


def test_schema_dtypes(scenes):
  ex = scenes[0]
  assert ex["image"].dtype == np.uint8 and ex["image"].shape == (W, W, 3)
  f = ex["faces"]
  n = len(f["box"])
  assert f["landmarks"].shape == (n, 21, 2) and f["landmarks"].dtype == np.float32
  assert f["landmarks68"].shape == (n, 68, 2) and f["gender"].dtype == np.int64
  assert all(v.dtype == bool and v.all() for v in f["valid"].values())
  counts = [len(e["faces"]["box"]) for e in scenes]
  assert min(counts) >= 1 and max(counts) <= 3
  assert np.mean(np.array(counts) >= 2) >= 0.25  # ~40 % of scenes with 2+ faces


def test_reprojection_reproduces_landmarks(scenes):
  for _, f in _faces(scenes):
    rot = fm.rotation_matrix(*f["pose"].astype(np.float64))
    cam = f["scale"] * schemes.AFLW21_MEAN_FACE_3D @ rot.T + f["translation"]
    u = 1.5 * W * cam[:, 0] / cam[:, 2] + W / 2
    v = 1.5 * W * cam[:, 1] / cam[:, 2] + W / 2
    np.testing.assert_allclose(f["landmarks"], np.stack([u, v], 1), atol=2e-3)
    np.testing.assert_allclose(f["landmarks5"], f["landmarks"][[7, 10, 14, 17, 19]])
    # The 68 points that map 1:1 to AFLW points are the same projections.
    one_to_one = {i: g[0] for i, g in enumerate(schemes.IBUG68_TO_AFLW21) if len(g) == 1}
    for a, b in one_to_one.items():
      np.testing.assert_allclose(f["landmarks68"][b], f["landmarks"][a], atol=2e-3)
    np.testing.assert_allclose(
      schemes.ibug68_to_five(f["landmarks68"]), f["landmarks5"], atol=0.3
    )  # eye centres: mean of projections (perspective)


def test_far_side_invisible_beyond_60_deg(scenes):
  seen = 0
  for _, f in _faces(scenes):
    yaw = np.rad2deg(f["pose"][2])
    far = [16, 9, 10, 11, 3, 4, 5] if yaw > 60 else [12, 6, 7, 8, 0, 1, 2] if yaw < -60 else []
    seen += bool(far)
    assert (f["visibility"][far] == 0).all(), (yaw, f["visibility"])
  assert seen >= 5


def test_frontal_features_visible_unless_occluded(scenes):
  feature_pts = list(range(12)) + [13, 14, 15, 17, 18, 19]
  seen = 0
  for _, f in _faces(scenes):
    if abs(np.rad2deg(f["pose"][2])) >= 20:
      continue
    lm = f["landmarks"][feature_pts]
    inside = (lm >= 0).all(1) & (lm <= W - 1).all(1)
    expect = inside & (f["occluded"][feature_pts] == 0)
    np.testing.assert_array_equal(f["visibility"][feature_pts], expect.astype(np.float32))
    seen += 1
  assert seen >= 10


def test_visible_landmarks_inside_box(scenes):
  for _, f in _faces(scenes):
    x, y, w, h = f["box"]
    m = render.BOX_MARGIN * w
    vis = f["visibility"] > 0
    lm = f["landmarks"][vis]
    assert (lm[:, 0] >= x - m).all() and (lm[:, 0] <= x + w + m).all()
    assert (lm[:, 1] >= y - m).all() and (lm[:, 1] <= y + h + m).all()


def test_horizontal_flip_matches_mirrored_pose(scenes):
  mirror21 = fm.mirror_model(schemes.AFLW21_MEAN_FACE_3D, schemes.AFLW21_FLIP)
  mirror_n = fm.mirror_model(fm.A21_NORMALS, schemes.AFLW21_FLIP)
  for ex, f in _faces(scenes[:20]):
    flipped_img = ex["image"][:, ::-1]
    assert (flipped_img[:, 0] == ex["image"][:, -1]).all()
    flipped = schemes.flip_landmarks(f["landmarks"], W)
    roll, pitch, yaw = f["pose"].astype(np.float64)
    rot = fm.rotation_matrix(-roll, pitch, -yaw)
    trans = f["translation"] * [-1, 1, 1]
    direct = fm.project(fm.camera_points(mirror21, rot, trans, f["scale"]), W, W)
    # Principal point W/2 vs flip x -> W-1-x: a constant 1 px shift, nothing else.
    np.testing.assert_allclose(flipped, direct - [1.0, 0.0], atol=2e-3)
    self_vis = fm.self_visible(fm.A21_NORMALS, fm.rotation_matrix(roll, pitch, yaw))
    np.testing.assert_array_equal(self_vis[schemes.AFLW21_FLIP], fm.self_visible(mirror_n, rot))


def test_attributes_consistent(scenes):
  for _, f in _faces(scenes):
    assert f["smiling"] == int(f["expression"] == 3)
    assert f["pose_class"] == fm.pose_class(f["pose"][2])
    assert f["gender"] in (0, 1) and 0 <= f["age_group"] <= 3


def test_render_deterministic():
  a = render.render_scene(np.random.default_rng([3, 1, 5]))
  b = render.render_scene(np.random.default_rng([3, 1, 5]))
  c = render.render_scene(np.random.default_rng([4, 1, 5]))
  assert a["image"].tobytes() == b["image"].tobytes()
  for k in a["faces"]:
    if k != "valid":
      np.testing.assert_array_equal(a["faces"][k], b["faces"][k])
  assert a["image"].tobytes() != c["image"].tobytes()
  crop = render.render_face_crop(np.random.default_rng(0))
  assert crop["image"].shape == (64, 64, 3) and crop["landmarks"].shape == (21, 2)
  assert (crop["visibility"][[7, 10, 14]] <= 1).all() and crop["box"][2] > 20


def test_relation_rule_hand_example():
  # a: happy, looks right at b; b: happy, looks left at a; same size, close together.
  boxes = [np.array([10, 50, 40, 40.0]), np.array([60, 50, 40, 40.0])]
  yaw = np.deg2rad([30.0, -30.0])
  t = rr.pair_traits([3, 3], [1, 0], yaw, boxes, 0, 1)
  # dominant, competitive, trusting, warm, friendly, attached, demonstrative, assured
  assert list(t) == [0, 0, 1, 1, 1, 1, 1, 1]
  t2 = rr.pair_traits([0, 4], [0, 0], np.deg2rad([30.0, 0.0]), boxes, 0, 1)
  assert list(t2) == [1, 1, 0, 0, 0, 0, 0, 0]
  pairs, traits = rr.scene_relations(
    np.random.default_rng(0), [3, 3, 6], [0, 0, 0], np.zeros(3), boxes + [boxes[0]]
  )
  assert pairs.tolist() == [[0, 1], [0, 2], [1, 2]] and traits.shape == (3, 8)


def test_visible_fraction_hand_worked():
  # Square region x, y in [5, 15]: fillConvexPoly covers pixel centres 5..15 (11 x 11).
  square = np.array([[5.0, 5.0], [15.0, 5.0], [15.0, 15.0], [5.0, 15.0]])
  owner = np.ones((20, 20), np.uint8)
  assert render.visible_fraction(owner, 1, square) == 1.0
  assert render.visible_fraction(owner, 2, square) == 0.0
  owner[:, :10] = 2  # a nearer object covers columns 0..9: 6 of the 11 columns stay seen
  assert render.visible_fraction(owner, 1, square) == pytest.approx(6 / 11)
  # Half outside the image (columns -5..5 of which 0..5 are inside): 6 / 11 seen.
  assert render.visible_fraction(
    np.ones((20, 20), np.uint8), 1, square - [10.0, 0.0]
  ) == pytest.approx(6 / 11)
  assert render.visible_fraction(np.ones((20, 20), np.uint8), 1, square + 100.0) == 0.0


def test_face_hidden_behind_nearer_face_is_not_annotated():
  # A small face straight behind a large frontal one, at the same eye position.
  frontal = np.zeros(3)
  _, faces = render._render(
    np.random.default_rng(0),
    160,
    160,
    [(45.0, np.array([80.0, 80.0]), frontal), (110.0, np.array([80.0, 80.0]), frontal)],
    0,
    0.0,
  )
  far, near = faces  # drawn far-to-near
  assert far["box"][2] < near["box"][2]
  assert far["visible_fraction"] < 0.01 and far["visibility"].sum() == 0
  assert near["visible_fraction"] > 0.9


def test_only_visible_faces_annotated(scenes):
  dropped = 0
  for i, ex in enumerate(scenes):
    every = render.render_scene(
      np.random.default_rng([7, i]), render.SceneConfig(min_visible_fraction=0.0)
    )
    assert ex["image"].tobytes() == every["image"].tobytes()  # labels only
    kept = [
      j
      for j, b in enumerate(every["faces"]["box"])
      if any((b == k).all() for k in ex["faces"]["box"])
    ]
    assert len(kept) == len(ex["faces"]["box"])
    for j in set(range(len(every["faces"]["box"]))) - set(kept):
      dropped += 1  # independent evidence that nothing of it is seen: <= 3 landmarks
      assert every["faces"]["visibility"][j].sum() <= 3
    n = len(ex["faces"]["box"])
    assert (ex["relations"]["faces"] < n).all()
  assert dropped >= 1


def test_min_visible_fraction_out_of_range_is_refused():
  with pytest.raises(ValueError, match="min_visible_fraction must be in \\[0, 1\\].*1.5"):
    render.render_scene(np.random.default_rng(0), render.SceneConfig(min_visible_fraction=1.5))
