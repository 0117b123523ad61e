"""The converted-weights directory: checked assembly, atomic writing, `load_converted`.

Format (helper code elsewhere, e.g. `config.model_init`, reads exactly this):
  DIR/variables.npz    flat Flax variables, names joined by "/" with the collection first
                       ("params/backbone/conv1/kernel", "batch_stats/backbone/...")
  DIR/converted.json   {"format", "arch", "model_name" (registry name), "model" (its
                       kwargs), "source" {"file", "sha256"}, "normalization" {channel_order,
                       input_range, mean, std, preprocess_mode}, "report" {mapped, missing,
                       unexpected, reshaped, ignored}}
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import Any, Dict, Mapping, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from hyperface_jax import registry
from hyperface_jax.surgery import flatten, unflatten

VARIABLES_FILE = "variables.npz"
META_FILE = "converted.json"


class ConversionError(ValueError):
  """A source file does not fit the target model; the message names the keys."""


def expected_shapes(
  model_name: str, model_kwargs: Mapping[str, Any], input_size: int
) -> Dict[str, Tuple[int, ...]]:
  """Flat variable name -> shape of the registry model, from `jax.eval_shape` (no compute)."""
  model = registry.MODELS.get(model_name)(**model_kwargs)
  x = jax.ShapeDtypeStruct((1, input_size, input_size, 3), jnp.float32)
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape)))
  return {k: tuple(v.shape) for k, v in flatten(dict(abstract)).items()}


def _short(names, limit=12):
  names = sorted(names)
  more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
  return ", ".join(names[:limit]) + more


def check_variables(
  converted: Mapping[str, np.ndarray],
  expected: Mapping[str, Tuple[int, ...]],
  origin: Mapping[str, str],
  what: str,
) -> None:
  """Raises ConversionError listing missing, unexpected and wrong-shape variables.

  Args:
    converted: flat target name -> array produced from the source.
    expected: flat target name -> shape the model needs.
    origin: target name -> source key it came from (named in the message).
    what: the source, e.g. "torchvision state_dict model.pth".
  """
  missing = [k for k in expected if k not in converted]
  unexpected = [f"{k} (from {origin.get(k, '?')})" for k in converted if k not in expected]
  wrong = [
    f"{origin.get(k, '?')} -> {k}: got {tuple(v.shape)}, expected {expected[k]}"
    for k, v in converted.items()
    if k in expected and tuple(v.shape) != expected[k]
  ]
  problems = []
  if wrong:
    problems.append(f"wrong shape: {_short(wrong)}")
  if missing:
    problems.append(f"missing (no source key maps to them): {_short(missing)}")
  if unexpected:
    problems.append(f"unexpected: {_short(unexpected)}")
  if problems:
    raise ConversionError(f"{what} does not fit the target model: " + "; ".join(problems))


def sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def write_converted(
  output_dir: str, variables: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> None:
  """Writes DIR/variables.npz and DIR/converted.json atomically.

  Both files go to a temporary sibling directory that is renamed into place; an existing
  converted directory at `output_dir` is replaced, any other existing path is an error.
  """
  output_dir = os.path.abspath(output_dir)
  if os.path.exists(output_dir) and not os.path.exists(os.path.join(output_dir, META_FILE)):
    if not os.path.isdir(output_dir) or os.listdir(output_dir):
      raise FileExistsError(
        f"--output {output_dir} exists and is not a converted-weights "
        f"directory (no {META_FILE}); choose another path."
      )
  parent = os.path.dirname(output_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.tmp", dir=parent)
  try:
    np.savez(os.path.join(tmp, VARIABLES_FILE), **{k: np.asarray(v) for k, v in variables.items()})
    with open(os.path.join(tmp, META_FILE), "w") as f:
      json.dump(meta, f, indent=2, sort_keys=True)
    old = None
    if os.path.exists(output_dir):
      old = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.old", dir=parent)
      os.replace(output_dir, os.path.join(old, "d"))
    os.replace(tmp, output_dir)
    if old:
      shutil.rmtree(old)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def read_meta(directory: str) -> Dict[str, Any]:
  path = os.path.join(directory, META_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"{path} not found: {directory} is not a directory written by "
      f"`python -m hyperface_jax.convert`."
    )
  with open(path) as f:
    meta = json.load(f)
  for key in ("model_name", "model", "normalization"):
    if key not in meta:
      raise ValueError(f"{path} lacks the field {key!r}.")
  return meta


def load_variables(directory: str) -> Dict[str, np.ndarray]:
  """The flat {"params/...": array, "batch_stats/...": array} of a converted directory."""
  with np.load(os.path.join(directory, VARIABLES_FILE)) as data:
    return {k: data[k] for k in data.files}


def load_converted(directory: str):
  """Model and variables of a converted directory.

  Args:
    directory: written by `python -m hyperface_jax.convert`.

  Returns:
    (model, variables) such that `model.apply(variables, images, train=False)` maps
    float32 NHWC images, normalized as `converted.json["normalization"]` says (e.g.
    preprocess.normalize mode "imagenet" for torchvision, "caffe_bgr" for Caffe), to the
    1000 ImageNet logits. The variables are checked against the model's shapes.
  """
  meta = read_meta(directory)
  model = registry.MODELS.get(meta["model_name"])(**meta["model"])
  flat = load_variables(directory)
  expected = expected_shapes(meta["model_name"], meta["model"], meta.get("input_size", 224))
  check_variables(flat, expected, {}, f"{directory}/{VARIABLES_FILE}")
  variables = unflatten({k: jnp.asarray(v) for k, v in flat.items()})
  return model, variables
