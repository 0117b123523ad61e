"""Metrics to `metrics.jsonl` (one JSON object per logged step) and TensorBoard.

Only the primary process (`jax.process_index() == 0`) writes: in a multi-process run the
metrics are global (all-reduced in the step), and several writers would interleave lines.
Paths go through `etils.epath` (a workdir may be a cloud URL).
"""

from __future__ import annotations

import json
import math
from typing import Mapping, Optional

import numpy as np
from absl import logging
from etils import epath

from hyperface_jax import atomic_io


def _to_python(v):
  v = np.asarray(v)
  return v.item() if v.size == 1 else v.tolist()


def _is_local(path: epath.Path) -> bool:
  return "://" not in str(path)


class MetricWriter:
  """Appends metrics; on resume, drops lines past the restored step first.

  Dropping the lines a killed run logged after its last checkpoint keeps
  `metrics.jsonl` identical to that of an uninterrupted run.
  """

  def __init__(
    self,
    workdir,
    *,
    resume_step: int = 0,
    tensorboard: bool = True,
    primary: Optional[bool] = None,
  ):
    """
    Args:
      workdir: the run's folder (local path or URL).
      resume_step: lines of later steps are dropped (a resumed run).
      tensorboard: also write TensorBoard events under `workdir/tensorboard`.
      primary: whether this process writes; None: `jax.process_index() == 0`.
    """
    if primary is None:
      import jax  # pylint: disable=g-import-not-at-top

      primary = jax.process_index() == 0
    self.primary = bool(primary)
    self.path = epath.Path(workdir) / "metrics.jsonl"
    self._tb = None
    if not self.primary:
      return
    self._truncate_after(resume_step)
    if tensorboard:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top

      self._tf = tf
      self._tb = tf.summary.create_file_writer(str(epath.Path(workdir) / "tensorboard"))

  def _truncate_after(self, step: int) -> None:
    if not self.path.exists():
      return
    kept = []
    for number, line in enumerate(self.path.read_text().splitlines(keepends=True), 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError:  # a line cut by a killed run
        logging.warning("%s:%d is not JSON (cut by a crash?); dropped.", self.path, number)
        continue
      if record["step"] <= step:
        kept.append(line if line.endswith("\n") else line + "\n")
    atomic_io.write_text_atomic(self.path, "".join(kept))

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    if not self.primary:
      return
    record = {"step": int(step)}
    record.update({k: _to_python(v) for k, v in metrics.items()})
    line = json.dumps(record, allow_nan=True) + "\n"
    if _is_local(self.path):
      with self.path.open("a") as f:
        f.write(line)
    else:  # object stores cannot append: the object is rewritten whole (small)
      old = self.path.read_text() if self.path.exists() else ""
      self.path.write_text(old + line)
    if self._tb is not None:
      with self._tb.as_default():
        for k, v in record.items():
          if k != "step" and isinstance(v, float) and math.isfinite(v):
            self._tf.summary.scalar(k, v, step=step)
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir):
  """Reads `metrics.jsonl` back as a list of dicts."""
  text = (epath.Path(workdir) / "metrics.jsonl").read_text()
  return [json.loads(line) for line in text.splitlines() if line.strip()]
