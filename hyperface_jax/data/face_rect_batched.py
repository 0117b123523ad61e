"""The AFLW FaceRectCalculator for many faces at once (docs/papers.md section 1.9).

`face_rect.face_rect_from_landmarks` runs POSIT face by face in a Python loop (~4 ms per
face here); IRP calls it on every candidate of every image. This module runs the same
modernPosit iterations on all faces together with numpy: each face's invisible points
get zero rows in its own model matrix (a least-squares pseudo-inverse ignores zero rows,
so it equals the pseudo-inverse of the visible subset) and each face stops iterating at
its own convergence step, as in the per-face version. Steps 3-6 reuse
`face_rect._box_from_rt` per face (cheap scalar arithmetic). Tested equal to the per-face
version (tests/test_inference_irp.py).
"""

from __future__ import annotations

import numpy as np

from hyperface_jax.data import face_model, face_rect, schemes

_EYE_CORNERS = list(face_rect._EYE_CORNERS)  # LELC, LERC, RELC, RERC (docs/papers.md 1.13)


def _cross(a, b):
  """Row-wise cross product of [F, 3] arrays (np.cross's axis handling costs more than
  the arithmetic on a few rows, and it runs every POSIT iteration)."""
  a0, a1, a2 = a[:, 0], a[:, 1], a[:, 2]
  b0, b1, b2 = b[:, 0], b[:, 1], b[:, 2]
  return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], 1)


def _batched_posit(img, weight, focal, max_iter=100):
  """modernPosit (face_rect.modern_posit) over faces [F]; img [F, 21, 2] centred px.

  Each iteration works on the faces still iterating only (a face leaves once its
  reprojection moves by < 0.01 px^2, after that iteration's pose is kept, as in the
  per-face version): an IRP call's candidates mostly converge in a few iterations while
  one may run all `max_iter`, and numpy's per-call overhead, not the arithmetic, is what
  an iteration costs here.
  """
  n_faces = len(img)
  world = np.asarray(schemes.AFLW21_MEAN_FACE_3D, np.float64)  # [21, 3]
  obj = np.concatenate([world, np.ones((len(world), 1))], 1)  # [21, 4]
  pinv = np.linalg.pinv(obj[None] * weight[..., None])  # [F, 4, 21], invisible rows zero
  x0, y0 = img[..., 0] / focal, img[..., 1] / focal  # [F, 21]
  u, v = x0, y0
  r1, r2, r3, trans = (np.zeros((n_faces, 3)) for _ in range(4))
  rows = np.arange(n_faces)  # the faces still iterating
  for it in range(max_iter):
    r1t = np.einsum("fkn,fn->fk", pinv, u)
    r2t = np.einsum("fkn,fn->fk", pinv, v)
    tz = 1.0 / np.sqrt(np.sqrt((r1t[:, :3] ** 2).sum(1)) * np.sqrt((r2t[:, :3] ** 2).sum(1)))
    a, b = r1t[:, :3] * tz[:, None], r2t[:, :3] * tz[:, None]
    c = _cross(a, b)
    r1[rows], r2[rows], r3[rows] = a, b, c
    trans[rows] = np.stack([r1t[:, 3] * tz, r2t[:, 3] * tz, tz], 1)
    w = (c @ world.T) / tz[:, None] + 1.0  # [F, 21]
    new_u, new_v = w * x0, w * y0
    delta = focal**2 * np.sum(weight * ((new_u - u) ** 2 + (new_v - v) ** 2), axis=1)
    u, v = new_u, new_v
    if it > 0:
      going = ~(delta < 0.01)
      if not going.all():
        rows, pinv, x0, y0, u, v, weight = (
          arr[going] for arr in (rows, pinv, x0, y0, u, v, weight)
        )
      if len(rows) == 0:
        break
  return r1, r2, r3, trans


def face_rects(landmarks, visibility, image_w, image_h) -> np.ndarray:
  """FaceRectCalculator boxes of faces [F]: the batched `face_rect_from_landmarks`.

  Args:
    landmarks: [F, 21, 2] pixel landmarks.
    visibility: [F, 21]; points with visibility > 0.5 are used.
    image_w, image_h: image size (camera of docs/papers.md 1.9 step 1).

  Returns:
    float32 [F, 4] boxes x, y, w, h; NaN rows for faces with fewer than 4 visible points.
  """
  lm = np.asarray(landmarks, np.float64)
  vis = np.asarray(visibility)
  if lm.ndim != 3 or lm.shape[1:] != (21, 2) or vis.shape != lm.shape[:2]:
    raise ValueError(
      f"expected landmarks [F, 21, 2] and visibility [F, 21], got {lm.shape} and {vis.shape}"
    )
  out = np.full((len(lm), 4), np.nan, np.float32)
  keep = vis > 0.5
  ok = keep.sum(1) >= 4
  if not ok.any():
    return out
  f = face_model.FOCAL_FACTOR * image_w
  centre = np.array([image_w / 2.0, image_h / 2.0])
  img = np.where(keep[ok][..., None], lm[ok] - centre, 0.0)
  r1, r2, r3, trans = _batched_posit(img, keep[ok].astype(np.float64), f)
  for row, i in enumerate(np.flatnonzero(ok)):
    uu, _, vt = np.linalg.svd(np.stack([r1[row], r2[row], r3[row]]))
    rot = uu @ vt
    if np.linalg.det(rot) < 0:
      rot = uu @ np.diag([1.0, 1.0, -1.0]) @ vt
    corners = lm[i, _EYE_CORNERS] if keep[i, _EYE_CORNERS].all() else None
    out[i] = face_rect._box_from_rt(rot, trans[row], image_w, image_h, corners)
  return out
