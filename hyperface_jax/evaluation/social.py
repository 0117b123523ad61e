"""Evaluators of the social-relation system (docs/papers.md sections 3.1-3.4).

  relation_traits    ("pairs"): per-trait accuracy and balanced accuracy of the 8 traits,
                     their means, beside two trivial baselines fitted on the TRAINING pairs:
                     the majority label of each trait, and a spatial-cues-only model
                     (gradient-boosted trees per trait on the 9 cues of data/pairs.py).
  social_attributes  ("regions"): every declared task metric (task_metrics), per-class
                     recall and the confusion matrix of the 7 expressions (ExpW order,
                     docs/papers.md 5.11), and for each classification task the accuracy
                     of always answering the test rows' most frequent class.

Balanced accuracy = mean over the classes present among the labels of the per-class
recall (scikit-learn's `balanced_accuracy_score`); a prediction is positive where the
trait's logit > 0 (probability > 0.5). `write_report(folder)` writes the markdown tables
that train.py's final evaluation puts into `report/`.
"""

from __future__ import annotations

import os
from typing import Dict

import numpy as np

from hyperface_jax import atomic_io, registry, tasks
from hyperface_jax.evaluation.task_metrics import TaskMetricsEvaluator

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
_PREDICTORS = ("model", "majority", "cues_only")


def balanced_accuracy(confusion: np.ndarray) -> float:
  """Mean recall over the classes with labelled rows of a [C, C] (true, predicted) matrix."""
  confusion = np.asarray(confusion, np.float64)
  support = confusion.sum(1)
  present = support > 0
  return float(np.mean(np.diag(confusion)[present] / support[present])) if present.any() else 0.0


@registry.EVALUATORS.register("relation_traits")
class RelationTraitEvaluator:
  """Relation-trait accuracies with the majority and cues-only baselines (module doc)."""

  inputs = "pairs"

  def __init__(self, traits=tasks.RELATION_TRAITS, seed: int = 0):
    """Args: trait names in output order; seed of the cues-only model."""
    self.traits, self.seed = tuple(traits), seed
    self.majority = None
    self.cue_models = None
    self.reset()

  def reset(self):
    # [predictor, trait, true, predicted] counts
    self.confusion = np.zeros((len(_PREDICTORS), len(self.traits), 2, 2), np.int64)

  def set_baselines(self, train_cues, train_traits):
    """Fits the baselines on the training pairs' cues [P, 9] and traits [P, 8]."""
    from sklearn.ensemble import HistGradientBoostingClassifier  # pylint: disable=g-import-not-at-top
    from threadpoolctl import threadpool_limits  # pylint: disable=g-import-not-at-top

    y = np.asarray(train_traits, np.int64)
    # Ties go to 0 (absent), the more frequent label in every trait of the papers' data.
    self.majority = (y.mean(0) > 0.5).astype(np.int64)
    self.cue_models = []
    for t in range(len(self.traits)):
      if len(np.unique(y[:, t])) < 2:
        self.cue_models.append(int(y[0, t]))
        continue
      model = HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.05, early_stopping=True, random_state=self.seed
      )
      with threadpool_limits(1):  # see update()
        self.cue_models.append(model.fit(np.asarray(train_cues, np.float64), y[:, t]))

  def _add(self, which, truth, pred):
    for t in range(truth.shape[1]):
      np.add.at(self.confusion[which, t], (truth[:, t], pred[:, t]), 1)

  def update(self, batch, outputs):
    """Adds one pair batch (padded rows have example_mask 0)."""
    rows = (np.asarray(batch["example_mask"]) > 0.5) & (np.asarray(batch["relations_mask"]) > 0.5)
    truth = np.asarray(batch["relations"])[rows].astype(np.int64)
    if not len(truth):
      return
    self._add(0, truth, (np.asarray(outputs["relations"])[rows] > 0).astype(np.int64))
    if self.majority is not None:
      self._add(1, truth, np.broadcast_to(self.majority, truth.shape))
      from threadpoolctl import threadpool_limits  # pylint: disable=g-import-not-at-top

      cues = np.asarray(batch["cues"], np.float64)[rows]
      # One OpenMP thread: the trees are tiny, and on a loaded machine (load 15 on 2 cores)
      # OpenMP's spinning threads made the 8 x 8 predict calls of the 950 test pairs take
      # over 10 minutes (measured; the relation run's own training took 3.3).
      with threadpool_limits(1):
        pred = [
          m.predict(cues) if hasattr(m, "predict") else np.full(len(cues), m)
          for m in self.cue_models
        ]
      self._add(2, truth, np.stack(pred, 1).astype(np.int64))

  def result(self) -> Dict[str, float]:
    n = int(self.confusion[0, 0].sum())
    if n == 0:
      return {}
    out = {"count/relations": float(n)}
    for p in range(len(_PREDICTORS)):
      if p > 0 and self.majority is None:
        continue
      prefix = "relations" if p == 0 else f"baseline/{'' if p == 1 else 'cues_only/'}relations"
      acc = [np.trace(c) / n for c in self.confusion[p]]
      bal = [balanced_accuracy(c) for c in self.confusion[p]]
      for name, a, b in zip(self.traits, acc, bal, strict=True):
        out[f"{prefix}/{name}/accuracy"] = float(a)
        out[f"{prefix}/{name}/balanced_accuracy"] = float(b)
      out[f"{prefix}/mean_accuracy"] = float(np.mean(acc))
      out[f"{prefix}/mean_balanced_accuracy"] = float(np.mean(bal))
    return out

  def protocol(self) -> Dict[str, str]:
    return {
      "relations/": "per labelled test pair and trait: positive where the logit > 0; accuracy "
      "= correct / pairs; balanced accuracy = mean recall over the classes present "
      "(sklearn balanced_accuracy_score); mean_* = unweighted mean over the 8 traits.",
      "baseline/relations/": "majority label of each trait among the training pairs.",
      "baseline/cues_only/relations/": "gradient-boosted trees (sklearn "
      "HistGradientBoostingClassifier, learning rate 0.05, up to 300 iterations, early "
      "stopping on 10 % of the training pairs) per trait on the training pairs' 9 "
      "spatial cues (data/pairs.py spatial_cues), the faces unseen.",
    }

  def arrays(self) -> Dict[str, np.ndarray]:
    return {"relations/confusion": self.confusion.copy()}

  def write_report(self, folder: str) -> str:
    """Writes `folder/relations.md`: per-trait accuracy / balanced accuracy table."""
    r = self.result()
    rows = [
      "| trait | model acc | model bal. acc | majority acc | cues-only acc | cues-only bal. acc |",
      "|---|---|---|---|---|---|",
    ]
    for name in (*self.traits, "mean"):
      acc, bal = (
        ("mean_accuracy", "mean_balanced_accuracy")
        if name == "mean"
        else (
          f"{name}/accuracy",
          f"{name}/balanced_accuracy",
        )
      )
      cells = [
        r.get(f"relations/{acc}"),
        r.get(f"relations/{bal}"),
        r.get(f"baseline/relations/{acc}"),
        r.get(f"baseline/cues_only/relations/{acc}"),
        r.get(f"baseline/cues_only/relations/{bal}"),
      ]
      rows.append(
        f"| {name} | " + " | ".join("" if c is None else f"{c:.3f}" for c in cells) + " |"
      )
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "relations.md")
    atomic_io.write_text_atomic(path, "\n".join(rows) + "\n")
    return path


