r"""Per-stage latency of the HyperFace pipeline on a 640x480 image and images/s on 16.

  PYTHONPATH=. .venv/bin/python bench/pipeline_latency.py --workdir=runs/demo \
      --learned_workdir=runs/e_fast_hf [--generators=learned,selective_search] \
      [--set proposals.selective_search.max_proposals=500 ...] [--output=FILE.json]

The images are synth_faces scenes rendered at 480x480 and pasted into 640x480 canvases
(faces of 80-330 px). For each proposal generator: one warm-up call (compilation), then
`--repeats` calls on one image (median seconds per stage: proposals, network, irp, lnms),
then one call on a batch of 16 images (images/s). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from hyperface_jax.data import render
from hyperface_jax.inference import analyzer as analyzer_lib
from hyperface_jax.inference import config as config_lib


def test_images(n, seed=0):
  """n uint8 640x480 RGB images, each a 480 px scene beside a slice of another."""
  images = []
  cfg = render.SceneConfig(image_size=480)
  for i in range(n):
    a = render.render_scene(np.random.default_rng([seed, i, 0]), cfg)["image"]
    b = render.render_scene(np.random.default_rng([seed, i, 1]), cfg)["image"]
    canvas = np.concatenate([a, b[:, :160]], axis=1)
    images.append(np.ascontiguousarray(canvas))
  return images


def measure(an, images, repeats):
  an(images[:1])  # compile
  stages = {s: [] for s in analyzer_lib.STAGES}
  proposals = []
  for _ in range(repeats):
    an(images[:1])
    for s in stages:
      stages[s].append(an.timings[s])
    proposals.append(an.timings["num_proposals"])
  t0 = time.perf_counter()
  an(images)
  batch_seconds = time.perf_counter() - t0
  row = {f"latency/{s}_s": float(np.median(v)) for s, v in stages.items()}
  row["latency/total_s"] = sum(row[f"latency/{s}_s"] for s in analyzer_lib.STAGES)
  row["proposals_per_image"] = float(np.median(proposals))
  row["batch16/images_per_s"] = len(images) / batch_seconds
  row["batch16/proposals_per_image"] = an.timings["num_proposals"] / len(images)
  return row


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--learned_workdir", default="")
  p.add_argument("--generators", default="learned,selective_search")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  p.add_argument("--output", default="")
  args = p.parse_args(argv)
  overrides = config_lib.parse_overrides(args.set)
  if args.learned_workdir:
    overrides["proposals.learned.workdir"] = args.learned_workdir
  images = test_images(args.batch)
  base = analyzer_lib.FaceAnalyzer.from_workdir(args.workdir, **overrides)
  rows = {}
  for gen in args.generators.split(","):
    an = analyzer_lib.FaceAnalyzer(base.network, base.config, **{"proposals.name": gen})
    rows[gen] = measure(an, images, args.repeats)
    print(gen, json.dumps(rows[gen]), flush=True)
  print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs\n")
  print(
    "| proposals | proposals/img | proposals s | network s | IRP s | L-NMS s | total s "
    "(640x480) | images/s (batch of 16) |\n|---|---|---|---|---|---|---|---|"
  )
  for gen, r in rows.items():
    print(
      f"| {gen} | {r['proposals_per_image']:.0f} | {r['latency/proposals_s']:.3f} | "
      f"{r['latency/network_s']:.3f} | {r['latency/irp_s']:.3f} | "
      f"{r['latency/lnms_s']:.3f} | {r['latency/total_s']:.3f} | "
      f"{r['batch16/images_per_s']:.3f} |"
    )
  if args.output:
    tmp = args.output + ".tmp"
    with open(tmp, "w") as f:
      json.dump({"command": " ".join(sys.argv), "rows": rows}, f, indent=1, sort_keys=True)
    os.replace(tmp, args.output)


if __name__ == "__main__":
  main()
