"""Pretrained ImageNet weights (torchvision `.pth`, Caffe `.caffemodel`) -> Flax variables.

  python -m hyperface_jax.convert --format=torchvision|caffe \
      --arch=alexnet|resnet50|resnet101|resnet152 --input=FILE --output=DIR

`load_converted(DIR)` returns `(model, variables)`; the format of DIR is described in
convert/directory.py and docs/pretrained.md.
"""

from hyperface_jax.convert.directory import (  # noqa: F401
  ConversionError,
  load_converted,
  load_variables,
  read_meta,
)
from hyperface_jax.convert.pipeline import ARCHS, FORMATS, convert_file  # noqa: F401
