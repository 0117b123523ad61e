r"""Ablations of the social-relation system on synth_faces (docs/social.md, docs/papers.md 3).

  PYTHONPATH=. .venv/bin/python bench/social_ablation.py --seeds=0,1,2 \
      --output=runs/social_ablation        # writes ablation.md and runs.json there
  # or one process per seed, side by side, then the table of all three:
  for s in 0 1 2; do PYTHONPATH=. .venv/bin/python bench/social_ablation.py --seeds=$s \
      --output=runs/social_ablation/seed$s & done; wait
  PYTHONPATH=. .venv/bin/python bench/social_ablation.py --seeds=0,1,2 \
      --output=runs/social_ablation --collect=runs/social_ablation/seed0,...

Arms (each trained with `hyperface_jax.train.train_and_evaluate`, the one training loop,
from configs/social_attributes.py and configs/social_relation.py at a reduced size set by
the flags; every run in its own workdir under --output):

  full            attribute stage on the three heterogeneous sources with the bridging
                  layer, then the Siamese net with spatial cues, initialised from it
  no_bridging     both stages without the bridging layer (docs/papers.md 3.3)
  no_cues         the relation head without the spatial cues (3.2)
  scratch         the Siamese net from random weights, no attribute pre-training (3.1)
  single_dataset  attribute stage on one dataset only: the ExpW-like third, expression
                  labels only (configs/social_attributes.py:single)

For each arm and seed: the relation model's mean trait accuracy and mean balanced accuracy
on the synth_faces test pairs, the attribute stage's expression accuracy, and the
trivial baselines (majority per trait, spatial-cues-only trees) of the same pairs. The
table gives mean and standard deviation over the seeds (config.seed: initialisation,
data order, dropout; the K-means seed of the templates too). Datasets are loaded once
per process (SceneStore / PairSet loads are memoised here).
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.util
import json
import os
import time

import numpy as np

from hyperface_jax import train
from hyperface_jax.data import pairs
from hyperface_jax.data.scene_store import SceneStore

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARMS = {  # arm -> (attribute stage or None, bridging, cues)
  "full": ("mixed", True, True),
  "no_bridging": ("mixed_nobridge", False, True),
  "no_cues": ("mixed", True, False),
  "scratch": (None, True, True),
  "single_dataset": ("single", True, True),
}
ATTRIBUTE_STAGES = {
  "mixed": ("cpu", True),
  "mixed_nobridge": ("cpu", False),
  "single": ("single", True),
}


@functools.cache  # loaded once: later edits of the config files do not change the runs
def _config_module(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", name + ".py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _memoise_loads():
  """Each dataset split is read once per process (the arms share them)."""
  scene_cache, pair_cache = {}, {}
  original_scenes = SceneStore.from_tfds.__func__
  original_pairs = pairs.load_split

  def from_tfds(cls, name, split, data_dir=None, max_examples=None, fields=None, **kw):
    key = (name, split, data_dir, max_examples, json.dumps(fields, default=str), repr(kw))
    if key not in scene_cache:
      scene_cache[key] = original_scenes(cls, name, split, data_dir, max_examples, fields, **kw)
    s = scene_cache[key]  # the valid flags are filtered in place (keep_labels): copy them
    return cls(s.images, s.filenames, s.num_faces, copy.deepcopy(s.faces))

  @functools.wraps(original_pairs)
  def load_split(src, split, max_scenes=None):
    key = json.dumps([src, split, max_scenes], sort_keys=True, default=str)
    if key not in pair_cache:
      pair_cache[key] = original_pairs(src, split, max_scenes)
    return pair_cache[key]

  SceneStore.from_tfds = classmethod(from_tfds)
  pairs.load_split = load_split


def _common(c, args, seed, steps):
  c.seed = seed
  c.total_steps = steps
  c.eval_every = c.checkpoint_every = steps
  c.log_every = max(steps // 4, 1)
  c.schedule.warmup_steps = min(100, steps // 5)
  c.input_size = args.input_size
  c.model.width = args.width
  c.model.bridging.seed = seed
  c.model.bridging.max_faces = args.max_faces
  c.data.data_dir = args.data_dir
  if args.prng_impl:
    c.prng_impl = args.prng_impl
  return c


def attribute_run(stage, seed, args):
  variant, bridge = ATTRIBUTE_STAGES[stage]
  c = _common(_config_module("social_attributes").get_config(variant), args, seed, args.attr_steps)
  c.model.bridging.enabled = bridge
  c.data.max_eval_scenes = args.attr_eval_scenes  # per source and split: a faster check
  workdir = os.path.join(args.output, f"attr_{stage}_s{seed}")
  return workdir, train.train_and_evaluate(c, workdir)


def relation_run(arm, seed, args, attr_workdir):
  _, bridge, cues = ARMS[arm]
  c = _common(_config_module("social_relation").get_config("cpu"), args, seed, args.rel_steps)
  c.batch_size = args.rel_batch
  c.model.bridging.enabled = bridge
  c.model.use_cues = cues
  c.model_init = attr_workdir or ""
  c.model.train_branch = attr_workdir is None  # from scratch: the branch must learn
  workdir = os.path.join(args.output, f"rel_{arm}_s{seed}")
  return train.train_and_evaluate(c, workdir)


def _cell(values, fmt="{:.3f}"):
  values = [v for v in values if v is not None]
  if not values:
    return ""
  return (fmt + " ± " + fmt).format(np.mean(values), np.std(values))


def table(runs, seeds) -> str:
  rows = [
    f"Seeds {', '.join(map(str, seeds))}; mean ± standard deviation over the seeds.",
    "",
    "| arm | relation mean acc | relation mean bal. acc | expression acc (attr. stage) |",
    "|---|---|---|---|",
  ]
  for arm in ARMS:
    rs = [runs[arm][s] for s in seeds if s in runs.get(arm, {})]
    if not rs:
      continue
    rows.append(
      f"| {arm} | {_cell([r['relations/mean_accuracy'] for r in rs])} | "
      f"{_cell([r['relations/mean_balanced_accuracy'] for r in rs])} | "
      f"{_cell([r.get('attr/expression/accuracy') for r in rs])} |"
    )
  base = [r for arm in runs for r in runs[arm].values()]
  for name, prefix in (
    ("majority per trait", "baseline/"),
    ("cues-only trees", "baseline/cues_only/"),
  ):
    rows.append(
      f"| baseline: {name} | {_cell([r[prefix + 'relations/mean_accuracy'] for r in base])} | "
      f"{_cell([r[prefix + 'relations/mean_balanced_accuracy'] for r in base])} | |"
    )
  return "\n".join(rows) + "\n"


def collect(outputs, seeds, output):
  """Merges the runs.json of `outputs` (later ones win) into output/ablation.md."""
  runs = {}
  for out in outputs:
    with open(os.path.join(out, "runs.json")) as f:
      for arm, by_seed in json.load(f).items():
        runs.setdefault(arm, {}).update({int(s): r for s, r in by_seed.items()})
  text = table(runs, seeds) + f"\nCollected from {', '.join(outputs)}.\n"
  os.makedirs(output, exist_ok=True)
  with open(os.path.join(output, "ablation.md"), "w") as f:
    f.write(text)
  print(text)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--arms", default=",".join(ARMS))
  p.add_argument("--output", default="runs/social_ablation")
  p.add_argument("--data_dir", default="tfds_data")
  p.add_argument("--attr_steps", type=int, default=300)
  p.add_argument("--rel_steps", type=int, default=300)
  p.add_argument("--rel_batch", type=int, default=32)
  p.add_argument("--input_size", type=int, default=32)
  p.add_argument("--width", type=int, default=16)
  p.add_argument("--max_faces", type=int, default=5000, help="faces fitting the templates")
  p.add_argument("--attr_eval_scenes", type=int, default=200)
  p.add_argument("--prng_impl", default="")
  p.add_argument(
    "--collect",
    default="",
    help="comma-separated outputs of earlier runs (e.g. one process per seed, run side by "
    "side): merge their runs.json into --output's table instead of training",
  )
  args = p.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  if args.collect:
    collect(args.collect.split(","), seeds, args.output)
    return
  arms = args.arms.split(",")
  os.makedirs(args.output, exist_ok=True)
  _memoise_loads()
  runs, t0 = {}, time.time()
  for seed in seeds:
    stages = {}
    for arm in arms:
      stage = ARMS[arm][0]
      if stage is not None and stage not in stages:
        stages[stage] = attribute_run(stage, seed, args)
      attr_dir, attr = stages[stage] if stage else (None, {})
      result = relation_run(arm, seed, args, attr_dir)
      result.update({f"attr/{k}": v for k, v in attr.items()})
      runs.setdefault(arm, {})[seed] = result
      print(
        f"[{time.time() - t0:.0f} s] {arm} seed {seed}: {result['relations/mean_accuracy']:.3f}"
      )
      with open(os.path.join(args.output, "runs.json"), "w") as f:
        json.dump({a: {str(s): r for s, r in v.items()} for a, v in runs.items()}, f, indent=1)
  text = table(runs, seeds)
  text += f"\n{vars(args)}; {time.time() - t0:.0f} s in all.\n"
  with open(os.path.join(args.output, "ablation.md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main()
