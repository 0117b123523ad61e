"""`export(workdir, fmt, output, ...)`: a trained run's model in a deployable format.

Writes the folder `output` holding the model (runtime.MODEL_FILES: model.onnx,
saved_model/, model.tflite or model.stablehlo) and `preprocessing.json` (export/spec.py:
input size and layout, crop rule, the normalize mode with its exact arithmetic, outputs
with shapes and units, the source run, and the export's own check). Atomic: everything is
written into a temporary folder beside `output` and renamed into place only once the
model has been written, reloaded in its runtime and checked against JAX; a failure leaves
`output` as it was and no temporary folder behind (docs/design.md section 7).

StableHLO: `jax.export.export(jax.jit(fn), platforms=...)(input)`, serialized
(`Exported.serialize()`, JAX's versioned format with a compatibility window of months);
`jax.export.deserialize(bytes).call(images)` runs it again, also in another process or
program that has JAX but not this package.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Dict, Optional, Sequence, Union

import jax
import numpy as np

from hyperface_jax.export import runtime
from hyperface_jax.export import target as target_lib
from hyperface_jax.export.target import ExportError, ExportTarget

FORMATS = runtime.FORMATS
# The export's own check (`check`): max |exported - JAX| on random crops must stay within
# this (loose: a trained model's logits can be large; the golden tests hold 1e-4 on the
# smoke models, docs/export.md has the measured differences).
CHECK_ATOL = 1e-3
CHECK_RTOL = 1e-3


def write_stablehlo(target: ExportTarget, path: str, platforms: Sequence[str] = ("cpu",)):
  exported = jax.export.export(jax.jit(target.fn), platforms=tuple(platforms))(
    target.input_struct()
  )
  with open(path, "wb") as f:
    f.write(exported.serialize())


def _write_model(fmt: str, target: ExportTarget, path: str, scratch: str, platforms):
  if fmt == "onnx":
    from hyperface_jax.export import onnx_format

    onnx_format.write(target, path)
  elif fmt == "savedmodel":
    from hyperface_jax.export import tf_format

    tf_format.write_savedmodel(target, path, platforms)
  elif fmt == "tflite":
    from hyperface_jax.export import tf_format

    if tuple(platforms) != ("cpu",):
      raise ExportError("--platforms applies to savedmodel and stablehlo; tflite is CPU only.")
    tf_format.write_tflite(target, path, scratch)
  elif fmt == "stablehlo":
    write_stablehlo(target, path, platforms)
  else:
    raise ExportError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}.")


def check_inputs(target: ExportTarget, seed: int = 0) -> np.ndarray:
  """Random uint8 images of the export's input shape, normalized as the run's config says
  (batch 3 when dynamic, H x W = 56 x 72 for a dynamic proposals model)."""
  from hyperface_jax.data import preprocess

  shape = target.example_shape()
  rng = np.random.default_rng(seed)
  return preprocess.normalize(rng.integers(0, 256, shape, dtype=np.uint8), target.normalize)


def max_differences(got: Dict[str, np.ndarray], want: Dict[str, np.ndarray]) -> Dict[str, float]:
  """{name: max |got - want|} over the outputs of `want`; shapes must agree."""
  out = {}
  for k in sorted(want):
    g, w = np.asarray(got[k]), np.asarray(want[k])
    if g.shape != w.shape:
      raise ExportError(f"exported output {k!r} has shape {g.shape}, JAX {w.shape}.")
    out[k] = float(np.max(np.abs(g.astype(np.float64) - w))) if w.size else 0.0
  return out


def export(
  workdir: str,
  fmt: str,
  output: str,
  *,
  batch: Union[int, str, None] = "dynamic",
  model: str = "network",
  step: Optional[int] = None,
  image_size: Optional[Sequence[int]] = None,
  platforms: Sequence[str] = ("cpu",),
  overwrite: bool = False,
  check: bool = True,
) -> Dict[str, Any]:
  """Exports the model of a training run (module docstring).

  Args:
    workdir: the training run (config.json + checkpoints/).
    fmt: "onnx", "savedmodel", "tflite" or "stablehlo".
    output: the folder to write (must not exist unless `overwrite`).
    batch: a fixed batch size, or "dynamic" for a symbolic batch dimension.
    model: "network" (per-crop network) or "proposals" (a Fast-HyperFace proposal run's
      fully convolutional score map), export/target.py.
    step: checkpoint step (None: latest).
    image_size: (H, W) of the proposals model's input (None: symbolic).
    platforms: lowering platforms of savedmodel / stablehlo ("cpu", "cuda", "rocm", "tpu").
    overwrite: replace an existing `output`.
    check: run the written model in its runtime on random inputs and compare with JAX
      (recorded in preprocessing.json "check"; ExportError beyond CHECK_ATOL/RTOL).

  Returns:
    The preprocessing.json payload.

  Raises:
    ExportError: a usage or input problem (one line).
  """
  if fmt not in FORMATS:
    raise ExportError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}.")
  batch = target_lib.parse_batch(batch)  # usage errors before any file is looked at
  if model not in target_lib.MODELS:
    raise ExportError(f"--model must be one of {target_lib.MODELS}; got {model!r}.")
  output = os.path.abspath(output)
  if os.path.exists(output) and not overwrite:
    raise ExportError(f"--output {output} exists; pass --overwrite to replace it.")
  target = target_lib.build_target(
    workdir, model=model, batch=batch, step=step, image_size=image_size
  )
  payload = target.preprocessing()
  payload["source"]["workdir"] = os.path.abspath(workdir)
  payload.update(
    format=fmt,
    model_file=runtime.MODEL_FILES[fmt],
    platforms=["cpu"] if fmt in ("onnx", "tflite") else list(platforms),
  )
  parent = os.path.dirname(output)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.tmp-", dir=parent)
  try:
    _write_model(fmt, target, os.path.join(tmp, runtime.MODEL_FILES[fmt]), tmp, platforms)
    if check:
      payload["check"] = _check(target, fmt, tmp, payload)
    with open(os.path.join(tmp, runtime.SPEC_FILE), "w") as f:
      json.dump(payload, f, indent=2, sort_keys=True)
    _replace_dir(tmp, output)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return payload


def _check(target: ExportTarget, fmt: str, folder: str, payload) -> Dict[str, Any]:
  if "cpu" not in payload["platforms"]:
    return {"skipped": "not exported for the CPU"}
  with open(os.path.join(folder, runtime.SPEC_FILE), "w") as f:
    json.dump(payload, f)  # runtime.load reads it
  x = check_inputs(target)
  want = target.run(x)
  got = runtime.load(folder)(x)
  diffs = max_differences(got, want)
  for k, d in diffs.items():
    bound = CHECK_ATOL + CHECK_RTOL * float(np.max(np.abs(want[k]))) if want[k].size else 0.0
    if d > bound:
      raise ExportError(
        f"the exported {fmt} model differs from JAX on output {k!r} by {d:.3g} (> {bound:.3g})."
      )
  return {
    "inputs": f"random uint8 images {list(x.shape)}, normalized ({target.normalize})",
    "max_abs_diff": diffs,
  }


def _replace_dir(tmp: str, output: str) -> None:
  """Renames `tmp` to `output`; an existing `output` is moved aside first, then deleted."""
  if not os.path.exists(output):
    os.rename(tmp, output)
    return
  old = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.old-", dir=os.path.dirname(output))
  os.rmdir(old)
  os.rename(output, old)
  try:
    os.rename(tmp, output)
  except OSError:
    os.rename(old, output)  # put the previous export back
    raise
  shutil.rmtree(old, ignore_errors=True)
