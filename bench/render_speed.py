"""Speed of the synthetic renderer and of a full TFDS build; prints a markdown table.

PYTHONPATH=. python bench/render_speed.py [--n 200] [--build 200]
"""

import argparse
import tempfile
import time

import numpy as np

from hyperface_jax.data import prepare, render


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--n", type=int, default=200)
  parser.add_argument("--build", type=int, default=200)
  args = parser.parse_args()
  rows = []
  t = time.time()
  for i in range(args.n):
    render.render_scene(np.random.default_rng([0, i]))
  rows.append(("render_scene 160x160", args.n, time.time() - t))
  t = time.time()
  for i in range(args.n):
    render.render_face_crop(np.random.default_rng([0, i]))
  rows.append(("render_face_crop 64x64", args.n, time.time() - t))
  with tempfile.TemporaryDirectory() as d:
    n_val = max(1, args.build // 10)
    _, sec = prepare.prepare(
      "synth_faces", d, train_size=args.build, validation_size=n_val, test_size=n_val, seed=0
    )
    rows.append(("TFDS build synth_faces (incl. encoding)", args.build + 2 * n_val, sec))
  print("| what | examples | seconds | examples/s |\n|---|---|---|---|")
  for name, n, sec in rows:
    print(f"| {name} | {n} | {sec:.1f} | {n / sec:.1f} |")


if __name__ == "__main__":
  main()
