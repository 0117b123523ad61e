"""Landmark schemes: names, horizontal-flip permutations and conversions.

One module for every scheme the three papers use (docs/design.md section 6):
  * AFLW-21 (HyperFace; docs/papers.md section 1.13, index = AFLW feature_id - 1),
  * iBUG-68 (300-W; TCDCN 68-point fine-tuning, docs/papers.md section 5.9),
  * 5-point (TCDCN ECCV'14 / MTFL / CelebA, docs/papers.md sections 2.1, 5.5, 5.7).

"Left" always means image-left in a frontal view (docs/papers.md section 1.13), so a
horizontal flip swaps Left* and Right* points.
"""

from __future__ import annotations

import numpy as np

# docs/papers.md section 1.13: AFLW FeatureCoordTypes order (feature_id 1..21).
AFLW21_NAMES = (
  "LeftBrowLeftCorner",
  "LeftBrowCenter",
  "LeftBrowRightCorner",
  "RightBrowLeftCorner",
  "RightBrowCenter",
  "RightBrowRightCorner",
  "LeftEyeLeftCorner",
  "LeftEyeCenter",
  "LeftEyeRightCorner",
  "RightEyeLeftCorner",
  "RightEyeCenter",
  "RightEyeRightCorner",
  "LeftEar",
  "NoseLeft",
  "NoseCenter",
  "NoseRight",
  "RightEar",
  "MouthLeftCorner",
  "MouthCenter",
  "MouthRightCorner",
  "ChinCenter",
)
AFLW21_INDEX = {name: i for i, name in enumerate(AFLW21_NAMES)}

# docs/papers.md section 1.13 (TK `_flip_y`).
AFLW21_FLIP = np.array([5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 16, 15, 14, 13, 12, 19, 18, 17, 20])

# docs/papers.md section 5.1: AFLW mean 3-D face (FeatureCoordTypes x, y, z; AFLW
# toolkit MeanFace3DModel.cpp). x towards image-right of a frontal face, y up;
# the face looks along +z (the nose tip has the largest z, the ears the least).
AFLW21_MEAN_FACE_3D = np.array(
  [
    (-0.575, 0.479, -0.64),  # LeftBrowLeftCorner
    (-0.44, 0.502, -0.469),  # LeftBrowCenter
    (-0.207, 0.444, -0.388),  # LeftBrowRightCorner
    (0.11, 0.445, -0.358),  # RightBrowLeftCorner
    (0.283, 0.486, -0.376),  # RightBrowCenter
    (0.46, 0.472, -0.51),  # RightBrowRightCorner
    (-0.4796, 0.3, -0.604),  # LeftEyeLeftCorner
    (-0.361, 0.309, -0.521),  # LeftEyeCenter
    (-0.221, 0.296, -0.512),  # LeftEyeRightCorner
    (0.105, 0.291, -0.474),  # RightEyeLeftCorner
    (0.235, 0.296, -0.46),  # RightEyeCenter
    (0.369, 0.285, -0.512),  # RightEyeRightCorner
    (-0.649, -0.198, -1.269),  # LeftEar
    (-0.2252, -0.0926, -0.4079),  # NoseLeft
    (-0.071, -0.023, -0.13),  # NoseCenter
    (-0.0946, -0.0944, -0.3621),  # NoseRight
    (0.593, -0.236, -1.119),  # RightEar
    (-0.296, -0.348, -0.472),  # MouthLeftCorner
    (-0.072, -0.346, -0.333),  # MouthCenter
    (0.156, -0.366, -0.417),  # MouthRightCorner
    (-0.068, -0.703, -0.387),  # ChinCenter
  ],
  dtype=np.float64,
)

# docs/papers.md section 1.13: normalized 2-D template (y up), TK aflw_template.
AFLW21_TEMPLATE_2D = np.array(
  [
    (-0.4800, 0.4719),
    (-0.3030, 0.5090),
    (-0.1065, 0.4981),
    (0.1065, 0.4981),
    (0.3030, 0.5090),
    (0.4800, 0.4719),
    (-0.4472, 0.3211),
    (-0.3183, 0.3255),
    (-0.1632, 0.3080),
    (0.1632, 0.3080),
    (0.3183, 0.3255),
    (0.4472, 0.3211),
    (-0.6743, -0.1517),
    (-0.1700, -0.0757),
    (0.0, 0.0),
    (0.1700, -0.0757),
    (0.6743, -0.1517),
    (-0.2725, -0.3472),
    (0.0, -0.3363),
    (0.2725, -0.3472),
    (0.0, -0.7380),
  ],
  dtype=np.float64,
)

# iBUG-68 (docs/papers.md section 5.9): jaw 0-16, brows 17-26, nose 27-35,
# eyes 36-47, mouth 48-67. Standard mirror pairs.
_IBUG68_PAIRS = (
  [(i, 16 - i) for i in range(8)]
  + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]
  + [(31, 35), (32, 34)]
  + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
  + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]
  + [(60, 64), (61, 63), (65, 67)]
)


def _perm_from_pairs(n, pairs):
  perm = np.arange(n)
  for a, b in pairs:
    perm[a], perm[b] = b, a
  return perm


IBUG68_FLIP = _perm_from_pairs(68, _IBUG68_PAIRS)

# 5-point scheme (docs/papers.md section 2.1): left eye, right eye, nose,
# left mouth corner, right mouth corner.
FIVE_NAMES = ("LeftEye", "RightEye", "Nose", "MouthLeft", "MouthRight")
FIVE_FLIP = np.array([1, 0, 2, 4, 3])

