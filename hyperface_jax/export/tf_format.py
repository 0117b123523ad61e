"""TensorFlow SavedModel (jax2tf) and TFLite (converted from that SavedModel).

SavedModel: `jax.experimental.jax2tf.convert` still exists in JAX 0.10 with native
serialization only (its non-native "enable_xla=False" graph mode was removed): the
SavedModel holds one `XlaCallModule` op carrying the model's serialized StableHLO, for the
platforms asked for (default CPU; "cpu,cuda" makes one SavedModel for both). Its serving
signature "serving_default" takes `images` and returns a dict of the model's outputs.
`with_gradient=False`: an inference export, so no custom gradient is saved.

TFLite: `tf.lite.TFLiteConverter.from_saved_model` of a CPU-only SavedModel (written into
the export's temporary folder and removed); the converter lowers the StableHLO inside the
XlaCallModule to TFLite builtin ops, so the .tflite needs no Flex delegate and runs in the
LiteRT interpreter (`ai_edge_litert`), whose signature runner resizes a dynamic batch.
"""

from __future__ import annotations

import os
import shutil
from typing import Sequence

from hyperface_jax.export import spec as spec_lib
from hyperface_jax.export.target import ExportError, ExportTarget

SIGNATURE = "serving_default"


def _tensorflow():
  try:
    import tensorflow as tf
  except ImportError as e:  # pragma: no cover - tensorflow-cpu is a core dependency
    raise ExportError(f"--format=savedmodel/tflite needs tensorflow: {e}") from None
  try:  # docs/design.md traps: TensorFlow must not take the accelerators JAX uses
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # already initialised: the caller hid them
    pass
  return tf


def write_savedmodel(target: ExportTarget, path: str, platforms: Sequence[str] = ("cpu",)):
  """Writes `target` as a SavedModel directory at `path` (module docstring)."""
  tf = _tensorflow()
  from jax.experimental import jax2tf

  poly = None
  if target.dynamic:
    poly = ["(" + ", ".join(str(d) for d in target.dims) + ")"]
  converted = jax2tf.convert(
    target.fn,
    polymorphic_shapes=poly,
    polymorphic_constraints=tuple(target.constraints),
    with_gradient=False,
    native_serialization_platforms=tuple(platforms),
  )
  shape = [None if isinstance(d, str) else int(d) for d in target.dims]
  module = tf.Module()
  module.serve = tf.function(
    converted,
    input_signature=[tf.TensorSpec(shape, tf.float32, name=spec_lib.INPUT_NAME)],
    autograph=False,
  )
  tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve})


def write_tflite(target: ExportTarget, path: str, scratch: str) -> None:
  """Writes `target` as a .tflite file, through a CPU SavedModel under `scratch`."""
  tf = _tensorflow()
  saved = os.path.join(scratch, "_saved_model_for_tflite")
  write_savedmodel(target, saved, ("cpu",))
  try:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[SIGNATURE])
    data = converter.convert()
  finally:
    shutil.rmtree(saved, ignore_errors=True)
  with open(path, "wb") as f:
    f.write(data)


def load_savedmodel(path: str):
  """The serving signature of a SavedModel: images=... -> {name: tf.Tensor}."""
  tf = _tensorflow()
  return tf.saved_model.load(path).signatures[SIGNATURE]


def load_tflite(path: str):
  """A LiteRT signature runner of a .tflite file (tf.lite's interpreter if LiteRT is
  missing): images=... -> {name: np.ndarray}."""
  try:
    from ai_edge_litert.interpreter import Interpreter
  except ImportError:
    Interpreter = _tensorflow().lite.Interpreter
  return Interpreter(model_path=path).get_signature_runner(SIGNATURE)
