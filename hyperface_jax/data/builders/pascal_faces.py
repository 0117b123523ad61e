"""TFDS builder `pascal_faces`: PASCAL faces (Yan et al. 2014), a test-only detection set.

docs/papers.md section 5.3: 851 images with about 1,335-1,341 faces taken from the PASCAL
VOC person-layout images, evaluated with the toolbox of Mathias et al. (ECCV'14) [M]; the
annotation format is [?] there. The public ground truth is the toolbox's MATLAB file
`Annotations_Face_PASCALLayout_large_fixed.mat` (read by the toolbox's database.py
`PASCALfaces`; code read in marcopede/face-eval, copy at
bairdzhang/smallhardface:external/marcopede-face-eval-*/database.py):

  Annotations        struct array [1, N] (or [N, 1]), one entry per image:
    .imgname         char, the VOC image file name, e.g. '2008_000216.jpg'
    .objects         double [F, 4] or [F, >= 6], one row per face:
                     [left top right bottom] in 1-based MATLAB pixels; column 6, where
                     present, nonzero = a face the toolbox ignores (VOC "difficult")

manual_dir holds that file (directly or in `annotations/`; the non-fixed
`Annotations_Face_PASCALLayout_large.mat` is used when the fixed one is absent) and the
images, looked up by file name in manual_dir, `images/`, `JPEGImages/` and every
`**/JPEGImages/` below manual_dir (VOC 2012 trainval plus the VOC 2008-2011 test sets, where
the 851 images come from). Boxes: corners minus 1 (docs/design.md section 6), x, y, w, h =
left - 1, top - 1, right - left, bottom - top (the rule of data/builders/afw.py). Every
face gets `ignore` (bool); landmarks, pose and gender are absent. Examples keep the order of
the file (`disable_shuffling`). One split, `test`.
"""

from __future__ import annotations

import glob
import os
from typing import Iterator, List, Tuple

import numpy as np
import tensorflow_datasets as tfds

from hyperface_jax.data.builders import face_crops, manual

URL = "https://bitbucket.org/marcopede/face-eval"
VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/"
ANNOTATION_FILES = (
  "Annotations_Face_PASCALLayout_large_fixed.mat",
  "Annotations_Face_PASCALLayout_large.mat",
)
_VERSION = tfds.core.Version("1.0.0")


def find_annotations(manual_dir) -> str:
  """The annotation .mat in manual_dir or manual_dir/annotations, or ManualFileMissing."""
  for sub in ("", "annotations"):
    for name in ANNOTATION_FILES:
      path = os.path.join(os.fspath(manual_dir or ""), sub, name)
      if manual_dir is not None and os.path.isfile(path):
        return path
  manual.require(
    manual_dir,
    ANNOTATION_FILES[0],
    dataset="pascal_faces",
    url=URL,
    hint="the annotations/ folder of the face-eval toolbox of Mathias et al. (ECCV'14)",
  )
  raise AssertionError("unreachable")


def image_dirs(manual_dir) -> List[str]:
  """Folders searched for the images, in order (module docstring)."""
  root = os.fspath(manual_dir)
  dirs = [root, os.path.join(root, "images"), os.path.join(root, "JPEGImages")]
  dirs += sorted(glob.glob(os.path.join(root, "**", "JPEGImages"), recursive=True))
  seen, out = set(), []
  for d in dirs:
    if os.path.isdir(d) and os.path.abspath(d) not in seen:
      seen.add(os.path.abspath(d))
      out.append(d)
  return out


def _text(value) -> str:
  arr = np.asarray(value)
  return str(arr.reshape(-1)[0]).strip() if arr.size else ""


