"""Writes 300-W (`.pts`, 1-based) and Helen (194-point `.txt`) fixtures in original format."""

from __future__ import annotations

import os
from typing import Dict, Sequence

import numpy as np
from fixtures_afw_fddb import write_jpeg


def points68(seed: int) -> np.ndarray:
  """68 distinct 1-based points inside a 60x70 image, deterministic per seed."""
  rng = np.random.default_rng(seed)
  return np.round(rng.uniform(5.0, 55.0, size=(68, 2)), 3)


def write_pts(path, points, header=("version: 1", "n_points:  68")):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write("\n".join(header) + "\n{\n")
    f.write("".join(f"{x:.3f} {y:.3f}\n" for x, y in points))
    f.write("}\n")


def write_300w(
  root,
  per_folder: Dict[str, int],
  png_folders=("lfpw/trainset", "lfpw/testset"),
  corrupt: Sequence[str] = (),
) -> Dict[str, np.ndarray]:
  """Writes per_folder[folder] images + .pts; returns {relative image path: 1-based points}."""
  out = {}
  seed = 0
  for folder, count in per_folder.items():
    for i in range(count):
      seed += 1
      stem = f"image_{i:04d}"
      ext = ".png" if folder in png_folders else ".jpg"
      pts = points68(seed)
      write_pts(os.path.join(root, folder, stem + ".pts"), pts)
      rel = os.path.join(folder, stem + ext)
      if rel in corrupt:
        with open(os.path.join(root, rel), "wb") as f:
          f.write(b"\x89PNG broken")
      elif ext == ".png":
        from PIL import Image

        Image.fromarray(np.full((60, 70, 3), seed, np.uint8)).save(os.path.join(root, rel))
      else:
        write_jpeg(os.path.join(root, rel), size=(60, 70), seed=seed)
      out[rel] = pts
  return out


def write_helen(root, train: Sequence[str], test: Sequence[str], seed: int = 0):
  """Helen layout: annotation/N.txt (name + 194 'x , y'), helen_1/*.jpg, name lists."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, "annotation"), exist_ok=True)
  points = {}
  for n, name in enumerate(list(train) + list(test), start=1):
    pts = np.round(rng.uniform(0, 40, size=(194, 2)), 4)
    with open(os.path.join(root, "annotation", f"{n}.txt"), "w") as f:
      f.write(name + "\n" + "".join(f"{x:.4f} , {y:.4f}\n" for x, y in pts))
    write_jpeg(os.path.join(root, f"helen_{1 + n % 2}", name + ".jpg"), size=(45, 50), seed=n)
    points[name] = pts
  for fname, names in (("trainnames.txt", train), ("testnames.txt", test)):
    with open(os.path.join(root, fname), "w") as f:
      f.write("".join(f"{name}\n" for name in names))
  return points
