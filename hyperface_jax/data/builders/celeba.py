"""TFDS builder `celeba`: CelebA from its original distribution (docs/papers.md section 5.7).

Two builder configs (docs/datasets/celeba.md):
  celeba/aligned       img_align_celeba/ + list_landmarks_align_celeba.txt; the box is
                       derived from the 5 landmarks (face_crops.box_from_five), because
                       list_bbox_celeba.txt refers to the in-the-wild images.
  celeba/in_the_wild   img_celeba/ + list_landmarks_celeba.txt + list_bbox_celeba.txt.
Both read list_attr_celeba.txt, identity_CelebA.txt and list_eval_partition.txt, either at
the top of manual_dir or in the Google-Drive folders Anno/, Eval/, Img/.

Per example (face-crop schema, face_crops.crop_features): landmarks5 / visibility5 (1 where
the point lies on the image), box, attributes [40] (-1/1 -> 0/1, CELEBA_ATTRIBUTES order),
identity, gender from `Male` (0 male, 1 female; docs/design.md section 6), and the synth-crop
fields with the same meaning: smiling (`Smiling`), eyeglasses (`Eyeglasses`), mouth_open
(`Mouth_Slightly_Open`). Splits from list_eval_partition.txt: 0/1/2 -> train/validation/
test (162,770 / 19,867 / 19,962 images when complete). Unreadable images are skipped and
listed (manual.ImageReader rules); the per-split counts are in the dataset's metadata.json.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Dict, Optional

import tensorflow_datasets as tfds

from hyperface_jax.data.builders import celeba_lists as lists
from hyperface_jax.data.builders import face_crops, manual

URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
_VERSION = tfds.core.Version("1.0.0")
_GENDER_FEMALE_IF_NOT = lists.ATTRIBUTE_INDEX["Male"]


@dataclasses.dataclass
class CelebAConfig(tfds.core.BuilderConfig):
  """Which image folder and landmark list to read (and whether boxes come from a list)."""

  images: str = "img_align_celeba"
  landmarks_file: str = "list_landmarks_align_celeba.txt"
  bbox_file: str = ""  # "" = derive the box from the landmarks


CONFIGS = (
  CelebAConfig(
    name="aligned",
    version=_VERSION,
    description="Aligned and cropped 178x218 images; box from landmarks.",
  ),
  CelebAConfig(
    name="in_the_wild",
    version=_VERSION,
    images="img_celeba",
    landmarks_file="list_landmarks_celeba.txt",
    bbox_file="list_bbox_celeba.txt",
    description="Original images with list_bbox_celeba.txt boxes.",
  ),
)


def _anno(name):
  return (name, f"Anno/{name}")


class CelebAAnnotations:
  """All CelebA lists of one config, resolved in manual_dir and parsed (no images)."""

  def __init__(self, root, config: CelebAConfig, dataset: str = "celeba", url: str = URL):
    find = lambda cands: face_crops.find_manual(root, cands, dataset=dataset, url=url)
    self.dataset = dataset
    self.image_dir = find((config.images, f"Img/{config.images}"))
    self.attributes = lists.read_attributes(find(_anno("list_attr_celeba.txt")))
    self.landmarks = lists.read_landmarks(find(_anno(config.landmarks_file)))
    self.bboxes = lists.read_bboxes(find(_anno(config.bbox_file))) if config.bbox_file else None
    self.identity = lists.read_plain(find(_anno("identity_CelebA.txt")), 1, "identity")

  def check_listed(self, names, listed_in: str):
    """AnnotationError (naming the list lacking the row) unless every name has every row."""
    tables = [self.attributes, self.landmarks, self.identity] + (
      [self.bboxes] if self.bboxes is not None else []
    )
    for table in tables:
      missing = [n for n in names if n not in table.index]
      if missing:
        table.row(missing[0], needed_by=f"listed in {listed_in}; {len(missing)} such images")

  def example(self, name: str, reader: face_crops.EncodedImageReader) -> Optional[Dict]:
    """The crop example of image `name`, or None when its image is unreadable."""
    got = reader.read_encoded(os.path.join(self.image_dir, name))
    if got is None:
      return None
    image, (height, width) = got
    flat, line = self.landmarks.row(name)
    points = flat.reshape(5, 2)
    face_crops.check_points(points, width, height, self.landmarks.path, line)
    attrs, _ = self.attributes.row(name)
    if self.bboxes is not None:
      box, box_line = self.bboxes.row(name)
      x, y, w, h = box
      if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise manual.AnnotationError(
          self.bboxes.path,
          box_line,
          f"box {box.tolist()} lies outside the {width}x{height} image {name}",
        )
    else:
      box = face_crops.box_from_five(points)
    identity, _ = self.identity.row(name)
    return face_crops.crop_example(
      image,
      name,
      box=box,
      landmarks5=points,
      visibility5=face_crops.inside_image(points, width, height),
      attributes=attrs,
      gender=1 - int(attrs[_GENDER_FEMALE_IF_NOT]),
      smiling=int(attrs[lists.ATTRIBUTE_INDEX["Smiling"]]),
      eyeglasses=int(attrs[lists.ATTRIBUTE_INDEX["Eyeglasses"]]),
      mouth_open=int(attrs[lists.ATTRIBUTE_INDEX["Mouth_Slightly_Open"]]),
      identity=int(identity[0]),
    )


def generate(builder, annotations: CelebAAnnotations, split: str, names):
  """Streams the examples of `names` (one image in memory at a time), then records the
  split's image statistics in the dataset info and applies the 1 % bad-image rule."""
  reader = face_crops.EncodedImageReader(annotations.dataset)
  for name in names:
    example = annotations.example(name, reader)
    if example is not None:
      yield name, example
  face_crops.record_image_stats(builder.info, split, reader.finish(), annotations.image_dir)


class Celeba(tfds.core.GeneratorBasedBuilder):
  """CelebA face crops with 40 attributes, 5 landmarks, boxes, identity (module doc)."""

  VERSION = _VERSION
  BUILDER_CONFIGS = list(CONFIGS)
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"Download CelebA from {URL} (Google Drive: Img/, Anno/, Eval/). Extract "
    "img_align_celeba.zip (config aligned) or img_celeba.7z (config in_the_wild) and put "
    "the folder with Anno/*.txt and Eval/list_eval_partition.txt in manual_dir "
    "(flat or in Img/ Anno/ Eval/). See docs/datasets/celeba.md."
  )

  def _info(self):
    return self.dataset_info_from_configs(
      description="CelebA (Liu et al., ICCV 2015) face crops: 40 attributes, 5 landmarks, "
      "box, identity, gender from Male (docs/datasets/celeba.md).",
      features=face_crops.crop_features(),
      homepage=URL,
      metadata=tfds.core.MetadataDict(attribute_names=list(lists.CELEBA_ATTRIBUTES)),
    )

  def _split_generators(self, dl_manager):
    root = face_crops.manual_root(dl_manager)
    ann = CelebAAnnotations(root, self.builder_config)
    partition_path = face_crops.find_manual(
      root,
      ("list_eval_partition.txt", "Eval/list_eval_partition.txt", "Anno/list_eval_partition.txt"),
      dataset="celeba",
      url=URL,
    )
    partition = lists.read_partition(partition_path)
    ann.check_listed(partition.index, os.path.basename(partition_path))
    splits = lists.names_by_split(partition)
    logging.info("celeba: %s", {k: len(v) for k, v in splits.items()})
    return {split: self._generate_examples(ann, split, names) for split, names in splits.items()}

  def _generate_examples(self, ann, split, names):
    yield from generate(self, ann, split, names)
