"""MAFL / MTFL 5-point landmark protocol (TCDCN; docs/papers.md sections 2.1, 2.2, 5.5, 5.6).

Registered as evaluator "landmarks5_interocular":

  ev = EVALUATORS.get("landmarks5_interocular")(dataset="mafl")
  ev.reset(); ev.update(batch, outputs) ...; ev.result(); ev.protocol()

`inputs = "faces"` (evaluation/contract.py): rows from evaluation/face_runner.py
`face_pairs`, one per annotated face cropped by its box. Batch keys (numpy):
`landmarks5` [B, 5, 2] true pixels, optional `visibility5` [B, 5] (points with 0 are not
scored), `valid/landmarks5`, `landmarks5_mask` [B] and `example_mask` [B] (padding).
Outputs: `landmarks5` [B, 5, 2] pixels (for a model without a 5-point head, derived by
face_runner from its AFLW-21 or iBUG-68 output; `derived/landmarks5` says how and the
protocol repeats it). Region batches also work: with `region` [B, 4] in the batch the truth
and prediction are region-normalized and de-normalized to pixels first
(boxes.denormalize_landmarks).

Error of a point = Euclidean distance / inter-ocular distance, where inter-ocular =
distance between the TRUE LEFT- and RIGHT-EYE CENTRES (points 0 and 1 of the 5-point scheme,
schemes.FIVE_NAMES). In the 5-point scheme the eye points ARE the centres, so this is
what 300-W tables call "inter-pupil"; TCDCN ECCV'14 calls it inter-ocular (docs/papers.md 2.1
[M]). A face's NME = mean over its scored points. Failure (docs/papers.md 2.1 [M]: error > 10 %)
is reported two ways, because the literature uses both: per FACE (NME > threshold;
`failure_rate_0.1`) and per POINT (the TCDCN ECCV'14 per-landmark bars; `failure_rate_0.1/
<point>` and their mean `point_failure_rate_0.1`). Units: fractions (x100 = paper %).
"""

from __future__ import annotations

import os

import numpy as np

from hyperface_jax import registry
from hyperface_jax.data import schemes
from hyperface_jax.data.boxes import denormalize_landmarks
from hyperface_jax.evaluation import ced_plot, face_runner, metrics

PREFIX = "landmarks5"


def interocular(points5) -> np.ndarray:
  """[N] distance between the eye centres (points 0 and 1) of [N, 5, 2] points."""
  p = np.asarray(points5, np.float64)
  return np.linalg.norm(p[:, 0] - p[:, 1], axis=-1)


