r"""Expected training throughput per accelerator from FLOP counts, and the measured one.

  PYTHONPATH=. .venv/bin/python bench/accelerator_expect.py \
      [--configs=hyperface_alexnet,hyperface_resnet101] [--mfu=0.4] [--measured=rows.json]
  PYTHONPATH=. .venv/bin/python bench/accelerator_expect.py \
      --gflops=hyperface_alexnet=6.102,hyperface_resnet101=46.947   # README's counts

For each config, the train-step GFLOPs per image come from XLA's cost analysis of the
real data-parallel train step (bench/model_flops.py `measure` with no timed steps, batch
--count_batch, on whatever machine runs this: the count does not depend on the backend),
from --gflops, or from --measured (rows written by `bench/model_flops.py --json`).
Expected images/s per chip = peak bf16 dense FLOP/s x MFU / train FLOPs per image. With
--measured, a second table compares the measured rate to the expectation for the device
kind that ran it; with --pipeline (bench/pipeline_latency.py --output), one summary table
of both (bench/accelerator_check.sh).

Peaks (dense bf16 tensor FLOP/s per chip, vendors' data sheets; no sparsity) are in PEAKS;
`peak_tflops(device_kind)` maps jax's `device.device_kind` to them (bench/model_flops.py
prints MFU with it). The 40 % default MFU is an assumption, typical of a well-fed
convolutional network step, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

# (name, substrings of jax's device_kind (lower case), peak bf16 dense TFLOP/s per chip).
# The first match wins: H200 before H100, v5 lite (v5e) before v5 (v5p).
PEAKS = (
  ("H200", ("h200",), 989.0),
  ("H100 PCIe", ("h100 pcie",), 756.0),
  ("H100 SXM", ("h100",), 989.0),
  ("A100", ("a100",), 312.0),
  ("TPU v4", ("tpu v4",), 275.0),
  ("TPU v5e", ("tpu v5 lite", "tpu v5e"), 197.0),
  ("TPU v5p", ("tpu v5p", "tpu v5"), 459.0),
  ("TPU v6e", ("tpu v6 lite", "tpu v6e"), 918.0),
)
TABLE = ("H100 SXM", "H200", "A100", "TPU v4", "TPU v5e")  # the rows of the expected table


def peak_tflops(device_kind: str, dtype: str = "bfloat16") -> Optional[float]:
  """Peak bf16 dense TFLOP/s of one chip of `device_kind` (None: unknown, e.g. a CPU).
  MFU is quoted against the bf16 peak whatever the step's dtype."""
  del dtype
  kind = device_kind.lower()
  for _, keys, peak in PEAKS:
    if any(k in kind for k in keys):
      return peak
  return None


def _peak_by_name(name: str) -> float:
  return next(p for n, _, p in PEAKS if n == name)


def expected_table(gflops: dict, mfu: float) -> str:
  """Markdown: expected train images/s per chip of each config on each TABLE accelerator."""
  names = list(gflops)
  lines = [
    "| accelerator | peak bf16 TFLOP/s | "
    + " | ".join(f"{n} images/s/chip ({gflops[n]:.2f} GFLOPs/img)" for n in names)
    + " |",
    "|---|---|" + "---|" * len(names),
  ]
  for acc in TABLE:
    peak = _peak_by_name(acc)
    cells = " | ".join(f"{peak * 1e12 * mfu / (gflops[n] * 1e9):,.0f}" for n in names)
    lines.append(f"| {acc} | {peak:.0f} | {cells} |")
  return "\n".join(lines)