@registry.EVALUATORS.register("social_attributes")
class SocialAttributeEvaluator(TaskMetricsEvaluator):
  """task_metrics plus the expression confusion matrix and majority baselines."""

  inputs = "regions"

  def reset(self):
    super().reset()
    self.expression_confusion = np.zeros((len(EXPRESSIONS),) * 2, np.int64)
    self.class_counts: Dict[str, np.ndarray] = {}

  def update(self, batch: dict, outputs: dict):
    super().update(batch, outputs)
    example = np.asarray(batch["example_mask"]) > 0.5
    for task in self._tasks(batch, outputs):
      if task.loss != "softmax_cross_entropy" or task.name == "detection":
        continue
      rows = example & (np.asarray(batch[task.mask_key]) > 0.5)
      labels = np.asarray(batch[task.name])[rows].astype(np.int64)
      k = task.output_shape[0]
      self.class_counts[task.name] = self.class_counts.get(task.name, 0) + np.bincount(
        labels, minlength=k
      )
      if task.name == "expression":
        pred = np.argmax(np.asarray(outputs["expression"])[rows], -1)
        np.add.at(self.expression_confusion, (labels, pred), 1)

  def result(self) -> dict:
    out = super().result()
    for name, counts in self.class_counts.items():
      if counts.sum():
        out[f"baseline/test_majority/{name}/accuracy"] = float(counts.max() / counts.sum())
    c = self.expression_confusion
    if c.sum():
      out["expression/balanced_accuracy"] = balanced_accuracy(c)
      for i, e in enumerate(EXPRESSIONS):
        if c[i].sum():
          out[f"expression/recall/{e}"] = float(c[i, i] / c[i].sum())
    return out

  def protocol(self) -> dict:
    notes = super().protocol()
    notes["baseline/test_majority/"] = (
      "classification tasks: accuracy of always answering the most frequent class of the "
      "test rows (the best constant predictor there); baseline/ = the training majority."
    )
    notes["expression/recall/"] = "per expression: correct / test rows of that expression."
    return notes

  def arrays(self) -> dict:
    return {"expression/confusion": self.expression_confusion.copy()}

  def write_report(self, folder: str) -> str:
    """Writes `folder/expression_confusion.md` (rows true, columns predicted)."""
    c = self.expression_confusion
    rows = ["| true \\ predicted | " + " | ".join(EXPRESSIONS) + " | recall |"]
    rows.append("|---" * (len(EXPRESSIONS) + 2) + "|")
    for i, e in enumerate(EXPRESSIONS):
      recall = f"{c[i, i] / c[i].sum():.3f}" if c[i].sum() else ""
      rows.append(f"| {e} | " + " | ".join(str(v) for v in c[i]) + f" | {recall} |")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "expression_confusion.md")
    atomic_io.write_text_atomic(path, "\n".join(rows) + "\n")
    return path
