r"""Proposal recall: how many faces a proposal generator reaches, among its best N boxes.

  PYTHONPATH=. .venv/bin/python bench/proposal_recall.py --num_scenes=100 \
      --generators=learned,sliding_window,selective_search \
      --set proposals.learned.workdir=runs/fast_hf [--top_n=50,100,300] [--output=FILE.json]

For every annotated face of the synth_faces scenes (data/builders/synth_faces.py), the best
IoU with the generator's first N proposals, in the generator's own order (the learned net
ranks by its face score; the sliding-window pyramid and selective search have no score,
so only their "all" column means anything); recall = share of faces with a proposal at
IoU >= 0.5 (the detection criterion) and >= 0.7 (a tight fit). No HyperFace model is
involved: only `inference.proposals.make_proposer` with the pipeline settings
(inference/config.py + --set overrides).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hyperface_jax.data import boxes as box_lib
from hyperface_jax.data import scene_store
from hyperface_jax.inference import config as config_lib
from hyperface_jax.inference import proposals

IOU_LEVELS = (0.5, 0.7)


def recall_at(best_iou: np.ndarray, top_n, iou_levels=IOU_LEVELS) -> dict:
  """Recall table from best_iou [F, len(top_n)] (best IoU of each face among the first N)."""
  out = {}
  for j, n in enumerate(top_n):
    for level in iou_levels:
      hit = best_iou[:, j] >= level if len(best_iou) else np.zeros(0, bool)
      out[f"recall@{n}/iou_{level}"] = float(hit.mean()) if len(hit) else float("nan")
  return out


def best_ious(boxes: np.ndarray, faces: np.ndarray, top_n) -> np.ndarray:
  """[F, len(top_n)]: each face's best IoU among the first N of `boxes` (N None = all)."""
  if len(faces) == 0:
    return np.zeros((0, len(top_n)))
  if len(boxes) == 0:
    return np.zeros((len(faces), len(top_n)))
  iou = box_lib.iou(boxes, faces)  # [P, F]
  # Running maximum down the ranking: row k = best IoU among the first k + 1 proposals.
  running = np.maximum.accumulate(iou, axis=0)
  rows = [len(boxes) - 1 if n is None else min(n, len(boxes)) - 1 for n in top_n]
  return running[rows].T


def evaluate(propose, store, top_n) -> dict:
  """Recall table, proposals per image and seconds per image of one generator."""
  per_face, counts, seconds = [], [], 0.0
  for i in range(len(store)):
    faces = store.scene_faces(i)
    gt = faces["box"][faces["valid"]["box"]]
    t0 = time.perf_counter()
    boxes = np.asarray(propose(store.images[i]), np.float64).reshape(-1, 4)
    seconds += time.perf_counter() - t0
    counts.append(len(boxes))
    per_face.append(best_ious(boxes, gt, top_n))
  row = recall_at(np.concatenate(per_face), ["all" if n is None else n for n in top_n])
  row.update(
    {
      "faces": int(sum(len(p) for p in per_face)),
      "proposals_per_image": float(np.mean(counts)),
      "seconds_per_image": seconds / max(len(store), 1),
    }
  )
  return row


def _table(rows: dict, top_n) -> str:
  names = ["all" if n is None else str(n) for n in top_n]
  head = (
    "| generator | proposals/img | "
    + " | ".join(f"recall@{n} IoU>=0.5 / 0.7" for n in names)
    + " | s/img |"
  )
  lines = [head, "|" + "---|" * (3 + len(names))]
  for gen, r in rows.items():
    cells = " | ".join(
      f"{r[f'recall@{n}/iou_0.5']:.3f} / {r[f'recall@{n}/iou_0.7']:.3f}" for n in names
    )
    lines.append(
      f"| {gen} | {r['proposals_per_image']:.0f} | {cells} | {r['seconds_per_image']:.3f} |"
    )
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--data_dir", default="tfds_data")
  p.add_argument("--split", default="test")
  p.add_argument("--num_scenes", type=int, default=100)
  p.add_argument("--generators", default="learned,sliding_window,selective_search")
  p.add_argument("--top_n", default="50,100,300", help="comma-separated N; 'all' is added")
  p.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="pipeline setting override (inference/config.py), repeatable",
  )
  p.add_argument("--output", default="")
  args = p.parse_args(argv)
  top_n = [int(n) for n in args.top_n.split(",") if n] + [None]
  config = config_lib.with_overrides(
    config_lib.inference_config(), config_lib.parse_overrides(args.set)
  )
  store = scene_store.SceneStore.from_tfds(
    "synth_faces", f"{args.split}[:{args.num_scenes}]", args.data_dir
  )
  rows = {}
  for name in [g for g in args.generators.split(",") if g]:
    settings = config_lib.with_overrides(config, {"proposals.name": name}).proposals
    rows[name] = evaluate(proposals.make_proposer(settings), store, top_n)
  print(_table(rows, top_n))
  if args.output:
    with open(args.output, "w") as f:
      json.dump({"split": args.split, "num_scenes": len(store), "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
