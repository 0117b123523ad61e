"""Region-level face / non-face evaluator for models that predict only detection (R-CNN_Face,
Fast-HyperFace's proposal net; any other declared task they have, such as the proposal
net's box_regression, is scored by its own metrics, evaluation/task_metrics.py).

Reuses HyperFaceRegionEvaluator's metrics, baselines and protocol notes
(detection/ap, detection/accuracy, baseline/detection/*) and only reads
`outputs["detection"]`, so a model without the other heads (docs/papers.md 1.3,
models/rcnn_face.py) is evaluated by the same code. It keeps no example crops
(the report's crops.png draws landmarks and pose, which such a model lacks).
"""

from __future__ import annotations

import numpy as np

from hyperface_jax import registry
from hyperface_jax.evaluation.baselines import masked_rows
from hyperface_jax.evaluation.evaluators import HyperFaceRegionEvaluator, _softmax1


@registry.EVALUATORS.register("detection_regions")
class DetectionRegionEvaluator(HyperFaceRegionEvaluator):
  """HyperFaceRegionEvaluator restricted to the detection task.

  `result()` has count/* for every task (0 except detection and examples) and the
  detection metrics: AP (scikit-learn, non-interpolated) and accuracy of the face
  probability over rows with detection_mask 1, with their constant-score baselines.
  """

  def __init__(self, **kwargs):
    kwargs.setdefault("keep_examples", 0)
    super().__init__(**kwargs)

  def update(self, batch: dict, outputs: dict):
    """Adds one eval batch (region batch contract) and its detection logits (numpy)."""
    if "detection" not in outputs:
      raise KeyError(f"detection_regions needs outputs['detection']; got {sorted(outputs)}.")
    example = np.asarray(batch["example_mask"]) > 0.5
    self._count_examples += int(example.sum())
    self._others.update(batch, outputs)  # other declared tasks (the proposal net's boxes)
    rows = masked_rows(batch, "detection_mask", example)
    self._add("detection/score", _softmax1(np.asarray(outputs["detection"])[rows]))
    self._add("detection/label", np.asarray(batch["detection"]).astype(np.int64)[rows])

  def protocol(self) -> dict[str, str]:
    """The detection and baseline notes of HyperFaceRegionEvaluator.protocol()."""
    notes = super().protocol()
    return {k: notes[k] for k in ("detection", "baseline")}
