r"""Cropping proposals on the host (OpenCV loop) vs a jitted bilinear gather.

  PYTHONPATH=. .venv/bin/python bench/crop_speed.py [--num=1000] [--size=99]

Why inference/batched.py cuts crops with `data.preprocess.crop_and_resize` (cv2.warpAffine
per crop): this measures it against a jitted, vectorised bilinear gather that samples the
same positions (x + (j + 0.5) w / S, zero fill) for `num` random square regions of a
640x480 image, and prints microseconds per crop (compilation excluded) and the largest
pixel difference (OpenCV interpolates with 5-bit fixed-point weights).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from hyperface_jax.data import preprocess


def gather_crops(image, regions, size):
  """Bilinear crops [N, S, S, 3] float32 of `regions` [N, 4] (zero outside the image)."""
  h, w = image.shape[:2]
  j = (jnp.arange(size) + 0.5) / size
  xs = regions[:, 0:1] + j[None] * regions[:, 2:3]  # [N, S]
  ys = regions[:, 1:2] + j[None] * regions[:, 3:4]
  x0, y0 = jnp.floor(xs), jnp.floor(ys)
  fx, fy = (xs - x0)[:, None, :, None], (ys - y0)[:, :, None, None]

  def pixels(yy, xx):
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    v = image[jnp.clip(yy, 0, h - 1).astype(jnp.int32), jnp.clip(xx, 0, w - 1).astype(jnp.int32)]
    return jnp.where(inside[..., None], v, 0).astype(jnp.float32)

  yy, xx = y0[:, :, None], x0[:, None, :]
  top = pixels(yy, xx) * (1 - fx) + pixels(yy, xx + 1) * fx
  bottom = pixels(yy + 1, xx) * (1 - fx) + pixels(yy + 1, xx + 1) * fx
  return top * (1 - fy) + bottom * fy


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--num", type=int, default=1000)
  p.add_argument("--size", type=int, default=99)
  args = p.parse_args(argv)
  rng = np.random.default_rng(0)
  image = rng.integers(0, 255, (480, 640, 3), np.uint8)
  side = rng.uniform(32, 400, args.num)
  regions = np.stack([rng.uniform(0, 200, args.num), rng.uniform(0, 80, args.num), side, side], 1)
  preprocess.crop_and_resize(image, regions[:10], args.size)
  t0 = time.perf_counter()
  ref = preprocess.crop_and_resize(image, regions, args.size)
  t_cv2 = time.perf_counter() - t0
  fn = jax.jit(gather_crops, static_argnums=2)
  img, reg = jnp.asarray(image), jnp.asarray(regions, jnp.float32)
  fn(img, reg, args.size).block_until_ready()
  t0 = time.perf_counter()
  out = fn(img, reg, args.size).block_until_ready()
  t_jax = time.perf_counter() - t0
  print(f"OpenCV warpAffine loop: {t_cv2 / args.num * 1e6:.0f} us/crop")
  print(
    f"jitted gather:          {t_jax / args.num * 1e6:.0f} us/crop "
    f"(max |difference| {np.abs(np.asarray(out) - ref).max():.1f} grey levels)"
  )


if __name__ == "__main__":
  main()
