r"""Per-stage latency of the HyperFace pipeline on a 640x480 image, a photograph, and images/s.

  PYTHONPATH=. .venv/bin/python bench/pipeline_latency.py --workdir=runs/demo \
      [--photo=/tmp/photos/astronaut.png] [--repeats=7] [--batch=16] \
      [--variant 'old default: proposals.name=sliding_window min_bucket=256' ...] \
      [--set KEY=VALUE ...] [--output=FILE.json]

The synthetic image is a synth_faces scene rendered at 480x480 beside a 160 px slice of
another (640x480, faces of 80-330 px); `--photo` adds a real photograph (docs/predict.md
says how to get scikit-image's 512x512 astronaut offline). Each variant is the analyzer
with the `--set` settings plus its own (`LABEL: KEY=VALUE KEY=VALUE`; default: the
configured pipeline, and the sliding window in fixed 256-crop batches, the pipeline
before bucketed batches and learned default proposals), each with its own network. Per
image: one warm-up call (compilation) per variant, then `--repeats` rounds in which the
variants take turns, one call each, so that load from outside this process falls on all
of them alike (median wall seconds and median process CPU seconds per stage: proposals,
network, irp, lnms, box_refine; CPU time = all threads of this process, which on a
machine shared with other jobs is the part that does not depend on their load); then one
call on `--batch` synthetic images per variant (images/s). Prints markdown tables and
the load average (os.getloadavg) before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
from run_record import write_run_record  # bench/run_record.py

from hyperface_jax.data import render
from hyperface_jax.inference import analyzer as analyzer_lib
from hyperface_jax.inference import config as config_lib
from hyperface_jax.inference import image_io

DEFAULT_VARIANTS = (
  "configured pipeline:",
  "sliding window, fixed 256 batches (before): proposals.name=sliding_window min_bucket=256",
)


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


def parse_variant(text):
  """'LABEL: KEY=VALUE KEY=VALUE' -> (label, overrides); the label ends at the last colon."""
  label, sep, rest = text.rpartition(":")
  if not sep:
    raise ValueError(f"--variant needs 'LABEL: KEY=VALUE ...'; got {text!r}.")
  return label.strip(), config_lib.parse_overrides(rest.split())


def _medians(rows):
  out = {}
  for s in analyzer_lib.STAGES + ("total",):
    out[f"{s}_s"] = float(np.median([r[s] for r in rows]))
    out[f"{s}_cpu_s"] = float(np.median([r[f"{s}_cpu"] for r in rows]))
  out["proposals_per_image"] = float(np.median([r["num_proposals"] for r in rows]))
  return out


def measure_image(analyzers, image, repeats):
  """Per analyzer, median wall / CPU seconds per stage of `repeats` calls on one image
  (after a warm-up call each). The analyzers take turns call by call, so that a burst of
  load from outside this process falls on all of them alike."""
  timings = {label: [] for label in analyzers}
  for an in analyzers.values():
    an([image])  # compile
  for _ in range(repeats):
    for label, an in analyzers.items():
      an([image])
      timings[label].append(dict(an.timings))
  out = {label: _medians(t) for label, t in timings.items()}
  for label, an in analyzers.items():
    out[label]["faces"] = len(an([image])[0])
  return out


def measure(analyzers, images, photos, repeats):
  """Rows per analyzer: the 640x480 image, each photograph, and images/s on `images`."""
  rows = {label: {} for label in analyzers}
  for name, image in [("synthetic", images[0]), *photos.items()]:
    for label, r in measure_image(analyzers, image, repeats).items():
      rows[label][name] = r
  for an in analyzers.values():
    an(images)  # compiles any bucket the batch needs
  for label, an in analyzers.items():
    t0 = time.perf_counter()
    an(images)
    rows[label]["batch/images_per_s"] = len(images) / (time.perf_counter() - t0)
    rows[label]["batch/proposals_per_image"] = an.timings["num_proposals"] / len(images)
    rows[label]["proposals"] = an.config.proposals.name
  return rows


def markdown(rows):
  lines = [
    "| pipeline | image | proposals | proposals/img | proposals ms | network ms | IRP ms | "
    "L-NMS ms | refine ms | total ms (CPU ms) | faces | images/s (batch) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for label, row in rows.items():
    for image, r in row.items():
      if not isinstance(r, dict):
        continue
      ms = lambda k: f"{1e3 * r[k]:.0f}"  # noqa: B023
      lines.append(
        f"| {label} | {image} | {row['proposals']} | {r['proposals_per_image']:.0f} | "
        f"{ms('proposals_s')} | {ms('network_s')} | {ms('irp_s')} | {ms('lnms_s')} | "
        f"{ms('box_refine_s')} | "
        f"{ms('total_s')} ({ms('total_cpu_s')}) | {r['faces']} | "
        f"{row['batch/images_per_s']:.2f} |"
      )
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--photo", action="append", default=[], help="a photograph, repeatable")
  p.add_argument("--variant", action="append", default=[], metavar="'LABEL: KEY=VALUE ...'")
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  p.add_argument("--output", default="")
  args = p.parse_args(argv)
  overrides = config_lib.parse_overrides(args.set)
  images = test_images(args.batch)
  photos = {os.path.splitext(os.path.basename(f))[0]: image_io.read_image(f)[0] for f in args.photo}
  analyzers = {}
  for text in args.variant or DEFAULT_VARIANTS:
    label, extra = parse_variant(text)
    # Each variant its own network (batch settings are the network's).
    analyzers[label] = analyzer_lib.FaceAnalyzer.from_workdir(
      args.workdir, **{**overrides, **extra}
    )
  load_before = os.getloadavg()
  rows = measure(analyzers, images, photos, args.repeats)
  for label, row in rows.items():
    print(label, json.dumps(row), flush=True)
  load_after = os.getloadavg()
  print(
    f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
    f"load average (1, 5, 15 min) before {load_before}, after {load_after}\n"
  )
  print(markdown(rows))
  if args.output:
    write_run_record(
      args.output, load_average={"before": load_before, "after": load_after}, rows=rows
    )


if __name__ == "__main__":
  main()
