"""The generic region evaluator: every task's declared metric (hyperface_jax/tasks.py).

For each declared task whose `<task>_mask` is in the batch and whose output the model
returns, `Task.metrics(pred, labels, weight)` gives exact (sum, count) pairs per metric;
they are added over batches and reported as `<task>/<metric>` = sum / count with
`count/<task>`. This is what a config gets for a task no specialised evaluator knows
(e.g. a new task added with one declaration); `hyperface_regions` uses it for every task
other than HyperFace's five.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from hyperface_jax import registry, tasks


@registry.EVALUATORS.register("task_metrics")
class TaskMetricsEvaluator:
  """Accumulates the declared metrics of the tasks present in the region batches."""

  inputs = "regions"

  def __init__(self, exclude: Sequence[str] = ()):
    """Args: task names to leave to another evaluator."""
    self.exclude = tuple(exclude)
    self._constants: Dict[str, np.ndarray] = {}
    self.reset()

  def set_baselines(self, task_constants=None, **_hyperface_stats):
    """Sets the trivial constant prediction per task (baselines.task_constants: mean
    shape, majority class, ...); each is then scored with the task's own metrics and
    reported as `baseline/<task>/<metric>`. The other `baseline_stats` keys (HyperFace's
    five tasks) are not needed here."""
    self._constants = {k: np.asarray(v) for k, v in dict(task_constants or {}).items()}

  def reset(self):
    self._sums: Dict[Tuple[str, str], list] = {}
    self._base_sums: Dict[Tuple[str, str], list] = {}
    self._counts: Dict[str, float] = {}

  def _tasks(self, batch, outputs):
    for name in registry.TASKS.names():
      task = tasks.get(name)
      if name not in self.exclude and task.mask_key in batch and name in outputs:
        yield task

  def update(self, batch: dict, outputs: dict):
    """Adds one region batch (padded rows have example_mask 0) and its outputs (numpy)."""
    example = np.asarray(batch["example_mask"], np.float64)
    for task in self._tasks(batch, outputs):
      weight = np.asarray(batch[task.mask_key], np.float64) * example
      self._counts[task.name] = self._counts.get(task.name, 0.0) + float((weight > 0.5).sum())
      labels = {k: np.asarray(batch[k]) for k in task.labels}
      pred = np.asarray(outputs[task.name])
      self._accumulate(self._sums, task, pred, labels, weight)
      if task.name in self._constants:
        const = np.broadcast_to(self._constants[task.name], pred.shape)
        self._accumulate(self._base_sums, task, const, labels, weight)

  @staticmethod
  def _accumulate(sums, task, pred, labels, weight):
    for metric, (total, count) in task.metrics(pred, labels, weight).items():
      acc = sums.setdefault((task.name, metric), [0.0, 0.0])
      acc[0] += float(total)
      acc[1] += float(count)

  def result(self) -> dict:
    out = {f"count/{t}": c for t, c in self._counts.items()}
    for prefix, sums in (("", self._sums), ("baseline/", self._base_sums)):
      for (t, metric), (total, count) in sums.items():
        if count > 0:
          out[f"{prefix}{t}/{metric}"] = total / count
    return out

  def protocol(self) -> dict:
    notes = {}
    for t, metric in self._sums:
      fn = tasks.get(t).metrics
      doc = (fn.__doc__ or "").strip().splitlines()
      notes[f"{t}/{metric}"] = (
        f"{doc[0] if doc else metric}; exact sum / count over regions with {t}_mask 1 "
        "(declared metric of the task, hyperface_jax/tasks.py)."
      )
    return notes
