"""Writes a tiny MTFL distribution in the exact release format (docs/papers.md section 5.5).

Rows start with a space, paths use backslashes, floats have 6 decimals:
 lfw_5590\\Aaron_Guiel_0001.jpg 101.250000 146.750000 ... 1 1 2 3
"""

from __future__ import annotations

import os

import numpy as np
from fixtures_celeba import write_corrupt, write_jpeg

IMAGE_HW = (120, 100)
# (folder, file, gender, smile, glasses, pose) codes as in the release (1-based).
TRAIN = (
  ("lfw_5590", "Aaron_Guiel_0001.jpg", 1, 1, 2, 3),
  ("net_7876", "0001.jpg", 2, 2, 1, 1),
  ("lfw_5590", "Zoe_Ball_0001.jpg", 2, 1, 2, 5),
)
TEST = (("AFLW", "0001-image20056.jpg", 1, 2, 2, 2), ("AFLW", "0002-image04227.jpg", 2, 1, 1, 4))


def mtfl_points(index):
  """Landmarks [5, 2] (x, y) of row `index`, with quarter-pixel fractions."""
  base = np.array([[35.25, 45.5], [64.75, 44.0], [50.0, 62.25], [38.5, 80.0], [61.0, 81.75]])
  return base + np.array([index * 1.5, index * -0.75])


def _row(folder, name, codes, points):
  coords = list(points[:, 0]) + list(points[:, 1])  # all x first, then all y
  return (
    f" {folder}\\{name} "
    + " ".join(f"{c:.6f}" for c in coords)
    + " "
    + " ".join(str(c) for c in codes)
  )


def write_mtfl(root, corrupt=()):
  """Writes training.txt / testing.txt (CRLF, leading spaces, backslashes) and JPEGs.

  Returns {split: [(relative path, points, codes)]} in file order.
  """
  out, index = {}, 0
  for split, fname, rows in (("train", "training.txt", TRAIN), ("test", "testing.txt", TEST)):
    lines, values = [], []
    for folder, name, *codes in rows:
      pts = mtfl_points(index)
      path = os.path.join(root, folder, name)
      if name in corrupt:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_corrupt(path)
      else:
        write_jpeg(path, IMAGE_HW, index)
      lines.append(_row(folder, name, codes, pts))
      values.append((f"{folder}/{name}", pts, tuple(codes)))
      index += 1
    with open(os.path.join(root, fname), "w", newline="") as f:
      f.write("\r\n".join(lines) + "\r\n")
    out[split] = values
  return out
