"""Drawing of one posed synthetic face with OpenCV (antialiased polygons, 1/16 px precision).

Every feature is a 3-D polygon on the head model (face_model) projected with the true pose,
so foreshortening is exact; features whose anchor point faces away from the camera are not
drawn (same rule as the landmark visibility) and the rest are drawn far-to-near. The
silhouette of everything drawn for a face is written into an `owner` mask so that later
objects (nearer faces, occluders) can be detected as occluding its landmarks.
"""

from __future__ import annotations

import cv2
import numpy as np

from hyperface_jax.data import face_model as fm
from hyperface_jax.data import render_cues as rc

_SHIFT = 4
_HEAD_C = np.array([-0.065, 0.3, -1.1])
_HEAD_R = np.array([0.74, 0.98, 0.95])


def _ellipsoid_samples(n_t=28, n_p=14):
  t = np.linspace(0, 2 * np.pi, n_t, endpoint=False)
  p = np.linspace(-np.pi / 2, np.pi / 2, n_p)
  tt, pp = np.meshgrid(t, p)
  unit = np.stack([np.cos(pp) * np.sin(tt), np.sin(pp), np.cos(pp) * np.cos(tt)], -1)
  return (unit.reshape(-1, 3) * _HEAD_R + _HEAD_C), unit.reshape(-1, 3) / _HEAD_R


_CRANIUM, _CRANIUM_N = _ellipsoid_samples()
_CRANIUM_N = _CRANIUM_N / np.linalg.norm(_CRANIUM_N, axis=1, keepdims=True)
_CRANIUM_SIN_T = np.abs(np.sin(np.arctan2(*((_CRANIUM - _HEAD_C)[:, [0, 2]] / _HEAD_R[[0, 2]]).T)))
_HAIRLINE_T = np.linspace(-np.pi / 2, np.pi / 2, 25)
_ring = np.linspace(0, 2 * np.pi, 16, endpoint=False)
_NECK = np.concatenate(
  [
    np.stack([_HEAD_C[0] + 0.36 * np.sin(_ring), np.full(16, y), -1.0 + 0.36 * np.cos(_ring)], 1)
    for y in (-0.4, -1.7)
  ]
)
_SHOULDERS = np.concatenate(
  [
    np.stack([_HEAD_C[0] + w * np.sin(_ring), np.full(16, y), -1.0 + 0.45 * np.cos(_ring)], 1)
    for y, w in ((-1.45, 0.6), (-1.75, 1.35), (-3.2, 1.5))
  ]
)


def _pts(xy):
  return [np.round(np.asarray(xy) * (1 << _SHIFT)).astype(np.int32)]


def fill(img, xy, color, owner=None, owner_id=0):
  """Antialiased filled polygon (and its silhouette in `owner`)."""
  cv2.fillPoly(img, _pts(xy), tuple(float(c) for c in color), cv2.LINE_AA, _SHIFT)
  if owner is not None:
    cv2.fillPoly(owner, _pts(xy), int(owner_id), cv2.LINE_8, _SHIFT)


def line(img, xy, color, thickness=1, closed=False):
  cv2.polylines(
    img, _pts(xy), closed, tuple(float(c) for c in color), max(1, thickness), cv2.LINE_AA, _SHIFT
  )


def hull(xy):
  return cv2.convexHull(np.asarray(xy, np.float32)).reshape(-1, 2)


class Posed:
  """Projects model points / tests normals for one face pose (R, T, scale, image size)."""

  def __init__(self, rot, trans, scale, image_w, image_h):
    self.rot, self.trans, self.scale = rot, trans, scale
    self.w, self.h = image_w, image_h

  def proj(self, pts):
    return fm.project(fm.camera_points(pts, self.rot, self.trans, self.scale), self.w, self.h)

  def depth(self, pts):
    return fm.camera_points(pts, self.rot, self.trans, self.scale)[..., 2]

  def facing(self, normals):
    return fm.self_visible(normals, self.rot)

  def px_per_unit(self):
    return fm.FOCAL_FACTOR * self.w * self.scale / float(self.trans[2])


def _hairline_height(prm, sin_t):
  """Hairline y at longitudes with |sin t| = sin_t (0 front, 1 side): it drops towards the
  temples by prm.temple_drop (fringe cue, render_params), framing the face with hair."""
  return prm.hairline - prm.temple_drop * sin_t**1.5


def _hairline(prm):
  """Dense hairline contour on the cranium ellipsoid: points [25, 3] and normals [25, 3]."""
  y = _hairline_height(prm, np.abs(np.sin(_HAIRLINE_T)))
  p = np.arcsin(np.clip((y - _HEAD_C[1]) / _HEAD_R[1], -1.0, 1.0))
  unit = np.stack([np.cos(p) * np.sin(_HAIRLINE_T), np.sin(p), np.cos(p) * np.cos(_HAIRLINE_T)], 1)
  n = unit / _HEAD_R
  return unit * _HEAD_R + _HEAD_C, n / np.linalg.norm(n, axis=1, keepdims=True)


