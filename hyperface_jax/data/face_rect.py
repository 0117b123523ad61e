"""AFLW FaceRectCalculator (docs/papers.md section 1.9): square face box from pose or landmarks.

`box_from_pose` runs steps 3-6 with a known pose (the synthetic renderer's ground truth);
`face_rect_from_landmarks` first recovers the pose with POSIT ("modernPosit", step 2) from
the visible AFLW-21 landmarks and the AFLW 3-D mean face (docs/papers.md section 5.1), then runs
the same steps. Camera: f = 1.5 W, principal point (W/2, H/2) (step 1).
"""

from __future__ import annotations

import numpy as np

from hyperface_jax.data import face_model, schemes

_EYE_CORNERS = (6, 8, 9, 11)  # LELC, LERC, RELC, RERC (docs/papers.md section 1.13)
NORM_EYE_DIST = 50.0  # docs/papers.md section 1.9 step 4
BOX_FACTOR = 128.0  # step 6: side = 128 * scale
CENTRE_SHIFT = 25.0  # step 6: centre = q - up * 25 * scale


def _box_from_rt(rot, trans, image_w, image_h, up_points=None, scale=1.0):
  """Steps 3-6 given model-to-camera rotation/translation (head scale `scale`)."""
  f = face_model.FOCAL_FACTOR * image_w
  c = np.array([image_w / 2.0, image_h / 2.0])
  p = scale * rot @ face_model.EYE_MID + trans  # step 3
  q = f * p[:2] / p[2] + c
  r = scale * face_model.EYE_RADIUS  # step 4
  d = np.linalg.norm(p)
  a_y = np.arctan(p[1] / np.hypot(p[2], p[0]))
  a_x = np.arctan(p[0] / np.hypot(p[2], p[1]))
  delta = np.arcsin(min(r / d, 1.0))
  top, bottom = np.tan(a_y - delta) * f, np.tan(a_y + delta) * f
  left, right = np.tan(a_x - delta) * f, np.tan(a_x + delta) * f
  box_scale = max(abs(right - left), abs(bottom - top)) / NORM_EYE_DIST
  if up_points is not None:  # step 5, eye corners
    lec = 0.5 * (up_points[0] + up_points[1])
    rec = 0.5 * (up_points[2] + up_points[3])
    v = (rec - lec) / np.linalg.norm(rec - lec)
    up = np.array([v[1], -v[0]])
  else:  # step 5 fallback: project m + (0, 0.5, 0)
    p_up = scale * rot @ (face_model.EYE_MID + np.array([0.0, 0.5, 0.0])) + trans
    diff = f * p_up[:2] / p_up[2] + c - q
    up = diff / np.linalg.norm(diff)
  side = BOX_FACTOR * box_scale  # step 6
  centre = q - up * CENTRE_SHIFT * box_scale
  return np.array(
    [np.round(centre[0] - side / 2.0), np.round(centre[1] - side / 2.0), side, side],
    dtype=np.float32,
  )


def box_from_pose(rot, trans, image_w, image_h, scale=1.0):
  """AFLW-style box from the true pose (docs/papers.md section 1.9 steps 3-6).

  The up vector uses the four projected model eye corners (step 5, first branch) when all
  four face the camera (face_model.self_visible; AFLW only has them when annotated), else
  the step-5 fallback (projected m + (0, 0.5, 0)). Near profile the eye-corner direction is
  dominated by depth, which is why AFLW's fallback matters.

  Args:
    rot: [3, 3] model-to-camera rotation (`face_model.rotation_matrix`).
    trans: [3] translation of the model origin in camera coordinates.
    image_w, image_h: image size in pixels (camera of step 1).
    scale: head scale (model units -> camera units) used by the renderer.
  Returns:
    float32 [4] box x, y, w, h (square; top-left rounded as in step 6).
  """
  rot, trans = np.asarray(rot, np.float64), np.asarray(trans, np.float64)
  corners = face_model.project(
    face_model.camera_points(schemes.AFLW21_MEAN_FACE_3D[list(_EYE_CORNERS)], rot, trans, scale),
    image_w,
    image_h,
  )
  if not face_model.self_visible(face_model.A21_NORMALS[list(_EYE_CORNERS)], rot).all():
    corners = None
  return _box_from_rt(rot, trans, image_w, image_h, corners, scale)


