"""3-D head model of the synthetic faces: AFLW-21, iBUG-68 and 5 points, pose, camera.

Model frame (docs/papers.md section 5.1): x towards image-right of a frontal face, y up, the
face looks along +z. The 21 AFLW points are `schemes.AFLW21_MEAN_FACE_3D` exactly; the
68 iBUG points are built around them so that `schemes.ibug68_to_aflw21` of the 68 gives
back the 21 (ears excepted; the mouth centre only for a neutral mouth, see
`ibug68_points`), and the 5 points are `schemes.AFLW21_TO_FIVE` of the 21.

Pose convention (written once here, documented default):
  R = F @ Rz(roll) @ Ry(yaw) @ Rx(pitch),   F = diag(1, -1, -1),
with right-handed elementary rotations in the model frame. F turns the model frame into the
camera frame of POSIT / FaceRectCalculator (x right, y down, z into the image; docs/papers.md
section 1.9), so a zero pose is a frontal, upright face looking at the camera. Signs:
  yaw > 0   the face turns towards image-right (its Right* side, x > 0, turns away);
  pitch > 0 the face turns down (nose moves down in the image);
  roll > 0  the face rotates counter-clockwise as seen in the image.
A horizontal image flip negates roll and yaw and keeps pitch (docs/papers.md section 1.13):
conjugating R by diag(-1, 1, 1) does exactly that.

Camera: pinhole with focal f = 1.5 * W and principal point (W/2, H/2) as in AFLW's
FaceRectCalculator (docs/papers.md section 1.9); a model point X of a head with scale s and
translation T lands at P = s * R X + T and projects to (f P.x/P.z + W/2, f P.y/P.z + H/2).

Self-occlusion (documented default, weak-perspective rule): every point carries an outward
normal n; it is visible when (R n).z < 0, i.e. its normal has a component towards the camera
along the optical axis (cos 90 deg threshold). Eye and brow normals lean 50 deg sideways, so
the far eye and brow vanish once |yaw| > 40 deg (the nose bridge hides them), ears lean 80
deg, so the far ear vanishes at |yaw| > 10 deg.
"""

from __future__ import annotations

import numpy as np

from hyperface_jax.data import schemes

A21 = schemes.AFLW21_MEAN_FACE_3D
_UP = np.array([0.0, 1.0, 0.0])
FOCAL_FACTOR = 1.5  # docs/papers.md section 1.9: f = 1.5 * W
# docs/papers.md section 1.9 step 3: model centre = midpoint of the 3-D eye centres.
EYE_MID = 0.5 * (A21[7] + A21[10])
EYE_RADIUS = 0.5 * float(np.linalg.norm(A21[7] - A21[10]))  # step 4: half eye distance
_F = np.diag([1.0, -1.0, -1.0])

# TCDCN 5 yaw bins (docs/papers.md section 2.1), degrees; "left" = face turned to image-left
# (yaw < 0). Documented default edges.
POSE_CLASS_EDGES_DEG = (-54.0, -18.0, 18.0, 54.0)


def _rx(a):
  c, s = np.cos(a), np.sin(a)
  return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
  c, s = np.cos(a), np.sin(a)
  return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
  c, s = np.cos(a), np.sin(a)
  return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rotation_matrix(roll, pitch, yaw):
  """Model-to-camera rotation R = F Rz(roll) Ry(yaw) Rx(pitch) (module docstring).

  Args:
    roll, pitch, yaw: angles in radians, AFLW-like signs (module docstring).
  Returns:
    [3, 3] float64 rotation matrix.
  """
  return _F @ _rz(roll) @ _ry(yaw) @ _rx(pitch)


def roll_pitch_yaw(rot):
  """Inverse of `rotation_matrix`: [3, 3] rotation -> (roll, pitch, yaw) radians.

  Yaw is taken in [-pi/2, pi/2]; at |yaw| = pi/2 (gimbal lock) pitch is set to 0.
  """
  a = _F @ np.asarray(rot, dtype=np.float64)  # = Rz(roll) Ry(yaw) Rx(pitch)
  yaw = float(np.arcsin(np.clip(-a[2, 0], -1.0, 1.0)))
  if abs(abs(a[2, 0]) - 1.0) < 1e-9:
    return float(np.arctan2(-a[0, 1], a[1, 1])), 0.0, yaw
  return float(np.arctan2(a[1, 0], a[0, 0])), float(np.arctan2(a[2, 1], a[2, 2])), yaw


