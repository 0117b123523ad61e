"""TFDS builder `fddb`: Face Detection Data Set and Benchmark (Jain & Learned-Miller 2010).

manual_dir holds (docs/papers.md section 5.4):

  FDDB-folds/FDDB-fold-01-ellipseList.txt ... FDDB-fold-10-ellipseList.txt
  originalPics/2002/08/11/big/img_591.jpg ...

An ellipse list is a sequence of records: an image path without extension (relative to
originalPics/), a face count N, then N lines `major_radius minor_radius angle center_x
center_y 1` (angle in radians between the major axis and the x axis). One example per image
in the face-scene schema, split `fold01` ... `fold10` (the benchmark's 10-fold protocol);
each face keeps its ellipse as the extra field `ellipse` [5] and gets a box derived by the
documented rule `ellipse_to_box`: the axis-aligned bounding rectangle of the ellipse.
Coordinates are used as stored (FDDB's evaluation rasterises them on the image grid).
Examples keep the order of the fold file (`disable_shuffling`), which FDDB's
detection-output file must follow (docs/papers.md section 5.4).
Published size: 2,845 images, 5,171 faces.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List, Tuple

import numpy as np
import tensorflow_datasets as tfds

from hyperface_jax.data.builders import face_crops, manual

URL = "http://vis-www.cs.umass.edu/fddb/"
_VERSION = tfds.core.Version("1.1.0")
_RELEASE_NOTES = {
  "1.0.0": "Initial release.",
  "1.1.0": "Examples keep the order of the fold files (disable_shuffling), which the "
  "detection-output file of the FDDB evaluation must follow.",
}
NUM_FOLDS = 10
FOLD_FILE = os.path.join("FDDB-folds", "FDDB-fold-{:02d}-ellipseList.txt")


def ellipse_to_box(ellipse) -> np.ndarray:
  """[..., 5] (ra, rb, theta, cx, cy) -> [..., 4] x, y, w, h of the bounding rectangle.

  Half extents of a rotated ellipse: hx = sqrt(ra^2 cos^2 t + rb^2 sin^2 t),
  hy = sqrt(ra^2 sin^2 t + rb^2 cos^2 t) (documented default rule).
  """
  e = np.asarray(ellipse, np.float64)
  ra, rb, t, cx, cy = (e[..., k] for k in range(5))
  hx = np.sqrt((ra * np.cos(t)) ** 2 + (rb * np.sin(t)) ** 2)
  hy = np.sqrt((ra * np.sin(t)) ** 2 + (rb * np.cos(t)) ** 2)
  return np.stack([cx - hx, cy - hy, 2 * hx, 2 * hy], axis=-1)


def parse_ellipse_list(path) -> Iterator[Tuple[int, str, np.ndarray]]:
  """Yields (line, image_path_without_extension, ellipses [N, 5]) per record of a list."""
  lines = manual.read_lines(path)
  i = 0
  while i < len(lines):
    record_line, image = lines[i]
    if i + 1 >= len(lines):
      raise manual.AnnotationError(path, record_line, f"{image!r} has no face count")
    count_line, count_text = lines[i + 1]
    try:
      count = int(count_text)
    except ValueError:
      raise manual.AnnotationError(
        path, count_line, f"expected the face count of {image!r}, got {count_text!r}"
      ) from None
    if count < 0:
      raise manual.AnnotationError(path, count_line, f"negative face count {count}")
    ellipses = []
    for k in range(count):
      if i + 2 + k >= len(lines):
        raise manual.AnnotationError(
          path, count_line, f"{image!r} announces {count} faces, the file ends after {k}"
        )
      number, text = lines[i + 2 + k]
      fields = text.split()
      try:
        values = [float(v) for v in fields]
      except ValueError:
        values = []
      if len(values) not in (5, 6):
        raise manual.AnnotationError(
          path,
          number,
          f"expected 'major_radius minor_radius angle"
          f" center_x center_y 1', got {text!r} (face {k + 1} of "
          f"{count} of {image!r}; count wrong?)",
        )
      if values[0] <= 0 or values[1] <= 0:
        raise manual.AnnotationError(path, number, f"ellipse radii must be > 0, got {text!r}")
      ellipses.append(values[:5])
    yield record_line, image, np.asarray(ellipses, np.float64).reshape(-1, 5)
    i += 2 + count


def fold_path(root, fold: int) -> str:
  return manual.require(
    root,
    FOLD_FILE.format(fold),
    dataset="fddb",
    url=URL,
    hint="FDDB-folds.tgz extracts FDDB-folds/",
  )


def faces_of(ellipses) -> List[Dict[str, object]]:
  return [
    manual.empty_face(box=ellipse_to_box(e), ellipse=np.asarray(e, np.float32)) for e in ellipses
  ]


class Fddb(tfds.core.GeneratorBasedBuilder):
  """FDDB images with face ellipses and derived boxes, one split per fold."""

  VERSION = _VERSION
  RELEASE_NOTES = _RELEASE_NOTES
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"Download originalPics.tar.gz and FDDB-folds.tgz from {URL} and extract both into "
    "manual_dir (docs/datasets/fddb.md)."
  )

  def _info(self):
    return self.dataset_info_from_configs(
      description=__doc__.split("\n\n")[0],
      features=manual.face_scene_features(
        face_extra={"ellipse": tfds.features.Tensor(shape=(5,), dtype=np.float32)}
      ),
      homepage=URL,
      disable_shuffling=True,  # fold-file order (evaluation/protocols_detection.py output)
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    root = dl_manager.manual_dir
    paths = {fold: fold_path(root, fold) for fold in range(1, NUM_FOLDS + 1)}
    manual.require(
      root,
      "originalPics",
      dataset="fddb",
      url=URL,
      hint="originalPics.tar.gz extracts originalPics/",
    )
    return {
      f"fold{fold:02d}": self._generate_examples(root, path, f"fold{fold:02d}")
      for fold, path in paths.items()
    }

  def _generate_examples(self, root, path, split):
    reader = face_crops.EncodedImageReader("fddb")  # JPEG bytes kept as they are
    seen: Dict[str, int] = {}
    for line, image, ellipses in parse_ellipse_list(path):
      if image in seen:
        raise manual.AnnotationError(
          path, line, f"image {image!r} already has a record at line {seen[image]}"
        )
      seen[image] = line
      # A missing or corrupt image is skipped and listed (1 % rule of manual.ImageReader).
      got = reader.read_encoded(os.path.join(root, "originalPics", image + ".jpg"))
      if got is not None:
        yield image, {"image": got[0], "image/filename": image, "faces": faces_of(ellipses)}
    if not seen:
      raise manual.AnnotationError(
        path,
        None,
        "lists no image (expected FDDB records: path, face count, one ellipse line per face)",
      )
    stats = reader.finish()
    self.info.metadata[f"{split}/num_bad_images"] = stats["num_bad_images"]
    self.info.metadata[f"{split}/bad_images"] = [
      os.path.relpath(p, os.path.join(root, "originalPics")) for p in stats["bad_images"]
    ]
