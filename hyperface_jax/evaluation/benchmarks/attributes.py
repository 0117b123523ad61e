"""Face-attribute benchmarks: gender and the 40 CelebA attributes on CelebA and LFWA.

HyperFace reports gender accuracy on the CelebA and LFWA test sets (docs/papers.md sections
1.12, 1.14, 6). Both benchmarks run the model on one crop per face ("faces" inputs,
evaluation/face_runner.py) and score it with `face_attributes`
(evaluation/protocols_attributes.py): gender accuracy (gender head, else the `Male`
attribute logit) and, for a model with a 40-way attribute head, each attribute's accuracy
and their mean.

  celeba  CelebA `test` partition (list_eval_partition.txt code 2, docs/papers.md 5.7) of
          the default `celeba` builder config (aligned images, box from the 5 points).
  lfwa    LFWA `test` partition (list_eval_partition_lfwa.txt, docs/papers.md 5.8; a copy
          built without that file has only the split `full`). LFWA has no face boxes
          (data/builders/lfwa.py), so every image is cropped by its central box of half the
          image width and height (DEFAULT_LFW_BOX, a documented default: LFW's 250 x 250 images are
          centred on a detected face; not taken from the paper).

docs/papers.md gives gender accuracies only; the mean attribute accuracy column is "-" for
the published rows, said so in the notes rather than filled in.
"""

from __future__ import annotations

import numpy as np

from hyperface_jax.evaluation import protocols_attributes  # noqa: F401  (registers evaluator)
from hyperface_jax.evaluation.benchmarks import Benchmark, Column, PaperRow, PaperTable, register

# (x, y, w, h) as fractions of the image: the central half (module docstring).
DEFAULT_LFW_BOX = (0.25, 0.25, 0.5, 0.5)
FIELDS = {"attributes": ((40,), np.int64)}
_COLUMNS = (
  Column("gender accuracy (%)", "gender/accuracy"),
  Column("mean accuracy of the 40 attributes (%)", "attributes/mean_accuracy"),
)
_NOTES = (
  "Gender label: the `Male` attribute (0 male, 1 female, docs/papers.md section 5.7); our "
  "prediction: argmax of the gender head. Attribute accuracy: logit > 0 against the label, "
  "per attribute, mean over the 40 (equal weights); per-attribute values are in "
  "results.json and attributes.png.",
  "docs/papers.md has no published 40-attribute accuracies for HyperFace (sections 1.14, "
  "6): '-' in that column.",
)


def _rows(gender_alexnet, gender_resnet):
  return (
    PaperRow("HyperFace (AlexNet)", (gender_alexnet, None), "docs/papers.md sections 1.14, 6 [M]"),
    PaperRow(
      "HyperFace-ResNet", (gender_resnet, None), "docs/papers.md sections 1.14, 6 [V: WZ-HF]"
    ),
  )


CELEBA = register(
  Benchmark(
    name="celeba",
    dataset="celeba",
    split="test",
    evaluator="face_attributes",
    evaluator_kwargs={"dataset": "celeba"},
    inputs="faces",
    fields=FIELDS,
    table=PaperTable(
      title="CelebA: gender and attribute accuracy (docs/papers.md sections 1.12, 1.14, 5.7)",
      columns=_COLUMNS,
      rows=_rows(97.0, 98.0),
      notes=_NOTES
      + (
        "Images: the aligned CelebA crops (default builder config), each cropped by the box "
        "derived from its 5 landmarks (data/builders/face_crops.py box_from_five); which "
        "images HyperFace used is not in docs/papers.md.",
      ),
    ),
  )
)

LFWA = register(
  Benchmark(
    name="lfwa",
    dataset="lfwa",
    split="test",
    evaluator="face_attributes",
    evaluator_kwargs={"dataset": "lfwa"},
    inputs="faces",
    fields=FIELDS,
    runner_kwargs={"default_box": DEFAULT_LFW_BOX},
    table=PaperTable(
      title="LFWA: gender and attribute accuracy (docs/papers.md sections 1.12, 1.14, 5.8)",
      columns=_COLUMNS,
      rows=_rows(92.0, 94.0),
      notes=_NOTES
      + (
        "Crop: LFWA has no face boxes; the central box of half the image width and height "
        f"(fractions {DEFAULT_LFW_BOX} of the image, a documented default, "
        "hyperface_jax/evaluation/benchmarks/attributes.py).",
      ),
    ),
  )
)
