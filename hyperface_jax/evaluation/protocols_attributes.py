"""CelebA / LFWA gender and 40-attribute accuracy protocol (docs/papers.md sections 1.12, 5.7,
5.8, 6: HyperFace reports gender accuracy on CelebA and LFWA).

Registered as evaluator "face_attributes":

  ev = EVALUATORS.get("face_attributes")(dataset="celeba")
  ev.reset(); ev.update(batch, outputs) ...; ev.result(); ev.protocol()

`inputs = "faces"` (evaluation/contract.py): rows from evaluation/face_runner.py
`face_pairs`, one per face cropped by its box (CelebA: the box derived from the 5 points or
list_bbox_celeba.txt; LFWA has no boxes: the benchmark supplies a fixed central box).
Batch keys (numpy, one row per face): `attributes` [B, 40] in 0/1 (celeba_lists.
CELEBA_ATTRIBUTES order) with optional `attributes_mask` / `valid/attributes` [B];
`gender` [B] (0 male, 1 female, -1 unknown) with optional `gender_mask` /
`valid/gender` [B]; optional `example_mask` [B] (padding). Outputs: `attributes` [B, 40] logits (positive when logit > threshold, i.e.
sigmoid > 0.5 for threshold 0) and/or `gender` [B, 2] logits (class 1 = female; argmax).
Without a gender output, gender is read from the `Male` attribute logit (female when
Male is predicted negative). Results: gender accuracy, the accuracy of each attribute and
their mean over the 40 (the standard CelebA/LFWA summary), and a majority baseline
(each attribute's majority value over the EVALUATED faces: an optimistic constant
predictor, since it peeks at the test labels; shows what an accuracy is worth).
"""

from __future__ import annotations

import os

import numpy as np

from hyperface_jax import registry
from hyperface_jax.data.builders.celeba_lists import ATTRIBUTE_INDEX, CELEBA_ATTRIBUTES
from hyperface_jax.evaluation import ced_plot, metrics

_MALE = ATTRIBUTE_INDEX["Male"]


def _rows(batch, key, n):
  rows = np.ones(n, bool)
  for k in ("example_mask", f"{key}_mask", f"valid/{key}"):
    if k in batch:
      rows &= np.asarray(batch[k]).reshape(-1) > 0.5
  return rows


@registry.EVALUATORS.register("face_attributes")
class FaceAttributeEvaluator:
  """Accumulates attribute / gender predictions; reports accuracies (module doc)."""

  inputs = "faces"

  def __init__(self, threshold: float = 0.0, dataset: str = "celeba"):
    """Args: logit threshold of a positive attribute, dataset name for the protocol."""
    self.threshold = float(threshold)
    self.dataset = str(dataset)
    self.reset()

  def reset(self):
    """Forgets everything accumulated by `update`."""
    self._attr_pred, self._attr_true, self._g_pred, self._g_true = [], [], [], []

  def update(self, batch: dict, outputs: dict):
    """Adds one batch (keys in the module docstring)."""
    if "attributes" in batch and "attributes" in outputs:
      true = np.asarray(batch["attributes"]).astype(np.int64)
      logits = np.asarray(outputs["attributes"], np.float64)
      if true.shape != logits.shape or true.shape[1:] != (len(CELEBA_ATTRIBUTES),):
        raise ValueError(
          f"attributes: expected [B, 40] labels and logits, got {true.shape} and {logits.shape}."
        )
      rows = _rows(batch, "attributes", len(true))
      self._attr_true.append(true[rows])
      self._attr_pred.append((logits[rows] > self.threshold).astype(np.int64))
    if "gender" in batch:
      true = np.asarray(batch["gender"]).reshape(-1).astype(np.int64)
      if "gender" in outputs:
        pred = np.argmax(np.asarray(outputs["gender"]), axis=-1)
      elif "attributes" in outputs:
        pred = (np.asarray(outputs["attributes"])[:, _MALE] <= self.threshold).astype(np.int64)
      else:
        return
      rows = _rows(batch, "gender", len(true)) & (true >= 0)
      self._g_true.append(true[rows])
      self._g_pred.append(pred[rows])

  def result(self) -> dict:
    """Flat floats: gender/accuracy, attributes/mean_accuracy, per attribute, baselines."""
    out = {}
    if self._g_true:
      true, pred = np.concatenate(self._g_true), np.concatenate(self._g_pred)
      out["count/gender"] = float(len(true))
      if len(true):
        out["gender/accuracy"] = metrics.accuracy(pred, true)
        majority = int(true.mean() >= 0.5)
        out["baseline/gender/accuracy"] = metrics.accuracy(np.full_like(true, majority), true)
    if self._attr_true:
      true, pred = np.concatenate(self._attr_true), np.concatenate(self._attr_pred)
      out["count/attributes"] = float(len(true))
      if len(true):
        accs, base = [], []
        for k, name in enumerate(CELEBA_ATTRIBUTES):
          accs.append(metrics.accuracy(pred[:, k], true[:, k]))
          out[f"attributes/accuracy/{name}"] = accs[-1]
          majority = int(true[:, k].mean() >= 0.5)
          base.append(metrics.accuracy(np.full(len(true), majority), true[:, k]))
        out["attributes/mean_accuracy"] = float(np.mean(accs))
        out["baseline/attributes/mean_accuracy"] = float(np.mean(base))
    return out

  def protocol(self) -> dict:
    """Human-readable protocol notes, written under "protocol" in results.json."""
    return {
      "gender/accuracy": (
        f"{self.dataset}: fraction of faces (gender_mask 1, gender >= 0) whose predicted "
        "gender equals the label; prediction = argmax of the gender logits (1 female), "
        "or Male-attribute logit <= threshold when the model has no gender head. Label "
        "from the Male attribute (0 male, 1 female). Units: fraction (x100 = %)."
      ),
      "attributes/mean_accuracy": (
        f"{self.dataset}: per attribute, fraction of faces (attributes_mask 1) with "
        f"(logit > {self.threshold:g}) == label; mean over the 40 CelebA attributes "
        "(equal weight per attribute)."
      ),
      "baseline": (
        "each attribute's (and gender's) majority value over the evaluated "
        "faces; optimistic (uses the test labels)."
      ),
      "subset": f"every face of the evaluated {self.dataset} split.",
    }

  def plots(self, out_dir: str) -> list:
    """attributes.png: accuracy of each of the 40 attributes; returns [paths]."""
    r = self.result()
    prefix = "attributes/accuracy/"
    values = {k[len(prefix) :]: v for k, v in r.items() if k.startswith(prefix)}
    path = ced_plot.plot_bars(
      values,
      os.path.join(out_dir, "attributes.png"),
      "accuracy",
      title=f"{self.dataset}: mean {r.get('attributes/mean_accuracy', float('nan')):.3f}",
    )
    return [path] if path else []
