"""TFDS builder `mafl`: MAFL of TCDCN, TPAMI 2016 (docs/papers.md section 5.6).

MAFL is 20,000 CelebA images distributed only as two lists of CelebA file names,
`MAFL/training.txt` (19,000) and `MAFL/testing.txt` (1,000), one name per line; the labels
(5 landmarks, 40 attributes, identity) come from the CelebA annotation files. manual_dir
therefore holds the CelebA layout of the `celeba` builder (flat or Img/ Anno/ Eval/) plus
the MAFL lists (in MAFL/ or at the top). Configs as for celeba: `aligned` (default; the
images used by the landmark literature on MAFL, docs/papers.md 5.6 [?]) and `in_the_wild`.
Examples are identical to the `celeba` examples of the same images (face_crops schema);
splits train / test follow the MAFL lists, not CelebA's partition.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from hyperface_jax.data.builders import celeba, celeba_lists, face_crops, manual

URL = "https://github.com/zhzhanp/TCDCN-face-alignment (MAFL/) and " + celeba.URL
_VERSION = tfds.core.Version("1.0.0")
SPLIT_FILES = {"train": "training.txt", "test": "testing.txt"}


def read_name_list(path):
  """A MAFL list: one CelebA file name per line -> [names]; duplicates are errors."""
  names, seen = [], {}
  for line, text in manual.read_lines(path):
    tokens = text.split()
    face_crops.columns(path, line, tokens, 1, "one CelebA image name")
    if tokens[0] in seen:
      raise manual.AnnotationError(
        path, line, f"duplicate image {tokens[0]!r} (first at line {seen[tokens[0]]})"
      )
    seen[tokens[0]] = line
    names.append(tokens[0])
  return names


class Mafl(tfds.core.GeneratorBasedBuilder):
  """MAFL: CelebA face crops listed by the TCDCN MAFL train/test lists (module doc)."""

  VERSION = _VERSION
  BUILDER_CONFIGS = list(celeba.CONFIGS)
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Put the CelebA distribution (see the celeba builder) in manual_dir and add "
    "MAFL/training.txt and MAFL/testing.txt from https://github.com/zhzhanp/"
    "TCDCN-face-alignment. See docs/datasets/mafl.md."
  )

  def _info(self):
    return self.dataset_info_from_configs(
      description="MAFL (Zhang et al., TPAMI 2016): 19,000 / 1,000 CelebA images with 5 "
      "landmarks and 40 attributes (docs/datasets/mafl.md).",
      features=face_crops.crop_features(),
      homepage=URL,
      metadata=tfds.core.MetadataDict(attribute_names=list(celeba_lists.CELEBA_ATTRIBUTES)),
    )

  def _split_generators(self, dl_manager):
    root = face_crops.manual_root(dl_manager)
    paths = {
      split: face_crops.find_manual(root, (f"MAFL/{fname}", fname), dataset="mafl", url=URL)
      for split, fname in SPLIT_FILES.items()
    }
    names = {split: read_name_list(path) for split, path in paths.items()}
    overlap = sorted(set(names["train"]) & set(names["test"]))
    if overlap:
      raise manual.AnnotationError(
        paths["test"],
        None,
        f"{len(overlap)} images are also in {paths['train']}, e.g. {overlap[0]!r}",
      )
    ann = celeba.CelebAAnnotations(root, self.builder_config, dataset="mafl", url=URL)
    for split, path in paths.items():
      ann.check_listed(
        names[split], os.path.basename(os.path.dirname(path)) + "/" + os.path.basename(path)
      )
    return {split: self._generate_examples(ann, split, names[split]) for split in names}

  def _generate_examples(self, ann, split, names):
    yield from celeba.generate(self, ann, split, names)
