"""Shared machinery of the builders that read an original distribution from `manual_dir`.

Real face datasets (AFLW, CelebA, 300-W, ...) cannot be downloaded automatically, so each
builder reads the files the user downloaded (docs/design.md section 2). This module gives them one
way to:
  - require a file and, when it is missing, say which file, where it was expected and the page
    it comes from (`require`, `ManualFileMissing`);
  - report an annotation row that contradicts the schema with its file and line
    (`AnnotationError`);
  - decode images tolerantly: a corrupt or unreadable image is skipped and listed, and the
    build fails when more than `max_bad_fraction` (default 1 %) are bad (`ImageReader`);
  - declare the face-scene features of docs/design.md section 5 (`face_scene_features`) and fill
    absent labels with masks, never sentinels that leak into a loss (`empty_face`).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

VALID_KEYS = ("box", "landmarks", "visibility", "pose", "gender")
MAX_BAD_FRACTION = 0.01


class ManualFileMissing(FileNotFoundError):
  """A file of the original distribution is not in manual_dir."""

  def __init__(self, dataset: str, path: str, url: str, hint: str = ""):
    self.dataset, self.path, self.url = dataset, path, url
    msg = (
      f"{dataset}: expected {path!s}, which is missing. Download the original "
      f"distribution from {url} and place it so that this path exists"
    )
    super().__init__(msg + (f" ({hint})." if hint else "."))


class AnnotationError(ValueError):
  """An annotation row that contradicts the schema, located by file and line (1-based)."""

  def __init__(self, path, line: Optional[int], message: str):
    self.path, self.line = str(path), line
    where = f"{path}:{line}" if line is not None else str(path)
    super().__init__(f"{where}: {message}")


class TooManyBadImages(RuntimeError):
  """More than the allowed fraction of images could not be decoded."""


def require(manual_dir, relpath: str, *, dataset: str, url: str, hint: str = "") -> str:
  """`manual_dir/relpath`, or ManualFileMissing naming the file and the download page."""
  if manual_dir is None:
    raise ManualFileMissing(
      dataset,
      f"<manual_dir>/{relpath}",
      url,
      "pass --manual_dir=DIR (or download_config.manual_dir)",
    )
  path = os.path.join(os.fspath(manual_dir), relpath)
  if not os.path.exists(path):
    raise ManualFileMissing(dataset, path, url, hint)
  return path


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
  """Documented conversions to RGB uint8: gray -> 3 channels, RGBA -> drop alpha,
  16-bit -> top 8 bits (>> 8), float in [0, 1] -> x 255."""
  a = np.asarray(array)
  if a.dtype == np.uint16:
    a = (a >> 8).astype(np.uint8)
  elif a.dtype.kind == "f":
    a = np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
  elif a.dtype == np.bool_:
    a = a.astype(np.uint8) * 255
  elif a.dtype != np.uint8:
    a = np.clip(a, 0, 255).astype(np.uint8)
  if a.ndim == 2:
    a = np.repeat(a[:, :, None], 3, axis=2)
  if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
    raise ValueError(f"expected an image of shape (H, W[, 1|3|4]), got {array.shape}")
  if a.shape[2] == 1:
    a = np.repeat(a, 3, axis=2)
  return np.ascontiguousarray(a[:, :, :3])


def decode_image(data: bytes) -> np.ndarray:
  """Decodes encoded image bytes to RGB uint8 (PIL; EXIF orientation is NOT applied,
  because dataset annotations refer to the stored pixel grid). Raises on any error,
  including truncated files."""
  from PIL import Image  # pillow: a dependency of tensorflow-datasets' image features

  with Image.open(io.BytesIO(data)) as im:
    im.load()  # forces a full decode: truncated JPEGs raise here
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
      arr = np.asarray(im).astype(np.uint32)
      arr = (arr >> 8).astype(np.uint8) if arr.max() > 255 else arr.astype(np.uint8)
    elif im.mode in ("L", "RGB", "RGBA"):
      arr = np.asarray(im)
    else:
      arr = np.asarray(im.convert("RGB"))
  return to_rgb_uint8(arr)


@dataclasses.dataclass
class ImageReader:
  """Reads images of a build, skipping and listing the unreadable ones.

  Usage inside `_generate_examples`:
    reader = ImageReader("aflw")
    for ... : img = reader.read(path); if img is None: continue
    reader.finish()      # raises TooManyBadImages above max_bad_fraction
  """

  dataset: str
  max_bad_fraction: float = MAX_BAD_FRACTION
  total: int = 0
  bad: List[str] = dataclasses.field(default_factory=list)

  def read(self, path) -> Optional[np.ndarray]:
    self.total += 1
    try:
      with open(path, "rb") as f:
        return decode_image(f.read())
    except Exception as e:  # pylint: disable=broad-except  (any decode failure = bad image)
      self.bad.append(os.fspath(path))
      logging.warning(
        "%s: skipping unreadable image %s (%s: %s)", self.dataset, path, type(e).__name__, e
      )
      return None

  def finish(self) -> Dict[str, object]:
    """Checks the bad fraction; returns {'num_images', 'num_bad_images', 'bad_images'}."""
    if self.bad:
      logging.warning(
        "%s: %d of %d images unreadable and skipped: %s",
        self.dataset,
        len(self.bad),
        self.total,
        ", ".join(self.bad),
      )
    if self.total and len(self.bad) > self.max_bad_fraction * self.total:
      raise TooManyBadImages(
        f"{self.dataset}: {len(self.bad)} of {self.total} images are unreadable "
        f"(more than {self.max_bad_fraction:.0%}); first ones: {self.bad[:10]}. "
        "Check the download (re-extract the archives)."
      )
    return {"num_images": self.total, "num_bad_images": len(self.bad), "bad_images": list(self.bad)}


def face_features(extra: Optional[Dict[str, object]] = None):
  """Per-face core features of the face-scene schema (docs/design.md section 5) plus `extra`."""
  import tensorflow_datasets as tfds

  f32 = np.float32
  feats = {
    "box": tfds.features.Tensor(shape=(4,), dtype=f32),
    "landmarks": tfds.features.Tensor(shape=(21, 2), dtype=f32),
    "visibility": tfds.features.Tensor(shape=(21,), dtype=f32),
    "pose": tfds.features.Tensor(shape=(3,), dtype=f32),
    "gender": tfds.features.Tensor(shape=(), dtype=np.int64),
    "valid": tfds.features.FeaturesDict(
      {k: tfds.features.Tensor(shape=(), dtype=np.bool_) for k in VALID_KEYS}
    ),
  }
  feats.update(extra or {})
  return feats


def face_scene_features(face_extra=None, extra=None):
  """FeaturesDict of a whole-image face dataset: image, image/filename, faces[...]."""
  import tensorflow_datasets as tfds

  feats = {
    "image": tfds.features.Image(shape=(None, None, 3)),
    "image/filename": tfds.features.Text(),
    "faces": tfds.features.Sequence(face_features(face_extra)),
  }
  feats.update(extra or {})
  return tfds.features.FeaturesDict(feats)


def empty_face(**labels) -> Dict[str, object]:
  """A face with every core label absent (masked), then `labels` set and marked valid.

  Example: empty_face(box=[x, y, w, h]) -> box valid, everything else invalid and zero.
  Extra (non-core) keys in `labels` are passed through unchanged.
  """
  face = {
    "box": np.zeros(4, np.float32),
    "landmarks": np.zeros((21, 2), np.float32),
    "visibility": np.zeros(21, np.float32),
    "pose": np.zeros(3, np.float32),
    "gender": np.int64(-1),
    "valid": {k: False for k in VALID_KEYS},
  }
  for k, v in labels.items():
    if k in VALID_KEYS:
      face[k] = np.int64(v) if k == "gender" else np.asarray(v, np.float32)
      face["valid"][k] = True
    else:
      face[k] = v
  if face["valid"]["landmarks"] and not face["valid"]["visibility"]:
    raise ValueError("landmarks given without visibility: pass visibility (1 = annotated)")
  return face


def read_lines(path, encoding="utf-8") -> Sequence[tuple]:
  """(line_number, stripped_line) for the non-blank lines of a text file (1-based numbers,
  universal newlines, a UTF-8 BOM dropped)."""
  with open(path, encoding=encoding, errors="strict", newline=None) as f:
    text = f.read()
  text = text.lstrip("\ufeff")
  return [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines()) if ln.strip()]
