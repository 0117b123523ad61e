"""Runs an exported model from its folder, in the runtime of its format.

  model = runtime.load("exports/hf_onnx")      # reads preprocessing.json
  outputs = model(images)                       # float32 normalized [B, ...] -> {name: np}
  outputs = model.run_uint8(crops)              # uint8 RGB crops, normalized per the JSON

onnx: onnxruntime; savedmodel: TensorFlow's serving signature; tflite: the LiteRT
interpreter (`ai_edge_litert`; TensorFlow's tf.lite interpreter if LiteRT is not
installed); stablehlo: `jax.export.deserialize(...).call`. Only the chosen format's
runtime is imported. This is the module that the golden tests, bench/export_check.py and
`export(check=True)` run exported models with.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Mapping

import numpy as np

from hyperface_jax.export import spec as spec_lib

SPEC_FILE = "preprocessing.json"
# The model file (or folder) of each format inside an export folder.
MODEL_FILES = {
  "onnx": "model.onnx",
  "savedmodel": "saved_model",
  "tflite": "model.tflite",
  "stablehlo": "model.stablehlo",
}
FORMATS = tuple(MODEL_FILES)


def read_spec(directory: str) -> Dict[str, Any]:
  """The preprocessing.json of an export folder."""
  path = os.path.join(directory, SPEC_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f"{path} not found: expected a folder written by python -m hyperface_jax.export."
    )
  with open(path) as f:
    return json.load(f)


class ExportedModel:
  """An exported model and its preprocessing.json (module docstring).

  Attributes:
    spec: the preprocessing.json payload.
    format: its format.
    output_names: the outputs' names, sorted.
  """

  def __init__(self, directory: str, spec: Mapping[str, Any], run: Callable):
    self.directory = directory
    self.spec = dict(spec)
    self.format = spec["format"]
    self.output_names = tuple(o["name"] for o in spec["outputs"])
    self._run = run

  def __call__(self, images) -> Dict[str, np.ndarray]:
    """float32 normalized images (the `input` of the spec) -> {output name: float32 array}."""
    out = self._run(np.ascontiguousarray(images, np.float32))
    return {k: np.asarray(out[k], np.float32) for k in self.output_names}

  def normalize(self, crops) -> np.ndarray:
    """uint8 RGB crops normalized as the spec's `normalize` steps say."""
    return spec_lib.normalize_from_spec(self.spec["normalize"], crops)

  def run_uint8(self, crops) -> Dict[str, np.ndarray]:
    return self(self.normalize(crops))


def load(directory: str) -> ExportedModel:
  """Loads the export folder `directory` in its format's runtime."""
  spec = read_spec(directory)
  fmt = spec.get("format")
  if fmt not in MODEL_FILES:
    raise ValueError(f"{directory}/{SPEC_FILE}: unknown format {fmt!r}; expected one of {FORMATS}.")
  path = os.path.join(directory, MODEL_FILES[fmt])
  return ExportedModel(directory, spec, _LOADERS[fmt](path))


def _load_onnx(path):
  from hyperface_jax.export import onnx_format

  session = onnx_format.load(path)
  names = [o.name for o in session.get_outputs()]
  return lambda x: dict(zip(names, session.run(names, {spec_lib.INPUT_NAME: x}), strict=True))


def _load_savedmodel(path):
  from hyperface_jax.export import tf_format

  signature = tf_format.load_savedmodel(path)
  return lambda x: {k: v.numpy() for k, v in signature(**{spec_lib.INPUT_NAME: x}).items()}


def _load_tflite(path):
  from hyperface_jax.export import tf_format

  runner = tf_format.load_tflite(path)
  return lambda x: runner(**{spec_lib.INPUT_NAME: x})


def _load_stablehlo(path):
  import jax

  with open(path, "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  return lambda x: jax.device_get(exported.call(x))


_LOADERS = {
  "onnx": _load_onnx,
  "savedmodel": _load_savedmodel,
  "tflite": _load_tflite,
  "stablehlo": _load_stablehlo,
}
