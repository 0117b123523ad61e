r"""The TCDCN study (docs/papers.md section 2): do auxiliary tasks help landmarks, and how do
task-weighting schemes compare? Runs configs/tcdcn_eccv14.py:cpu with overrides, several
seeds each, and writes a markdown table (mean +- std over seeds).

  PYTHONPATH=. JAX_DEFAULT_PRNG_IMPL=rbg .venv/bin/python bench/tcdcn_study.py \
      --workdir=/tmp/tcdcn_study --out=bench/tcdcn_study.md

Part "tasks" (the ECCV'14 claim, section 2.1): landmarks5 alone, landmarks5 + each
auxiliary task (pose_class, gender, eyeglasses, smiling), and all five; static weights
(landmarks5 100, auxiliary 1: config_lib.tcdcn_weights).
Part "weighting": all five tasks under static, tcdcn_early_stop, tcdcn_dynamic,
uncertainty, gradnorm, dwa, pcgrad, famo (hyperface_jax/weighting/, their documented
defaults; the TCDCN configs point their parameter regexes at models/tcdcn.py's names).
The "all, static" runs are shared by both parts.

Columns: the test-set TCDCN protocol of evaluator `tcdcn_regions` (inter-ocular NME, failure
rate at 10 %, NME of the frontal pose class, box-normalized NME), the mean accuracy of the
auxiliary tasks present, the first validation step whose landmark loss reaches a fixed
threshold (`--reach`: that multiple of the median final validation landmark loss of the
"all, static" runs; "-" when not reached), the median step time (batch / the logged
examples per second, excluding the first log: compilation), and for tcdcn_early_stop the
step each auxiliary task stopped at.

Size (documented, for a 2-core CPU shared with other jobs): synth_face_crops default build
(4000 / 300 / 300 crops), `--steps` 300 steps of batch 32 (16 faces x 2 jittered regions),
validation every 30 steps (tcdcn_early_stop needs k + 1 = 6 evaluations before its first
check), 3 seeds (the seed changes the initialisation and the data order; the dataset is
the same); no per-run report/ (`--report` draws it). The :cpu config trains 3000 steps of
64, 20x more examples: these are short, under-trained runs.

Each run is `train.train_and_evaluate` in this process (one JAX start-up), in
`--workdir/<part>/<name>/seed<k>`; a finished run (results.json present) is not re-run, so
an interrupted study resumes. The stores are read from TFDS once and shared between runs
(`study_lib.cache_stores`), and the runner's report step is skipped
(`study_lib.skip_report`): both only save time.
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
from configs import tcdcn_eccv14  # noqa: E402
from hyperface_jax import config_lib  # noqa: E402

MAIN = "landmarks5"
AUX = ("pose_class", "gender", "eyeglasses", "smiling")
TASK_SETS = {"landmarks5 alone": (MAIN,)}
TASK_SETS.update({f"+ {a}": (MAIN, a) for a in AUX})
TASK_SETS["all five"] = (MAIN,) + AUX
SCHEMES = study_lib.WEIGHTING_SCHEMES


def make_config(task_names, scheme, seed, args):
  """configs/tcdcn_eccv14.py:cpu with the study's overrides."""
  c = tcdcn_eccv14.get_config("cpu")
  c.model.tasks = tuple(task_names)
  c.tasks = tuple(task_names)
  c.weighting.weights = config_lib.tcdcn_weights(task_names)
  c.weighting.name = scheme
  study_lib.shorten(
    c,
    seed=seed,
    steps=args.steps,
    warmup=min(100, args.steps // 10),
    data_dir=args.data_dir,
    batch=args.batch,
    eval_every=args.eval_every,
  )
  return c


def run_one(workdir, task_names, scheme, seed, args):
  """Trains one run (unless finished) and returns its summary."""
  results, rows = study_lib.train_once(make_config(task_names, scheme, seed, args), workdir)
  accs = [results[f"{a}/accuracy"] for a in AUX if f"{a}/accuracy" in results]
  return {
    "nme": results[f"{MAIN}/nme_interocular"],
    "fail": results[f"{MAIN}/failure_rate_0.1"],
    "nme_frontal": results.get(f"{MAIN}/nme_interocular/frontal", np.nan),
    "nme_box": results[f"{MAIN}/nme_box"],
    "aux_acc": float(np.mean(accs)) if accs else np.nan,
    "base_nme": results[f"baseline/{MAIN}/nme_interocular"],
    "base_fail": results[f"baseline/{MAIN}/failure_rate_0.1"],
    "val": study_lib.curve(rows, f"val/loss/{MAIN}"),
    "step_time": study_lib.step_time(rows, args.batch),
    "stopped": study_lib.stopped_steps(rows),
  }


def table(title, groups, threshold, with_stops=False):
  head = (
    "| runs | NME (inter-ocular) | failure rate @10 % | NME frontal | NME (box) | aux accuracy"
    f" | steps to val loss <= {threshold:.2e} | step time (ms) |"
  )
  lines = [f"### {title}", "", head + (" stopped at (step) |" if with_stops else "")]
  lines.append("|---" * (8 + with_stops) + "|")
  for name, runs in groups.items():
    reach_s = study_lib.reach_cell([r["val"] for r in runs], threshold)
    cells = [
      f"{name} (n={len(runs)})",
      study_lib.mean_std([r["nme"] for r in runs]),
      study_lib.mean_std([r["fail"] for r in runs], "{:.3f}"),
      study_lib.mean_std([r["nme_frontal"] for r in runs]),
      study_lib.mean_std([r["nme_box"] for r in runs]),
      study_lib.mean_std([r["aux_acc"] for r in runs], "{:.3f}"),
      reach_s,
      study_lib.mean_std([1000 * r["step_time"] for r in runs], "{:.0f}"),
    ]
    if with_stops:
      stops = {}
      for r in runs:
        for t, s in r["stopped"].items():
          if t != MAIN:
            stops.setdefault(t, []).append("never" if int(s) < 0 else str(int(s)))
      cells.append("; ".join(f"{t} {'/'.join(v)}" for t, v in sorted(stops.items())) or "-")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", default="/tmp/tcdcn_study")
  p.add_argument("--out", default="bench/tcdcn_study.md")
  p.add_argument("--data_dir", default="", help="TFDS data_dir (default: the config's)")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--eval_every", type=int, default=30)
  p.add_argument("--reach", type=float, default=1.25)
  p.add_argument("--parts", default="tasks,weighting")
  p.add_argument("--schemes", default=",".join(SCHEMES), help="weighting schemes compared")
  p.add_argument(
    "--report",
    action="store_true",
    help="also draw each run's report/ (plots cost seconds per run; the study reads only "
    "results.json and metrics.jsonl)",
  )
  args = p.parse_args()
  logging.set_verbosity(logging.WARNING)
  study_lib.cache_stores()
  if not args.report:
    study_lib.skip_report()
  parts = args.parts.split(",")
  t_start = time.time()
  seeds = range(args.seeds)
  results = {}

  def runs(task_key, scheme):
    out = []
    for s in seeds:
      key = (task_key, scheme, s)
      if key not in results:
        tag = task_key.replace(" ", "_").replace("+", "plus")
        workdir = os.path.join(args.workdir, f"{tag}__{scheme}", f"seed{s}")
        results[key] = run_one(workdir, TASK_SETS[task_key], scheme, s, args)
      out.append(results[key])
    return out

  task_groups, scheme_groups = {}, {}
  if "tasks" in parts:
    for name in TASK_SETS:
      print(f"tasks: {name}", flush=True)
      task_groups[name] = runs(name, "static")
  if "weighting" in parts:
    for scheme in args.schemes.split(","):
      print(f"weighting: {scheme}", flush=True)
      scheme_groups[scheme] = runs("all five", scheme)
  ref = runs("all five", "static")
  threshold = args.reach * float(np.median([r["val"][-1][1] for r in ref]))
  base = ref[0]
  minutes = (time.time() - t_start) / 60
  text = [
    "## TCDCN study on synth_face_crops (bench/tcdcn_study.py)",
    "",
    f"Command: `PYTHONPATH=. JAX_DEFAULT_PRNG_IMPL=rbg .venv/bin/python bench/tcdcn_study.py "
    f"--seeds={args.seeds} --steps={args.steps} --batch={args.batch} "
    f"--eval_every={args.eval_every} --parts={args.parts}"
    + ("" if args.schemes == ",".join(SCHEMES) else f" --schemes={args.schemes}")
    + f"`; {len(results)} runs, "
    f"{minutes:.1f} min of this invocation (finished runs are reused) on a shared 2-core CPU.",
    f"Mean +- std over {args.seeds} seeds. Test set: 300 crops. Mean-shape baseline: "
    f"NME {base['base_nme']:.4f}, failure rate {base['base_fail']:.3f}. Reach threshold: "
    f"{args.reach} x the median final validation landmark loss of 'all five, static'.",
    "",
  ]
  if task_groups:
    text.append(table("Auxiliary tasks (static weights)", task_groups, threshold))
  if scheme_groups:
    text.append(table("Task weighting (all five tasks)", scheme_groups, threshold, True))
  study_lib.write_markdown(args.out, text)


if __name__ == "__main__":
  main()
