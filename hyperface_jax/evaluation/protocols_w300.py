"""300-W 68-point landmark protocol (docs/papers.md section 5.9; published numbers 2.2, 6).

Registered as evaluator "w300_landmarks", `inputs = "faces"` (evaluation/contract.py): rows
from evaluation/face_runner.py `face_pairs`, one per 300-W face cropped by its box (the
tight box of its 68 points, data/builders/w300.py):

  ev = EVALUATORS.get("w300_landmarks")()
  ev.reset(); ev.update(batch, outputs) ...; ev.result(); ev.protocol(); ev.plots(out_dir)

Batch keys: `landmarks68` [B, 68, 2] true pixels, optional `visibility68` [B, 68],
`valid/landmarks68`, `example_mask` (0 on padding), and the subset of each row: `subset`
[B] strings, or else `image/filename` (the 300-W folder: lfpw/testset and helen/testset are
"common", ibug is "challenging", `w300_subset`), or else the constructor's `subset`.
Outputs: `landmarks68` [B, 68, 2] pixels. NMEs are fractions (x100 = the papers' %).
"""

from __future__ import annotations

import os
from typing import Dict, Sequence

import numpy as np

from hyperface_jax import registry
from hyperface_jax.evaluation import ced_plot, metrics
from hyperface_jax.evaluation.face_runner import require_output, valid_rows

# iBUG-68 eye points (docs/papers.md section 5.9): contours 36-41 (image-left eye), 42-47.
LEFT_EYE_68 = tuple(range(36, 42))
RIGHT_EYE_68 = tuple(range(42, 48))
OUTER_CORNERS_68 = (36, 45)
W300_NORMALISERS = ("inter_pupil", "inter_ocular")
# 300-W folders -> subset (docs/papers.md 5.9; the folders of data/builders/w300.py SUBSETS,
# copied so that evaluators do not import TFDS).
W300_FOLDERS = {
  "lfpw/testset": "common",
  "helen/testset": "common",
  "ibug": "challenging",
  "lfpw/trainset": "train",
  "helen/trainset": "train",
  "afw": "train",
}


def w300_normalizer(landmarks68, kind: str) -> np.ndarray:
  """[N] 300-W normalizer of true [N, 68, 2] points (docs/papers.md section 5.9).

  inter_pupil: distance between the eye centres (means of the six contour points);
  inter_ocular: distance between the outer eye corners (points 36 and 45).
  """
  pts = np.asarray(landmarks68, np.float64)
  if kind == "inter_pupil":
    a, b = pts[:, LEFT_EYE_68].mean(axis=1), pts[:, RIGHT_EYE_68].mean(axis=1)
  elif kind == "inter_ocular":
    a, b = pts[:, OUTER_CORNERS_68[0]], pts[:, OUTER_CORNERS_68[1]]
  else:
    raise ValueError(f"unknown 300-W normalizer {kind!r}; expected one of {W300_NORMALISERS}")
  return np.linalg.norm(a - b, axis=-1)


def w300_subset(filename: str, default: str = "full") -> str:
  """The 300-W subset of an image path relative to manual_dir ("ibug/x.jpg" ->
  "challenging"; `default` when no 300-W folder matches)."""
  name = str(filename).replace("\\", "/")
  for folder, subset in W300_FOLDERS.items():
    if name.startswith(folder + "/"):
      return subset
  return default


