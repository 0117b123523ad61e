"""The evaluator contract: what every entry of registry.EVALUATORS provides.

An evaluator is a class, built from the config's `evaluator` dict (its `name` picks
the class, the other keys are constructor keyword arguments), that accumulates exact
sums over batches of numpy arrays and reports flat numbers with their protocol:

  ev = registry.EVALUATORS.get(name)(**kwargs)
  ev.set_baselines(**stats)          # optional (trivial-baseline statistics)
  ev.reset()
  for batch, outputs in pairs:       # produced by the runner for `ev.inputs`
    ev.update(batch, outputs)
  ev.result()    -> {flat key: float}, e.g. {"landmarks/nme": 0.06, "count/landmarks": 812}
  ev.protocol()  -> {key or key prefix: text}: how each number is computed
  ev.arrays()    -> {name: array}    # optional, per-row arrays for the report's plots

`inputs` (a class attribute) tells the runner (evaluation/runner.py) which pairs to feed:

  "regions": region batches of the training pipeline (data/pipeline.py eval_regions):
    the labels and `<task>_mask` of the run's tasks (hyperface_jax/tasks.py), `region`,
    `face_box`, `iou`, `example_mask` (0 on padding rows) and `image_uint8`; outputs are
    the model's outputs per region (region-normalized landmarks, radians, logits).
  "faces": one row per annotated face of a test split, cropped by the dataset's own face
    box (evaluation/face_runner.py): every per-face field of the split in image pixels
    (`box`, `landmarks`, `visibility`, `landmarks5`, `landmarks68`, `pose`, `gender`,
    `attributes`, ...), `valid/<field>` flags, `example_mask`; outputs are the model's
    outputs with every landmark-type output mapped back to image pixels.
  "images": one row per whole image (evaluation/image_runner.py): `image` uint8,
    `image/filename`, `faces` (the image's annotated faces, scene schema plus extras
    such as FDDB's `ellipse`); outputs are the full test-time pipeline's detections
    (inference/analyzer.py `FaceAnalyzer.detect`: box, score, landmarks, visibility,
    pose, p_female per detection).
  "pairs": one row per labelled face pair of a test split (data/pairs.py eval_arrays,
    evaluation/pair_runner.py): `relations` int [8] and `relations_mask`, the pair's
    spatial `cues`, `faces_uint8` (both crops), `pair_index`, `source_index`,
    `example_mask`; outputs are the relation model's outputs per pair (`relations`
    logits, `faces/<task>` attribute outputs of both faces). Optional
    `set_baselines(train_cues=..., train_traits=...)` receives the training pairs.

Results hold exact ratios of sums over all rows (never a mean of batch means); a metric
that is undefined (no labelled row) is left out rather than written as NaN.
"""

from __future__ import annotations

from typing import Any, Dict, Protocol, runtime_checkable

INPUT_KINDS = ("regions", "faces", "images", "pairs")
REQUIRED = ("reset", "update", "result", "protocol")


@runtime_checkable
class Evaluator(Protocol):
  """Structural type of a registered evaluator (module docstring)."""

  inputs: str

  def reset(self) -> None: ...

  def update(self, batch: Dict[str, Any], outputs: Dict[str, Any]) -> None: ...

  def result(self) -> Dict[str, float]: ...

  def protocol(self) -> Dict[str, str]: ...


def check(evaluator_cls, name: str = "") -> None:
  """Raises naming what an evaluator class lacks of the contract."""
  label = name or getattr(evaluator_cls, "__name__", repr(evaluator_cls))
  missing = [m for m in REQUIRED if not callable(getattr(evaluator_cls, m, None))]
  kind = getattr(evaluator_cls, "inputs", None)
  problems = []
  if missing:
    problems.append(f"missing methods {missing}")
  if kind not in INPUT_KINDS:
    problems.append(f"class attribute inputs={kind!r} is not one of {INPUT_KINDS}")
  if problems:
    raise TypeError(
      f"Evaluator {label!r} breaks the contract (evaluation/contract.py): "
      + "; ".join(problems)
      + "."
    )