def parse_annotations(path) -> Iterator[Tuple[int, str, np.ndarray, np.ndarray]]:
  """Yields (entry number 1-based, image name, boxes [F, 4] x, y, w, h, ignore [F]).

  Raises:
    manual.AnnotationError naming the file and entry (`Annotations(i)`) of a bad record.
  """
  from scipy import io as sio

  try:
    data = sio.loadmat(path)
  except Exception as e:  # pylint: disable=broad-except  (not a readable MATLAB file)
    raise manual.AnnotationError(path, None, f"cannot be read as a MATLAB file ({e})") from None
  ann = data.get("Annotations")
  names = getattr(getattr(ann, "dtype", None), "names", None) or ()
  if ann is None or "imgname" not in names or "objects" not in names:
    raise manual.AnnotationError(
      path,
      None,
      "expected a struct array 'Annotations' with fields imgname and objects "
      f"(found variables {sorted(k for k in data if not k.startswith('__'))}, fields {names})",
    )
  seen = {}
  for i, entry in enumerate(ann.reshape(-1, order="F"), start=1):
    where = f"Annotations({i})"
    name = _text(entry["imgname"])
    if not name:
      raise manual.AnnotationError(path, i, f"{where}.imgname is empty")
    if name in seen:
      raise manual.AnnotationError(
        path, i, f"{where}: image {name} is also Annotations({seen[name]})"
      )
    seen[name] = i
    try:
      rows = np.asarray(entry["objects"], np.float64)
    except (TypeError, ValueError):
      raise manual.AnnotationError(path, i, f"{where} ({name}).objects is not numeric") from None
    rows = rows.reshape(0, 4) if rows.size == 0 else rows.reshape(-1, rows.shape[-1])
    if rows.shape[1] < 4 or not np.all(np.isfinite(rows)):
      raise manual.AnnotationError(
        path, i, f"{where} ({name}).objects is {rows.shape} / non-finite; expected finite [F, 4+]"
      )
    bad = np.nonzero((rows[:, 2] <= rows[:, 0]) | (rows[:, 3] <= rows[:, 1]))[0]
    if bad.size:
      raise manual.AnnotationError(
        path,
        i,
        f"{where} ({name}) face {bad[0] + 1}: [left top right bottom] "
        f"{rows[bad[0], :4].tolist()} gives a non-positive size",
      )
    boxes = np.stack(
      [rows[:, 0] - 1, rows[:, 1] - 1, rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]], 1
    )
    ignore = rows[:, 5] != 0 if rows.shape[1] >= 6 else np.zeros(len(rows), bool)
    yield i, name, boxes, ignore


class PascalFaces(tfds.core.GeneratorBasedBuilder):
  """PASCAL faces test images with face boxes and the toolbox's ignore flags."""

  VERSION = _VERSION
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"Put Annotations_Face_PASCALLayout_large_fixed.mat (the face-eval toolbox, {URL}) and "
    f"the PASCAL VOC images it lists ({VOC_URL}: VOC2012 trainval and the VOC2008-2011 test "
    "sets, JPEGImages/) into manual_dir (docs/datasets/pascal_faces.md)."
  )

  def _info(self):
    return self.dataset_info_from_configs(
      description=__doc__.split("\n\n")[0],
      features=manual.face_scene_features(
        face_extra={"ignore": tfds.features.Tensor(shape=(), dtype=np.bool_)}
      ),
      homepage=URL,
      disable_shuffling=True,  # the order of the annotation file
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    path = find_annotations(dl_manager.manual_dir)
    return {"test": self._generate_examples(path, image_dirs(dl_manager.manual_dir))}

  def _generate_examples(self, path, dirs):
    reader = face_crops.EncodedImageReader("pascal_faces")  # JPEG bytes kept as they are
    for _, name, boxes, ignore in parse_annotations(path):
      found = [os.path.join(d, name) for d in dirs if os.path.isfile(os.path.join(d, name))]
      # A missing or corrupt image is skipped and listed (1 % rule of manual.ImageReader).
      got = reader.read_encoded(found[0] if found else os.path.join(dirs[0], name))
      if got is None:
        continue
      faces = [
        dict(manual.empty_face(box=b), ignore=bool(flag))
        for b, flag in zip(boxes, ignore, strict=True)
      ]
      yield name, {"image": got[0], "image/filename": name, "faces": faces}
    face_crops.record_image_stats(self.info, "test", reader.finish(), root=dirs[0])
