r"""Exports a trained run's model with its preprocessing (docs/export.md).

  python -m hyperface_jax.export --workdir=RUN --format=onnx|savedmodel|tflite|stablehlo \
      --output=DIR [--batch=N|--batch=dynamic] [--model=network|proposals] [--step=N] \
      [--image_size=H,W] [--platforms=cpu[,cuda,...]] [--overwrite] [--nocheck]

Writes DIR/<model file> and DIR/preprocessing.json atomically (a temporary folder renamed
into place once the model was reloaded and checked against JAX). --model=proposals exports
a Fast-HyperFace proposal run (configs/fast_hyperface.py) as a fully convolutional score
map over whole image levels (H, W symbolic unless --image_size). Errors are one line on
stderr with exit status 2. In Python: `hyperface_jax.export.export(workdir, fmt, output,
...)`.
"""

from __future__ import annotations

import os
import sys

from absl import flags, logging

from hyperface_jax import cli
from hyperface_jax.export import runtime

# This tool's flags live in their own FlagValues (as evaluate.py and data/prepare.py), so
# importing the module defines no global flag.
FLAGS = flags.FlagValues()
_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.", flag_values=FLAGS)
_FORMAT = flags.DEFINE_enum(
  "format", None, list(runtime.FORMATS), "Export format.", flag_values=FLAGS
)
_OUTPUT = flags.DEFINE_string("output", None, "Folder to write.", flag_values=FLAGS)
_BATCH = flags.DEFINE_string(
  "batch", "dynamic", "Batch size: a positive integer or 'dynamic'.", flag_values=FLAGS
)
_MODEL = flags.DEFINE_enum(
  "model", "network", ["network", "proposals"], "What to export.", flag_values=FLAGS
)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).", flag_values=FLAGS)
_IMAGE_SIZE = flags.DEFINE_list(
  "image_size", None, "H,W of --model=proposals input (default: symbolic).", flag_values=FLAGS
)
_PLATFORMS = flags.DEFINE_list(
  "platforms", ["cpu"], "savedmodel/stablehlo lowering platforms.", flag_values=FLAGS
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace --output.", flag_values=FLAGS)
_CHECK = flags.DEFINE_bool(
  "check", True, "Reload the export and compare it with JAX.", flag_values=FLAGS
)


def main(argv) -> int:
  """In-process entry point: argv = [program, --flag=value, ...]; returns the exit status."""
  from hyperface_jax.export.api import export
  from hyperface_jax.export.target import ExportError

  if FLAGS.is_parsed():
    FLAGS.unparse_flags()  # a second call in one process starts from the defaults
  try:
    rest = FLAGS(list(argv))
    if len(rest) > 1:
      raise ExportError(f"unexpected arguments {rest[1:]}")
    for name, flag in (("workdir", _WORKDIR), ("format", _FORMAT), ("output", _OUTPUT)):
      if not flag.value:
        raise ExportError(f"--{name} is required")
    image_size = None
    if _IMAGE_SIZE.value:
      if len(_IMAGE_SIZE.value) != 2 or not all(v.strip().isdigit() for v in _IMAGE_SIZE.value):
        raise ExportError(f"--image_size must be H,W; got {','.join(_IMAGE_SIZE.value)!r}")
      image_size = tuple(int(v) for v in _IMAGE_SIZE.value)
    payload = export(
      _WORKDIR.value,
      _FORMAT.value,
      _OUTPUT.value,
      batch=_BATCH.value,
      model=_MODEL.value,
      step=_STEP.value,
      image_size=image_size,
      platforms=tuple(_PLATFORMS.value),
      overwrite=_OVERWRITE.value,
      check=_CHECK.value,
    )
  except (ExportError, flags.Error) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  diffs = payload.get("check", {}).get("max_abs_diff", {})
  shapes = ", ".join(f"{o['name']} {o.get('shape_expr', o['shape'])}" for o in payload["outputs"])
  print(f"wrote {os.path.abspath(_OUTPUT.value)} ({payload['format']}): {shapes}")
  if diffs:
    print("max |exported - JAX|: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
  return 0


def _main_quiet(argv) -> int:
  logging.set_verbosity(logging.WARNING)
  return main(argv)


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  cli.run(_main_quiet, help_text=lambda: f"{__doc__}\n{FLAGS.get_help()}")
