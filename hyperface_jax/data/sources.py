"""The data sources of a run and the datasets behind them (shared by data/inputs.py,
the region input, and data/pairs.py, the face-pair input).

`sources(config.data)` resolves `config.data.sources` (several datasets mixed, each with
its `weight` and overrides) over `config.data`, or gives `config.data` itself;
`ensure_prepared` builds a locally generated dataset that is missing (process 0 only in
a multi-process run) and refuses to build real ones implicitly; `builder_kwargs` turns a
source's `builder_config` into the TFDS builder's config object; `Data` is what the
training loop consumes.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Sequence

import jax
import numpy as np
from absl import logging

from hyperface_jax.data import pipeline
from hyperface_jax.data.scene_store import SceneStore

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
