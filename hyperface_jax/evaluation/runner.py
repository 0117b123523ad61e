"""Drives evaluation from the training loop: validation losses and the final
evaluation with its results.json and report."""

from __future__ import annotations

import os
from typing import Dict, Tuple

import jax
import numpy as np
from jax.experimental import multihost_utils

from hyperface_jax import registry, sharding
from hyperface_jax.data import inputs, pipeline, preprocess
from hyperface_jax.evaluation import (  # noqa: F401  (register the other evaluators)
  detection_regions,
  full_image,
  protocols_attributes,
  protocols_detection,
  protocols_faces5,
  protocols_landmarks,
)
from hyperface_jax.evaluation import evaluators as _evaluators  # noqa: F401 (registers)


def _gather(tree):
  if jax.process_count() > 1:
    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
  return sharding.to_host(tree)


class Evaluation:
  """A fixed, padded set of labelled regions of one split, run through `eval_step`."""

  def __init__(self, mesh, eval_step, store, config, *, seed_offset: int = 1):
    dc = config.data
    self.mesh, self.eval_step = mesh, eval_step
    self.batch_size = config.eval_batch_size
    self.regions = pipeline.eval_regions(
      store,
      seed=config.seed + seed_offset,
      regions_per_scene=dc.eval_regions_per_scene,
      image_size=config.input_size,
      thresholds=dc.thresholds.to_dict(),
      normalize=None,
      sampling_config=dc.sampling.to_dict(),  # uint8 kept; normalized per batch
      positive_fraction=dc.positive_fraction,
    )
    self.normalize = dc.normalize
    self.flip_test = bool(config.get("flip_test", False))

  def run(self, state):
    """Yields (host batch, host outputs, losses, counts) per padded batch.

    With `config.flip_test` every crop is also run mirrored and the outputs of the
    mirrored pass, mapped back with `preprocess.flip_labels` (landmark/visibility
    permutation, x, roll and yaw negated), are averaged with the plain ones. This is
    horizontal-flip test-time augmentation, a documented default-off option (the
    HyperFace papers do not use it); losses always come from the plain pass.
    """
    local = self.batch_size // jax.process_count()
    lo = jax.process_index() * local
    for batch in pipeline.iterate_batches(self.regions, self.batch_size, normalize=self.normalize):
      device_batch = {k: batch[k][lo : lo + local] for k in inputs.MODEL_KEYS}
      outputs, losses, counts = self.eval_step(
        state, sharding.global_batch(self.mesh, device_batch)
      )
      outputs = _gather(outputs)
      if self.flip_test:
        mirrored = dict(device_batch, image=np.ascontiguousarray(device_batch["image"][:, :, ::-1]))
        flipped, _, _ = self.eval_step(state, sharding.global_batch(self.mesh, mirrored))
        unflipped = preprocess.flip_labels(_gather(flipped))
        outputs = {k: 0.5 * (outputs[k] + unflipped[k]) for k in outputs}
      yield batch, outputs, sharding.to_host(losses), sharding.to_host(counts)

  def losses(self, state) -> Dict[str, float]:
    """Exact per-task mean losses over the whole (unpadded) region set."""
    totals: Dict[str, float] = {}
    counts: Dict[str, float] = {}
    for _, _, batch_losses, batch_counts in self.run(state):
      for t, v in batch_losses.items():
        totals[t] = totals.get(t, 0.0) + float(v) * float(batch_counts[t])
        counts[t] = counts.get(t, 0.0) + float(batch_counts[t])
    return {t: totals[t] / max(counts[t], 1.0) for t in totals}


def evaluate(config, mesh, eval_step, state, data) -> Tuple[Dict, object, Evaluation]:
  """Runs the configured evaluator over the test regions, with baselines."""
  ev_config = dict(config.evaluator)
  evaluator = registry.EVALUATORS.get(ev_config.pop("name"))(**ev_config)
  train_regions = pipeline.eval_regions(
    data.train,
    seed=config.seed + 2,
    regions_per_scene=config.data.eval_regions_per_scene,
    image_size=None,
    thresholds=config.data.thresholds.to_dict(),  # labels only
    normalize=None,
    sampling_config=config.data.sampling.to_dict(),
    positive_fraction=config.data.positive_fraction,
  )
  evaluator.set_baselines(**_evaluators.baseline_stats(train_regions))
  test = Evaluation(mesh, eval_step, data.test, config, seed_offset=3)
  evaluator.reset()
  losses, counts = {}, {}
  for batch, outputs, batch_losses, batch_counts in test.run(state):
    evaluator.update(batch, outputs)
    for t, v in batch_losses.items():
      losses[t] = losses.get(t, 0.0) + float(v) * float(batch_counts[t])
      counts[t] = counts.get(t, 0.0) + float(batch_counts[t])
  results = {k: float(v) for k, v in evaluator.result().items()}
  results.update({f"test/loss/{t}": losses[t] / max(counts[t], 1.0) for t in losses})
  return results, evaluator, test


def final_evaluation(config, workdir, mesh, eval_step, state, data) -> Dict[str, float]:
  """Evaluates on the test split, writes results.json and report/, prints a table."""
  from hyperface_jax import train  # pylint: disable=g-import-not-at-top
  from hyperface_jax.evaluation import report  # pylint: disable=g-import-not-at-top

  results, evaluator, test = evaluate(config, mesh, eval_step, state, data)
  payload = dict(results)
  payload.update({f"protocol/{k}": v for k, v in evaluator.protocol().items()})
  payload["step"] = int(state.step)
  if jax.process_index() == 0:
    train.write_json_atomic(os.path.join(workdir, "results.json"), payload)
    # An evaluator keeping no examples (detection_regions: no landmark outputs) gets no crops.
    crops = test.regions if getattr(evaluator, "keep_examples", 1) else None
    report.write_report(
      workdir, results, evaluator.arrays(), crops, num_crops=config.report.num_crops
    )
    print(format_table(results), flush=True)
  return results


def format_table(results: Dict[str, float]) -> str:
  """A markdown table: metric | model | trivial baseline."""
  rows = ["| metric | model | baseline |", "|---|---|---|"]
  for k in sorted(results):
    if k.startswith(("baseline/", "count/", "test/")):
      continue
    base = results.get(f"baseline/{k}")
    base_s = f"{base:.4f}" if base is not None else ""
    rows.append(f"| {k} | {results[k]:.4f} | {base_s} |")
  return "\n".join(rows)