def pose_class(yaw):
  """TCDCN pose class 0..4 (left profile, left, frontal, right, right profile) of yaw rad."""
  return np.searchsorted(np.deg2rad(POSE_CLASS_EDGES_DEG), np.asarray(yaw), side="right")


def _normal(theta_deg, phi_deg):
  """Unit normal leaning theta sideways (+x) and phi upwards (+y) from +z."""
  t, p = np.deg2rad(theta_deg), np.deg2rad(phi_deg)
  return np.array([np.sin(t) * np.cos(p), np.sin(p), np.cos(t) * np.cos(p)])


# Per-point (lateral, vertical) normal angles in degrees; sign of lateral = side of the
# face (Left* points negative). Documented defaults, see module docstring.
_A21_ANGLES = (
  [(-50, 0)] * 3
  + [(50, 0)] * 3
  + [(-50, 0)] * 3
  + [(50, 0)] * 3
  + [(-80, 0), (-40, -10), (0, 0), (40, -10), (80, 0)]
  + [(-50, -10), (0, -10), (50, -10), (0, -35)]
)
A21_NORMALS = np.stack([_normal(t, p) for t, p in _A21_ANGLES])


def _lerp(a, b, t):
  return a + (b - a) * t


def ibug68_points(
  eye_open=1.0, brow_arch=0.0, brow_inner=0.0, mouth_open=0.0, smile=0.0, jaw_width=1.0
):
  """3-D iBUG-68 points of the head, shaped by expression parameters.

  The points that `schemes.IBUG68_TO_AFLW21` maps to single AFLW points (brow corners and
  centres, eye corners, nose 30/31/35, mouth corners 48/54, chin 8) are the AFLW points
  exactly, eye centres are the means of the eye contours exactly; the mean of 51 and 57
  equals MouthCenter minus `smile * 0.03` in y (a smiling mouth sags between fixed corners).

  Args:
    eye_open: eyelid aperture factor (1 neutral, > 1 wide, < 1 narrowed).
    brow_arch: raise of the outer-mid brow points (model units).
    brow_inner: raise of the inner-mid brow points (negative = frown).
    mouth_open: lip gap in model units (0 closed).
    smile: > 0 U-shaped mouth (smile), < 0 inverted (sad).
    jaw_width: factor on the width of the jaw angle (gender cue).
  Returns:
    [68, 3] float64 model points.
  """
  p = np.zeros((68, 3))
  # Jaw 0..16: half ellipse from in front of the ears (z = -0.95) to the chin.
  phi = np.deg2rad(np.linspace(180.0, 360.0, 17))
  sin_abs = np.abs(np.sin(phi))
  p[:17, 0] = A21[20, 0] + 0.64 * np.cos(phi) * (1.0 + (jaw_width - 1.0) * sin_abs)
  p[:17, 1] = 0.2 + (A21[20, 1] - 0.2) * sin_abs
  p[:17, 2] = -0.95 + (A21[20, 2] + 0.95) * sin_abs**0.6
  p[8] = A21[20]
  # Brows 17..26 (image-left brow first): corners and centres from AFLW.
  for base, (a, b, c) in ((17, (0, 1, 2)), (22, (3, 4, 5))):
    p[base], p[base + 2], p[base + 4] = A21[a], A21[b], A21[c]
    outer_mid = 1 if base == 17 else 3
    inner_mid = 3 if base == 17 else 1
    p[base + 1] = _lerp(A21[a], A21[b], 0.5) + _UP * 0.02
    p[base + 3] = _lerp(A21[b], A21[c], 0.5) + _UP * 0.02
    p[base + outer_mid] += _UP * brow_arch
    p[base + inner_mid] += _UP * brow_inner
  # Nose bridge 27..30 down to the tip (NoseCenter), nostrils 31..35.
  top = np.array([0.5 * (A21[8, 0] + A21[9, 0]), 0.29, -0.40])
  for k in range(4):
    p[27 + k] = _lerp(top, A21[14], k / 3.0)
  p[31], p[35] = A21[13], A21[15]
  p[33] = np.array([A21[14, 0], -0.115, -0.30])
  p[32], p[34] = _lerp(p[31], p[33], 0.5), _lerp(p[33], p[35], 0.5)
  # Eyes 36..41 (outer, upper x2, inner, lower x2) and 42..47 (inner, upper x2, outer, ...).
  h = 0.05 * eye_open
  for idx, outer, centre, inner in ((36, 6, 7, 8), (42, 11, 10, 9)):
    o, i = A21[outer], A21[inner]
    if idx == 36:
      order = [
        o,
        _lerp(o, i, 1 / 3) + _UP * h,
        _lerp(o, i, 2 / 3) + _UP * h,
        i,
        _lerp(o, i, 2 / 3) - _UP * 0.8 * h,
        _lerp(o, i, 1 / 3) - _UP * 0.8 * h,
      ]
    else:
      order = [
        i,
        _lerp(i, o, 1 / 3) + _UP * h,
        _lerp(i, o, 2 / 3) + _UP * h,
        o,
        _lerp(i, o, 2 / 3) - _UP * 0.8 * h,
        _lerp(i, o, 1 / 3) - _UP * 0.8 * h,
      ]
    eye = np.stack(order)
    eye[[1, 2, 4, 5], 2] += 0.02  # lids bulge out of the corner plane
    shift = (6.0 * A21[centre] - eye.sum(0)) / 4.0  # eye centre = contour mean exactly
    eye[[1, 2, 4, 5]] += shift
    p[idx : idx + 6] = eye
  # Mouth: outer 48..59, inner 60..67, around a bulging base curve between the corners.
  left, right, centre = A21[17], A21[19], A21[18]
  bulge = centre - _lerp(left, right, 0.5)
  sag = -0.03 * smile

  def lip(s, sign, thick):
    w = np.sin(np.pi * s)
    base = _lerp(left, right, s) + bulge * w
    curve = _UP * (sag * w**0.8)
    return base + curve + sign * _UP * (thick * w**0.7 + 0.5 * mouth_open * w**0.8)

  outer_s = [0.0, 0.17, 0.34, 0.5, 0.66, 0.83, 1.0, 0.83, 0.66, 0.5, 0.34, 0.17]
  for k, s in enumerate(outer_s):
    p[48 + k] = lip(s, 1.0 if k <= 6 else -1.0, 0.055)
  p[48], p[54] = left, right
  inner_s = [0.08, 0.3, 0.5, 0.7, 0.92, 0.7, 0.5, 0.3]
  for k, s in enumerate(inner_s):
    p[60 + k] = lip(s, 1.0 if k <= 4 else -1.0, 0.0)
  return p


