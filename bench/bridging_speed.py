r"""Where to compute the bridging descriptor h (docs/papers.md 3.3; docs/social.md).

  PYTHONPATH=. .venv/bin/python bench/bridging_speed.py [--batch=64 --size=48 --repeats=20]

Times, per batch of face crops, (a) the jitted in-model computation (models/hog.py: HOG
of the batch + distances to 210 templates, what models/social.py `Bridging` runs) and (b)
the input-pipeline alternative: OpenCV's HOGDescriptor (C++) on each crop on the host,
then the distances in NumPy. Prints milliseconds per batch (median of the repeats).
"""

from __future__ import annotations

import argparse
import time

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from hyperface_jax.models import hog as hog_lib


def _median_ms(fn, repeats):
  fn()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return 1000 * float(np.median(times))


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--size", type=int, default=48)
  p.add_argument("--repeats", type=int, default=20)
  args = p.parse_args()
  rng = np.random.default_rng(0)
  crops = rng.integers(0, 256, (args.batch, args.size, args.size, 3), np.uint8)
  dim = hog_lib.hog_dim(args.size, args.size, 9, 8, 2)
  templates = rng.random((210, dim)).astype(np.float32)

  @jax.jit
  def in_model(x, t):
    grey = jnp.mean(x.astype(jnp.float32) / 255 - 0.5, -1)
    return hog_lib.template_distances(hog_lib.hog(grey), t)

  x, t = jnp.asarray(crops), jnp.asarray(templates)
  jitted = _median_ms(lambda: jax.block_until_ready(in_model(x, t)), args.repeats)
  s = args.size - args.size % 8
  desc = cv2.HOGDescriptor((s, s), (16, 16), (8, 8), (8, 8), 9)

  def pipeline():
    feats = np.stack([desc.compute(cv2.cvtColor(c[:s, :s], cv2.COLOR_RGB2GRAY)) for c in crops])
    return np.sqrt(((feats[:, None, :] - templates[None]) ** 2).sum(-1))

  host = _median_ms(pipeline, args.repeats)
  print(f"batch {args.batch} x {args.size} px, HOG {dim} values, 210 templates")
  print(f"| where | ms per batch |\n|---|---|\n| jitted, in the model | {jitted:.2f} |")
  print(f"| input pipeline (OpenCV HOG per crop + NumPy distances) | {host:.2f} |")


if __name__ == "__main__":
  main()
