"""From a config to the data the training loop consumes.

Scenes of each split are held in memory (`scene_store.SceneStore`); training
batches are a pure function of (seed, step, host) so a resumed run sees
exactly the data of an uninterrupted one with no iterator state to
checkpoint (docs/design.md traps); evaluation uses fixed, padded region sets.

One dataset or several: `config.data` names the dataset of a run; a non-empty
`config.data.sources` instead lists several, each a dict with its own `name` and
`weight` (the share of training slots drawn from it) and optional overrides of
`data_dir`, `builder_config`, the split names, `max_train_scenes`/`max_eval_scenes`,
`positive_fraction` and `sampling`. Face-scene datasets (synth_faces, AFLW, ...) and
face-crop datasets (CelebA, MAFL, MTFL, LFWA, 300-W, synth_face_crops) mix freely: a
crop is a scene with one face, and a label a dataset lacks is masked, never invented.
Evaluation concatenates the sources' validation (test) region sets.

Heterogeneous labels (docs/papers.md section 3.3): a source may also set `keep_labels`
(per-face fields it keeps: every other field but `box` is marked invalid) or `drop_labels`
(fields marked invalid) in its training split, so that e.g. three sources over one dataset
train as three datasets that each annotate a different subset (configs/
social_attributes.py); evaluation sees every label of its splits. `config.data.kind = "pairs"` selects the face-pair input of the
relation network instead (data/pairs.py).
"""

from __future__ import annotations

from typing import Dict

import jax
import numpy as np

from hyperface_jax import registry, tasks
from hyperface_jax.data import pipeline
from hyperface_jax.data.scene_store import SceneStore
from hyperface_jax.data.sources import (  # noqa: F401  (re-exported: inputs.sources, ...)
  SOURCE_KEYS,
  Data,
  builder_kwargs,
  ensure_prepared,
  sources,
)


def model_keys(config) -> tuple:
  """The batch keys that go to the devices: image, example_mask and the labels and
  masks of `config.tasks` (hyperface_jax/tasks.py)."""
  return tasks.batch_keys(tasks.resolve(config.tasks))


def _store(src, split: str, max_examples, fields) -> SceneStore:
  store = SceneStore.from_tfds(
    src["name"],
    split,
    src["data_dir"],
    max_examples=max_examples,
    fields=fields,
    **builder_kwargs(src),
  )
  if split == src["train_split"]:  # evaluation keeps every label of its split
    filter_labels(store, src.get("keep_labels"), src.get("drop_labels"), src["name"])
  return store


def filter_labels(store: SceneStore, keep=None, drop=None, where: str = "") -> SceneStore:
  """Marks per-face fields invalid in place: all but `keep` (and `box`), or those in
  `drop`. Tasks gated on them are then masked (hyperface_jax/tasks.py), never zero-labelled.

  Args:
    store: the loaded split.
    keep: field names to keep, or None.
    drop: field names to mark invalid, or None (not both).
    where: the source name, for error messages.

  Returns:
    `store`.
  """
  if keep is None and drop is None:
    return store
  known = set(store.fields) | set(tasks.face_fields(tasks.resolve(registry.TASKS.names())))
  named = list(keep if keep is not None else ()) + list(drop if drop is not None else ())
  bad = sorted(set(named) - known)
  if (keep is not None and drop is not None) or bad or "box" in (drop or ()):
    raise ValueError(
      f"config.data.sources ({where}): keep_labels={keep} drop_labels={drop}: set one of "
      f"the two, naming per-face fields other than 'box' "
      + (f"(unknown: {bad}; known: {sorted(known)})." if bad else "(box is never dropped).")
    )
  gone = [
    f for f in store.fields if f != "box" and (f not in keep if keep is not None else f in drop)
  ]
  for f in gone:
    store.faces["valid"][f][:] = False
  return store


def load(config) -> Data:
  """Loads the train/validation/test stores of every source of `config.data`."""
  dc = config.data
  if dc.get("kind", "regions") == "pairs":  # face pairs of the relation network
    from hyperface_jax.data import pairs  # pylint: disable=g-import-not-at-top

    return pairs.load(config)
  task_list = tasks.resolve(config.tasks)
  fields = tasks.face_fields(task_list)
  keys = tasks.batch_keys(task_list)
  srcs = sources(dc)
  train, validation, test = [], [], []
  for src in srcs:
    ensure_prepared(src)
    sampling_cfg = dict(dc.sampling.to_dict())
    sampling_cfg.update(src.get("sampling") or {})
    train.append(
      pipeline.Source(
        store=_store(src, src["train_split"], src.get("max_train_scenes"), fields),
        weight=float(src["weight"]),
        positive_fraction=float(src["positive_fraction"]),
        sampling_config=sampling_cfg,
        name=src["name"],
      )
    )
    validation.append(_store(src, src["eval_split"], src.get("max_eval_scenes"), fields))
    test.append(_store(src, src["test_split"], src.get("max_eval_scenes"), fields))
  thresholds = dc.thresholds.to_dict()
  task_names = tuple(config.tasks)
  # Read once here: prefetch workers are forked processes that must not call JAX.
  process_index, process_count = jax.process_index(), jax.process_count()

  def train_batch(step: int, local_rows: int) -> Dict[str, np.ndarray]:
    batch = pipeline.train_batch(
      train,
      seed=config.seed,
      step=step,
      batch_size=config.batch_size,
      image_size=config.input_size,
      regions_per_scene=dc.regions_per_scene,
      flip_prob=dc.flip_prob,
      normalize=dc.normalize,
      thresholds=thresholds,
      process_index=process_index,
      process_count=process_count,
      task_names=task_names,
    )
    assert batch["image"].shape[0] == local_rows, (batch["image"].shape, local_rows)
    return {k: batch[k] for k in keys}

  return Data(
    train_batch=train_batch,
    train=train,
    validation=validation,
    test=test,
    names=[s["name"] for s in srcs],
  )
