"""From a config to the data the training loop consumes.

Scenes of each split are held in memory (`pipeline.SceneStore`); training
batches are a pure function of (seed, step, host) so a resumed run sees
exactly the data of an uninterrupted one with no iterator state to
checkpoint (docs/design.md traps); evaluation uses fixed, padded region sets.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict

import jax
import numpy as np
from absl import logging

from hyperface_jax.data import pipeline

# Region-batch keys that go to the devices (the rest is host-side metadata).
MODEL_KEYS = (
  "image",
  "detection",
  "detection_mask",
  "landmarks",
  "visibility",
  "landmarks_mask",
  "visibility_mask",
  "pose",
  "pose_mask",
  "gender",
  "gender_mask",
  "example_mask",
)


@dataclasses.dataclass
class Data:
  train_batch: Callable[[int, int], Dict[str, np.ndarray]]  # (step, local rows)
  train: "pipeline.SceneStore"
  validation: "pipeline.SceneStore"
  test: "pipeline.SceneStore"


def builder_kwargs(data_config) -> dict:
  """`tfds.builder` keyword arguments for `config.data`.

  `data.builder_config` (a dict) is turned into the dataset's own config object
  through its config class's `make(**values)` (e.g. synth_faces sizes and seed);
  empty means the builder's default config.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  import hyperface_jax.data  # noqa: F401  (registers the builders)

  values = dict(data_config.get("builder_config", {}) or {})
  if not values:
    return {}
  cls = tfds.builder_cls(data_config.name)
  config_cls = type(cls.BUILDER_CONFIGS[0])
  if not hasattr(config_cls, "make"):
    raise ValueError(
      f"Dataset {data_config.name!r} takes no config.data.builder_config (got {values})."
    )
  return {"config": config_cls.make(**values)}


def ensure_prepared(data_config) -> None:
  """Builds a locally generated dataset (e.g. synth_faces) if it is missing.

  Datasets made from original files (AFLW, CelebA, ...) are never built
  implicitly: their absence is an error that names the prepare command.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = tfds.builder(
    data_config.name, data_dir=data_config.data_dir, **builder_kwargs(data_config)
  )
  if builder.is_prepared():
    return
  if not data_config.get("prepare_if_missing", False):
    raise FileNotFoundError(
      f"Dataset {data_config.name!r} is not prepared in {data_config.data_dir}. Run: "
      f"python -m hyperface_jax.data.prepare {data_config.name} "
      f"--data_dir={data_config.data_dir} --manual_dir=<folder with the original files>"
    )
  logging.info("Preparing %s in %s ...", data_config.name, data_config.data_dir)
  builder.download_and_prepare()


def _store(data_config, split: str, max_examples=None) -> "pipeline.SceneStore":
  return pipeline.SceneStore.from_tfds(
    data_config.name,
    split,
    data_config.data_dir,
    max_examples=max_examples,
    **builder_kwargs(data_config),
  )


def load(config) -> Data:
  """Loads the train/validation/test scene stores named by `config.data`."""
  dc = config.data
  ensure_prepared(dc)
  train = _store(dc, dc.train_split, dc.get("max_train_scenes"))
  validation = _store(dc, dc.eval_split, dc.get("max_eval_scenes"))
  test = _store(dc, dc.test_split, dc.get("max_eval_scenes"))
  thresholds = dc.thresholds.to_dict()

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
      sampling_config=dc.sampling.to_dict(),
      positive_fraction=dc.positive_fraction,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
    )
    assert batch["image"].shape[0] == local_rows, (batch["image"].shape, local_rows)
    return {k: batch[k] for k in MODEL_KEYS}

  return Data(train_batch=train_batch, train=train, validation=validation, test=test)
