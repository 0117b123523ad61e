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

import dataclasses
from typing import Callable, Dict, List, Sequence

import jax
import numpy as np
from absl import logging

from hyperface_jax import registry, tasks
from hyperface_jax.data import pipeline
from hyperface_jax.data.scene_store import SceneStore

# Keys a source dict of config.data.sources may set (the rest come from config.data).
SOURCE_KEYS = (
  "name",
  "weight",
  "data_dir",
  "builder_config",
  "prepare_if_missing",
  "train_split",
  "eval_split",
  "test_split",
  "max_train_scenes",
  "max_eval_scenes",
  "positive_fraction",
  "sampling",
  "keep_labels",
  "drop_labels",
)


@dataclasses.dataclass
class Data:
  train_batch: Callable[[int, int], Dict[str, np.ndarray]]  # (step, local rows)
  train: List[pipeline.Source]
  validation: List[SceneStore]
  test: List[SceneStore]
  names: Sequence[str]


def model_keys(config) -> tuple:
  """The batch keys that go to the devices: image, example_mask and the labels and
  masks of `config.tasks` (hyperface_jax/tasks.py)."""
  return tasks.batch_keys(tasks.resolve(config.tasks))


def builder_kwargs(data_config) -> dict:
  """`tfds.builder` keyword arguments for a data config (`config.data` or a source).

  `builder_config` (a dict) is turned into the dataset's own config object
  through its config class's `make(**values)` (e.g. synth_faces sizes and seed);
  empty means the builder's default config.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  from hyperface_jax.data import builders  # noqa: F401  (registers the TFDS builders)

  values = dict(data_config.get("builder_config", {}) or {})
  if not values:
    return {}
  cls = tfds.builder_cls(data_config["name"])
  config_cls = type(cls.BUILDER_CONFIGS[0])
  if not hasattr(config_cls, "make"):
    raise ValueError(f"Dataset {data_config['name']!r} takes no builder_config (got {values}).")
  return {"config": config_cls.make(**values)}


def ensure_prepared(data_config) -> None:
  """Builds a locally generated dataset (e.g. synth_faces) if it is missing.

  Datasets made from original files (AFLW, CelebA, ...) are never built
  implicitly: their absence is an error that names the prepare command.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  name, data_dir = data_config["name"], data_config["data_dir"]
  builder = tfds.builder(name, data_dir=data_dir, **builder_kwargs(data_config))
  if builder.is_prepared():
    return
  if not data_config.get("prepare_if_missing", False):
    raise FileNotFoundError(
      f"Dataset {name!r} is not prepared in {data_dir}. Run: "
      f"python -m hyperface_jax.data.prepare {name} "
      f"--data_dir={data_dir} --manual_dir=<folder with the original files>"
    )
  import jax  # pylint: disable=g-import-not-at-top

  if jax.process_count() == 1:
    logging.info("Preparing %s in %s ...", name, data_dir)
    builder.download_and_prepare()
    return
  _prepare_on_process_zero(builder, data_config)


def _prepare_on_process_zero(builder, data_config) -> None:
  """Multi-process runs: process 0 builds the dataset while the others wait for it.

  Every process then learns from process 0 whether the build succeeded (a broadcast,
  which is also the barrier). `data_dir` must be a folder every process sees (a shared
  filesystem or a URL); for datasets that take long to build, run the `prepare` command
  once before the run instead (a collective waits only so long).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  name, data_dir = data_config["name"], data_config["data_dir"]
  command = f"python -m hyperface_jax.data.prepare {name} --data_dir={data_dir}"
  error = None
  if jax.process_index() == 0:
    logging.info("Preparing %s in %s (the other processes wait) ...", name, data_dir)
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      error = e
  else:
    logging.info("Waiting for process 0 to prepare %s in %s ...", name, data_dir)
  built = int(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
  if error is not None:
    raise error
  if not built:
    raise RuntimeError(
      f"Process 0 failed to prepare dataset {name!r} in {data_dir} (its log says why). "
      f"Prepare it before the run: {command}"
    )
  if not tfds.builder(name, data_dir=data_dir, **builder_kwargs(data_config)).is_prepared():
    raise FileNotFoundError(
      f"Process 0 prepared dataset {name!r} in {data_dir}, but process "
      f"{jax.process_index()} does not see it there: config.data.data_dir must be a folder "
      f"every host shares (or a gs:// URL), or prepare it on every host first: {command}"
    )


def sources(data_config) -> List[dict]:
  """The data sources of a run: `data.sources` resolved over `data`, or `data` itself."""
  base = data_config.to_dict() if hasattr(data_config, "to_dict") else dict(data_config)
  listed = list(base.get("sources") or ())
  if not listed:
    return [dict(base, weight=1.0)]
  out = []
  for i, src in enumerate(listed):
    src = dict(src)
    unknown = sorted(set(src) - set(SOURCE_KEYS))
    if unknown or "name" not in src:
      raise ValueError(
        f"config.data.sources[{i}] = {src}: "
        + (f"unknown keys {unknown}; " if unknown else "")
        + f"each source needs 'name' and may set {list(SOURCE_KEYS)}."
      )
    merged = {k: base.get(k) for k in SOURCE_KEYS if k in base}
    merged.update(src)
    merged.setdefault("weight", 1.0)
    if merged["builder_config"] is base.get("builder_config") and src["name"] != base["name"]:
      merged["builder_config"] = {}  # another dataset's config does not apply
    if not float(merged["weight"]) > 0:
      raise ValueError(f"config.data.sources[{i}] weight must be > 0; got {merged['weight']}.")
    out.append(merged)
  return out


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
      process_index=jax.process_index(),
      process_count=jax.process_count(),
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
