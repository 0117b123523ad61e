r"""TPAMI'16 two-stage protocol (docs/papers.md 2.2): does the 5-point + attribute
pre-training help the 68-point fine-tune, at equal steps?

  PYTHONPATH=. JAX_DEFAULT_PRNG_IMPL=rbg .venv/bin/python bench/tcdcn_finetune.py \
      --workdir=/tmp/tcdcn_finetune --out=bench/tcdcn_finetune.md

For each seed, four runs on synth_face_crops (configs/tcdcn_tpami16.py):
  pre-train      `:cpu`, `--pre_steps` steps of landmarks5 + the seven synthetic attributes;
  fine-tune      `:finetune68_cpu` from it, `--ft_steps` steps: backbone loaded through
                 `config.model_init`, pre-training heads dropped, the 68-point head
                 initialised to the training mean shape (model_load.head_init);
  scratch, equal fine-tune steps
                 the same `:finetune68_cpu` recipe (lr, schedule, steps) with no model_init:
                 random backbone and head;
  scratch, equal total steps
                 from random, `--pre_steps + --ft_steps` steps at the pre-training lr: as
                 many optimiser steps (and 68-point examples) as pre-training and
                 fine-tuning together, so a gain of the fine-tune is not just more steps.
The seed changes the initialisation and data order of every stage (the fine-tune of seed k
starts from the pre-training of seed k). Columns: the `tcdcn_regions` test protocol on 300
test crops (NME by inter-ocular distance, failure rate at 10 %, NME by box side), and the
mean-shape baseline. Prints and writes a markdown table (mean +- std over seeds).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import logging  # noqa: E402

from bench import study_lib  # noqa: E402
from configs import tcdcn_tpami16  # noqa: E402

KEY = "landmarks68"
ARMS = (
  "fine-tune from the 5-point run",
  "scratch, equal fine-tune steps",
  "scratch, equal total steps",
)


def pretrain_config(seed, args):
  c = tcdcn_tpami16.get_config("cpu")
  return _common(c, seed, args.pre_steps, args)


def finetune_config(arm, seed, pretrained, args):
  c = tcdcn_tpami16.get_config("finetune68_cpu")
  c.model_init = pretrained if arm == ARMS[0] else ""
  steps = args.ft_steps
  if arm == ARMS[2]:
    steps = args.pre_steps + args.ft_steps
    c.lr = tcdcn_tpami16.get_config("cpu").lr  # a from-scratch run trains at the pre-training lr
  return _common(c, seed, steps, args)


def _common(c, seed, steps, args):
  """The configs' own warm-up; one checkpoint at the end."""
  return study_lib.shorten(
    c, seed=seed, steps=steps, warmup=c.schedule.warmup_steps, data_dir=args.data_dir
  )


def summarize(results, rows):
  del rows
  return {
    "nme": results[f"{KEY}/nme_interocular"],
    "fail": results[f"{KEY}/failure_rate_0.1"],
    "nme_box": results[f"{KEY}/nme_box"],
    "base_nme": results[f"baseline/{KEY}/nme_interocular"],
    "base_box": results[f"baseline/{KEY}/nme_box"],
    "steps": results["step"],
  }


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", default="/tmp/tcdcn_finetune")
  p.add_argument("--out", default="bench/tcdcn_finetune.md")
  p.add_argument("--data_dir", default="", help="TFDS data_dir (default: the config's)")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--pre_steps", type=int, default=2000, help=":cpu pre-training steps")
  p.add_argument("--ft_steps", type=int, default=1500, help=":finetune68_cpu steps")
  args = p.parse_args()
  logging.set_verbosity(logging.WARNING)
  study_lib.cache_stores()
  study_lib.skip_report()
  t0 = time.time()
  arms = {a: [] for a in ARMS}
  for s in range(args.seeds):
    pre_dir = os.path.join(args.workdir, "pretrain", f"seed{s}")
    study_lib.train_once(pretrain_config(s, args), pre_dir)
    for i, arm in enumerate(ARMS):
      workdir = os.path.join(args.workdir, f"arm{i}", f"seed{s}")
      results, rows = study_lib.train_once(finetune_config(arm, s, pre_dir, args), workdir)
      arms[arm].append(summarize(results, rows))
  base = arms[ARMS[0]][0]
  text = [
    "## TCDCN 68-point fine-tune vs training from scratch (bench/tcdcn_finetune.py)",
    "",
    "Command: `PYTHONPATH=. JAX_DEFAULT_PRNG_IMPL=rbg .venv/bin/python bench/tcdcn_finetune.py "
    f"--seeds={args.seeds} --pre_steps={args.pre_steps} --ft_steps={args.ft_steps}`; "
    f"{(time.time() - t0) / 60:.1f} min of this invocation (finished runs are reused) on a "
    "shared 2-core CPU.",
    f"Mean +- std over {args.seeds} seeds; 300 synth_face_crops test crops; mean-shape "
    f"baseline NME (inter-ocular) {base['base_nme']:.4f}, NME (box) {base['base_box']:.4f}.",
    "",
    "| run | steps | NME (inter-ocular) | failure rate @10 % | NME (box) |",
    "|---|---|---|---|---|",
  ]
  for arm, runs in arms.items():
    steps = runs[0]["steps"]
    if arm == ARMS[0]:
      steps = f"{args.pre_steps} pre-training + {steps}"
    text.append(
      f"| {arm} (n={len(runs)}) | {steps} | "
      + " | ".join(
        [
          study_lib.mean_std([r["nme"] for r in runs]),
          study_lib.mean_std([r["fail"] for r in runs], "{:.3f}"),
          study_lib.mean_std([r["nme_box"] for r in runs]),
        ]
      )
      + " |"
    )
  study_lib.write_markdown(args.out, text + [""])


if __name__ == "__main__":
  main()
