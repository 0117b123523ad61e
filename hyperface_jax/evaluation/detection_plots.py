"""Plots of the detection protocols: precision-recall curves (AFW, PASCAL faces,
full-image AP) and the FDDB discrete ROC (docs/papers.md section 1.12).

Each function writes one PNG atomically (temporary name, then `os.replace`) with the
headless Agg backend and returns its path.
"""

from __future__ import annotations

import os
from typing import Dict, Tuple

import numpy as np


def precision_recall(scores, is_tp, num_gt: int) -> Tuple[np.ndarray, np.ndarray]:
  """(recall [K], precision [K]) of pooled detections ranked by descending score.

  Args:
    scores: [K] detection scores (ignored detections removed).
    is_tp: [K] bool true positives.
    num_gt: number of counted ground-truth faces.

  Returns:
    recall and precision after each of the K ranked detections (empty when K = 0).
  """
  scores = np.asarray(scores, np.float64).reshape(-1)
  is_tp = np.asarray(is_tp, bool).reshape(-1)
  order = np.argsort(-scores, kind="stable")
  tp = np.cumsum(is_tp[order])
  precision = tp / np.arange(1, len(order) + 1)
  return tp / max(num_gt, 1), precision


def _save(fig, path: str) -> str:
  import matplotlib.pyplot as plt

  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, path)
  return path


def _figure():
  import matplotlib

  matplotlib.use("Agg")  # headless: no display on CI machines
  import matplotlib.pyplot as plt

  return plt.subplots(figsize=(5.5, 5))


def pr_curve_png(path: str, curves: Dict[str, Tuple[np.ndarray, np.ndarray]], title="") -> str:
  """Precision against recall, one line per {label: (recall, precision)}.

  The legend gives each curve's all-point interpolated AP (x100, as the papers print it).

  Args:
    path: output PNG.
    curves: {label: (recall [K], precision [K])}.
    title: optional axes title.

  Returns:
    `path`.
  """
  fig, ax = _figure()
  for label, (rec, prec) in curves.items():
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.maximum.accumulate(np.concatenate([[0.0], prec, [0.0]])[::-1])[::-1]
    change = np.nonzero(mrec[1:] != mrec[:-1])[0]
    ap = float(np.sum((mrec[change + 1] - mrec[change]) * mpre[change + 1]))
    ax.plot(rec, prec, lw=2, label=f"{label} {100 * ap:.2f}")
  ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall", ylabel="precision", title=title)
  ax.grid(alpha=0.3)
  if curves:
    ax.legend(loc="lower left")
  fig.tight_layout()
  return _save(fig, path)


def roc_png(path: str, false_positives, tpr, max_fp: int = 2000, title="") -> str:
  """FDDB discrete ROC: true-positive rate against the number of false positives.

  Args:
    path: output PNG.
    false_positives: [T] cumulative false positives per threshold (ascending).
    tpr: [T] true-positive rates.
    max_fp: right end of the x axis (FDDB plots stop at 2000), or the data's largest
      false-positive count when that is smaller.
    title: optional axes title.

  Returns:
    `path`.
  """
  fig, ax = _figure()
  fp = np.asarray(false_positives, np.float64)
  tp = np.asarray(tpr, np.float64)
  ax.step(np.concatenate([[0.0], fp]), np.concatenate([[0.0], tp]), where="post", lw=2)
  right = min(max_fp, max(1.0, 1.05 * float(fp.max()))) if fp.size else max_fp
  ax.set(xlim=(0, right), ylim=(0, 1.01), xlabel="false positives", ylabel="true positive rate")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  return _save(fig, path)
