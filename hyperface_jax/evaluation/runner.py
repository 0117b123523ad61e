"""Drives evaluation from the training loop: validation losses and the final
evaluation with its results.json and report."""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

import jax
import numpy as np
from jax.experimental import multihost_utils

from hyperface_jax import atomic_io, registry, sharding
from hyperface_jax.data import inputs, pipeline, preprocess
from hyperface_jax.evaluation import baselines, contract


def _gather(tree):
  if jax.process_count() > 1:
    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
  return sharding.to_host(tree)


class Evaluation:
  """A fixed, padded set of labelled regions of one or several stores, run through
  `eval_step` (the stores' region sets are concatenated)."""

  def __init__(self, mesh, eval_step, stores, config, *, seed_offset: int = 1):
    dc = config.data
    self.mesh, self.eval_step = mesh, eval_step
    self.batch_size = config.eval_batch_size
    self.keys = inputs.model_keys(config)
    stores = [stores] if isinstance(stores, pipeline.SceneStore) else list(stores)
    parts = [
      pipeline.eval_regions(
        store,
        seed=config.seed + seed_offset,
        regions_per_scene=dc.eval_regions_per_scene,
        image_size=config.input_size,
        thresholds=dc.thresholds.to_dict(),
        normalize=None,  # uint8 kept; normalized per batch
        sampling_config=dc.sampling.to_dict(),
        positive_fraction=dc.positive_fraction,
        task_names=tuple(config.tasks),
      )
      for store in stores
    ]
    self.regions = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    self.normalize = dc.normalize
    self.flip_test = bool(config.get("flip_test", False))

  def run(self, state):
    """Yields (host batch, host outputs, losses, counts) per padded batch.

    With `config.flip_test` every crop is also run mirrored and the outputs of the
    mirrored pass, mapped back with `preprocess.flip_labels` (each task's flip rule,
    hyperface_jax/tasks.py), are averaged with the plain ones. This is horizontal-flip
    test-time augmentation, a documented default-off option (the HyperFace papers do not
    use it); losses always come from the plain pass.
    """
    local = self.batch_size // jax.process_count()
    lo = jax.process_index() * local
    for batch in pipeline.iterate_batches(self.regions, self.batch_size, normalize=self.normalize):
      device_batch = {k: batch[k][lo : lo + local] for k in self.keys}
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


def validation(mesh, eval_step, data, config):
  """The validation-loss runner of the run's input kind: fixed region sets, or every
  labelled face pair (`config.data.kind == "pairs"`, evaluation/pair_runner.py)."""
  if config.data.get("kind", "regions") == "pairs":
    from hyperface_jax.evaluation import pair_runner  # pylint: disable=g-import-not-at-top

    return pair_runner.PairEvaluation(mesh, eval_step, data.validation, config)
  return Evaluation(mesh, eval_step, data.validation, config)


def make_evaluator(evaluator_config):
  """The evaluator named by `evaluator_config["name"]`, built from the other keys and
  checked against the contract (evaluation/contract.py)."""
  kwargs = dict(evaluator_config)
  name = kwargs.pop("name")
  cls = registry.EVALUATORS.get(name)
  contract.check(cls, name)
  return cls(**kwargs)


def consume(evaluator, pairs) -> Tuple[Dict[str, float], Dict[str, str]]:
  """The one evaluation loop: reset, update with every (batch, outputs), result."""
  evaluator.reset()
  for batch, outputs in pairs:
    evaluator.update(batch, outputs)
  return {k: float(v) for k, v in evaluator.result().items()}, dict(evaluator.protocol())


