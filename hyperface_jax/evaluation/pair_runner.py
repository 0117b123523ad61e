"""Feeds face pairs to the eval step and to "pairs" evaluators (evaluation/contract.py).

  validator = PairEvaluation(mesh, eval_step, data.validation, config)
  validator.losses(state)                       # exact mean relation loss, every pair once
  evaluate(evaluator, config, mesh, eval_step, state, data)   # final test evaluation

Every labelled pair of the split(s) is one row (data/pairs.py eval_arrays: unflipped,
unjittered crops), in fixed padded batches (`example_mask` 0 on padding rows). A pairs
evaluator with `set_baselines` first receives the training pairs' cues and traits, from
which it fits its trivial baselines.
"""

from __future__ import annotations

from typing import Dict

import jax
import numpy as np

from hyperface_jax import sharding
from hyperface_jax.data import pairs, pipeline


def _gather(tree):
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
  return sharding.to_host(tree)


class PairEvaluation:
  """Every pair of `sets` (a list of data/pairs.PairSet) through `eval_step`."""

  def __init__(self, mesh, eval_step, sets, config):
    self.mesh, self.eval_step = mesh, eval_step
    self.batch_size = config.eval_batch_size
    self.normalize = config.data.normalize
    self.rows = pairs.eval_arrays(list(sets), config.input_size)

  def run(self, state):
    """Yields (host batch, host outputs, losses, counts) per padded batch."""
    local = self.batch_size // jax.process_count()
    lo = jax.process_index() * local
    for batch in pipeline.iterate_batches(self.rows, self.batch_size):
      mine = {k: v[lo : lo + local] for k, v in batch.items()}
      device = pairs.device_batch(mine, self.normalize)
      outputs, losses, counts = self.eval_step(state, sharding.global_batch(self.mesh, device))
      yield batch, _gather(outputs), sharding.to_host(losses), sharding.to_host(counts)

  def losses(self, state) -> Dict[str, float]:
    """Exact per-task mean losses over all pairs."""
    totals: Dict[str, float] = {}
    counts: Dict[str, float] = {}
    for _, _, batch_losses, batch_counts in self.run(state):
      for t, v in batch_losses.items():
        totals[t] = totals.get(t, 0.0) + float(v) * float(batch_counts[t])
        counts[t] = counts.get(t, 0.0) + float(batch_counts[t])
    return {t: totals[t] / max(counts[t], 1.0) for t in totals}


def training_stats(sets) -> Dict[str, np.ndarray]:
  """`set_baselines` arguments: every training pair's cues [P, 9] and traits [P, 8]."""
  cues, traits = [], []
  for s in sets:
    scene, a, b = s.pairs.T
    box_a = np.stack([s.boxes[i][j] for i, j in zip(scene, a, strict=True)])
    box_b = np.stack([s.boxes[i][j] for i, j in zip(scene, b, strict=True)])
    hw = np.array([s.images[i].shape[:2] for i in scene], np.float64)
    cues.append(pairs.spatial_cues(box_a, box_b, hw[:, 1], hw[:, 0]))
    traits.append(s.traits)
  return {"train_cues": np.concatenate(cues), "train_traits": np.concatenate(traits)}


def evaluate(evaluator, config, mesh, eval_step, state, data) -> Dict[str, float]:
  """Runs `evaluator` on the test pairs (with baselines from the training pairs).

  Returns:
    The evaluator's flat results plus `test/loss/<task>`.
  """
  if hasattr(evaluator, "set_baselines"):
    evaluator.set_baselines(**training_stats(data.train))
  test = PairEvaluation(mesh, eval_step, data.test, config)
  evaluator.reset()
  totals: Dict[str, float] = {}
  counts: Dict[str, float] = {}
  for batch, outputs, batch_losses, batch_counts in test.run(state):
    evaluator.update(batch, outputs)
    for t, v in batch_losses.items():
      totals[t] = totals.get(t, 0.0) + float(v) * float(batch_counts[t])
      counts[t] = counts.get(t, 0.0) + float(batch_counts[t])
  results = {k: float(v) for k, v in evaluator.result().items()}
  results.update({f"test/loss/{t}": totals[t] / max(counts[t], 1.0) for t in totals})
  return results
