"""Hand-made face-scene fixtures shared by the data tests (no renderer)."""

import numpy as np

KEYS = ("box", "landmarks", "visibility", "pose", "gender")


def make_faces(box_list, gender=None, valid=None, seed=0):
  """Faces dict with landmarks inside their boxes (hand-made, no renderer)."""
  rng = np.random.default_rng(seed)
  box = np.array(box_list, np.float32).reshape(-1, 4)
  f = len(box)
  lm = box[:, None, :2] + box[:, None, 2:] * rng.uniform(0.1, 0.9, (f, 21, 2))
  valid = valid or {}
  return {
    "box": box,
    "landmarks": lm.astype(np.float32),
    "visibility": (rng.uniform(size=(f, 21)) > 0.3).astype(np.float32),
    "pose": rng.normal(size=(f, 3)).astype(np.float32),
    "gender": np.array(gender if gender is not None else [1] * f, np.int64),
    "valid": {k: np.array(valid.get(k, [True] * f), bool) for k in KEYS},
  }
