"""Partial initialisation of a fresh train state: `config.model_init` / `config.model_load`.

The train loop calls `initialise_from(...)` after the (shape-first) init and
before the first step, and only when the workdir holds no checkpoint: a resumed
run restores its own checkpoint and never reads `model_init` again.

`config.model_init` is a path, either
  * a converted-weights directory (`python -m hyperface_jax.convert`):
    `DIR/variables.npz` with flat "/" names, collection first
    (`params/backbone/conv1/kernel`, `batch_stats/...`) and `DIR/converted.json`;
  * one of our runs: a workdir, its `checkpoints/` or one `checkpoints/<step>`
    (the latest step unless `model_load.step` is set).
`config.model_load` (ConfigDict) says how:
  * dont_load: regexes (re.fullmatch on names without the collection, e.g.
    "heads/.*") of names that keep their initial values;
  * prefix_map: ((from, to), ...) name prefixes, e.g. (("backbone/", "backbone/"),)
    to transplant only a classifier's backbone into HyperFace; with it, only
    target names under a `to` prefix are loaded, the rest keep their init;
  * batch_stats: also load the non-parameter collections (BatchNorm running
    statistics), with the same rules (documented default True);
  * step: which step of a run (None = latest);
  * head_init: ((head, rule), ...) applied after loading to linear heads (`apply_head_init`):
    "zero" (kernel and bias 0) or "mean:<task>" (kernel 0, bias = the task's mean label
    over the run's first training batches, `training_mean`): a new 68-point head then
    predicts the training mean shape at step 0 (TCDCN 5 -> 68 points, docs/surgery.md).
Every mismatch raises `surgery.ParamMismatchError` listing the names. A converted
directory records the input normalization its weights expect (converted.json
"normalization.preprocess_mode", e.g. "caffe_bgr" for BVLC Caffe, "imagenet" for
torchvision); a run whose `config.data.normalize` differs is refused before anything is
loaded (`check_normalize`).
"""

from __future__ import annotations

import json
from typing import Any, Dict, Tuple

import jax
import numpy as np
from absl import logging
from etils import epath

from hyperface_jax import checkpointing, surgery

CONVERTED_FILE = "variables.npz"
CONVERTED_META = "converted.json"


