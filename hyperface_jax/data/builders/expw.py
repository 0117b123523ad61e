"""TFDS builder `expw`: Expression in-the-Wild (IJCV 2018; docs/papers.md sections 3.4, 5.11).

manual_dir layout (the release, 7z parts extracted):
  image/origin/<image name>      full scenes, possibly several faces
  label/label.lst                one line per FACE, 8 space-separated columns:
      image_name face_id_in_image face_box_top face_box_left face_box_right face_box_bottom
      face_box_cofidence expression_label
The face crop is img[top:bottom, left:right], so the box is x = left, y = top,
w = right - left, h = bottom - top (pixels, as in the file). Expression labels
(docs/papers.md 5.11): 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.

One example per IMAGE in the face-scene schema (docs/design.md section 5; manual.face_scene_
features), faces ordered by face id, each with its box (valid) and the extras `expression`
(int64), `confidence` (float32, the detector score, kept so users can filter e.g. >= 80) and
`face_id`. Exact duplicate rows (they exist in the release) are dropped, counted, logged and
recorded in metadata.json; two DIFFERENT rows for the same (image, face id) are an error.
ExpW has no official split: everything goes to `train` (slice it, e.g. `train[:90%]`).
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List

import numpy as np
import tensorflow_datasets as tfds

from hyperface_jax.data.builders import face_crops, manual

URL = "https://mmlab.ie.cuhk.edu.hk/projects/socialrelation/index.html"
_VERSION = tfds.core.Version("1.0.0")
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
LABEL_FILE = "label/label.lst"
IMAGE_DIR = "image/origin"


def parse_labels(path):
  """label.lst -> ({image: [face dicts sorted by face_id]}, number of duplicate rows)."""
  faces: Dict[str, Dict[int, dict]] = {}
  seen: Dict[tuple, tuple] = {}
  duplicates = 0
  for line, text in manual.read_lines(path):
    tokens = text.split()
    face_crops.columns(
      path, line, tokens, 8, "image, face id, top, left, right, bottom, confidence, expression"
    )
    face_id = int(face_crops.numbers(tokens[1:2], path, line, "face id", int)[0])
    top, left, right, bottom = face_crops.numbers(tokens[2:6], path, line, "face box")
    confidence = float(face_crops.numbers(tokens[6:7], path, line, "confidence")[0])
    label = int(face_crops.numbers(tokens[7:8], path, line, "expression label", int)[0])
    key = (tokens[0], face_id)
    content = (top, left, right, bottom, confidence, label)
    if key in seen:
      if seen[key][1] == content:
        duplicates += 1
        continue
      raise manual.AnnotationError(
        path, line, f"face {face_id} of {tokens[0]} contradicts line {seen[key][0]}"
      )
    seen[key] = (line, content)
    if not 0 <= label < len(EXPRESSIONS):
      raise manual.AnnotationError(
        path, line, f"unknown expression label {label}; expected 0..6 ({', '.join(EXPRESSIONS)})"
      )
    if right <= left or bottom <= top:
      raise manual.AnnotationError(
        path,
        line,
        f"face box of non-positive size (top {top:g},"
        f" left {left:g}, right {right:g}, bottom {bottom:g})",
      )
    faces.setdefault(tokens[0], {})[face_id] = dict(
      line=line,
      box=np.array([left, top, right - left, bottom - top], np.float32),
      expression=label,
      confidence=confidence,
      face_id=face_id,
    )
  return {name: [by_id[i] for i in sorted(by_id)] for name, by_id in faces.items()}, duplicates


def scene_faces(rows: List[dict], width: int, height: int, path) -> List[dict]:
  """Face-scene faces of one image; a box entirely outside the image is an error."""
  out = []
  for row in rows:
    x, y, w, h = row["box"]
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
      raise manual.AnnotationError(
        path, row["line"], f"face box {row['box'].tolist()} lies outside the {width}x{height} image"
      )
    out.append(
      manual.empty_face(
        box=row["box"],
        expression=np.int64(row["expression"]),
        confidence=np.float32(row["confidence"]),
        face_id=np.int64(row["face_id"]),
      )
    )
  return out


class Expw(tfds.core.GeneratorBasedBuilder):
  """ExpW scenes with per-face expression labels (module doc)."""

  VERSION = _VERSION
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"Download ExpW from {URL}, extract the image archive parts into manual_dir/image/"
    "origin/ and the labels into manual_dir/label/label.lst. See docs/datasets/expw.md."
  )

  def _info(self):
    i64 = tfds.features.Tensor(shape=(), dtype=np.int64)
    return self.dataset_info_from_configs(
      description="ExpW (Zhang et al., IJCV 2018): web images with face boxes and 7 "
      "expression labels (docs/datasets/expw.md).",
      features=manual.face_scene_features(
        face_extra={
          "expression": i64,
          "face_id": i64,
          "confidence": tfds.features.Tensor(shape=(), dtype=np.float32),
        }
      ),
      homepage=URL,
      metadata=tfds.core.MetadataDict(expressions=list(EXPRESSIONS)),
    )

  def _split_generators(self, dl_manager):
    root = face_crops.manual_root(dl_manager)
    label_path = manual.require(root, LABEL_FILE, dataset="expw", url=URL)
    image_dir = manual.require(root, IMAGE_DIR, dataset="expw", url=URL)
    faces, duplicates = parse_labels(label_path)
    if duplicates:
      logging.warning("expw: dropped %d duplicate rows of %s", duplicates, label_path)
    return {"train": self._generate_examples(image_dir, label_path, faces, duplicates)}

  def _generate_examples(self, image_dir, label_path, faces, duplicates):
    reader = face_crops.EncodedImageReader("expw")
    for name, rows in faces.items():
      got = reader.read_encoded(os.path.join(image_dir, name))
      if got is None:
        continue
      image, (height, width) = got
      yield (
        name,
        {
          "image": image,
          "image/filename": name,
          "faces": scene_faces(rows, width, height, label_path),
        },
      )
    face_crops.record_image_stats(
      self.info, "train", reader.finish(), image_dir, num_duplicate_rows_dropped=duplicates
    )