def _shade(c, k):
  return np.clip(np.asarray(c) * k, 0, 255)


def draw_face(img, owner, owner_id, posed: Posed, prm, p68, rng):
  """Draws one face (hair, head, neck, features, accessories) into img in place.

  Args:
    img: uint8 [H, W, 3] canvas. owner: uint8 [H, W] silhouette ids.
    owner_id: id written into `owner` for this face.
    posed: the face's Posed camera. prm: render_params.FaceParams.
    p68: [68, 3] model points of this face (face_model.ibug68_points).
    rng: numpy Generator (only for small stylistic jitter).
  Returns:
    bool [2]: whether each ear was hidden under long hair.
  """
  up = np.array([0.0, 1.0, 0.0])
  upx = posed.px_per_unit()
  skin, hair = prm.skin, prm.hair
  hair_len = prm.cues["hair_length"]
  # 1. clothes / shoulders and long hair behind the head.
  fill(img, hull(posed.proj(_SHOULDERS[16:])), prm.clothes, owner, owner_id)
  if hair_len > 0.3 and not prm.bald:
    drop = 0.4 + 1.6 * hair_len
    ring = _CRANIUM[np.abs(_CRANIUM[:, 1] - _HEAD_C[1]) < 0.2] * [1.08, 1, 1.05]
    curtain = np.concatenate([ring, ring - up * drop, _CRANIUM])
    fill(img, hull(posed.proj(curtain)), _shade(hair, 0.85), owner, owner_id)
  fill(img, hull(posed.proj(_NECK)), _shade(skin, 0.85), owner, owner_id)
  # 2. head silhouette (hair colour unless bald), then the face skin region on top.
  jaw = p68[:17]
  cran = _CRANIUM[_CRANIUM[:, 1] > -0.25]
  head_xy = hull(posed.proj(np.concatenate([cran, jaw, p68[27:36]])))
  fill(img, head_xy, skin if prm.bald else hair, owner, owner_id)
  front = (
    (_CRANIUM[:, 1] < _hairline_height(prm, _CRANIUM_SIN_T))
    & (_CRANIUM[:, 2] > -1.05)
    & (_CRANIUM[:, 1] > -0.3)
  )
  line_pts, line_n = _hairline(prm)
  face_pts = np.concatenate(
    [
      _CRANIUM[front][posed.facing(_CRANIUM_N[front])],
      line_pts[posed.facing(line_n)],
      jaw,
      p68[27:36],
    ]
  )
  fill(img, hull(posed.proj(face_pts)), skin)
  # 3. ears (hidden under long hair) and earrings (hanging below the hair).
  ears_hidden = np.array([hair_len > 0.55 and not prm.bald] * 2)
  for k, (idx, sign) in enumerate(((12, -1.0), (16, 1.0))):
    if not posed.facing(fm.A21_NORMALS[idx : idx + 1])[0]:
      continue
    if not ears_hidden[k]:
      c = fm.A21[idx]
      ear = np.stack([c + [0.03 * sign, 0.17 * np.sin(a), 0.1 * np.cos(a)] for a in _ring])
      fill(img, posed.proj(ear), _shade(skin, 0.9), owner, owner_id)
      line(img, posed.proj(ear * [1, 0.75, 0.7] + c * [0, 0.25, 0.3]), _shade(skin, 0.7))
    rc.earrings(img, owner, owner_id, posed, prm, idx, sign)
  # 4. beard under the features.
  if prm.cues["beard"] > 0:
    lip_top = p68[48:55] + up * 0.09
    beard = np.concatenate([jaw[3:14], lip_top[::-1]])
    overlay = img.copy()
    fill(overlay, posed.proj(beard), _shade(hair, 0.7))
    a = 0.35 + 0.6 * prm.cues["beard"]
    cv2.addWeighted(overlay, a, img, 1 - a, 0, dst=img)
  rc.blush(img, posed, prm, p68)
  # 5. features, far-to-near, each only if its anchor faces the camera.
  feats = []
  n68 = fm.IBUG68_NORMALS
  for brow in (range(17, 22), range(22, 27)):
    idx = list(brow)
    if posed.facing(n68[idx[2] : idx[2] + 1])[0]:
      feats.append(("brow", idx))
  for eye in (range(36, 42), range(42, 48)):
    idx = list(eye)
    if posed.facing(n68[idx[0] : idx[0] + 1])[0] or posed.facing(n68[idx[3] : idx[3] + 1])[0]:
      feats.append(("eye", idx))
  feats.append(("nose", list(range(27, 36))))
  feats.append(("mouth", list(range(48, 68))))
  feats.sort(key=lambda ft: -float(posed.depth(p68[ft[1]]).mean()))
  brow_col = _shade(hair if not prm.bald else (60, 50, 40), 0.6)
  for kind, idx in feats:
    if kind == "brow":
      t = 0.012 + 0.05 * max(prm.cues["brow_thick"], 0.15)
      pts = p68[idx]
      poly = np.concatenate([pts + up * t, (pts - up * t * 0.8)[::-1]])
      fill(img, posed.proj(poly), brow_col)
    elif kind == "eye":
      _draw_eye(img, posed, prm, p68[idx], skin)
    elif kind == "nose":
      line(img, posed.proj(p68[27:31] + [0.03, 0, 0]), _shade(skin, 0.8))
      base = posed.proj(p68[31:36])
      line(img, base, _shade(skin, 0.55), 1)
      for j in (32, 34):
        if posed.facing(n68[j : j + 1])[0]:
          q = posed.proj(p68[j] + [0, 0.02, 0])
          cv2.circle(
            img,
            tuple(int(v) for v in np.round(q * 16)),
            max(16, int(0.025 * upx * 16)),
            tuple(float(c) for c in _shade(skin, 0.35)),
            -1,
            cv2.LINE_AA,
            _SHIFT,
          )
    else:
      _draw_mouth(img, posed, prm, p68)
  _draw_lines(img, posed, prm, p68)
  if prm.eyeglasses:
    _draw_glasses(img, owner, posed, prm, p68)
  return ears_hidden


