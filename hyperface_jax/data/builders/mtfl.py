"""TFDS builder `mtfl`: the MTFL set of TCDCN, ECCV 2014 (docs/papers.md sections 2.1, 5.5).

manual_dir = the extracted MTFL.zip folder (or its parent holding MTFL/):
  training.txt, testing.txt, lfw_5590/, net_7876/, AFLW/   (docs/datasets/mtfl.md)
Row format (docs/papers.md 5.5), whitespace-separated, rows START WITH A SPACE in the release and
paths use BACKSLASHES (`lfw_5590\\Aaron_Guiel_0001.jpg`):
  path x1 x2 x3 x4 x5 y1 y2 y3 y4 y5 gender smile glasses pose
Points: left eye, right eye, nose, left and right mouth corner (schemes.FIVE_NAMES), pixels.
Codes -> labels of the face-crop schema (same meaning as synth_face_crops):
  gender  1 male, 2 female          -> gender 0 male, 1 female (docs/design.md section 6)
  smile   1 yes, 2 no               -> smiling 1 yes, 0 no
  glasses 1 yes, 2 no               -> eyeglasses 1 yes, 0 no
  pose    1..5 left profile, left, frontal, right, right profile -> pose_class 0..4
Box: derived from the 5 points (face_crops.box_from_five, documented rule). Splits: train
(training.txt, 10,000 faces) and test (testing.txt, 2,995 AFLW faces).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from hyperface_jax.data.builders import face_crops, manual

URL = "https://mmlab.ie.cuhk.edu.hk/projects/TCDCN.html"
_VERSION = tfds.core.Version("1.0.0")
GENDER = {1: 0, 2: 1}
YES_NO = {1: 1, 2: 0}
POSE = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}
SPLIT_FILES = {"train": "training.txt", "test": "testing.txt"}


def parse_line(path, line: int, text: str):
  """One MTFL row -> (relative image path with '/', points [5, 2], labels dict)."""
  tokens = text.split()  # drops the leading space of the release
  face_crops.columns(path, line, tokens, 15, "path, 5 x, 5 y, gender, smile, glasses, pose")
  coords = face_crops.numbers(tokens[1:11], path, line, "landmark coordinates")
  codes = face_crops.numbers(tokens[11:15], path, line, "attribute codes", int)
  labels = {}
  for (key, table, what), code in zip(
    (
      ("gender", GENDER, "gender (1 male, 2 female)"),
      ("smiling", YES_NO, "smile (1 yes, 2 no)"),
      ("eyeglasses", YES_NO, "glasses (1 yes, 2 no)"),
      ("pose_class", POSE, "pose (1..5)"),
    ),
    codes,
    strict=True,
  ):
    if int(code) not in table:
      raise manual.AnnotationError(path, line, f"unknown {what} code {int(code)}")
    labels[key] = table[int(code)]
  points = np.stack([coords[:5], coords[5:]], axis=1)  # all x first, then all y
  return tokens[0].replace("\\", "/"), points, labels


class Mtfl(tfds.core.GeneratorBasedBuilder):
  """MTFL face crops: 5 landmarks, gender, smile, glasses, pose class (module doc)."""

  VERSION = _VERSION
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"Download MTFL.zip from {URL} and extract it into manual_dir (training.txt, "
    "testing.txt, lfw_5590/, net_7876/, AFLW/). See docs/datasets/mtfl.md."
  )

  def _info(self):
    return self.dataset_info_from_configs(
      description="MTFL (Zhang et al., ECCV 2014): face images with 5 landmarks, gender, "
      "smile, glasses and 5 pose classes (docs/datasets/mtfl.md).",
      features=face_crops.crop_features(),
      homepage=URL,
      metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    root = face_crops.manual_root(dl_manager)
    if (
      root is not None
      and not os.path.exists(os.path.join(root, "training.txt"))
      and os.path.isdir(os.path.join(root, "MTFL"))
    ):
      root = os.path.join(root, "MTFL")
    lists = {
      split: face_crops.find_manual(root, (fname, f"MTFL/{fname}"), dataset="mtfl", url=URL)
      for split, fname in SPLIT_FILES.items()
    }
    rows = {
      split: [(line, *parse_line(path, line, text)) for line, text in manual.read_lines(path)]
      for split, path in lists.items()
    }  # parse everything before any image is read
    return {
      split: self._generate_examples(
        os.path.dirname(lists[split]), lists[split], split, rows[split]
      )
      for split in SPLIT_FILES
    }

  def _generate_examples(self, image_root, list_path, split, rows):
    reader = face_crops.EncodedImageReader("mtfl")
    for line, rel, points, labels in rows:
      got = reader.read_encoded(os.path.join(image_root, rel))
      if got is None:
        continue
      image, (height, width) = got
      face_crops.check_points(points, width, height, list_path, line)
      yield (
        f"{line:06d}:{rel}",
        face_crops.crop_example(
          image,
          rel,
          box=face_crops.box_from_five(points),
          landmarks5=points,
          visibility5=face_crops.inside_image(points, width, height),
          **labels,
        ),
      )
    face_crops.record_image_stats(self.info, split, reader.finish(), image_root)