# AFLW-21 indices that make up the 5-point scheme.
AFLW21_TO_FIVE = np.array([7, 10, 14, 17, 19])

# iBUG-68 -> AFLW-21 for the points that exist in both; -1 = no counterpart
# (the ears). Eye centres are the mean of the six eye-contour points and the
# mouth centre the mean of the outer lip mid-points (documented default).
IBUG68_TO_AFLW21 = (
  (17,),
  (19,),
  (21,),
  (22,),
  (24,),
  (26,),
  (36,),
  (36, 37, 38, 39, 40, 41),
  (39,),
  (42,),
  (42, 43, 44, 45, 46, 47),
  (45,),
  (),
  (31,),
  (30,),
  (35,),
  (),
  (48,),
  (51, 57),
  (54,),
  (8,),
)

IBUG68_TO_FIVE = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47), (30,), (48,), (54,))


def _gather_mean(points, groups):
  out = np.full(points.shape[:-2] + (len(groups), points.shape[-1]), np.nan, dtype=points.dtype)
  for j, group in enumerate(groups):
    if group:
      out[..., j, :] = points[..., list(group), :].mean(axis=-2)
  return out


def ibug68_to_aflw21(points68):
  """Maps [..., 68, 2] iBUG points to [..., 21, 2] AFLW points (ears NaN)."""
  return _gather_mean(np.asarray(points68), IBUG68_TO_AFLW21)


def ibug68_to_five(points68):
  """Maps [..., 68, 2] iBUG points to the [..., 5, 2] 5-point scheme."""
  return _gather_mean(np.asarray(points68), IBUG68_TO_FIVE)


def aflw21_to_five(points21):
  """Maps [..., 21, 2] AFLW points to the [..., 5, 2] 5-point scheme."""
  return np.asarray(points21)[..., AFLW21_TO_FIVE, :]


FLIP_PERMUTATIONS = {"aflw21": AFLW21_FLIP, "ibug68": IBUG68_FLIP, "five": FIVE_FLIP}


def flip_landmarks(points, width, scheme="aflw21"):
  """Mirrors pixel landmarks [..., N, 2] in an image of `width` pixels.

  x -> width - 1 - x for 0-based pixel centres (docs/papers.md section 1.13), then
  the scheme's permutation so that Left* stays image-left.
  """
  points = np.asarray(points)
  perm = FLIP_PERMUTATIONS[scheme]
  flipped = points[..., perm, :].copy()
  flipped[..., 0] = width - 1 - flipped[..., 0]
  return flipped


# AFLW-19 benchmark subset (AFLW-Full / AFLW-Frontal protocol of Zhu et al. CVPR'15/'16,
# used by later AFLW landmark tables): the 21 AFLW points without the two ears, in AFLW
# order (documented default; docs/papers.md section 1.12 lists the 21-point protocol for
# HyperFace, the 19-point one is for comparison with later work).
AFLW21_TO_AFLW19 = np.array(
  [i for i in range(21) if i not in (AFLW21_INDEX["LeftEar"], AFLW21_INDEX["RightEar"])]
)
AFLW19_NAMES = tuple(AFLW21_NAMES[i] for i in AFLW21_TO_AFLW19)


def _restricted_flip(flip, subset):
  """Flip permutation of the scheme `points[subset]`, given the parent's `flip`."""
  position = {int(p): i for i, p in enumerate(subset)}
  return np.array([position[int(flip[p])] for p in subset])


AFLW19_FLIP = _restricted_flip(AFLW21_FLIP, AFLW21_TO_AFLW19)
FLIP_PERMUTATIONS["aflw19"] = AFLW19_FLIP


def aflw21_to_aflw19(points21):
  """Maps [..., 21, C] AFLW points (or [..., 21] visibilities) to the 19-point subset."""
  points21 = np.asarray(points21)
  axis = -2 if points21.ndim >= 2 and points21.shape[-1] != 21 else -1
  return np.take(points21, AFLW21_TO_AFLW19, axis=axis)


def _gather_all(visibility, groups):
  """Visibility of mapped points: visible iff every source point of the group is."""
  visibility = np.asarray(visibility, np.float64)
  out = np.zeros(visibility.shape[:-1] + (len(groups),))
  for j, group in enumerate(groups):
    if group:
      out[..., j] = np.all(visibility[..., list(group)] > 0.5, axis=-1)
  return out


def ibug68_visibility_to_aflw21(visibility68):
  """[..., 68] visibility -> [..., 21]: a derived point is visible iff all its sources are
  (the ears, with no source, are never visible)."""
  return _gather_all(visibility68, IBUG68_TO_AFLW21)


def ibug68_visibility_to_five(visibility68):
  """[..., 68] visibility -> [..., 5] (same rule as `ibug68_visibility_to_aflw21`)."""
  return _gather_all(visibility68, IBUG68_TO_FIVE)


# (source, target) -> point conversion; used by the evaluators to score a model of one
# scheme on a dataset annotated in another.
CONVERSIONS = {
  ("aflw21", "aflw19"): aflw21_to_aflw19,
  ("aflw21", "five"): aflw21_to_five,
  ("ibug68", "aflw21"): ibug68_to_aflw21,
  ("ibug68", "five"): ibug68_to_five,
}


def convert_landmarks(points, source: str, target: str):
  """Converts [..., N, 2] points of scheme `source` to `target` (identity if equal)."""
  if source == target:
    return np.asarray(points)
  try:
    return CONVERSIONS[(source, target)](points)
  except KeyError:
    raise ValueError(
      f"no landmark conversion {source} -> {target}; known: {sorted(CONVERSIONS)}"
    ) from None
