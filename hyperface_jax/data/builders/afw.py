"""TFDS builder `afw`: Annotated Faces in the Wild (Zhu & Ramanan 2012), a test-only set.

manual_dir holds the release (docs/papers.md section 5.2): the `*.jpg` images and `anno.mat`,
directly or in an `AFW/` (or `testimages/`) subfolder. `anno.mat` is read with
scipy.io.loadmat; the layout we parse (docs/papers.md 5.2, [M]) is the variable `anno`, a MATLAB
cell array of shape [num_images, 4]:

  anno{i,1}  image file name (char), e.g. '1004109301.jpg'
  anno{i,2}  cell [1, F] of 2x2 double boxes [x1 y1; x2 y2] (top-left, bottom-right)
  anno{i,3}  cell [1, F] of 6x2 double landmarks [x y] (see AFW6_TO_AFLW21)
  anno{i,4}  cell [1, F] of 1x3 double poses [yaw pitch roll] in degrees

loadmat returns it as an object ndarray (anno[i, 0] = array(['name']), anno[i, 1] = object
array [1, F] of 2x2 arrays, ...). Coordinates are MATLAB 1-based and have 1 subtracted
(docs/design.md section 6); landmarks that are NaN or non-positive in the file mean "not
annotated" (visibility 0). Poses are converted to radians in AFLW's (roll, pitch, yaw)
order; whether AFW's signs match AFLW's is unverified ([M], docs/datasets/afw.md).
Published size: 205 images, 468 faces.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from hyperface_jax.data.builders import face_crops, manual

URL = "https://www.ics.uci.edu/~xzhu/face/"
_VERSION = tfds.core.Version("1.0.0")
# AFW's 6 points (docs/papers.md 5.2 [M]: eye centres, nose tip, mouth left / centre / right)
# -> AFLW-21 indices (docs/papers.md section 1.13): LeftEyeCenter, RightEyeCenter, NoseCenter,
# MouthLeftCorner, MouthCenter, MouthRightCorner.
AFW6_TO_AFLW21 = (7, 10, 14, 17, 18, 19)
_SUBDIRS = ("", "AFW", "testimages")


def find_root(manual_dir) -> str:
  """The folder with anno.mat (manual_dir or one of its AFW/, testimages/ subfolders)."""
  for sub in _SUBDIRS:
    if manual_dir is not None and os.path.exists(
      os.path.join(os.fspath(manual_dir), sub, "anno.mat")
    ):
      return os.path.join(os.fspath(manual_dir), sub)
  manual.require(
    manual_dir,
    "anno.mat",
    dataset="afw",
    url=URL,
    hint="anno.mat and the *.jpg images of the AFW release, in one folder",
  )
  raise AssertionError("unreachable")


def _cells(value):
  """A MATLAB cell (object ndarray, any shape) as a flat list of its entries."""
  value = np.asarray(value, dtype=object) if not isinstance(value, np.ndarray) else value
  if value.dtype != object:
    return [value]
  return [v for v in value.reshape(-1, order="F")]


def _text(value) -> str:
  arr = np.asarray(value)
  return str(arr.reshape(-1)[0]) if arr.size else ""


def parse_anno(path):
  """Yields (image_name, faces) per row of anno.mat, faces in the face-scene schema."""
  from scipy import io as sio

  try:
    anno = sio.loadmat(path)["anno"]
  except KeyError:
    raise manual.AnnotationError(
      path, None, "no variable 'anno' (expected the AFW cell array [num_images, 4])"
    ) from None
  if anno.dtype != object or anno.ndim != 2 or anno.shape[1] < 4:
    raise manual.AnnotationError(
      path,
      None,
      f"anno has shape {anno.shape} / {anno.dtype}; expected a cell array [num_images, 4]",
    )
  for i in range(anno.shape[0]):
    row = f"anno{{{i + 1},:}}"  # MATLAB 1-based cell row in messages
    name = _text(anno[i, 0])
    boxes, points, poses = (_cells(anno[i, k]) for k in (1, 2, 3))
    if not (len(boxes) == len(points) == len(poses)):
      raise manual.AnnotationError(
        path,
        i + 1,
        f"{row} ({name}): {len(boxes)} boxes, "
        f"{len(points)} landmark sets, {len(poses)} poses differ",
      )
    faces = []
    for j, (b, p, q) in enumerate(zip(boxes, points, poses, strict=True)):
      b = np.asarray(b, np.float64)
      p = np.asarray(p, np.float64)
      q = np.asarray(q, np.float64).reshape(-1)
      if b.shape != (2, 2) or p.shape != (6, 2) or q.shape != (3,):
        raise manual.AnnotationError(
          path,
          i + 1,
          f"{row} ({name}) face {j + 1}: box "
          f"{b.shape}, landmarks {p.shape}, pose {q.shape}; "
          "expected (2, 2), (6, 2), (3,)",
        )
      (x1, y1), (x2, y2) = b - 1.0  # 1-based MATLAB -> 0-based (docs/design.md section 6)
      if x2 <= x1 or y2 <= y1:
        raise manual.AnnotationError(
          path,
          i + 1,
          f"{row} ({name}) face {j + 1}: box corners {b.tolist()} give a non-positive size",
        )
      visible6 = np.all(np.isfinite(p), axis=1) & np.all(p > 0, axis=1)
      landmarks = np.zeros((21, 2), np.float32)
      visibility = np.zeros(21, np.float32)
      for k, idx in enumerate(AFW6_TO_AFLW21):
        if visible6[k]:
          landmarks[idx] = p[k] - 1.0
          visibility[idx] = 1.0
      yaw, pitch, roll = np.radians(q)
      labels = dict(
        box=[x1, y1, x2 - x1, y2 - y1],
        visibility=visibility,
        landmarks6=np.where(visible6[:, None], p - 1.0, 0).astype(np.float32),
        visibility6=visible6.astype(np.float32),
      )
      if visible6.any():
        labels["landmarks"] = landmarks
      if np.all(np.isfinite(q)):
        labels["pose"] = [roll, pitch, yaw]
      faces.append(manual.empty_face(**labels))
    yield name, faces


class Afw(tfds.core.GeneratorBasedBuilder):
  """AFW test images with boxes, 6 landmarks (as AFLW-21 subset) and pose."""

  VERSION = _VERSION
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"Download AFW from {URL} (AFW.zip) and extract anno.mat and the images into "
    "manual_dir (docs/datasets/afw.md)."
  )

  def _info(self):
    f32 = np.float32
    return self.dataset_info_from_configs(
      description=__doc__.split("\n\n")[0],
      features=manual.face_scene_features(
        face_extra={
          "landmarks6": tfds.features.Tensor(shape=(6, 2), dtype=f32),
          "visibility6": tfds.features.Tensor(shape=(6,), dtype=f32),
        }
      ),
      homepage=URL,
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    root = find_root(dl_manager.manual_dir)
    return {"test": self._generate_examples(root)}

  def _generate_examples(self, root):
    reader = face_crops.EncodedImageReader("afw")  # JPEG bytes kept as they are
    seen = set()
    for name, faces in parse_anno(os.path.join(root, "anno.mat")):
      if name in seen:
        raise manual.AnnotationError(
          os.path.join(root, "anno.mat"), None, f"image {name} has two rows in anno"
        )
      seen.add(name)
      # A missing or corrupt image is skipped and listed (1 % rule of manual.ImageReader).
      got = reader.read_encoded(os.path.join(root, name))
      if got is not None:
        yield name, {"image": got[0], "image/filename": name, "faces": faces}
    stats = reader.finish()
    self.info.metadata["test/num_bad_images"] = stats["num_bad_images"]
    self.info.metadata["test/bad_images"] = [os.path.basename(p) for p in stats["bad_images"]]
