"""Tests of the AFLW FaceRectCalculator (docs/papers.md section 1.9) and the pose convention."""

import numpy as np
import pytest

from hyperface_jax.data import face_model as fm
from hyperface_jax.data import face_rect, schemes


def test_rotation_round_trip_and_orthonormal():
  rng = np.random.default_rng(0)
  for _ in range(50):
    angles = rng.uniform([-0.8, -0.8, -1.5], [0.8, 0.8, 1.5])
    rot = fm.rotation_matrix(*angles)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    np.testing.assert_allclose(fm.roll_pitch_yaw(rot), angles, atol=1e-9)


def test_pose_signs():
  # Zero pose: model y up -> image y down, the face looks at the camera (-z camera).
  np.testing.assert_allclose(fm.rotation_matrix(0, 0, 0), np.diag([1, -1, -1]))
  # yaw > 0 turns the face to image-right: the forward axis gets +x.
  assert (fm.rotation_matrix(0, 0, 0.3) @ [0, 0, 1])[0] > 0
  # pitch > 0 turns it down: forward axis gets +y (image down).
  assert (fm.rotation_matrix(0, 0.3, 0) @ [0, 0, 1])[1] > 0
  # roll > 0 is counter-clockwise in the image: the model x axis goes up (-y in image).
  assert (fm.rotation_matrix(0.3, 0, 0) @ [1, 0, 0])[1] < 0
  assert list(fm.pose_class(np.deg2rad([-80, -30, 0, 30, 80]))) == [0, 1, 2, 3, 4]


def test_box_from_pose_hand_worked_frontal():
  # Eye midpoint on the optical axis at depth d: q = principal point, extents 2 tan(delta) f.
  w = h = 200
  d = 6.0
  rot = fm.rotation_matrix(0, 0, 0)
  trans = np.array([0.0, 0.0, d]) - rot @ fm.EYE_MID
  f = 1.5 * w
  delta = np.arcsin(fm.EYE_RADIUS / d)
  scale = 2 * np.tan(delta) * f / 50.0
  side = 128 * scale
  # Eye corners of the AFLW model are not level, so the up vector tilts slightly.
  corners = fm.project(
    fm.camera_points(schemes.AFLW21_MEAN_FACE_3D[[6, 8, 9, 11]], rot, trans), w, h
  )
  v = corners[2:].mean(0) - corners[:2].mean(0)
  v /= np.linalg.norm(v)
  centre = np.array([w / 2, h / 2]) - np.array([v[1], -v[0]]) * 25 * scale
  expect = [np.round(centre[0] - side / 2), np.round(centre[1] - side / 2), side, side]
  np.testing.assert_allclose(face_rect.box_from_pose(rot, trans, w, h), expect, rtol=1e-5)
  assert side == pytest.approx(2.56 * 2 * fm.EYE_RADIUS * f / d, rel=3e-3)  # small-angle


def test_posit_recovers_pose_and_box():
  rng = np.random.default_rng(1)
  w, h = 160, 120
  for _ in range(20):
    angles = rng.uniform([-0.5, -0.5, -1.3], [0.5, 0.5, 1.3])
    rot = fm.rotation_matrix(*angles)
    trans = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.5, 0.5), rng.uniform(4, 9)])
    lm = fm.project(fm.camera_points(schemes.AFLW21_MEAN_FACE_3D, rot, trans), w, h)
    vis = fm.self_visible(fm.A21_NORMALS, rot).astype(np.float32)
    keep = vis > 0
    r2, t2 = face_rect.modern_posit(
      lm[keep], schemes.AFLW21_MEAN_FACE_3D[keep], 1.5 * w, (w / 2, h / 2)
    )
    np.testing.assert_allclose(fm.roll_pitch_yaw(r2), angles, atol=2e-2)
    np.testing.assert_allclose(t2, trans, rtol=2e-2, atol=2e-2)
    want = face_rect.box_from_pose(rot, trans, w, h)
    got = face_rect.face_rect_from_landmarks(lm, vis, w, h)
    assert np.abs(got[:2] - want[:2]).max() <= 2.0 + 0.03 * want[2]
    assert got[2] == pytest.approx(want[2], rel=0.02)


def test_face_rect_batched_and_too_few_points():
  rot = fm.rotation_matrix(0.1, 0.0, 0.2)
  trans = np.array([0.1, 0.0, 6.0])
  lm = fm.project(fm.camera_points(schemes.AFLW21_MEAN_FACE_3D, rot, trans), 100, 100)
  vis = np.ones(21)
  few = np.zeros(21)
  few[:3] = 1
  out = face_rect.face_rect_from_landmarks(np.stack([lm, lm]), np.stack([vis, few]), 100, 100)
  assert out.shape == (2, 4)
  assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()
  with pytest.raises(ValueError, match="21"):
    face_rect.face_rect_from_landmarks(lm[:5], vis[:5], 100, 100)
