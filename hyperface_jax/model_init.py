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
  * step: which step of a run (None = latest).
Every mismatch raises `surgery.ParamMismatchError` listing the names. A converted
directory records the input normalization its weights expect (converted.json
"normalization.preprocess_mode", e.g. "caffe_bgr" for BVLC Caffe, "imagenet" for
torchvision); a run whose `config.data.normalize` differs is refused before anything is
loaded (`check_normalize`).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Tuple

import jax
import numpy as np
from absl import logging

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
  path = os.path.join(directory, CONVERTED_FILE)
  with np.load(path, allow_pickle=False) as npz:
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
  meta_path = os.path.join(directory, CONVERTED_META)
  if not os.path.exists(meta_path):
    return {}
  with open(meta_path) as f:
    return json.load(f)


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
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"config.model_init: {path!r} does not exist (expected a "
      "converted-weights directory or a workdir/checkpoint)."
    )
  if os.path.isfile(os.path.join(path, CONVERTED_FILE)):
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