def _ibug68_angles():
  ang = np.zeros((68, 2))
  k = np.arange(17)
  ang[:17, 0] = (k - 8) / 8.0 * 85.0
  ang[:17, 1] = -30.0 * (1.0 - np.abs(k - 8) / 8.0)
  ang[17:22, 0], ang[22:27, 0] = -50, 50
  ang[31:36, 0] = [-40, -20, 0, 20, 40]
  ang[31:36, 1] = -10
  ang[33, 1] = -30
  ang[36:42, 0], ang[42:48, 0] = -50, 50
  outer = [-50, -35, -15, 0, 15, 35, 50, 35, 15, 0, -15, -35]
  inner = [-35, -15, 0, 15, 35, 15, 0, -15]
  ang[48:60, 0], ang[60:68, 0] = outer, inner
  ang[48:68, 1] = -10
  return ang


IBUG68_NORMALS = np.stack([_normal(t, p) for t, p in _ibug68_angles()])


def five_points_3d():
  """[5, 3] model points of the 5-point scheme (AFLW21_TO_FIVE of the 21)."""
  return A21[schemes.AFLW21_TO_FIVE]


def mirror_model(points, perm):
  """Mirror image of a head model (x negated, left/right indices swapped by `perm`)."""
  out = np.asarray(points)[..., perm, :].copy()
  out[..., 0] = -out[..., 0]
  return out


def camera_points(points, rot, translation, scale=1.0):
  """P = scale * R X + T for model points [..., N, 3]."""
  return scale * np.asarray(points) @ np.asarray(rot).T + np.asarray(translation)


def project(cam_points, image_w, image_h):
  """Pinhole projection (docs/papers.md section 1.9 camera) of camera points [..., N, 3] -> px."""
  f = FOCAL_FACTOR * image_w
  cam = np.asarray(cam_points)
  return np.stack(
    [f * cam[..., 0] / cam[..., 2] + image_w / 2.0, f * cam[..., 1] / cam[..., 2] + image_h / 2.0],
    axis=-1,
  )


def self_visible(normals, rot):
  """Weak-perspective self-occlusion rule (module docstring): bool [N]."""
  return (np.asarray(normals) @ np.asarray(rot).T)[..., 2] < 0.0
