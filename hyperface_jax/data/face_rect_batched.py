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


def _batched_posit(img, weight, focal, max_iter=100):
  """modernPosit (face_rect.modern_posit) over faces [F]; img [F, 21, 2] centred px."""
  n_faces = len(img)
  world = np.asarray(schemes.AFLW21_MEAN_FACE_3D, np.float64)  # [21, 3]
  obj = np.concatenate([world, np.ones((len(world), 1))], 1)  # [21, 4]
  masked = obj[None] * weight[..., None]  # [F, 21, 4], invisible rows zero
  pinv = np.linalg.pinv(masked)  # [F, 4, 21], zero columns for invisible points
  u, v = img[..., 0] / focal, img[..., 1] / focal
  active = np.ones(n_faces, bool)
  r1 = r2 = r3 = np.zeros((n_faces, 3))
  tx = ty = tz = np.zeros(n_faces)
  for it in range(max_iter):
    r1t = np.einsum("fkn,fn->fk", pinv, u)
    r2t = np.einsum("fkn,fn->fk", pinv, v)
    tz_new = np.sqrt(
      1.0 / (np.linalg.norm(r1t[:, :3], axis=1) * np.linalg.norm(r2t[:, :3], axis=1))
    )
    r1_new, r2_new = r1t[:, :3] * tz_new[:, None], r2t[:, :3] * tz_new[:, None]
    r3_new = np.cross(r1_new, r2_new)
    a = active[:, None]
    r1, r2, r3 = np.where(a, r1_new, r1), np.where(a, r2_new, r2), np.where(a, r3_new, r3)
    tx = np.where(active, r1t[:, 3] * tz_new, tx)
    ty = np.where(active, r2t[:, 3] * tz_new, ty)
    tz = np.where(active, tz_new, tz)
    w = (obj[None, :, :3] @ r3_new[..., None])[..., 0] / tz_new[:, None] + 1.0
    new_u, new_v = w * img[..., 0] / focal, w * img[..., 1] / focal
    delta = focal**2 * np.sum(weight * ((new_u - u) ** 2 + (new_v - v) ** 2), axis=1)
    u = np.where(a, new_u, u)
    v = np.where(a, new_v, v)
    if it > 0:
      active &= ~(delta < 0.01)
    if not active.any():
      break
  return r1, r2, r3, np.stack([tx, ty, tz], 1)


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
