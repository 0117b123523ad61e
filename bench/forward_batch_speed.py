r"""Milliseconds of a run's jitted per-crop network forward at each batch size (CPU cache).

  PYTHONPATH=. .venv/bin/python bench/forward_batch_speed.py --workdir=runs/demo \
      [--batch_sizes=8,16,24,32,40,48,56,64,128] [--repeats=7]

The network of `inference/batched.py` (the analyzer's, float32, XLA convolutions) on zero
crops of the run's input size, median of `--repeats` calls after a compiling one, printed
as ms per call and per crop: what inference/config.py's `batch_size` default (32) was chosen
from (docs/inference.md latency).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from hyperface_jax.inference import analyzer as analyzer_lib


def forward_ms(net, batch: int, repeats: int) -> float:
  x = np.zeros((batch, net.input_size, net.input_size, 3), np.float32)
  jax.block_until_ready(net._forward(net.variables, x))  # pylint: disable=protected-access
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(net._forward(net.variables, x))  # pylint: disable=protected-access
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--batch_sizes", default="8,16,24,32,40,48,56,64,128")
  p.add_argument("--repeats", type=int, default=7)
  args = p.parse_args(argv)
  net = analyzer_lib.FaceAnalyzer.from_workdir(args.workdir).network
  print(f"{args.workdir}: {net.input_size} px crops\n")
  print("| batch | ms per call | ms per crop |\n|---|---|---|")
  for b in (int(v) for v in args.batch_sizes.split(",")):
    ms = forward_ms(net, b, args.repeats)
    print(f"| {b} | {ms:.1f} | {ms / b:.2f} |")


if __name__ == "__main__":
  main()
