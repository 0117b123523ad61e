"""Sampling of the per-face appearance of synthetic faces (identity, attributes, cues).

Gender rule (documented default, docs/synth_faces.md): nine soft cues are sampled from
gender-dependent, overlapping distributions; none decides alone. Most are visible inside
the AFLW face box (make-up, blush, fringe, brows, lips, jaw, earrings at its edge):
  hair_length  male N(0.28, 0.20)  female N(0.60, 0.20)   (0 = cropped .. 1 = shoulders)
  jaw_width    male N(1.10, 0.075) female N(0.98, 0.075)  (factor on the jaw-angle width)
  brow_thick   male N(1.00, 0.25)  female N(0.60, 0.25)   (brow thickness factor)
  lip_red      male N(0.25, 0.20)  female N(0.57, 0.20)   (lip colour, skin -> red)
  beard        male: 45 % have a beard/stubble of strength U(0.3, 1); female: none
  eye_makeup   male N(0.15, 0.25)  female N(0.55, 0.25)   (eyeliner width, eye shadow)
  blush        male N(0.10, 0.25)  female N(0.50, 0.25)   (opacity of pink cheek patches)
  fringe       male N(0.20, 0.25)  female N(0.60, 0.25)   (lower hairline, hair framing
               the temples: hairline 0.70 - 0.14 f, temple drop 0.05 + 0.30 f model units)
  earrings     male 10 %, female 60 % (1 = a stud or hoop at each visible ear lobe)
make-up, blush and fringe are clipped to [0, 1]. Each Gaussian cue has d' = 1.6, i.e.
<= 79 % accuracy when thresholded alone; the beard alone gives 72.5 %, the earrings 75 %;
together the sampled cues allow ~99 % (bench/gender_study.py measures the single cues).

Expressions follow the ExpW order (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise,
6 neutral) and set brow, eyelid and mouth shape parameters of `face_model.ibug68_points`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
EXPRESSION_PROBS = (0.1, 0.08, 0.08, 0.3, 0.1, 0.1, 0.24)
AGE_GROUPS = ("child", "young", "adult", "senior")
AGE_PROBS = (0.15, 0.35, 0.3, 0.2)
CUE_NAMES = (
  "hair_length",
  "jaw_width",
  "brow_thick",
  "lip_red",
  "beard",
  "eye_makeup",
  "blush",
  "fringe",
  "earrings",
)
# (male mean, female mean, std) of the Gaussian cues, see module docstring.
_CUE_DISTS = {
  "hair_length": (0.28, 0.60, 0.20),
  "jaw_width": (1.10, 0.98, 0.075),
  "brow_thick": (1.0, 0.6, 0.25),
  "lip_red": (0.25, 0.57, 0.20),
  "eye_makeup": (0.15, 0.55, 0.25),
  "blush": (0.10, 0.50, 0.25),
  "fringe": (0.20, 0.60, 0.25),
}
_CLIPPED = ("hair_length", "lip_red", "eye_makeup", "blush", "fringe")  # to [0, 1]
_EARRING_PROB = (0.1, 0.6)  # (male, female): single-cue accuracy 0.75
# Make-up / jewellery palettes (RGB): eye shadow, blush, earring metal or stone.
_SHADOW = np.array([[120, 65, 140], [70, 90, 160], [50, 40, 55], [170, 80, 110]], np.float64)
_BLUSH = np.array([[235, 110, 130], [225, 120, 110], [240, 130, 160]], np.float64)
_METAL = np.array([[230, 190, 70], [225, 225, 235], [250, 250, 250], [200, 40, 80]], np.float64)
# Expression -> (brow_arch, brow_inner, eye_open, smile, P(mouth open), open range).
_EXPR_SHAPE = {
  0: (0.0, -0.045, 0.75, -0.3, 0.25, (0.04, 0.07)),
  1: (0.0, -0.03, 0.7, -0.5, 0.4, (0.03, 0.05)),
  2: (0.03, 0.045, 1.45, -0.2, 0.7, (0.06, 0.1)),
  3: (0.01, 0.0, 0.8, 1.0, 0.4, (0.04, 0.09)),
  4: (-0.01, 0.045, 0.7, -0.9, 0.1, (0.03, 0.05)),
  5: (0.06, 0.05, 1.6, 0.0, 0.9, (0.1, 0.18)),
  6: (0.0, 0.0, 1.0, 0.0, 0.1, (0.03, 0.05)),
}
_SKIN = np.array(
  [
    [255, 224, 196],
    [234, 192, 160],
    [205, 150, 115],
    [160, 110, 80],
    [110, 75, 55],
    [245, 210, 180],
  ],
  np.float64,
)
_HAIR = np.array(
  [[30, 25, 20], [70, 45, 25], [120, 80, 40], [200, 160, 100], [150, 60, 30], [15, 15, 15]],
  np.float64,
)
MOUTH_OPEN_THRESHOLD = 0.03  # lip gap (model units) above which mouth_open = 1


@dataclasses.dataclass
class FaceParams:
  """Everything that defines one synthetic face apart from its pose and position."""

  gender: int
  age_group: int
  expression: int
  smiling: int
  mouth_open: int
  eyeglasses: int
  sunglasses: bool
  cues: dict
  shape: dict  # kwargs of face_model.ibug68_points
  head_scale: float
  skin: np.ndarray
  hair: np.ndarray
  iris: np.ndarray
  bald: bool
  wrinkles: float
  hairline: float  # forehead hairline height at the face centre (model y)
  temple_drop: float  # how far the hairline drops towards the temples (fringe cue)
  makeup: dict  # RGB colours "shadow", "blush", "earring"; "hoop": hoop (else stud)
  occluder: str  # "", "hand", "hat", "bar"
  clothes: np.ndarray
  gaze: np.ndarray


def sample_face_params(rng: np.random.Generator, occluder_prob=0.2) -> FaceParams:
  """Samples identity, attributes and cues of one face (module docstring rules).

  Args:
    rng: numpy Generator (the only source of randomness).
    occluder_prob: probability of a hand / hat / bar occluder (sunglasses are separate).
  Returns:
    FaceParams.
  """
  gender = int(rng.random() < 0.5)
  age = int(rng.choice(4, p=AGE_PROBS))
  cues = {}
  for name, (m, f, s) in _CUE_DISTS.items():
    cues[name] = float(rng.normal(f if gender else m, s))
  for name in _CLIPPED:
    cues[name] = float(np.clip(cues[name], 0.0, 1.0))
  cues["earrings"] = float(rng.random() < _EARRING_PROB[gender])
  has_beard = gender == 0 and age != 0 and rng.random() < 0.45 / (1 - AGE_PROBS[0])
  cues["beard"] = float(rng.uniform(0.3, 1.0)) if has_beard else 0.0
  expr = int(rng.choice(7, p=EXPRESSION_PROBS))
  arch, inner, eye_open, smile, p_open, (lo, hi) = _EXPR_SHAPE[expr]
  gap = float(rng.uniform(lo, hi)) if rng.random() < p_open else 0.0
  eye_open *= 1.15 if age == 0 else 1.0
  shape = dict(
    eye_open=eye_open * rng.uniform(0.9, 1.1),
    brow_arch=arch,
    brow_inner=inner,
    mouth_open=gap,
    smile=smile * rng.uniform(0.8, 1.2),
    jaw_width=cues["jaw_width"],
  )
  sunglasses = rng.random() < 0.05
  glasses = sunglasses or rng.random() < 0.2
  skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.9, 1.05, 3)
  if age == 3 and rng.random() < 0.8:  # senior: grey / white hair
    hair = np.full(3, rng.uniform(150, 230))
  else:
    hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.2, 3)
  bald = gender == 0 and age >= 2 and rng.random() < 0.25
  makeup = {
    "shadow": _SHADOW[rng.integers(len(_SHADOW))],
    "blush": _BLUSH[rng.integers(len(_BLUSH))],
    "earring": _METAL[rng.integers(len(_METAL))],
    "hoop": bool(rng.random() < 0.5),
  }
  hairline = 0.70 - 0.14 * cues["fringe"] + rng.uniform(-0.02, 0.02) + (0.15 if bald else 0)
  kind = rng.choice(["hand", "hat", "bar"]) if rng.random() < occluder_prob else ""
  return FaceParams(
    gender=gender,
    age_group=age,
    expression=expr,
    smiling=int(expr == 3),
    mouth_open=int(gap > MOUTH_OPEN_THRESHOLD),
    eyeglasses=int(glasses),
    sunglasses=bool(sunglasses),
    cues=cues,
    shape=shape,
    head_scale=float(rng.uniform(0.82, 0.9) if age == 0 else rng.uniform(0.95, 1.05)),
    skin=np.clip(skin, 0, 255),
    hair=np.clip(hair, 0, 255),
    iris=rng.uniform(20, 120, 3),
    bald=bool(bald),
    wrinkles=float(
      rng.uniform(0.5, 1.0) if age == 3 else (rng.uniform(0, 0.4) if age == 2 else 0.0)
    ),
    hairline=float(hairline),
    temple_drop=0.0 if bald else 0.05 + 0.30 * cues["fringe"],
    makeup=makeup,
    occluder=str(kind),
    clothes=rng.uniform(0, 255, 3),
    gaze=rng.normal(0, 0.012, 2),
  )
