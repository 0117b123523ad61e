"""TFDS builder `social_relation`: face pairs with 8 relation traits (docs/papers.md 3.4, 5.12).

The annotation format of the ICCV'15 / IJCV'18 release is not publicly documented
(docs/papers.md 5.12 [?]), so this builder reads the following ASSUMED layout; verify it on the
real files and convert once if they differ (docs/datasets/social_relation.md):

  manual_dir/
    img/<image name>                 the images
    relation_trainset.txt            one line per face PAIR, 17 whitespace-separated columns:
    relation_testset.txt               image x1 y1 w1 h1 x2 y2 w2 h2 t1 t2 t3 t4 t5 t6 t7 t8
  boxes x, y, w, h in pixels (0-based); traits 0/1 in the order of docs/papers.md 3.1
  (render_relations.TRAIT_NAMES): dominant, competitive, trusting, warm, friendly,
  attached, demonstrative, assured.

One example per IMAGE in the face-scene schema: `faces` are the distinct boxes of the
image's pairs in order of first appearance (box valid, other labels invalid) and
`relations` is a Sequence of {faces [2] int64 (indices into `faces`), traits [8] int64},
exactly as synth_faces stores them. Any trait code other than 0/1 is an error (the schema has
no per-trait mask); an exact duplicate row is dropped and counted, the same pair with
different traits is an error.
"""

from __future__ import annotations

import os
from typing import Dict

import numpy as np
import tensorflow_datasets as tfds

from hyperface_jax.data.builders import face_crops, manual
from hyperface_jax.data.render_relations import TRAIT_NAMES

URL = "https://mmlab.ie.cuhk.edu.hk/projects/socialrelation/index.html"
_VERSION = tfds.core.Version("1.0.0")
SPLIT_FILES = {"train": "relation_trainset.txt", "test": "relation_testset.txt"}
IMAGE_DIR = "img"


def parse_pairs(path):
  """A pair list -> ({image: {"boxes": [[4]], "lines": [line], "pairs": {(i, j): (line,
  traits)}}}, duplicates)."""
  images: Dict[str, dict] = {}
  duplicates = 0
  for line, text in manual.read_lines(path):
    tokens = text.split()
    face_crops.columns(path, line, tokens, 17, "image, 2 boxes x y w h, 8 traits")
    boxes = face_crops.numbers(tokens[1:9], path, line, "face boxes").reshape(2, 4)
    traits = face_crops.numbers(tokens[9:17], path, line, "traits", int)
    if not np.isin(traits, (0, 1)).all():
      bad = int(np.flatnonzero(~np.isin(traits, (0, 1)))[0])
      raise manual.AnnotationError(
        path, line, f"trait {TRAIT_NAMES[bad]} has code {traits[bad]}; expected 0 or 1"
      )
    if (boxes[:, 2:] <= 0).any():
      raise manual.AnnotationError(path, line, f"face box of non-positive size in {boxes.tolist()}")
    if np.array_equal(boxes[0], boxes[1]):
      raise manual.AnnotationError(path, line, "both faces of the pair have the same box")
    entry = images.setdefault(tokens[0], {"boxes": [], "lines": [], "pairs": {}})
    index = []
    for box in boxes:
      match = [k for k, b in enumerate(entry["boxes"]) if np.array_equal(b, box)]
      if not match:
        entry["boxes"].append(box)
        entry["lines"].append(line)
      index.append(match[0] if match else len(entry["boxes"]) - 1)
    pair = tuple(index)
    if pair in entry["pairs"]:
      first_line, first_traits = entry["pairs"][pair]
      if np.array_equal(first_traits, traits):
        duplicates += 1
        continue
      raise manual.AnnotationError(
        path, line, f"pair contradicts line {first_line} (same faces, different traits)"
      )
    entry["pairs"][pair] = (line, traits)
  return images, duplicates


class SocialRelation(tfds.core.GeneratorBasedBuilder):
  """Social-relation face pairs with 8 traits (assumed layout in the module doc)."""

  VERSION = _VERSION
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"Download the social relation dataset from {URL}; put the images in manual_dir/img/ "
    "and the pair lists as relation_trainset.txt / relation_testset.txt (format in "
    "docs/datasets/social_relation.md)."
  )

  def _info(self):
    return self.dataset_info_from_configs(
      description="Social relation traits (Zhang et al., ICCV 2015 / IJCV 2018): face "
      "pairs with 8 binary traits (docs/datasets/social_relation.md).",
      features=manual.face_scene_features(
        extra={
          "relations": tfds.features.Sequence(
            {
              "faces": tfds.features.Tensor(shape=(2,), dtype=np.int64),
              "traits": tfds.features.Tensor(shape=(8,), dtype=np.int64),
            }
          )
        }
      ),
      homepage=URL,
      metadata=tfds.core.MetadataDict(traits=list(TRAIT_NAMES)),
    )

  def _split_generators(self, dl_manager):
    root = face_crops.manual_root(dl_manager)
    image_dir = manual.require(root, IMAGE_DIR, dataset="social_relation", url=URL)
    out = {}
    for split, fname in SPLIT_FILES.items():
      path = manual.require(root, fname, dataset="social_relation", url=URL)
      images, duplicates = parse_pairs(path)
      out[split] = self._generate_examples(image_dir, path, split, images, duplicates)
    return out

  def _generate_examples(self, image_dir, list_path, split, images, duplicates):
    reader = face_crops.EncodedImageReader("social_relation")
    for name, entry in images.items():
      got = reader.read_encoded(os.path.join(image_dir, name))
      if got is None:
        continue
      image, (height, width) = got
      faces = []
      for box, line in zip(entry["boxes"], entry["lines"], strict=True):
        x, y, w, h = box
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
          raise manual.AnnotationError(
            list_path,
            line,
            f"face box {box.tolist()} lies outside the {width}x{height} image {name}",
          )
        faces.append(manual.empty_face(box=box))
      pairs = sorted(entry["pairs"].items(), key=lambda kv: kv[1][0])  # file order
      yield (
        name,
        {
          "image": image,
          "image/filename": name,
          "faces": faces,
          "relations": {
            "faces": np.array([p for p, _ in pairs], np.int64).reshape(-1, 2),
            "traits": np.array([t for _, (_, t) in pairs], np.int64).reshape(-1, 8),
          },
        },
      )
    face_crops.record_image_stats(
      self.info, split, reader.finish(), image_dir, num_duplicate_rows_dropped=duplicates
    )
