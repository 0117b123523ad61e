"""TFDS builder `lfwa`: LFW with the 40 CelebA attributes (LFWA, docs/papers.md section 5.8).

The public LFWA distribution is loosely documented (MATLAB files in some mirrors), so this
builder reads the following ASSUMED layout (docs/datasets/lfwa.md explains how to convert
other copies into it once):

  manual_dir/
    lfw/<Person_Name>/<Person_Name>_0001.jpg    the LFW images (250 x 250); the folder
                                                 may also be named lfw-deepfunneled/
    list_attr_lfwa.txt                           CelebA attribute format (celeba_lists):
        line 1: number of images; line 2: the 40 CelebA attribute names;
        rows: `<image> v1 ... v40` with values -1/1, separated by any run of spaces;
        <image> is `Person_Name_0001.jpg` or `Person_Name/Person_Name_0001.jpg`
    list_eval_partition_lfwa.txt   (optional)    `<image> 0|1|2` (train / validation / test;
                                                 standard split 6,263 train, 6,970 test)

Without the partition file all images go to one split named `full` (TFDS reserves `all`).
Examples use the face-crop schema (face_crops): attributes, gender from `Male` (0 male,
1 female), smiling, eyeglasses, mouth_open as for CelebA; LFWA has no landmarks or boxes
(marked invalid).
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from hyperface_jax.data.builders import celeba_lists as lists
from hyperface_jax.data.builders import face_crops

URL = (
  "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (LFWA) and http://vis-www.cs.umass.edu/lfw/"
)
_VERSION = tfds.core.Version("1.0.0")
ATTR_FILE = "list_attr_lfwa.txt"
PARTITION_FILE = "list_eval_partition_lfwa.txt"


def image_path(image_dir: str, name: str) -> str:
  """LFW path of `name` (`Person_0001.jpg` lives in `Person/`)."""
  if "/" in name:
    return os.path.join(image_dir, name)
  return os.path.join(image_dir, name.rsplit("_", 1)[0], name)


class Lfwa(tfds.core.GeneratorBasedBuilder):
  """LFWA: LFW images with 40 binary attributes (assumed layout in the module doc)."""

  VERSION = _VERSION
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Put the LFW images in manual_dir/lfw/ and the LFWA attribute table, converted to "
    f"{ATTR_FILE} (CelebA list format), in manual_dir. See docs/datasets/lfwa.md."
  )

  def _info(self):
    return self.dataset_info_from_configs(
      description="LFWA (Liu et al., ICCV 2015): LFW faces with the 40 CelebA attributes "
      "(docs/datasets/lfwa.md).",
      features=face_crops.crop_features(),
      homepage=URL,
      metadata=tfds.core.MetadataDict(attribute_names=list(lists.CELEBA_ATTRIBUTES)),
    )

  def _split_generators(self, dl_manager):
    root = face_crops.manual_root(dl_manager)
    find = lambda cands: face_crops.find_manual(root, cands, dataset="lfwa", url=URL)
    image_dir = find(("lfw", "lfw-deepfunneled"))
    attributes = lists.read_attributes(find((ATTR_FILE,)))
    partition_path = os.path.join(root, PARTITION_FILE) if root is not None else ""
    if os.path.exists(partition_path):
      partition = lists.read_partition(partition_path)
      missing = [n for n in partition.index if n not in attributes.index]
      if missing:
        attributes.row(missing[0], needed_by=f"listed in {PARTITION_FILE}")
      splits = lists.names_by_split(partition)
    else:
      splits = {"full": list(attributes.index)}
    return {
      split: self._generate_examples(image_dir, attributes, split, names)
      for split, names in splits.items()
    }

  def _generate_examples(self, image_dir, attributes, split, names):
    reader = face_crops.EncodedImageReader("lfwa")
    idx = lists.ATTRIBUTE_INDEX
    for name in names:
      got = reader.read_encoded(image_path(image_dir, name))
      if got is None:
        continue
      attrs, _ = attributes.row(name)
      yield (
        name,
        face_crops.crop_example(
          got[0],
          name,
          attributes=attrs,
          gender=1 - int(attrs[idx["Male"]]),
          smiling=int(attrs[idx["Smiling"]]),
          eyeglasses=int(attrs[idx["Eyeglasses"]]),
          mouth_open=int(attrs[idx["Mouth_Slightly_Open"]]),
        ),
      )
    face_crops.record_image_stats(self.info, split, reader.finish(), image_dir)
