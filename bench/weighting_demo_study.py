r"""Task weighting schemes on the HyperFace demo recipe (issue: the TCDCN study's weighting
comparison repeated on HyperFace, shortened).

  PYTHONPATH=. JAX_DEFAULT_PRNG_IMPL=rbg .venv/bin/python bench/weighting_demo_study.py \
      --workdir=/tmp/weighting_demo --out=bench/weighting_demo_study.md

configs/demo.py (HyperFace-AlexNet width 0.5 + BatchNorm, 99 px, five tasks: detection,
landmarks, visibility, pose, gender; its static weights 2 / 25 / 1 / 5 / 4) with
`config.weighting.name` swapped for each scheme of hyperface_jax/weighting/ at its
documented defaults, several seeds each. Shortened for a shared 2-core CPU: `--steps`
(default 300) steps of `--batch` (default 32) instead of 1600 of 64, validation every
`--eval_every` steps (default 50: six evaluations, the minimum tcdcn_early_stop needs for
one check, window k = 5), warm-up 10 % of the steps. These are short runs: the comparison
is about how fast each scheme gets the five tasks going, not their converged accuracy.

Columns: the `hyperface_regions` test protocol (detection AP on the test regions, landmark
NME by face box, visibility accuracy, mean pose MAE in degrees, gender accuracy), the mean
over the five tasks of the error relative to static (each task's error: 1 - AP, NME,
1 - accuracy, MAE; < 1 is better than static on average), the median step time and, for
tcdcn_early_stop, the step each task stopped at. Prints and writes a markdown table (mean
+- std over seeds). Runs are resumable (bench/study_lib.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import logging  # noqa: E402

from bench import study_lib  # noqa: E402
from configs import demo  # noqa: E402

SCHEMES = study_lib.WEIGHTING_SCHEMES
# (results.json key, column title, error of the value: lower is better)
METRICS = (
  ("detection/ap", "detection AP", lambda v: 1.0 - v),
  ("landmarks/nme", "landmark NME", lambda v: v),
  ("visibility/accuracy", "visibility acc.", lambda v: 1.0 - v),
  ("pose/mae_mean_deg", "pose MAE (deg)", lambda v: v),
  ("gender/accuracy", "gender acc.", lambda v: 1.0 - v),
)


def make_config(scheme, seed, args):
  c = demo.get_config()
  c.weighting.name = scheme
  study_lib.shorten(
    c,
    seed=seed,
    steps=args.steps,
    warmup=max(1, args.steps // 10),
    data_dir=args.data_dir,
    batch=args.batch,
    eval_every=args.eval_every,
  )
  return c


def summarize(batch):
  def run_summary(results, rows):
    out = {key: results[key] for key, _, _ in METRICS}
    out["step_time"] = study_lib.step_time(rows, batch)
    out["stopped"] = study_lib.stopped_steps(rows)
    return out

  return run_summary


def relative_error(run, static_runs):
  """Mean over tasks of this run's error / the mean static error of that task."""
  ratios = []
  for key, _, err in METRICS:
    ref = np.mean([err(r[key]) for r in static_runs])
    ratios.append(err(run[key]) / max(ref, 1e-12))
  return float(np.mean(ratios))


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", default="/tmp/weighting_demo")
  p.add_argument("--out", default="bench/weighting_demo_study.md")
  p.add_argument("--data_dir", default="", help="TFDS data_dir (default: the config's)")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--eval_every", type=int, default=50)
  p.add_argument("--schemes", default=",".join(SCHEMES))
  args = p.parse_args()
  logging.set_verbosity(logging.WARNING)
  study_lib.cache_stores()
  study_lib.skip_report()
  t0 = time.time()
  groups = {}
  for scheme in args.schemes.split(","):
    print(f"weighting: {scheme}", flush=True)
    groups[scheme] = study_lib.seeded_runs(
      os.path.join(args.workdir, scheme),
      args.seeds,
      lambda s, scheme=scheme: make_config(scheme, s, args),
      summarize(args.batch),
    )
  static = groups.get("static") or next(iter(groups.values()))
  head = " | ".join(title for _, title, _ in METRICS)
  text = [
    "## Task weighting on the HyperFace demo recipe (bench/weighting_demo_study.py)",
    "",
    "Command: `PYTHONPATH=. JAX_DEFAULT_PRNG_IMPL=rbg .venv/bin/python "
    f"bench/weighting_demo_study.py --seeds={args.seeds} --steps={args.steps} "
    f"--batch={args.batch} --eval_every={args.eval_every}`; "
    f"{(time.time() - t0) / 60:.1f} min of this invocation (finished runs are reused) on a "
    "shared 2-core CPU.",
    f"Mean +- std over {args.seeds} seeds; test regions of the synth_faces test scenes.",
    "",
    f"| scheme | {head} | error relative to static | step time (ms) | stopped at (step) |",
    "|---" * (len(METRICS) + 4) + "|",
  ]
  for scheme, runs in groups.items():
    cells = [f"{scheme} (n={len(runs)})"]
    for key, _, _ in METRICS:
      fmt = "{:.1f}" if key.startswith("pose") else "{:.3f}"
      cells.append(study_lib.mean_std([r[key] for r in runs], fmt))
    cells.append(study_lib.mean_std([relative_error(r, static) for r in runs], "{:.2f}"))
    cells.append(study_lib.mean_std([1000 * r["step_time"] for r in runs], "{:.0f}"))
    stops = {}
    for r in runs:
      for t, s in r["stopped"].items():
        stops.setdefault(t, []).append("never" if int(s) < 0 else str(int(s)))
    cells.append("; ".join(f"{t} {'/'.join(v)}" for t, v in sorted(stops.items())) or "-")
    text.append("| " + " | ".join(cells) + " |")
  study_lib.write_markdown(args.out, text + [""])


if __name__ == "__main__":
  main()
