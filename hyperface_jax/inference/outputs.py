"""What the predict CLI writes: atomic files, faces mapped back to original pixels, JSON.

Every file is written to a temporary name in the destination folder and renamed into
place (`os.replace`), so an interrupted run never leaves a half-written JSON, PNG or video
under its final name (docs/design.md section 7).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import tempfile
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np

from hyperface_jax.inference import image_io


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` through a temporary file in the same folder."""
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(data)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """A temporary path (same folder, same extension) renamed to `path` on success.

  On an exception the temporary file is removed and the exception propagates.
  """
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  stem, ext = os.path.splitext(os.path.basename(path))
  fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".partial{ext}", dir=folder)
  os.close(fd)
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_NUMBER_LIST = re.compile(rf"\[\s*({_NUMBER}(?:,\s*{_NUMBER})*)\s*\]")


def dumps(obj) -> str:
  """Indented JSON with every list of numbers on one line ([x, y], boxes, visibility)."""
  text = json.dumps(obj, indent=1)
  return _NUMBER_LIST.sub(lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)


def write_json(path: str, obj) -> None:
  atomic_write_bytes(path, (dumps(obj) + "\n").encode("utf-8"))


def write_png(path: str, rgb: np.ndarray) -> None:
  """Writes an RGB uint8 image as PNG (cv2 encodes BGR)."""
  ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
  if not ok:
    raise OSError(f"{path}: PNG encoding failed for an image of shape {rgb.shape}")
  atomic_write_bytes(path, encoded.tobytes())


def face_to_original(face, scale_xy):
  """The face with box and landmarks mapped from the fitted image to original pixels."""
  if tuple(scale_xy) == (1.0, 1.0):
    return face
  return dataclasses.replace(
    face,
    box=image_io.box_to_original(face.box, scale_xy),
    landmarks=image_io.points_to_original(face.landmarks, scale_xy),
  )


def face_json(face, track: Optional[int] = None) -> dict:
  """docs/design.md section 4 face dict (`Face.to_json()`), plus the track id for videos."""
  record = face.to_json()
  if track is not None:
    record["track"] = int(track)
  return record


def image_record(
  source: str,
  original_size,
  notes: Sequence[str],
  scale_xy,
  faces: Sequence,
  tracks: Optional[Sequence[int]] = None,
) -> dict:
  """The per-image JSON: where it came from, its size, conversions, and its faces.

  Args:
    source: the input file's path (as found under --input).
    original_size: (H, W) of the upright image; all coordinates refer to it.
    notes: the conversions applied when reading (image_io.read_image).
    scale_xy: network pixels per original pixel (image_io.FittedImage.scale_xy).
    faces: faces in original pixels.
    tracks: optional track ids, one per face (videos).
  """
  tracks = [None] * len(faces) if tracks is None else tracks
  return {
    "image": source,
    "width": int(original_size[1]),
    "height": int(original_size[0]),
    "conversions": list(notes),
    "network_scale": [float(scale_xy[0]), float(scale_xy[1])],
    "faces": [face_json(f, t) for f, t in zip(faces, tracks, strict=True)],
  }