def measured_table(rows, mfu: float) -> str:
  """Markdown: measured images/s against the expectation of the device kind that ran it."""
  lines = [
    "| config | dtype | devices | batch | GFLOPs/img | measured images/s | MFU "
    f"| expected images/s at {100 * mfu:.0f} % MFU | measured / expected |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    peak = peak_tflops(r["device_kind"])
    flops_rate = r["ips"] * r["train"] * 1e9
    if peak:
      expected = r["devices"] * peak * 1e12 * mfu / (r["train"] * 1e9)
      cells = (
        f"{100 * flops_rate / (r['devices'] * peak * 1e12):.1f} % | {expected:,.0f} | "
        f"{r['ips'] / expected:.2f}"
      )
    else:
      cells = "n/a (no peak known) | n/a | n/a"
    lines.append(
      f"| {r['config']} | {r['dtype']} | {r['devices']} x {r['device_kind']} | {r['batch']} | "
      f"{r['train']:.3f} | {r['ips']:,.1f} | {cells} |"
    )
  return "\n".join(lines)


def summary_table(rows, pipeline: dict, mfu: float) -> str:
  """Markdown: the accelerator check in one table (bench/accelerator_check.sh): train
  rows of bench/model_flops.py --json, pipeline rows of bench/pipeline_latency.py --output."""
  lines = ["| check | setting | result |", "|---|---|---|"]
  for r in rows:
    peak = peak_tflops(r["device_kind"])
    result = f"{r['ips']:,.1f} train images/s"
    if peak:
      achieved = r["ips"] * r["train"] * 1e9 / (r["devices"] * peak * 1e12)
      expected = r["devices"] * peak * 1e12 * mfu / (r["train"] * 1e9)
      result += f", MFU {100 * achieved:.1f} % (expected {expected:,.0f} at {100 * mfu:.0f} %)"
    lines.append(
      f"| train {r['config']} | {r['dtype']}, batch {r['batch']}, {r['devices']} x "
      f"{r['device_kind']}, {r['train']:.2f} GFLOPs/img | {result} |"
    )
  for label, row in pipeline.get("rows", {}).items():
    for image, r in row.items():
      if not isinstance(r, dict):  # the row's batch figures
        continue
      ms = lambda stage: f"{1e3 * r[f'{stage}_s']:.0f}"  # noqa: B023
      stages = ", ".join(
        f"{s} {ms(s)}"
        for s in ("proposals", "network", "irp", "lnms", "box_refine")
        if f"{s}_s" in r
      )
      lines.append(
        f"| pipeline: {label} | {image} image, {row.get('proposals', '?')} proposals, "
        f"{r['proposals_per_image']:.0f}/img | latency {ms('total')} ms ({stages} ms); "
        f"{row['batch/images_per_s']:.2f} images/s in one batch |"
      )
  return "\n".join(lines)


def count_gflops(configs, batch: int) -> dict:
  """Train-step GFLOPs per image of each config (XLA cost analysis, one device)."""
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import model_flops  # pylint: disable=g-import-not-at-top

  return {name: model_flops.measure(name, 0, batch, "bfloat16", 1)["train"] for name in configs}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--configs", default="hyperface_alexnet,hyperface_resnet101")
  p.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOPs utilisation")
  p.add_argument("--count_batch", type=int, default=2, help="batch of the FLOP count")
  p.add_argument("--measured", default="", help="rows of bench/model_flops.py --json")
  p.add_argument("--pipeline", default="", help="bench/pipeline_latency.py --output (summary)")
  p.add_argument(
    "--gflops",
    default="",
    help="NAME=GFLOPS,... train-step GFLOPs per image known already (no compilation)",
  )
  args = p.parse_args(argv)
  rows = []
  if args.measured:
    with open(args.measured) as f:
      rows = json.load(f)
    gflops = {}
    for r in rows:
      gflops.setdefault(r["config"], r["train"])
  elif args.gflops:
    gflops = {k: float(v) for k, v in (item.split("=") for item in args.gflops.split(","))}
  else:
    gflops = count_gflops(args.configs.split(","), args.count_batch)
  print(f"Expected train throughput at {100 * args.mfu:.0f} % MFU (bf16):\n")
  print(expected_table(gflops, args.mfu))
  if rows:
    print("\nMeasured:\n")
    print(measured_table(rows, args.mfu))
  if args.pipeline:
    with open(args.pipeline) as f:
      pipeline = json.load(f)
    print("\nAccelerator check:\n")
    print(summary_table(rows, pipeline, args.mfu))


if __name__ == "__main__":
  main()
