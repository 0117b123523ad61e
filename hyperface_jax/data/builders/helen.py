"""TFDS builder `helen`: the original Helen release with 194-point annotations.

manual_dir holds the archives of the Helen page (docs/papers.md section 5.9), extracted:

  annotation/1.txt ... annotation/2330.txt   # first line: image name (no extension),
                                             # then 194 lines `x , y`
  helen_1/*.jpg ... helen_5/*.jpg            # (or one images/ folder)
  trainnames.txt, testnames.txt              # image names, one per line

Splits `train` (2,000 images) and `test` (330) from the two name lists. Face-crop schema
(docs/design.md section 5) with `landmarks194` as an extra; there is no standard 194 -> AFLW-21
mapping, so `landmarks`/`visibility` are absent (valid False). `box` is the tight bounding
box of the 194 points (documented default). Coordinates are kept as stored (the release
does not state a pixel origin; docs/datasets/helen.md).
"""

from __future__ import annotations

import os
from typing import Dict

import numpy as np
import tensorflow_datasets as tfds

from hyperface_jax.data.builders import face_crops, manual
from hyperface_jax.data.builders.w300 import crop_example_features

URL = "http://www.ifp.illinois.edu/~vuongle2/helen/"
_VERSION = tfds.core.Version("1.0.0")
NUM_POINTS = 194
IMAGE_FOLDERS = ("helen_1", "helen_2", "helen_3", "helen_4", "helen_5", "images")
SPLIT_FILES = {"train": "trainnames.txt", "test": "testnames.txt"}


def parse_annotation(path):
  """Reads one Helen annotation file -> (image_name, points [194, 2] float64)."""
  lines = manual.read_lines(path)
  if len(lines) != NUM_POINTS + 1:
    raise manual.AnnotationError(
      path,
      lines[-1][0] if lines else None,
      f"expected an image name and {NUM_POINTS} 'x , y' lines, got {len(lines)} non-blank lines",
    )
  points = np.zeros((NUM_POINTS, 2))
  for k, (number, text) in enumerate(lines[1:]):
    fields = [f for f in text.replace(",", " ").split()]
    try:
      if len(fields) != 2:
        raise ValueError
      points[k] = [float(v) for v in fields]
    except ValueError:
      raise manual.AnnotationError(path, number, f"expected 'x , y', got {text!r}") from None
  return lines[0][1], points


def index_annotations(root) -> Dict[str, str]:
  """image name -> annotation file; two files for one image raise AnnotationError."""
  folder = manual.require(
    root, "annotation", dataset="helen", url=URL, hint="annotation.zip extracts annotation/"
  )
  out: Dict[str, str] = {}
  for fname in sorted(os.listdir(folder), key=lambda f: (len(f), f)):
    if not fname.endswith(".txt"):
      continue
    path = os.path.join(folder, fname)
    name = manual.read_lines(path)[0][1] if os.path.getsize(path) else ""
    if name in out:
      raise manual.AnnotationError(path, 1, f"image {name!r} is also annotated by {out[name]}")
    out[name] = path
  return out


def index_images(root) -> Dict[str, str]:
  """image name (no extension) -> path, over helen_1..helen_5/ and images/."""
  out = {}
  for sub in IMAGE_FOLDERS:
    folder = os.path.join(os.fspath(root), sub)
    if os.path.isdir(folder):
      for fname in os.listdir(folder):
        stem, ext = os.path.splitext(fname)
        if ext.lower() in (".jpg", ".jpeg", ".png"):
          out[stem] = os.path.join(folder, fname)
  if not out:
    manual.require(
      root,
      "helen_1",
      dataset="helen",
      url=URL,
      hint="helen_1.zip ... helen_5.zip extract helen_1/ ... helen_5/",
    )
  return out


def read_names(path):
  return [(number, text) for number, text in manual.read_lines(path)]


class Helen(tfds.core.GeneratorBasedBuilder):
  """Helen faces with 194 landmarks."""

  VERSION = _VERSION
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"Download helen_1..5.zip, annotation.zip, trainnames.txt and testnames.txt from {URL} "
    "and extract them into manual_dir (docs/datasets/helen.md)."
  )

  def _info(self):
    return self.dataset_info_from_configs(
      description=__doc__.split("\n\n")[0],
      features=crop_example_features(
        {"landmarks194": tfds.features.Tensor(shape=(NUM_POINTS, 2), dtype=np.float32)}
      ),
      homepage=URL,
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    root = dl_manager.manual_dir
    lists = {
      split: manual.require(root, f, dataset="helen", url=URL) for split, f in SPLIT_FILES.items()
    }
    annotations = index_annotations(root)
    images = index_images(root)
    return {
      split: self._generate_examples(path, annotations, images, split)
      for split, path in lists.items()
    }

  def _generate_examples(self, list_path, annotations, images, split):
    reader = face_crops.EncodedImageReader("helen")  # JPEG bytes kept as they are
    seen: Dict[str, int] = {}
    for number, name in read_names(list_path):
      if name in seen:
        raise manual.AnnotationError(
          list_path, number, f"{name!r} is already listed at line {seen[name]}"
        )
      seen[name] = number
      if name not in annotations:
        raise manual.AnnotationError(list_path, number, f"{name!r} has no annotation/*.txt")
      ann_name, points = parse_annotation(annotations[name])
      got = reader.read_encoded(images.get(name, os.path.join("helen_?", name + ".jpg")))
      if got is None:
        continue
      lo, hi = points.min(axis=0), points.max(axis=0)
      face = manual.empty_face(
        box=np.concatenate([lo, hi - lo]), landmarks194=points.astype(np.float32)
      )
      yield ann_name, dict(face, image=got[0], **{"image/filename": ann_name})
    stats = reader.finish()
    self.info.metadata[f"{split}/num_bad_images"] = stats["num_bad_images"]
    self.info.metadata[f"{split}/bad_images"] = stats["bad_images"]
