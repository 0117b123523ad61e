"""One conversion: read the source, size and build the target model, map, check, write."""

from __future__ import annotations

import os
from typing import Any, Dict

from absl import logging

from hyperface_jax.convert import caffe, caffe_proto, torchvision
from hyperface_jax.convert.collect import NORMALISATION
from hyperface_jax.convert.directory import (
  check_variables,
  expected_shapes,
  sha256,
  write_converted,
)

FORMATS = ("torchvision", "caffe")
ARCHS = ("alexnet", "resnet50", "resnet101", "resnet152")


def convert_file(fmt: str, arch: str, input_path: str, output_dir: str) -> Dict[str, Any]:
  """Converts `input_path` and writes the converted directory `output_dir`.

  Args:
    fmt: "torchvision" (a state_dict `.pth`) or "caffe" (a `.caffemodel`).
    arch: one of ARCHS.
    input_path: the source weights file.
    output_dir: directory to (re)write atomically.

  Returns:
    The converted.json contents.

  Raises:
    ConversionError: naming the source keys / target variables that do not fit.
  """
  if fmt not in FORMATS:
    raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}.")
  if arch not in ARCHS:
    raise ValueError(f"--arch must be one of {ARCHS}, got {arch!r}.")
  if not os.path.isfile(input_path):
    raise FileNotFoundError(f"--input {input_path} does not exist.")
  what = f"{fmt} {arch} weights {input_path}"
  if fmt == "torchvision":
    source = torchvision.load_state_dict(input_path)
    model_name, kwargs = torchvision.model_for(arch, source)
    input_size = 224
    fc6_spatial = 6  # torchvision's AdaptiveAvgPool2d((6, 6)) before fc6
    collected = torchvision.convert(source, arch, fc6_spatial)
  else:
    layers = caffe_proto.read_caffemodel(input_path)
    model_name, kwargs, input_size = caffe.model_for(arch, layers)
    collected = caffe.convert(layers, arch)
  expected = expected_shapes(model_name, kwargs, input_size)
  check_variables(collected.variables, expected, collected.origin, what)
  meta = dict(
    format=fmt,
    arch=arch,
    model_name=model_name,
    model=kwargs,
    input_size=input_size,
    source=dict(file=os.path.basename(input_path), sha256=sha256(input_path)),
    normalization=NORMALISATION[fmt],
    report=collected.report(),
  )
  write_converted(output_dir, collected.variables, meta)
  logging.info(
    "Converted %s: %d variables -> %s (%d reshaped, %d ignored).",
    what,
    len(collected.variables),
    output_dir,
    len(collected.reshaped),
    len(collected.ignored),
  )
  return meta