@registry.EVALUATORS.register("w300_landmarks")
class W300LandmarkEvaluator:
  """300-W 68-point NME on the common / challenging / full subsets (docs/papers.md 5.9).

  NME of a face = mean over the 68 points of ||pred - true|| / normalizer, for each of
  the inter-pupil and inter-ocular normalizers (`w300_normalizer`). `full` is the mean
  over all faces of common and challenging (689 faces), unless fed directly.
  """

  inputs = "faces"

  def __init__(self, normalizers: Sequence[str] = W300_NORMALISERS, subset: str = "full"):
    """Args: normalizer names; subset of rows that carry no subset and no 300-W path."""
    for kind in normalizers:
      w300_normalizer(np.zeros((0, 68, 2)), kind)  # validates the name
    self.normalizers = tuple(normalizers)
    self.subset = str(subset)
    self.reset()

  def reset(self):
    """Forgets everything accumulated by `update`."""
    self._errors: Dict[str, Dict[str, list]] = {}
    self._derived: Dict[str, str] = {}

  def update(self, batch: dict, outputs: dict):
    """Adds the rows of one face batch (keys in the module docstring)."""
    ok = valid_rows(batch, "landmarks68")
    pred = require_output(outputs, "landmarks68", "w300_landmarks")[ok]
    true = np.asarray(batch["landmarks68"], np.float64)[ok]
    vis = batch.get("visibility68")
    vis = np.ones(true.shape[:2]) if vis is None else np.asarray(vis, np.float64)[ok]
    if "subset" in batch:
      subsets = np.asarray(batch["subset"]).reshape(-1)[ok]
    elif "image/filename" in batch:
      names = np.asarray(batch["image/filename"]).reshape(-1)[ok]
      subsets = np.array([w300_subset(n, self.subset) for n in names], dtype=object)
    else:
      subsets = np.full(len(true), self.subset, dtype=object)
    for subset in dict.fromkeys(str(s) for s in subsets):
      sel = np.array([str(s) == subset for s in subsets], bool)
      per = self._errors.setdefault(subset, {k: [] for k in self.normalizers})
      for kind in self.normalizers:
        norm = w300_normalizer(true[sel], kind)
        per[kind].append(metrics.nme(pred[sel], true[sel], vis[sel], norm))

  def arrays(self) -> Dict[str, np.ndarray]:
    """Per-face NMEs `landmarks/nme_<normalizer>/<subset>` (full pooled as in result)."""
    errors = {s: {k: np.concatenate(v) for k, v in per.items()} for s, per in self._errors.items()}
    if "full" not in errors and {"common", "challenging"} <= set(errors):
      errors["full"] = {
        k: np.concatenate([errors["common"][k], errors["challenging"][k]]) for k in self.normalizers
      }
    return {f"landmarks/nme_{k}/{s}": e for s, per in errors.items() for k, e in per.items()}

  def result(self) -> Dict[str, float]:
    """Flat floats: NME per normalizer and subset, face counts per subset."""
    out = {}
    for key, e in self.arrays().items():
      kind, subset = key[len("landmarks/nme_") :].split("/", 1)
      if np.isfinite(e).any():
        out[key] = float(np.nanmean(e))
      if kind == self.normalizers[0]:
        out[f"count/faces/{subset}"] = float(np.isfinite(e).sum())
    return out

  def protocol(self) -> Dict[str, str]:
    """Human-readable protocol notes, written under "protocol" in results.json."""
    return {
      "landmarks/nme_inter_pupil": (
        "300-W NME (docs/papers.md 5.9): mean over the 68 points of "
        "the pixel error / distance between the true eye "
        "centres (means of points 36-41 and 42-47)."
      ),
      "landmarks/nme_inter_ocular": (
        "300-W NME: normalizer = distance between the true outer eye corners (points 36 and 45)."
      ),
      "subsets": (
        "common = LFPW test + Helen test (554), challenging = iBUG (135), full = "
        "both pooled per face (689); a face's subset comes from its 300-W folder. Each "
        "face is cropped by the tight box of its 68 true points (data/builders/w300.py). "
        "Units: fraction (x100 = %)."
      ),
    }

  def plots(self, out_dir: str) -> list:
    """ced.png: CED per subset, one panel per normalizer; returns [paths]."""
    arr = self.arrays()
    panels = []
    for kind in self.normalizers:
      prefix = f"landmarks/nme_{kind}/"
      curves = {k[len(prefix) :]: v for k, v in arr.items() if k.startswith(prefix)}
      panels.append((kind.replace("_", "-"), curves))
    path = ced_plot.plot_ced(
      panels, os.path.join(out_dir, "ced.png"), "NME (fraction of the normalizer)", title="300-W"
    )
    return [path] if path else []
