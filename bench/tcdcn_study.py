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
(`_cache_stores`: a store is a pure function of its arguments and is not modified), and
the runner's report step is skipped (`_skip_report`): both only save time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import logging  # noqa: E402

from configs import tcdcn_eccv14  # noqa: E402
from hyperface_jax import config_lib, train  # noqa: E402
from hyperface_jax.data import inputs  # noqa: E402
from hyperface_jax.metric_writer import read_metrics  # noqa: E402

MAIN = "landmarks5"
AUX = ("pose_class", "gender", "eyeglasses", "smiling")
TASK_SETS = {"landmarks5 alone": (MAIN,)}
TASK_SETS.update({f"+ {a}": (MAIN, a) for a in AUX})
TASK_SETS["all five"] = (MAIN,) + AUX
SCHEMES = (
  "static",
  "tcdcn_early_stop",
  "tcdcn_dynamic",
  "uncertainty",
  "gradnorm",
  "dwa",
  "pcgrad",
  "famo",
)


def _cache_stores():
  """Reads each TFDS split once for the whole study (inputs._store memoized by its
  arguments). Falls back to no cache if the private helper is renamed."""
  original = getattr(inputs, "_store", None)
  if original is None:
    return
  cache = {}

  def cached(src, split, max_examples, fields):
    key = json.dumps(
      [
        src["name"],
        src["data_dir"],
        dict(src.get("builder_config") or {}),
        split,
        max_examples,
        sorted(fields),
      ],
      sort_keys=True,
      default=str,
    )
    if key not in cache:
      cache[key] = original(src, split, max_examples, fields)
    return cache[key]

  inputs._store = cached


def _skip_report():
  """No report/ per run (matplotlib plots take seconds; results.json is still written)."""
  from hyperface_jax.evaluation import report  # pylint: disable=g-import-not-at-top

  report.write_report = lambda *a, **k: []


def make_config(task_names, scheme, seed, args):
  """configs/tcdcn_eccv14.py:cpu with the study's overrides."""
  c = tcdcn_eccv14.get_config("cpu")
  c.model.tasks = tuple(task_names)
  c.tasks = tuple(task_names)
  c.weighting.weights = config_lib.tcdcn_weights(task_names)
  c.weighting.name = scheme
  c.seed = seed
  c.total_steps = args.steps
  c.batch_size = args.batch
  c.eval_every = args.eval_every
  c.log_every = args.eval_every
  c.checkpoint_every = args.steps
  c.keep_checkpoints = 1
  c.schedule.warmup_steps = min(100, args.steps // 10)
  c.report.num_crops = 0
  if args.data_dir:
    c.data.data_dir = args.data_dir
  return c


def run_one(workdir, task_names, scheme, seed, args):
  """Trains one run (unless finished) and returns its summary."""
  if not os.path.exists(os.path.join(workdir, "results.json")):
    t0 = time.time()
    with contextlib.redirect_stdout(io.StringIO()):  # the runner prints a results table
      train.train_and_evaluate(make_config(task_names, scheme, seed, args), workdir)
    print(f"  {workdir}: {time.time() - t0:.0f} s", flush=True)
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  rows = read_metrics(workdir)
  val = [(r["step"], r[f"val/loss/{MAIN}"]) for r in rows if f"val/loss/{MAIN}" in r]
  rates = [r["train/examples_per_sec"] for r in rows if "train/examples_per_sec" in r][1:]
  stopped = {}
  for r in rows:
    for k, v in r.items():
      if k.startswith("stopped_step/"):
        stopped[k[len("stopped_step/") :]] = v
  accs = [results[f"{a}/accuracy"] for a in AUX if f"{a}/accuracy" in results]
  return {
    "nme": results[f"{MAIN}/nme_interocular"],
    "fail": results[f"{MAIN}/failure_rate_0.1"],
    "nme_frontal": results.get(f"{MAIN}/nme_interocular/frontal", np.nan),
    "nme_box": results[f"{MAIN}/nme_box"],
    "aux_acc": float(np.mean(accs)) if accs else np.nan,
    "base_nme": results[f"baseline/{MAIN}/nme_interocular"],
    "base_fail": results[f"baseline/{MAIN}/failure_rate_0.1"],
    "val": val,
    "step_time": args.batch / float(np.median(rates)) if rates else np.nan,
    "stopped": stopped,
  }


def _ms(values, fmt="{:.4f}"):
  v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
  if v.size == 0:
    return "-"
  return (fmt + " +- " + fmt).format(v.mean(), v.std(ddof=1) if v.size > 1 else 0.0)


def reach_step(val, threshold):
  return next((s for s, v in val if v <= threshold), None)


def table(title, groups, threshold, with_stops=False):
  head = (
    "| runs | NME (inter-ocular) | failure rate @10 % | NME frontal | NME (box) | aux accuracy"
    f" | steps to val loss <= {threshold:.2e} | step time (ms) |"
  )
  lines = [f"### {title}", "", head + (" stopped at (step) |" if with_stops else "")]
  lines.append("|---" * (8 + with_stops) + "|")
  for name, runs in groups.items():
    reach = [reach_step(r["val"], threshold) for r in runs]
    got = [s for s in reach if s is not None]
    reach_s = (
      f"{np.mean(got):.0f} ({len(got)}/{len(runs)} reached)" if got else f"- (0/{len(runs)})"
    )
    cells = [
      f"{name} (n={len(runs)})",
      _ms([r["nme"] for r in runs]),
      _ms([r["fail"] for r in runs], "{:.3f}"),
      _ms([r["nme_frontal"] for r in runs]),
      _ms([r["nme_box"] for r in runs]),
      _ms([r["aux_acc"] for r in runs], "{:.3f}"),
      reach_s,
      _ms([1000 * r["step_time"] for r in runs], "{:.0f}"),
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
  _cache_stores()
  if not args.report:
    _skip_report()
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
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".tmp", "w") as f:
    f.write("\n".join(text))
  os.replace(args.out + ".tmp", args.out)
  print("\n".join(text))


if __name__ == "__main__":
  main()
