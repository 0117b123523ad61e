"""Relation-trait rule for face pairs of synthetic scenes (docs/papers.md section 3.1 order).

Traits (index: name) 0 dominant, 1 competitive, 2 trusting, 3 warm, 4 friendly, 5 attached,
6 demonstrative, 7 assured. For a pair (a, b) (a = the earlier face of the scene) the rule
(documented default, docs/synth_faces.md) uses both expressions, whether each face looks
towards the other (its yaw turns it towards the other face's side by > 15 deg: yaw > 0 looks
to image-right), the box-size ratio a/b and the centre distance d in units of the mean box
side:
  pos(x) = expression in {happy, surprise};  neg(x) = expression in {angry, disgust};
  weak(x) = expression in {fear, sad};  mutual = both look towards each other;
  dominant      = size ratio > 1.2, or (a is angry and b is not)
  competitive   = (neg(a) or neg(b)) and (a looks at b or b looks at a)
  trusting      = neither neg nor weak and mutual
  warm          = both happy, or (one happy and mutual)
  friendly      = (happy(a) or happy(b)) and neither neg
  attached      = d < 1.3 and neither neg
  demonstrative = any face with an open mouth and pos or neg expression
  assured       = neither weak and 0.8 < size ratio < 1.25
Then every trait bit is flipped independently with probability 0.1 (label noise).
"""

from __future__ import annotations

import numpy as np

TRAIT_NAMES = (
  "dominant",
  "competitive",
  "trusting",
  "warm",
  "friendly",
  "attached",
  "demonstrative",
  "assured",
)
LOOK_THRESHOLD = np.deg2rad(15.0)
FLIP_PROB = 0.1


def looks_towards(yaw_a, box_a, box_b):
  """True if face a (yaw rad, box x,y,w,h) is turned towards face b's side."""
  dx = (box_b[0] + box_b[2] / 2) - (box_a[0] + box_a[2] / 2)
  return bool(np.sign(dx) * yaw_a > LOOK_THRESHOLD)


def pair_traits(expr, mouth_open, yaw, boxes, a, b):
  """Noise-free 8 traits of the pair (a, b) from per-face arrays (module docstring)."""
  pos = lambda i: expr[i] in (3, 5)
  neg = lambda i: expr[i] in (0, 1)
  weak = lambda i: expr[i] in (2, 4)
  happy = lambda i: expr[i] == 3
  la, lb = looks_towards(yaw[a], boxes[a], boxes[b]), looks_towards(yaw[b], boxes[b], boxes[a])
  mutual = la and lb
  ratio = boxes[a][2] / boxes[b][2]
  ca = np.asarray(boxes[a][:2]) + boxes[a][2] / 2
  cb = np.asarray(boxes[b][:2]) + boxes[b][2] / 2
  dist = np.linalg.norm(ca - cb) / (0.5 * (boxes[a][2] + boxes[b][2]))
  any_neg, any_weak = neg(a) or neg(b), weak(a) or weak(b)
  return np.array(
    [
      ratio > 1.2 or (expr[a] == 0 and expr[b] != 0),
      any_neg and (la or lb),
      (not any_neg) and (not any_weak) and mutual,
      (happy(a) and happy(b)) or ((happy(a) or happy(b)) and mutual),
      (happy(a) or happy(b)) and not any_neg,
      dist < 1.3 and not any_neg,
      any(mouth_open[i] and (pos(i) or neg(i)) for i in (a, b)),
      (not any_weak) and 0.8 < ratio < 1.25,
    ],
    dtype=np.int64,
  )


def scene_relations(rng, expr, mouth_open, yaw, boxes):
  """Relations of all face pairs i < j with label noise.

  Returns:
    (faces int64 [R, 2], traits int64 [R, 8]).
  """
  pairs = [(i, j) for i in range(len(expr)) for j in range(i + 1, len(expr))]
  if not pairs:
    return np.zeros((0, 2), np.int64), np.zeros((0, 8), np.int64)
  traits = np.stack([pair_traits(expr, mouth_open, yaw, boxes, i, j) for i, j in pairs])
  flips = rng.random(traits.shape) < FLIP_PROB
  return np.array(pairs, np.int64), np.where(flips, 1 - traits, traits).astype(np.int64)
