"""Cumulative error distribution (CED) plots of the face-level protocols.

The landmark papers report, beside the mean error, the fraction of faces whose normalized
error is at most t as a function of t (docs/papers.md sections 1.12 for AFLW/AFW, 2.1 for
the 5-point sets, 5.9 for 300-W). `plot_ced` draws one panel per grouping (e.g. "all faces"
and "by |yaw|"), one curve per group, with the failure threshold marked.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from hyperface_jax.evaluation import metrics

Panel = Tuple[str, Dict[str, np.ndarray]]  # (title, {curve label: [N] errors})


def plot_ced(
  panels: Sequence[Panel],
  path: str,
  xlabel: str,
  limit: float = 0.1,
  title: str = "",
) -> Optional[str]:
  """Draws CED curves; returns `path`, or None when no curve has a finite error.

  Args:
    panels: [(panel title, {curve label: [N] per-face errors (NaN = not scored)})].
    path: output PNG path (written atomically: temporary name, then rename).
    xlabel: x-axis text (the normalizer, e.g. "NME (fraction of face size)").
    limit: the failure threshold, drawn as a dotted line; the x range covers at least
      [0, 2 * limit] and 1.1 x the 95th percentile of the errors.
    title: optional figure title (dataset and protocol).

  Returns:
    The written path or None.
  """
  import matplotlib

  matplotlib.use("Agg")  # headless
  import matplotlib.pyplot as plt

  panels = [
    (t, {k: np.asarray(v, np.float64).reshape(-1) for k, v in curves.items()})
    for t, curves in panels
  ]
  panels = [(t, {k: v for k, v in curves.items() if np.isfinite(v).any()}) for t, curves in panels]
  panels = [(t, c) for t, c in panels if c]
  if not panels:
    return None
  finite = np.concatenate([v[np.isfinite(v)] for _, c in panels for v in c.values()])
  x_max = max(2 * limit, 1.1 * float(np.quantile(finite, 0.95)))
  grid = np.linspace(0.0, x_max, 200)
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
  for ax, (panel_title, curves) in zip(axes[0], panels, strict=True):
    for i, (label, errors) in enumerate(curves.items()):
      n = int(np.isfinite(errors).sum())
      ax.plot(grid, metrics.ced_curve(errors, grid), f"C{i % 10}-", label=f"{label} (n={n})")
    ax.axvline(limit, color="grey", lw=0.8, ls=":")
    ax.set_title(panel_title)
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, x_max)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
  axes[0][0].set_ylabel("fraction of faces with error <= x")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, path)
  return path


def plot_bars(values: Dict[str, float], path: str, xlabel: str, title: str = "") -> Optional[str]:
  """Horizontal bar chart of named values in [0, 1] (e.g. per-attribute accuracies).

  Args:
    values: {name: value}; drawn in the given order, top to bottom.
    path: output PNG path (atomic write).
    xlabel: x-axis text.
    title: optional title.

  Returns:
    The written path, or None when `values` is empty.
  """
  if not values:
    return None
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = list(values)
  fig, ax = plt.subplots(figsize=(7, 0.22 * len(names) + 1.2))
  ax.barh(np.arange(len(names)), [values[k] for k in names], color="C0")
  ax.set_yticks(np.arange(len(names)), names, fontsize=7)
  ax.invert_yaxis()
  ax.set_xlim(0, 1)
  ax.set_xlabel(xlabel)
  ax.grid(alpha=0.3, axis="x")
  if title:
    ax.set_title(title)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, path)
  return path