def evaluate(config, mesh, eval_step, state, data) -> Tuple[Dict, object, Optional[Evaluation]]:
  """Runs the configured evaluator on the test split(s), with baselines.

  Region evaluators see the test region sets; "faces" and "images" evaluators see the
  test scenes' faces cropped by their boxes (evaluation/face_runner.py) or the whole
  images through the test-time pipeline (evaluation/image_runner.py).
  """
  evaluator = make_evaluator(config.evaluator)
  if evaluator.inputs == "pairs":  # face pairs of the relation network
    from hyperface_jax.evaluation import pair_runner  # pylint: disable=g-import-not-at-top

    return pair_runner.evaluate(evaluator, config, mesh, eval_step, state, data), evaluator, None
  if evaluator.inputs != "regions":
    pairs = _scene_pairs(evaluator.inputs, config, state, data.test)
    results, _ = consume(evaluator, pairs)
    return results, evaluator, None
  if hasattr(evaluator, "set_baselines"):
    train_regions = [
      pipeline.eval_regions(
        src.store,
        seed=config.seed + 2,
        regions_per_scene=config.data.eval_regions_per_scene,
        image_size=None,  # labels only
        thresholds=config.data.thresholds.to_dict(),
        normalize=None,
        sampling_config=config.data.sampling.to_dict(),
        positive_fraction=config.data.positive_fraction,
        task_names=tuple(config.tasks),
      )
      for src in data.train
    ]
    evaluator.set_baselines(**baselines.baseline_stats(train_regions))
  test = Evaluation(mesh, eval_step, data.test, config, seed_offset=3)
  losses, counts = {}, {}

  def pairs():
    for batch, outputs, batch_losses, batch_counts in test.run(state):
      for t, v in batch_losses.items():
        losses[t] = losses.get(t, 0.0) + float(v) * float(batch_counts[t])
        counts[t] = counts.get(t, 0.0) + float(batch_counts[t])
      yield batch, outputs

  results, _ = consume(evaluator, pairs())
  results.update({f"test/loss/{t}": losses[t] / max(counts[t], 1.0) for t in losses})
  return results, evaluator, test


def _scene_pairs(kind, config, state, stores):
  """(batch, outputs) pairs of the "faces" or "images" kind for the in-memory model."""
  from hyperface_jax.inference import batched  # pylint: disable=g-import-not-at-top

  model = batched.inference_model(config)
  variables = {"params": state.params, **state.model_state}
  if kind == "faces":
    from hyperface_jax.evaluation import face_runner  # pylint: disable=g-import-not-at-top

    apply = jax.jit(lambda x: model.apply(variables, x, train=False))
    for store in stores:
      yield from face_runner.face_pairs(
        apply,
        store,
        input_size=config.input_size,
        normalize=config.data.normalize,
        batch_size=config.eval_batch_size,
        task_names=tuple(config.tasks),
      )
    return
  from hyperface_jax.evaluation import image_runner  # pylint: disable=g-import-not-at-top
  from hyperface_jax.inference import analyzer  # pylint: disable=g-import-not-at-top

  network = batched.BatchedNetwork(
    model, variables, input_size=config.input_size, normalize=config.data.normalize
  )
  face_analyzer = analyzer.FaceAnalyzer(network)
  for store in stores:
    yield from image_runner.image_pairs(face_analyzer, store)


def final_evaluation(config, workdir, mesh, eval_step, state, data) -> Dict[str, float]:
  """Evaluates on the test split, writes results.json and report/, prints a table."""
  from hyperface_jax.evaluation import report  # pylint: disable=g-import-not-at-top

  results, evaluator, test = evaluate(config, mesh, eval_step, state, data)
  payload = dict(results)
  payload.update({f"protocol/{k}": v for k, v in evaluator.protocol().items()})
  payload["step"] = int(state.step)
  # Task-wise early stopping (weighting/tcdcn.py): the step each task stopped, -1 = never.
  for t, v in dict(getattr(state.weighting, "stopped_step", {}) or {}).items():
    payload[f"stopped_step/{t}"] = int(np.asarray(jax.device_get(v)))
  if jax.process_index() == 0:
    atomic_io.write_json_atomic(os.path.join(workdir, "results.json"), payload)
    arrays = evaluator.arrays() if hasattr(evaluator, "arrays") else {}
    # crops.png draws landmarks: a run without them (detection_regions keeps no examples;
    # R-CNN_Face, a declared task of its own) gets no crops.
    drawable = "landmarks" in config.tasks and getattr(evaluator, "keep_examples", 1)
    crops = test.regions if test is not None and drawable else None
    if not drawable:
      arrays = {k: v for k, v in arrays.items() if not k.startswith("examples/")}
    report.write_report(workdir, results, arrays, crops, num_crops=config.report.num_crops)
    if hasattr(evaluator, "write_report"):  # the evaluator's own tables (e.g. confusion)
      evaluator.write_report(os.path.join(workdir, "report"))
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
