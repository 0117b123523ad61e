"""Shared pieces of the real face-crop builders (CelebA, MAFL, MTFL, LFWA) and text tables.

Face-crop datasets use the per-face field names of the face-scene schema without the
`faces` sequence (docs/design.md section 5), plus the extras of `synth_face_crops` where the
meaning is the same (`landmarks5`, `visibility5`, `smiling`, `eyeglasses`, `mouth_open`,
`pose_class`), plus `attributes` (the 40 CelebA attributes) and `identity`. All four
builders emit the SAME feature dict (`crop_features`), so they can be mixed; a label a
dataset lacks is zero / -1 and marked False in `valid` (never a sentinel without a mask).

Also here:
  - `box_from_five`: the documented rule that turns 5 landmarks into a face box;
  - `EncodedImageReader`: `manual.ImageReader` that also returns the original encoded
    bytes, so JPEGs are stored as they are (no re-encoding: CelebA would grow ~10x as PNG);
  - small text-table helpers that raise `manual.AnnotationError` with file and line.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from hyperface_jax.data.builders import manual

NUM_ATTRIBUTES = 40
INT_FIELDS = ("gender", "smiling", "eyeglasses", "mouth_open", "pose_class", "identity")
CROP_VALID_KEYS = manual.VALID_KEYS + (
  "landmarks5",
  "smiling",
  "eyeglasses",
  "mouth_open",
  "pose_class",
  "attributes",
  "identity",
)
# box_from_five (documented default): calibrated on the AFLW mean face (docs/papers.md 5.1) with
# the AFLW FaceRectCalculator (docs/papers.md 1.9, data/face_rect.py): a frontal face's
# box side is 2.58 x the eye-centre distance and 2.32 x the eye-to-mouth distance, and the
# box centre lies within 0.05 eye-to-mouth distances of the mid-point between the eye
# centres' mid-point and the mouth corners' mid-point.
BOX_PER_EYE_DISTANCE = 2.6
BOX_PER_EYE_MOUTH_DISTANCE = 2.3
# A landmark more than this fraction of the image size outside the image contradicts the
# annotation (documented default; points slightly outside are kept, visibility 0).
LANDMARK_MARGIN = 0.25


def crop_features(image_encoding: str = "jpeg"):
  """FeaturesDict of a real face-crop dataset (module docstring)."""
  import tensorflow_datasets as tfds

  f32, i64 = np.float32, np.int64
  spec = {
    "box": (4,),
    "landmarks": (21, 2),
    "visibility": (21,),
    "pose": (3,),
    "landmarks5": (5, 2),
    "visibility5": (5,),
  }
  feats = {k: tfds.features.Tensor(shape=s, dtype=f32) for k, s in spec.items()}
  feats.update({k: tfds.features.Tensor(shape=(), dtype=i64) for k in INT_FIELDS})
  feats["attributes"] = tfds.features.Tensor(shape=(NUM_ATTRIBUTES,), dtype=i64)
  feats["valid"] = tfds.features.FeaturesDict(
    {k: tfds.features.Tensor(shape=(), dtype=np.bool_) for k in CROP_VALID_KEYS}
  )
  feats["image"] = tfds.features.Image(shape=(None, None, 3), encoding_format=image_encoding)
  feats["image/filename"] = tfds.features.Text()
  return tfds.features.FeaturesDict(feats)


def crop_example(image, filename: str, **labels) -> Dict[str, object]:
  """One crop example: every label absent, then `labels` set and marked valid.

  `landmarks5` needs `visibility5`; `attributes` is [40] 0/1; int fields are scalars.
  """
  ex = {
    "image": image,
    "image/filename": filename,
    "box": np.zeros(4, np.float32),
    "landmarks": np.zeros((21, 2), np.float32),
    "visibility": np.zeros(21, np.float32),
    "pose": np.zeros(3, np.float32),
    "landmarks5": np.zeros((5, 2), np.float32),
    "visibility5": np.zeros(5, np.float32),
    "attributes": np.zeros(NUM_ATTRIBUTES, np.int64),
    "valid": {k: False for k in CROP_VALID_KEYS},
  }
  ex.update({k: np.int64(-1) for k in INT_FIELDS})
  for key, value in labels.items():
    if key == "visibility5":
      ex[key] = np.asarray(value, np.float32)
      continue
    if key not in CROP_VALID_KEYS:
      raise KeyError(f"unknown crop label {key!r}; known: {CROP_VALID_KEYS}")
    ex[key] = (
      np.int64(value)
      if key in INT_FIELDS
      else np.asarray(value, np.int64 if key == "attributes" else np.float32)
    )
    ex["valid"][key] = True
  if ex["valid"]["landmarks5"] and "visibility5" not in labels:
    raise ValueError("landmarks5 given without visibility5")
  return ex


def box_from_five(points5) -> np.ndarray:
  """Square face box [x, y, w, h] from 5 points (LeftEye, RightEye, Nose, MouthLeft,
  MouthRight; schemes.FIVE_NAMES). Documented default (constants above):
    e = mean of the eyes, m = mean of the mouth corners,
    side = max(2.6 * |left eye - right eye|, 2.3 * |e - m|), centre = (e + m) / 2.
  The eye-mouth term keeps profile faces (eyes close together) from collapsing.
  """
  p = np.asarray(points5, np.float64)
  eye, mouth = p[:2].mean(axis=0), p[3:5].mean(axis=0)
  side = max(
    BOX_PER_EYE_DISTANCE * np.linalg.norm(p[0] - p[1]),
    BOX_PER_EYE_MOUTH_DISTANCE * np.linalg.norm(eye - mouth),
  )
  centre = 0.5 * (eye + mouth)
  return np.array([centre[0] - side / 2, centre[1] - side / 2, side, side], np.float32)


def inside_image(points, width: int, height: int) -> np.ndarray:
  """[K] float 1 where a point lies on the pixel grid [0, W-1] x [0, H-1] (docs/design.md 6)."""
  p = np.asarray(points, np.float64)
  ok = (p[:, 0] >= 0) & (p[:, 0] <= width - 1) & (p[:, 1] >= 0) & (p[:, 1] <= height - 1)
  return ok.astype(np.float32)


def check_points(points, width: int, height: int, path, line: Optional[int]):
  """AnnotationError when a point is further than LANDMARK_MARGIN x size outside the image."""
  p = np.asarray(points, np.float64)
  mx, my = LANDMARK_MARGIN * width, LANDMARK_MARGIN * height
  bad = (p[:, 0] < -mx) | (p[:, 0] > width - 1 + mx) | (p[:, 1] < -my) | (p[:, 1] > height - 1 + my)
  if bad.any():
    raise manual.AnnotationError(
      path,
      line,
      f"landmark {int(np.argmax(bad))} at {p[bad][0].tolist()} lies outside "
      f"the {width}x{height} image by more than {LANDMARK_MARGIN:.0%} of its size",
    )


def numbers(tokens: Sequence[str], path, line: int, what: str, kind=float) -> np.ndarray:
  """Parses tokens as `kind` (float or int); AnnotationError naming the bad token."""
  out = []
  for tok in tokens:
    try:
      value = kind(tok)
    except ValueError:
      expected = "an integer" if kind is int else "a number"
      raise manual.AnnotationError(path, line, f"{what}: {tok!r} is not {expected}") from None
    if kind is float and not np.isfinite(value):
      raise manual.AnnotationError(path, line, f"{what}: {tok!r} is not finite")
    out.append(value)
  return np.asarray(out, np.float64 if kind is float else np.int64)


def columns(path, line: int, tokens: Sequence[str], expected: int, what: str):
  """AnnotationError unless the row has `expected` whitespace-separated columns."""
  if len(tokens) != expected:
    raise manual.AnnotationError(
      path, line, f"expected {expected} columns ({what}), found {len(tokens)}"
    )


def find_manual(root, candidates: Sequence[str], *, dataset: str, url: str) -> str:
  """The first of `candidates` (paths relative to manual_dir) that exists, else
  ManualFileMissing naming the first candidate, the alternatives and the page."""
  if root is not None:
    for rel in candidates:
      path = os.path.join(os.fspath(root), rel)
      if os.path.exists(path):
        return path
  hint = ("also accepted: " + ", ".join(candidates[1:])) if len(candidates) > 1 else ""
  return manual.require(root, candidates[0], dataset=dataset, url=url, hint=hint)


def manual_root(dl_manager):
  """manual_dir of a TFDS download manager, or None (never TFDS's AssertionError, so that
  the first missing file is reported by name through `manual.require`)."""
  try:
    return dl_manager.manual_dir
  except (AssertionError, ValueError):
    root = getattr(dl_manager, "_manual_dir", None)
    return None if root is None else os.fspath(root)


class EncodedImageReader(manual.ImageReader):
  """`manual.ImageReader` returning (encoded bytes or RGB array, (height, width)).

  A JPEG/PNG stored as 8-bit RGB is passed on as its original bytes (no re-encoding, no
  loss); anything else (grey, CMYK, palette, 16-bit, ...) as the RGB uint8 array of
  `manual.decode_image`, which TFDS encodes in the feature's format (so every stored image
  decodes to 3 channels by TF and by OpenCV alike). Unreadable files are skipped and
  listed exactly as by `read`.
  """

  def read_encoded(self, path) -> Optional[Tuple[object, Tuple[int, int]]]:
    from PIL import Image

    self.total += 1
    try:
      with open(path, "rb") as f:
        data = f.read()
      with Image.open(io.BytesIO(data)) as im:
        fmt, mode = im.format, im.mode
        im.load()  # full decode: a truncated file raises here
      if fmt in ("JPEG", "PNG") and mode == "RGB":
        return data, (im.height, im.width)
      arr = manual.decode_image(data)
      return arr, arr.shape[:2]
    except Exception as e:  # pylint: disable=broad-except  (any failure = bad image)
      self.bad.append(os.fspath(path))
      logging.warning(
        "%s: skipping unreadable image %s (%s: %s)", self.dataset, path, type(e).__name__, e
      )
      return None


def record_image_stats(info, split: str, stats: Dict[str, object], root=None, **extra):
  """Stores `ImageReader.finish()` (and `extra`) in the dataset info metadata (written to
  metadata.json) under flat keys `<split>/num_images`, `<split>/num_bad_images`,
  `<split>/bad_images` (paths relative to `root` when given), `<split>/<extra key>`; the
  same keys as the aflw/afw/300-W builders."""
  if info.metadata is None:
    return
  bad = [
    os.path.relpath(p, os.fspath(root)) if root is not None else p for p in stats["bad_images"]
  ]
  entry = {
    "num_images": stats["num_images"],
    "num_bad_images": stats["num_bad_images"],
    "bad_images": bad,
  }
  entry.update(extra)
  for key, value in entry.items():
    info.metadata[f"{split}/{key}"] = value
