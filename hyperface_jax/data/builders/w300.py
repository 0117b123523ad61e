"""TFDS builder `ibug_300w`: 300-W (iBUG 68-point) faces, one example per `.pts` file.

manual_dir holds the 300-W training/test folders as distributed by iBUG (docs/papers.md 5.9):

  lfpw/trainset/*.png|.jpg + .pts    helen/trainset/*.jpg + .pts    afw/*.jpg + .pts
  lfpw/testset/...                   helen/testset/...              ibug/*.jpg + .pts

Splits (the standard protocol, docs/papers.md 5.9): `train` = lfpw/trainset + helen/trainset +
afw (3,148 faces), `common` = lfpw/testset + helen/testset (554), `challenging` = ibug
(135), `full` = common + challenging (689).

Face-crop schema (docs/design.md section 5): the per-face fields at the top level (no `faces`
sequence), the whole original image in `image`, plus `landmarks68` / `visibility68`.
`.pts` coordinates are 1-based and have 1 subtracted (docs/design.md section 6). `landmarks` are
the AFLW-21 points derived by `schemes.ibug68_to_aflw21` (ears not visible); `box` is the
tight bounding box of the 68 points (documented default; 300-W has no face boxes in the
.pts files). Pose and gender are absent (valid False).
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List, Tuple

import numpy as np
import tensorflow_datasets as tfds

from hyperface_jax.data import schemes
from hyperface_jax.data.builders import face_crops, manual

URL = "https://ibug.doc.ic.ac.uk/resources/300-W/"
_VERSION = tfds.core.Version("1.0.0")
SUBSETS = {
  "train": ("lfpw/trainset", "helen/trainset", "afw"),
  "common": ("lfpw/testset", "helen/testset"),
  "challenging": ("ibug",),
  "full": ("lfpw/testset", "helen/testset", "ibug"),
}
IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg", ".JPG", ".PNG")


def parse_pts(path, expected_points: int = 68) -> np.ndarray:
  """Reads an iBUG `.pts` file -> [n_points, 2] float64 as stored (1-based).

  Format: `version: 1`, `n_points: N`, `{`, N lines `x y`, `}` (docs/papers.md 5.9).
  """
  lines = manual.read_lines(path)
  header = {}
  i = 0
  while i < len(lines) and lines[i][1] != "{":
    number, text = lines[i]
    key, sep, value = text.partition(":")
    if not sep:
      raise manual.AnnotationError(
        path, number, f"expected 'key: value' header or '{{', got {text!r}"
      )
    header[key.strip()] = (number, value.strip())
    i += 1
  if "n_points" not in header:
    raise manual.AnnotationError(path, lines[0][0] if lines else None, "header lacks 'n_points: N'")
  number, value = header["n_points"]
  if not value.isdigit() or int(value) != expected_points:
    raise manual.AnnotationError(path, number, f"n_points is {value!r}; expected {expected_points}")
  body = lines[i + 1 : i + 1 + expected_points]
  closing = lines[i + 1 + expected_points] if i + 1 + expected_points < len(lines) else None
  if i >= len(lines) or len(body) < expected_points or closing is None or closing[1] != "}":
    where = body[-1][0] if body else (lines[-1][0] if lines else None)
    raise manual.AnnotationError(
      path, where, f"expected '{{', {expected_points} 'x y' lines and '}}'"
    )
  points = np.zeros((expected_points, 2))
  for k, (number, text) in enumerate(body):
    fields = text.replace(",", " ").split()
    try:
      points[k] = [float(v) for v in fields]
    except ValueError:
      raise manual.AnnotationError(path, number, f"expected 'x y', got {text!r}") from None
  return points


def find_image(folder: str, stem: str) -> str:
  """The image next to a `.pts` file (first existing extension; the .jpg name if none)."""
  for ext in IMAGE_EXTENSIONS:
    path = os.path.join(folder, stem + ext)
    if os.path.exists(path):
      return path
  return os.path.join(folder, stem + ".jpg")


def crop_example_features(extra: Dict[str, object]):
  """Per-face fields at top level + image + image/filename + `extra`."""
  feats = manual.face_features(extra)
  feats["image"] = tfds.features.Image(shape=(None, None, 3))
  feats["image/filename"] = tfds.features.Text()
  return tfds.features.FeaturesDict(feats)


def face_from_68(points68: np.ndarray) -> Dict[str, object]:
  """Schema face of 0-based iBUG-68 points: AFLW-21 subset, box, landmarks68 extras."""
  aflw = schemes.ibug68_to_aflw21(points68)
  visible = np.all(np.isfinite(aflw), axis=1)
  lo, hi = points68.min(axis=0), points68.max(axis=0)
  return manual.empty_face(
    box=np.concatenate([lo, hi - lo]),
    landmarks=np.where(visible[:, None], aflw, 0.0),
    visibility=visible.astype(np.float32),
    landmarks68=points68.astype(np.float32),
    visibility68=np.ones(68, np.float32),
  )


def list_pts(root, folder: str) -> List[str]:
  """Sorted `.pts` stems of root/folder; ManualFileMissing when the folder is absent."""
  path = manual.require(
    root,
    folder,
    dataset="ibug_300w",
    url=URL,
    hint="extract the 300-W archives (lfpw, helen, afw, ibug folders)",
  )
  return sorted(f[:-4] for f in os.listdir(path) if f.endswith(".pts"))


def generate(dataset: str, root, folders, face_fn, parse_fn) -> Iterator[Tuple[str, dict]]:
  """Examples of `folders` (relative names), images read with the 1 % bad-image rule."""
  reader = face_crops.EncodedImageReader(dataset)  # JPEG/PNG bytes kept as they are
  for folder in folders:
    for stem in list_pts(root, folder):
      points = parse_fn(os.path.join(root, folder, stem + ".pts"))
      image_path = find_image(os.path.join(root, folder), stem)
      got = reader.read_encoded(image_path)
      if got is None:
        continue
      name = os.path.relpath(image_path, os.fspath(root))
      yield name, dict(face_fn(points), image=got[0], **{"image/filename": name})
  return reader.finish()


class Ibug300w(tfds.core.GeneratorBasedBuilder):
  """300-W faces with 68 landmarks (and their AFLW-21 subset)."""

  name = "ibug_300w"
  VERSION = _VERSION
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"Download the 300-W training images (lfpw, helen, afw, ibug) from {URL} and extract "
    "them into manual_dir (docs/datasets/ibug_300w.md)."
  )

  def _info(self):
    f32 = np.float32
    return self.dataset_info_from_configs(
      description=__doc__.split("\n\n")[0],
      features=crop_example_features(
        {
          "landmarks68": tfds.features.Tensor(shape=(68, 2), dtype=f32),
          "visibility68": tfds.features.Tensor(shape=(68,), dtype=f32),
        }
      ),
      homepage=URL,
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    root = dl_manager.manual_dir
    for folders in SUBSETS.values():
      for folder in folders:
        manual.require(
          root,
          folder,
          dataset="ibug_300w",
          url=URL,
          hint="extract the 300-W archives (lfpw, helen, afw, ibug folders)",
        )
    return {split: self._generate_examples(root, split) for split in SUBSETS}

  def _generate_examples(self, root, split):
    stats = yield from generate(
      "ibug_300w",
      root,
      SUBSETS[split],
      lambda p: face_from_68(p - 1.0),  # 1-based -> 0-based
      parse_pts,
    )
    self.info.metadata[f"{split}/num_bad_images"] = stats["num_bad_images"]
    self.info.metadata[f"{split}/bad_images"] = [
      os.path.relpath(p, os.fspath(root)) for p in stats["bad_images"]
    ]
