r"""The AP-against-latency curve of full-image pipeline settings, as a plot and a table.

  PYTHONPATH=. .venv/bin/python bench/pipeline_latency.py --workdir=runs/demo \
      --photo=/tmp/photos/astronaut.png --repeats=5 --batch=8 --output=LAT.json \
      --variant 'default (learned 50):' --variant 'learned 20: proposals.learned.max_proposals=20' ...
  PYTHONPATH=. .venv/bin/python bench/full_image_eval.py --workdir=runs/demo --num_scenes=50 \
      --output=AP.json --variant 'default (learned 50):' --variant 'learned 20: ...' ...
  PYTHONPATH=. .venv/bin/python bench/latency_ap_plot.py --latency=LAT.json --ap=AP.json \
      --output=docs/latency_ap.png

Joins the two runs on the variant label (the same `--variant` texts in both), and draws,
per variant, the detection AP@0.5 on the synth_faces test scenes against the median wall
milliseconds per image of the latency run's `--image` (the 640x480 synthetic image by
default), with the 150 ms target as a line. Prints the joined rows as a markdown table.
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def joined_rows(latency: dict, ap: dict, image: str) -> list:
  """[(label, wall ms, CPU ms, AP, recall, FP per image)] of the labels in both runs."""
  rows = []
  for label, lat in latency["rows"].items():
    if label not in ap["results"]:
      continue
    r, a = lat[image], ap["results"][label]
    rows.append(
      (
        label,
        1e3 * r["total_s"],
        1e3 * r["total_cpu_s"],
        a["detection/ap"],
        a["detection/recall"],
        a["detection/false_positives_per_image"],
      )
    )
  if not rows:
    raise SystemExit("no variant label is in both files: run both with the same --variant texts")
  return sorted(rows, key=lambda row: row[1])


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--latency", required=True, help="bench/pipeline_latency.py --output JSON")
  p.add_argument("--ap", required=True, help="bench/full_image_eval.py --output JSON")
  p.add_argument("--image", default="synthetic", help="which latency image (photo stem)")
  p.add_argument("--target_ms", type=float, default=150.0)
  p.add_argument("--output", required=True, help="the PNG")
  args = p.parse_args(argv)
  with open(args.latency) as f:
    latency = json.load(f)
  with open(args.ap) as f:
    ap = json.load(f)
  rows = joined_rows(latency, ap, args.image)
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  ax.plot([r[1] for r in rows], [r[3] for r in rows], "o-", color="tab:blue")
  for label, ms, _, a, _, _ in rows:
    ax.annotate(label, (ms, a), textcoords="offset points", xytext=(6, -10), fontsize=8)
  ax.axvline(
    args.target_ms, color="tab:red", ls="--", lw=1, label=f"{args.target_ms:.0f} ms target"
  )
  ax.set_xscale("log")
  ax.set_xlabel(f"wall ms per image ({args.image}, 2-core CPU, median)")
  ax.set_ylabel("detection AP@0.5 (synth_faces test scenes)")
  ax.set_title("Full-image pipeline: AP against latency")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(loc="lower right")
  fig.tight_layout()
  fig.savefig(args.output, dpi=120)
  print(f"wrote {args.output}\n")
  print("| pipeline | wall ms (CPU ms) | AP@0.5 | recall | FP / image |\n|---|---|---|---|---|")
  for label, ms, cpu, a, rec, fp in rows:
    print(f"| {label} | {ms:.0f} ({cpu:.0f}) | {a:.3f} | {rec:.3f} | {fp:.2f} |")


if __name__ == "__main__":
  main()
