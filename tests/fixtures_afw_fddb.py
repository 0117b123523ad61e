"""Writes AFW (anno.mat via scipy.io.savemat) and FDDB (fold ellipse lists) fixtures."""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image
from scipy import io as sio


def write_jpeg(path, size=(40, 50), seed=0, gray=False):
  h, w = size
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  if gray:
    Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L").save(path, "JPEG")
  else:
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, "JPEG")


def _cell_row(items) -> np.ndarray:
  cell = np.empty((1, len(items)), dtype=object)
  for j, item in enumerate(items):
    cell[0, j] = np.asarray(item, np.float64)
  return cell


def write_afw(root, rows: Sequence[Tuple[str, List, List, List]], corrupt: Sequence[str] = ()):
  """rows: (image_name, boxes [[x1,y1],[x2,y2]], landmarks 6x2, poses [yaw,pitch,roll] deg)
  in MATLAB 1-based pixels; writes root/anno.mat (cell array `anno`) and the JPEGs."""
  os.makedirs(root, exist_ok=True)
  anno = np.empty((len(rows), 4), dtype=object)
  for i, (name, boxes, points, poses) in enumerate(rows):
    anno[i, 0] = name
    anno[i, 1] = _cell_row(boxes)
    anno[i, 2] = _cell_row(points)
    anno[i, 3] = _cell_row(poses)
    path = os.path.join(root, name)
    if name in corrupt:
      with open(path, "wb") as f:
        f.write(b"\xff\xd8\xff not a jpeg")
    else:
      write_jpeg(path, seed=i)
  sio.savemat(os.path.join(root, "anno.mat"), {"anno": anno})


AFW_ROWS = [
  (
    "1004109301.jpg",
    [[[11, 21], [41, 61]], [[2, 3], [12, 15]]],
    [
      [[15, 30], [30, 30], [22, 40], [16, 50], [22, 51], [29, 50]],
      [[4, 6], [9, 6], [np.nan, np.nan], [5, 12], [7, 12], [10, 12]],
    ],
    [[30.0, -15.0, 5.0], [-60.0, 0.0, 0.0]],
  ),
  (
    "1051618982.jpg",
    [[[5, 5], [25, 30]]],
    [[[10, 12], [20, 12], [15, 18], [11, 24], [15, 25], [19, 24]]],
    [[0.0, 10.0, -10.0]],
  ),
]


def write_fddb(
  root,
  folds: Dict[int, Sequence[Tuple[str, List[List[float]]]]],
  corrupt: Sequence[str] = (),
  gray: Sequence[str] = (),
):
  """folds: fold -> [(image path without extension, [[ra, rb, theta, cx, cy], ...])];
  writes FDDB-folds/FDDB-fold-XX(-ellipseList).txt and originalPics/<path>.jpg."""
  os.makedirs(os.path.join(root, "FDDB-folds"), exist_ok=True)
  seed = 0
  for fold in range(1, 11):
    records = folds.get(fold, [])
    with open(os.path.join(root, "FDDB-folds", f"FDDB-fold-{fold:02d}.txt"), "w") as f:
      f.write("".join(f"{p}\n" for p, _ in records))
    with open(os.path.join(root, "FDDB-folds", f"FDDB-fold-{fold:02d}-ellipseList.txt"), "w") as f:
      for path, ellipses in records:
        f.write(f"{path}\n{len(ellipses)}\n")
        for e in ellipses:
          f.write(" ".join(f"{v:.6f}" for v in e) + "  1\n")
    for path, _ in records:
      full = os.path.join(root, "originalPics", path + ".jpg")
      seed += 1
      if path in corrupt:
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
          f.write(b"garbage")
      else:
        write_jpeg(full, size=(80, 90), seed=seed, gray=path in gray)


FDDB_FOLDS = {
  1: [
    (
      "2002/08/11/big/img_591",
      [[30.0, 20.0, 1.5707963, 40.0, 35.0], [10.0, 10.0, 0.0, 70.0, 20.0]],
    ),
    ("2002/08/26/big/img_265", [[20.0, 10.0, 0.0, 45.0, 40.0]]),
  ],
  2: [("2003/01/13/big/img_1087", [[12.0, 8.0, 0.5, 30.0, 30.0]])],
}
