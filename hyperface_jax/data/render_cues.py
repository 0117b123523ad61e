"""Drawing of the in-box gender cues of synthetic faces: eye make-up, blush, earrings.

The cue strengths are sampled in render_params (module docstring there); this module only
turns them into pixels. Like every other feature (render_draw) each cue is a 3-D shape on the
head model projected with the true pose (foreshortening exact) and drawn only where its
anchor normal faces the camera. Make-up lies on the face's own skin and earrings belong to
the face, so neither changes the face's `occluded` labels; earrings are written into the
`owner` mask with the face's id, so a nearer face's earring can occlude a farther face like
its ears do.
"""

from __future__ import annotations

import cv2
import numpy as np

from hyperface_jax.data import face_model as fm

_SHIFT = 4
_UP = np.array([0.0, 1.0, 0.0])
_MID_X = -0.065  # x of the face's mid-sagittal plane in the (asymmetric) AFLW mean face
_CIRCLE = np.linspace(0, 2 * np.pi, 16, endpoint=False)


def blend_fill(img, xy, color, alpha, owner=None, owner_id=0):
  """Antialiased polygon blended with opacity `alpha`, touching only its bounding box.

  Args:
    img: uint8 [H, W, 3] canvas, changed in place. xy: [N, 2] polygon (pixels).
    color: RGB. alpha: opacity in [0, 1].
    owner, owner_id: optional uint8 [H, W] silhouette mask and the id to write into it.
  """
  h, w = img.shape[:2]
  xy = np.asarray(xy, np.float64)
  x0, y0 = np.maximum(np.floor(xy.min(0)).astype(int) - 1, 0)
  x1, y1 = np.minimum(np.ceil(xy.max(0)).astype(int) + 2, [w, h])
  if x1 <= x0 or y1 <= y0 or alpha <= 0:
    return
  pts = [np.round((xy - [x0, y0]) * (1 << _SHIFT)).astype(np.int32)]
  roi = img[y0:y1, x0:x1]
  layer = roi.copy()
  cv2.fillPoly(layer, pts, tuple(float(c) for c in color), cv2.LINE_AA, _SHIFT)
  a = float(min(alpha, 1.0))
  cv2.addWeighted(layer, a, roi, 1 - a, 0, dst=roi)
  if owner is not None:
    cv2.fillPoly(owner[y0:y1, x0:x1], pts, int(owner_id), cv2.LINE_8, _SHIFT)


def _outer_first(eye):
  """Upper-lid points [4, 3] of an eye ordered from the outer (temple) corner inwards."""
  upper = eye[:4]
  return upper if abs(upper[0, 0] - _MID_X) > abs(upper[3, 0] - _MID_X) else upper[::-1]


def eye_shadow(img, posed, prm, eye):
  """Eye shadow: a tinted band above the upper lid, height and opacity grow with the cue.

  Drawn before the eye itself, so the eye white and lashes stay on top.
  """
  m = prm.cues["eye_makeup"]
  if m <= 0.05:
    return
  upper = _outer_first(eye)
  height = (0.025 + 0.06 * m) * np.array([0.7, 1.0, 1.0, 0.5])[:, None]
  band = np.concatenate([upper - _UP * 0.005, (upper + _UP * height)[::-1]])
  blend_fill(img, posed.proj(band), prm.makeup["shadow"], 0.25 + 0.55 * m)


def eyeliner(img, posed, prm, eye, skin):
  """Upper-lid line (replaces the plain lid line): width, darkness and an outer wing grow
  with the eye make-up cue."""
  m = prm.cues["eye_makeup"]
  upper = _outer_first(eye)
  width = (0.008 + 0.03 * m) * np.array([0.6, 1.0, 1.0, 0.4])[:, None]
  outward = np.sign(upper[0, 0] - _MID_X)
  wing = upper[0] + np.array([0.035 * m * outward, 0.02 * m, 0.0])
  poly = np.concatenate(
    [[wing], upper[1:], (upper[1:] + _UP * width[1:])[::-1], [upper[0] + _UP * width[0]]]
  )
  col = np.clip(skin, 0, 255) * 0.3 * (1 - m) + np.array([15.0, 10.0, 10.0]) * m
  blend_fill(img, posed.proj(poly), col, 1.0)


def _disc(centre, normal, rx, ry):
  """[16, 3] ellipse on the plane through `centre` with `normal` (ry along model up)."""
  n = normal / np.linalg.norm(normal)
  tx = np.cross(_UP, n)
  tx /= np.linalg.norm(tx)
  ty = np.cross(n, tx)
  return centre + rx * np.cos(_CIRCLE)[:, None] * tx + ry * np.sin(_CIRCLE)[:, None] * ty


def blush(img, posed, prm, p68):
  """Soft pink patches on both cheeks (two nested discs for a soft edge); a cheek is drawn
  when its normal (leaning 45 deg sideways) faces the camera."""
  b = prm.cues["blush"]
  if b <= 0.05:
    return
  for eye, corner, side in ((p68[36:42], p68[48], -1.0), (p68[42:48], p68[54], 1.0)):
    normal = np.array([0.7 * side, -0.15, 0.7])
    if not posed.facing(normal[None])[0]:
      continue
    centre = 0.55 * eye.mean(0) + 0.45 * corner + [0.07 * side, 0.0, 0.01]
    for scale, alpha in ((1.0, 0.25 * b), (0.6, 0.3 * b)):
      blend_fill(
        img,
        posed.proj(_disc(centre, normal, 0.12 * scale, 0.085 * scale)),
        prm.makeup["blush"],
        alpha,
      )


def earrings(img, owner, owner_id, posed, prm, ear_idx, side):
  """An earring at one ear lobe (AFLW ear point `ear_idx`, side -1 left / +1 right): a
  stud or a hoop; drawn when that ear faces the camera (also under long hair, as the
  jewellery hangs below it)."""
  if prm.cues["earrings"] <= 0 or not posed.facing(fm.A21_NORMALS[ear_idx : ear_idx + 1])[0]:
    return
  lobe = fm.A21[ear_idx] + np.array([0.05 * side, -0.2, 0.03])
  normal = np.array([side, 0.0, 0.2])
  col = prm.makeup["earring"]
  if not prm.makeup["hoop"]:
    blend_fill(img, posed.proj(_disc(lobe, normal, 0.05, 0.05)), col, 1.0, owner, owner_id)
    return
  hoop = posed.proj(_disc(lobe - _UP * 0.06, normal, 0.065, 0.075))
  width = max(1, int(round(0.025 * posed.px_per_unit())))
  pts = [np.round(hoop * (1 << _SHIFT)).astype(np.int32)]
  cv2.polylines(img, pts, True, tuple(float(c) for c in col), width, cv2.LINE_AA, _SHIFT)
  cv2.polylines(owner, pts, True, int(owner_id), width, cv2.LINE_8, _SHIFT)
