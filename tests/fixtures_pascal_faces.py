"""Writes a PASCAL faces fixture: the ECCV'14 toolbox's annotation .mat (struct array
`Annotations` with imgname / objects, via scipy.io.savemat) and the VOC JPEGs it lists."""

from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import numpy as np
from fixtures_afw_fddb import write_jpeg
from scipy import io as sio

ANNOTATION = "Annotations_Face_PASCALLayout_large_fixed.mat"


def write_annotations(path, rows: Sequence[Tuple[str, List[List[float]]]]):
  """rows: (image name, objects [[left, top, right, bottom(, x, ignore)], ...] 1-based)."""
  arr = np.zeros((1, len(rows)), dtype=[("imgname", object), ("objects", object)])
  for i, (name, objects) in enumerate(rows):
    arr[0, i]["imgname"] = name
    width = max([len(o) for o in objects], default=4)
    arr[0, i]["objects"] = np.asarray(objects, np.float64).reshape(-1, width)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  sio.savemat(path, {"Annotations": arr})


def write_pascal_faces(
  root,
  rows: Sequence[Tuple[str, List[List[float]]]],
  image_dir="VOCdevkit/VOC2012/JPEGImages",
  missing: Sequence[str] = (),
  size=(60, 80),
):
  """Writes root/annotations/<ANNOTATION> and each listed image under root/image_dir
  (except `missing`); returns the annotation path."""
  path = os.path.join(root, "annotations", ANNOTATION)
  write_annotations(path, rows)
  for seed, (name, _) in enumerate(rows):
    if name not in missing:
      write_jpeg(os.path.join(root, image_dir, name), size=size, seed=seed)
  return path


# 1-based [left top right bottom], a 6-column row with the ignore flag, an image without faces.
PASCAL_ROWS = [
  ("2008_000034.jpg", [[11, 21, 41, 51, 0, 0], [51, 5, 61, 15, 0, 1]]),
  ("2009_000020.jpg", [[5, 5, 25, 30, 0, 0]]),
  ("2010_000005.jpg", []),
]
