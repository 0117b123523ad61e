r"""Float32 error of Winograd F(m x m, r x r) against XLA's convolution, per layer and tile.

  PYTHONPATH=. .venv/bin/python bench/winograd_error.py [--tiles=3:4,3:5,3:6,3:7,5:4,5:5]

HyperFace-AlexNet's convolutions at batch 4 (conv1 11x11 / 4 on 227 px, which the
space-to-depth rewrite makes a 3x3 one; conv2 5x5 on 27 x 27; conv3 / conv4 3x3 on 13 x 13)
with random inputs and He-scaled random kernels, computed by models/winograd.py with each
tile and by `lax.conv_general_dilated` at HIGHEST precision; printed: max |difference| /
max |reference|, the measure tests/test_winograd.py bounds (1e-5 for 3x3 kernels). This is
how models/alexnet.py's WINOGRAD_TILES were limited to tiles whose error stays ~1e-5.
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import numpy as np
from jax import lax

from hyperface_jax.models import winograd

# name -> (input shape, kernel shape, padding, strides)
LAYERS = {
  "conv1 11x11/4, 3->96": ((4, 227, 227, 3), (11, 11, 3, 96), 0, 4),
  "conv2 5x5, 96->256": ((4, 27, 27, 96), (5, 5, 96, 256), 2, 1),
  "conv3 3x3, 256->384": ((4, 13, 13, 256), (3, 3, 256, 384), 1, 1),
  "conv4 3x3, 384->384": ((4, 13, 13, 384), (3, 3, 384, 384), 1, 1),
}


def relative_error(layer: str, tile: int, seed: int = 0) -> float:
  x_shape, w_shape, pad, stride = LAYERS[layer]
  rng = np.random.RandomState(seed)
  x = jnp.asarray(rng.randn(*x_shape), jnp.float32)
  w = jnp.asarray(rng.randn(*w_shape) * np.sqrt(2 / np.prod(w_shape[:3])), jnp.float32)
  padding, strides = ((pad, pad), (pad, pad)), (stride, stride)
  ref = lax.conv_general_dilated(
    x,
    w,
    strides,
    padding,
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
    precision=lax.Precision.HIGHEST,
  )
  got = winograd.conv2d(x, w, padding, tile, strides)
  return float(jnp.max(jnp.abs(got - ref)) / jnp.max(jnp.abs(ref)))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--tiles", default="3:4,3:5,3:6,3:7,5:4,5:5", help="KERNEL:TILE pairs")
  args = p.parse_args(argv)
  print("| layer | Winograd | max abs error / max abs output |\n|---|---|---|")
  for pair in args.tiles.split(","):
    kernel, tile = (int(v) for v in pair.split(":"))
    for layer, (_, w_shape, _, stride) in LAYERS.items():
      if -(-w_shape[0] // stride) == kernel:  # the kernel size after space-to-depth
        err = relative_error(layer, tile)
        print(f"| {layer} | F({tile}x{tile}, {kernel}x{kernel}) | {err:.2e} |")


if __name__ == "__main__":
  main()