def _draw_eye(img, posed, prm, eye, skin):
  rc.eye_shadow(img, posed, prm, eye)
  xy = posed.proj(eye)
  fill(img, xy, (235, 235, 230))
  centre = eye.mean(0) + np.array([prm.gaze[0], prm.gaze[1], 0.02])
  rad = 0.045
  iris = np.stack([centre + [rad * np.cos(a), rad * np.sin(a), 0] for a in _ring])
  fill(img, posed.proj(iris), prm.iris)
  fill(img, posed.proj(centre + (iris - centre) * 0.45), (10, 10, 10))
  line(img, xy[[3, 4, 5, 0]], _shade(skin, 0.6), 1)
  rc.eyeliner(img, posed, prm, eye, skin)


def _draw_mouth(img, posed, prm, p68):
  red = 0.85 * prm.cues["lip_red"]  # documented default: strong enough to see at 99 px
  lip = prm.skin * (1 - red) + np.array([195, 30, 60]) * red
  lip = _shade(lip, 0.85)
  fill(img, posed.proj(p68[48:60]), lip)
  inner = posed.proj(p68[60:68])
  if prm.shape["mouth_open"] > 0.01:
    fill(img, inner, (60, 20, 25))
    if prm.expression in (3, 5, 2):  # teeth show on happy / surprise / fear
      teeth = np.concatenate([p68[60:65], (p68[60:65] + p68[[60, 67, 66, 65, 64]]) / 2][::-1])
      fill(img, posed.proj(np.concatenate([p68[60:65], teeth[:5]])), (240, 240, 235))
  else:
    line(img, inner[[0, 1, 2, 3, 4]], _shade(lip, 0.5), 1)


def _draw_lines(img, posed, prm, p68):
  """Wrinkles (age), frown lines (angry / disgust)."""
  col = _shade(prm.skin, 0.7)
  if prm.wrinkles > 0.3:
    for k in range(int(1 + 3 * prm.wrinkles)):
      y = 0.6 + 0.05 * k
      xs = np.linspace(-0.35, 0.22, 6)
      pts = np.stack([xs, y + 0.02 * np.sin(xs * 6), -0.45 - 0.3 * xs**2], 1)
      if y < prm.hairline:
        line(img, posed.proj(pts), col)
    for a, b in ((31, 48), (35, 54)):
      if posed.facing(fm.IBUG68_NORMALS[b : b + 1])[0]:
        seg = np.stack(
          [
            p68[a] + [0.05 * np.sign(p68[a, 0] + 0.07), 0.02, -0.02],
            p68[b] + [0.06 * np.sign(p68[b, 0] + 0.07), 0.0, -0.02],
          ]
        )
        line(img, posed.proj(seg), col)
  if prm.expression in (0, 1):
    for dx in (-0.03, 0.03):
      seg = np.array([[-0.07 + dx, 0.42, -0.38], [-0.07 + dx * 0.6, 0.34, -0.38]])
      line(img, posed.proj(seg), _shade(prm.skin, 0.6))


def _draw_glasses(img, owner, posed, prm, p68):
  frame = (20, 20, 25)
  rims = []
  for eye in (p68[36:42], p68[42:48]):
    c = eye.mean(0) + [0, 0, 0.08]
    rims.append(np.stack([c + [0.19 * np.cos(a), 0.13 * np.sin(a), 0] for a in _ring]))
  for rim in rims:
    if prm.sunglasses:
      fill(img, posed.proj(rim), (15, 15, 20), owner, 254)
    line(img, posed.proj(rim), frame, 1, closed=True)
  line(img, posed.proj(np.stack([rims[0][0], rims[1][8]])), frame)
  for rim, ear in ((rims[0], 12), (rims[1], 16)):
    if posed.facing(fm.A21_NORMALS[ear : ear + 1])[0] or prm.cues["hair_length"] <= 0.55:
      k = 8 if ear == 12 else 0
      line(img, posed.proj(np.stack([rim[k], fm.A21[ear] + [0, 0.1, 0.05]])), frame)