def read_converted(directory: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
  """Reads a converted-weights directory.

  Args:
    directory: holds `variables.npz` (flat "/" names, collection first) and
      optionally `converted.json`.

  Returns:
    ({collection: nested dict of numpy arrays}, converted.json content or {}).
  """
  path = epath.Path(directory) / CONVERTED_FILE
  with path.open("rb") as f, np.load(f, allow_pickle=False) as npz:
    flat = {name: npz[name] for name in npz.files}
  bad = [n for n in flat if "/" not in n]
  if bad:
    raise ValueError(
      f"{path}: names must be '<collection>/<module>/.../<array>' "
      f"(e.g. params/backbone/conv1/kernel); got {bad[:5]}."
    )
  variables = surgery.unflatten(flat)
  if "params" not in variables:
    raise ValueError(f"{path} holds no 'params/...' arrays; collections: {sorted(variables)}.")
  return variables, read_converted_meta(directory)


def read_converted_meta(directory: str) -> Dict[str, Any]:
  """converted.json of a converted-weights directory, or {} when it has none."""
  meta_path = epath.Path(directory) / CONVERTED_META
  if not meta_path.exists():
    return {}
  return json.loads(meta_path.read_text())


class NormalizeMismatchError(ValueError):
  """Converted weights expect another input normalization than config.data.normalize."""


def check_normalize(directory: str, meta: Dict[str, Any], normalize: str) -> None:
  """Refuses converted weights whose recorded input normalization is not `normalize`.

  Args:
    directory: the converted-weights directory (named in the message).
    meta: its converted.json content ({} when absent).
    normalize: the run's `config.data.normalize`.

  Raises:
    NormalizeMismatchError: naming both modes and the config key to change.
  """
  recorded = (meta.get("normalization") or {}).get("preprocess_mode")
  if recorded is None:
    logging.warning(
      "model_init: %s records no input normalization (converted.json "
      "normalization.preprocess_mode); config.data.normalize=%r is not checked.",
      directory,
      normalize,
    )
    return
  if recorded != normalize:
    what = f"{meta.get('format', '?')} {meta.get('arch', '?')}"
    raise NormalizeMismatchError(
      f"config.model_init: the converted {what} weights in {directory} expect input "
      f"normalized with {recorded!r} (converted.json normalization.preprocess_mode), but "
      f"config.data.normalize is {normalize!r}. Set --config.data.normalize={recorded} "
      "(the :bvlc variants of configs/hyperface_alexnet.py and configs/rcnn_face.py use "
      "'caffe_bgr'; torchvision weights need 'imagenet'), or load weights converted for "
      f"{normalize!r} (docs/pretrained.md)."
    )


def read_variables(path: str, step=None, normalize=None) -> Tuple[Dict[str, Any], str]:
  """Variables {collection: tree} of a converted directory or a run, and a description.

  With `normalize` (the run's config.data.normalize), a converted directory recording
  another input normalization is refused (`check_normalize`).
  """
  if not epath.Path(path).exists():
    raise FileNotFoundError(
      f"config.model_init: {path!r} does not exist (expected a "
      "converted-weights directory or a workdir/checkpoint)."
    )
  if (epath.Path(path) / CONVERTED_FILE).is_file():
    if normalize is not None:
      check_normalize(path, read_converted_meta(path), normalize)  # before the arrays
    variables, meta = read_converted(path)
    source = meta.get("source", {})
    source = source.get("file", source) if isinstance(source, dict) else source
    return variables, (
      f"converted {meta.get('arch', '?')} ({meta.get('format', '?')}, "
      f"source {source or '?'}) from {path}"
    )
  variables = checkpointing.restore_variables(path, step)
  return variables, f"checkpoint {checkpointing.resolve_checkpoint(path, step)}"


def merge_variables(
  loaded: Dict[str, Any], params: Any, model_state: Dict[str, Any], load_config, context: str = ""
):
  """Merges loaded variables into (params, model_state) by the `model_load` rules.

  Returns:
    (params, model_state, {collection: surgery.MergeReport}).
  """
  dont_load = tuple(load_config.get("dont_load", ()) or ())
  prefix_map = load_config.get("prefix_map", ()) or ()
  if hasattr(prefix_map, "to_dict"):
    prefix_map = prefix_map.to_dict()
  reports = {}
  params, reports["params"] = surgery.merge_params(
    loaded.get("params", {}),
    params,
    dont_load,
    prefix_map=prefix_map,
    return_report=True,
    context=f"params of {context}",
  )
  model_state = dict(model_state)
  if load_config.get("batch_stats", True):
    for collection, tree in model_state.items():
      model_state[collection], reports[collection] = surgery.merge_params(
        loaded.get(collection, {}),
        tree,
        dont_load,
        prefix_map=prefix_map,
        return_report=True,
        context=f"{collection} of {context}",
      )
  return params, model_state, reports


def initialise_from(state, config, sharding):
  """Returns `state` with params / model_state partly loaded from `config.model_init`.

  Args:
    state: the freshly initialised TrainState (replicated).
    config: the run config (`model_init`, `model_load`).
    sharding: sharding of the loaded arrays (the replicated sharding).

  Returns:
    The new state; its optimiser state is the fresh one (initial optimiser states
    of SGD-momentum / Adam do not depend on the parameter values).
  """
  load_config = config.get("model_load") or {}
  variables, description = read_variables(
    config.model_init, load_config.get("step"), normalize=config.data.normalize
  )
  host = jax.tree.map(np.asarray, (state.params, dict(state.model_state)))
  params, model_state, reports = merge_variables(variables, *host, load_config, context=description)
  for collection, report in reports.items():
    logging.info("model_init %s: %s", collection, report.summary())
  params = apply_head_init(params, config, load_config.get("head_init", ()) or ())
  unused = sorted(set(variables) - set(reports))
  if unused:
    logging.info(
      "model_init: collections %s of %s not loaded (the model has none, or "
      "model_load.batch_stats is False).",
      unused,
      description,
    )
  logging.info("Initialised from %s.", description)
  put = lambda tree: jax.device_put(tree, sharding)
  return state.replace(params=put(params), model_state=put(model_state))


def training_mean(config, task_name: str, num_batches: int = 16) -> np.ndarray:
  """The mean label of `task_name` over the run's first `num_batches` training batches.

  The batches are exactly those the run trains on first (data/pipeline.py: a pure function
  of (seed, step)), so the mean is in the model's own output coordinates (region-normalized
  points with the run's jitter and flips). Every host computes it over the whole global
  batches, so all hosts set the same value. Reduced as the trivial baseline is
  (evaluation/baselines.py `task_constants`): per point over the rows where it is visible
  for landmark tasks, the majority for classification.

  Returns:
    float32 array of the task's output shape.
  """
  from hyperface_jax.data import inputs, pipeline  # pylint: disable=g-import-not-at-top
  from hyperface_jax.evaluation import baselines  # pylint: disable=g-import-not-at-top

  data, dc = inputs.load(config), config.data
  batches = [
    pipeline.train_batch(
      data.train,
      seed=config.seed,
      step=step,
      batch_size=config.batch_size,
      image_size=config.input_size,
      regions_per_scene=dc.regions_per_scene,
      flip_prob=dc.flip_prob,
      normalize=None,
      thresholds=dc.thresholds.to_dict(),
      task_names=tuple(config.tasks),
    )
    for step in range(1, num_batches + 1)
  ]
  constants = baselines.task_constants(batches)
  if task_name not in constants:
    raise ValueError(
      f"model_load.head_init: no labelled {task_name!r} rows in {num_batches} training "
      f"batches (is {task_name!r} in config.tasks and labelled by config.data?)."
    )
  return constants[task_name]


def apply_head_init(params, config, head_init):
  """Applies `model_load.head_init` rules ((head, rule), ...) to `params` (module doc)."""
  for head, rule in head_init:
    if rule == "zero":
      params = surgery.set_linear_head(params, head, 0.0)
    elif isinstance(rule, str) and rule.startswith("mean:"):
      mean = training_mean(config, rule[len("mean:") :])
      params = surgery.set_linear_head(params, head, mean)
    else:
      raise ValueError(
        f"model_load.head_init: unknown rule {rule!r} for {head!r}; expected 'zero' or "
        "'mean:<task>'."
      )
    logging.info("model_init: head %s initialised by rule %r.", head, rule)
  return params