def modern_posit(image_points, world_points, focal, centre, max_iter=100):
  """DeMenthon's modernPosit (docs/papers.md section 1.9 step 2).

  Stops when f^2 * sum(du^2 + dv^2) < 0.01 or after `max_iter` iterations. The returned
  rotation is orthonormalized with an SVD (POSIT's r1, r2 are only nearly orthonormal).

  Args:
    image_points: [N, 2] pixels, N >= 4 non-coplanar correspondences.
    world_points: [N, 3] model points.
    focal: focal length in pixels; centre: principal point (cx, cy).
  Returns:
    (rotation [3, 3], translation [3]) mapping model to camera coordinates.
  """
  img = np.asarray(image_points, np.float64) - np.asarray(centre, np.float64)
  obj = np.concatenate([np.asarray(world_points, np.float64), np.ones((len(img), 1))], 1)
  pinv = np.linalg.pinv(obj)
  u, v = img[:, 0] / focal, img[:, 1] / focal
  for it in range(max_iter):
    r1t, r2t = pinv @ u, pinv @ v
    tz = np.sqrt(1.0 / (np.linalg.norm(r1t[:3]) * np.linalg.norm(r2t[:3])))
    r1, r2 = r1t[:3] * tz, r2t[:3] * tz
    r3 = np.cross(r1, r2)
    tx, ty = r1t[3] * tz, r2t[3] * tz
    w = (obj[:, :3] @ r3) / tz + 1.0
    new_u, new_v = w * img[:, 0] / focal, w * img[:, 1] / focal
    delta = focal**2 * (np.sum((new_u - u) ** 2) + np.sum((new_v - v) ** 2))
    u, v = new_u, new_v
    if it > 0 and delta < 0.01:
      break
  uu, _, vt = np.linalg.svd(np.stack([r1, r2, r3]))
  rot = uu @ vt
  if np.linalg.det(rot) < 0:
    rot = uu @ np.diag([1.0, 1.0, -1.0]) @ vt
  return rot, np.array([tx, ty, tz])


def face_rect_from_landmarks(landmarks21, visibility21, image_w, image_h):
  """AFLW FaceRectCalculator from visible AFLW-21 landmarks (docs/papers.md section 1.9).

  Args:
    landmarks21: [21, 2] or [F, 21, 2] pixel landmarks.
    visibility21: [21] or [F, 21]; points with visibility > 0.5 are used.
    image_w, image_h: image size (camera of step 1).
  Returns:
    float32 [4] (or [F, 4]) box x, y, w, h; all NaN for a face with fewer than 4 visible
    points (POSIT needs >= 4 in practice, docs/papers.md section 1.9).
  """
  lm, vis = np.asarray(landmarks21, np.float64), np.asarray(visibility21)
  if lm.shape[-2:] != (21, 2) or vis.shape != lm.shape[:-1]:
    raise ValueError(
      f"expected landmarks [..., 21, 2] and visibility [..., 21], got {lm.shape} and {vis.shape}"
    )
  if lm.ndim == 3:
    return (
      np.stack(
        [face_rect_from_landmarks(a, b, image_w, image_h) for a, b in zip(lm, vis, strict=True)]
      )
      if len(lm)
      else np.zeros((0, 4), np.float32)
    )
  keep = vis > 0.5
  if keep.sum() < 4:
    return np.full(4, np.nan, np.float32)
  f = face_model.FOCAL_FACTOR * image_w
  rot, trans = modern_posit(
    lm[keep], schemes.AFLW21_MEAN_FACE_3D[keep], f, (image_w / 2.0, image_h / 2.0)
  )
  corners = lm[list(_EYE_CORNERS)] if keep[list(_EYE_CORNERS)].all() else None
  return _box_from_rt(rot, trans, image_w, image_h, corners)
