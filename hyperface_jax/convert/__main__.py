r"""Command line: convert pretrained ImageNet weights to a directory `load_converted` reads.

  python -m hyperface_jax.convert --format=torchvision --arch=resnet101 \
      --input=resnet101-63fe2227.pth --output=weights/resnet101_tv

See docs/pretrained.md for where to get each source file and the input normalization
each expects.
"""

from __future__ import annotations

import sys

from absl import app, flags

from hyperface_jax.convert.directory import ConversionError
from hyperface_jax.convert.pipeline import ARCHS, FORMATS, convert_file

_FORMAT = flags.DEFINE_enum("format", None, list(FORMATS), "Source framework.")
_ARCH = flags.DEFINE_enum("arch", None, list(ARCHS), "Network architecture.")
_INPUT = flags.DEFINE_string("input", None, "torchvision .pth state_dict or Caffe .caffemodel.")
_OUTPUT = flags.DEFINE_string("output", None, "Directory to write (replaced atomically).")
flags.mark_flags_as_required(["format", "arch", "input", "output"])


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    meta = convert_file(_FORMAT.value, _ARCH.value, _INPUT.value, _OUTPUT.value)
  except (ConversionError, FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  report = meta["report"]
  print(
    f"wrote {_OUTPUT.value}: model {meta['model_name']} {meta['model']}, "
    f"{len(report['mapped'])} source tensors mapped, {len(report['reshaped'])} reshaped, "
    f"{len(report['ignored'])} ignored; input {meta['normalization']}"
  )


if __name__ == "__main__":
  app.run(main)