@registry.EVALUATORS.register("landmarks5_interocular")
class Landmarks5Evaluator:
  """Accumulates 5-point predictions; reports NME by inter-ocular distance (module doc)."""

  inputs = "faces"

  def __init__(self, failure_threshold: float = 0.1, dataset: str = "mafl"):
    """Args: the failure threshold (fraction of the inter-ocular distance) and the dataset
    name written into the protocol (mafl, mtfl, ...)."""
    if failure_threshold <= 0:
      raise ValueError(f"failure_threshold must be > 0; got {failure_threshold}.")
    self.failure_threshold = float(failure_threshold)
    self.dataset = str(dataset)
    self.reset()

  def reset(self):
    """Forgets everything accumulated by `update`."""
    self._point_errors, self._visible, self._nme = [], [], []
    self._derived = {}

  def update(self, batch: dict, outputs: dict):
    """Adds one batch of faces (keys in the module docstring)."""
    if "landmarks5" not in outputs:
      raise ValueError(
        "landmarks5_interocular: the model has no 'landmarks5' output (nor landmarks or "
        f"landmarks68 to derive it from, face_runner.DERIVATIONS); outputs: {sorted(outputs)}."
      )
    self._derived.update(face_runner.derivation_notes(outputs, PREFIX))
    target = np.asarray(batch["landmarks5"], np.float64)
    pred = np.asarray(outputs["landmarks5"], np.float64)
    if target.shape != pred.shape or target.shape[1:] != (5, 2):
      raise ValueError(
        f"landmarks5: expected [B, 5, 2] truth and prediction, got {target.shape} and {pred.shape}."
      )
    rows = np.ones(len(target), bool)
    for key in ("example_mask", "landmarks5_mask", "valid/landmarks5"):
      if key in batch:
        rows &= np.asarray(batch[key]).reshape(-1) > 0.5
    visible = np.asarray(batch.get("visibility5", np.ones(target.shape[:2])), np.float64)
    if "region" in batch:
      region = np.asarray(batch["region"], np.float64)
      target, pred = denormalize_landmarks(target, region), denormalize_landmarks(pred, region)
    target, pred, visible = target[rows], pred[rows], visible[rows] > 0.5
    iod = interocular(target)
    if np.any(~(iod > 0)):
      raise ValueError(
        "landmarks5: the true eye centres coincide for a scored face "
        f"(inter-ocular distance {iod.min()}); cannot normalize."
      )
    self._nme.append(metrics.nme(pred, target, visible, iod))
    self._point_errors.append(np.linalg.norm(pred - target, axis=-1) / iod[:, None])
    self._visible.append(visible)

  def arrays(self) -> dict:
    """Per-face arrays: point_errors [N, 5] (NaN where not scored), nme [N]."""
    if not self._point_errors:
      return {"point_errors": np.zeros((0, 5)), "nme": np.zeros(0)}
    point = np.where(np.concatenate(self._visible), np.concatenate(self._point_errors), np.nan)
    return {"point_errors": point, "nme": np.concatenate(self._nme)}

  def result(self) -> dict:
    """Flat floats: nme, failure rates (per face and per point), per-point errors, counts."""
    arr = self.arrays()
    nme, point = arr["nme"], arr["point_errors"]
    t = f"{self.failure_threshold:g}"
    out = {f"count/{PREFIX}": float(np.isfinite(nme).sum())}
    if out[f"count/{PREFIX}"] == 0:
      return out
    out[f"{PREFIX}/nme"] = float(np.nanmean(nme))
    out[f"{PREFIX}/failure_rate_{t}"] = metrics.failure_rate(nme, self.failure_threshold)
    rates = []
    for k, name in enumerate(schemes.FIVE_NAMES):
      col = point[:, k]
      if np.isfinite(col).any():
        out[f"{PREFIX}/nme/{name}"] = float(np.nanmean(col))
        rates.append(metrics.failure_rate(col, self.failure_threshold))
        out[f"{PREFIX}/failure_rate_{t}/{name}"] = rates[-1]
    out[f"{PREFIX}/point_failure_rate_{t}"] = float(np.mean(rates))
    out[f"{PREFIX}/auc_{t}"] = metrics.auc_at(nme, self.failure_threshold)
    return out

  def protocol(self) -> dict:
    """Human-readable protocol notes, written under "protocol" in results.json."""
    t = f"{self.failure_threshold:g}"
    return {
      f"{PREFIX}/nme": (
        f"{self.dataset} 5-point protocol (TCDCN, docs/papers.md 2.1): per point Euclidean "
        "error / inter-ocular distance = distance between the TRUE left- and right-eye "
        "centres (5-point points 0 and 1; equals 'inter-pupil'); per face mean over "
        "points with visibility5 1; mean over faces with landmarks5_mask 1. Pixels "
        "(region-normalized inputs de-normalized with `region`). Units: fraction "
        "(x100 = paper %)."
      ),
      f"{PREFIX}/failure_rate_{t}": (
        f"fraction of faces whose NME > {t}; point_failure_rate_{t} = mean over the 5 "
        f"points of the fraction of faces whose point error > {t} (TCDCN ECCV'14 "
        "per-landmark failure rates); auc = area under the CED on [0, threshold]."
      ),
      f"{PREFIX}/subset": (
        f"every scored face of the evaluated {self.dataset} split, cropped by its face box "
        "(MTFL/MAFL boxes derived from the 5 true points, data/builders/face_crops.py "
        "box_from_five)."
      ),
      **self._derived,
    }

  def plots(self, out_dir: str) -> list:
    """ced.png: CED of the per-face NME and of each point's error; returns [paths]."""
    arr = self.arrays()
    points = {name: arr["point_errors"][:, k] for k, name in enumerate(schemes.FIVE_NAMES)}
    path = ced_plot.plot_ced(
      [("per face (mean of the 5 points)", {"model": arr["nme"]}), ("per point", points)],
      os.path.join(out_dir, "ced.png"),
      "error / inter-ocular distance",
      limit=self.failure_threshold,
      title=f"{self.dataset} 5 points",
    )
    return [path] if path else []
