r"""Where full-image detection loses faces and gains false positives (docs/inference.md).

  PYTHONPATH=. .venv/bin/python bench/full_image_study.py --workdir=runs/demo \
      --num_scenes=50 [--split=test] [--set proposals.sliding_window.border_fraction=0]

Runs the configured pipeline (inference/config.py + --set overrides) on synth_faces scenes
and prints: the share of faces with a proposal at IoU > 0.5 and of those found at the end;
for the false positives, the share lying > 70 % inside a true face (face parts) and the IoU
histogram; for the raw proposals, the share scored > 0.5 per IoU band with the faces; and
one row per missed face (yaw, visible landmarks, best score of a window fitting it, final
IoU). These are the numbers of the study in docs/inference.md.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from hyperface_jax.data import boxes as box_lib
from hyperface_jax.data import scene_store
from hyperface_jax.inference import analyzer as analyzer_lib
from hyperface_jax.inference import config as config_lib

BANDS = ((0.0, 0.05), (0.05, 0.35), (0.35, 0.5), (0.5, 1.01))


def _missed_faces(scene, faces, iou_proposals, scores, final_iou):
  """Rows for the faces whose best final box has IoU <= 0.5: why each was missed."""
  valid = faces["valid"]["box"]
  rows = []
  for j in np.flatnonzero(final_iou <= 0.5):
    fitting = iou_proposals[:, j] > 0.5
    rows.append(
      {
        "scene": int(scene),
        "yaw_deg": round(float(np.degrees(faces["pose"][valid][j][2])), 1),
        "visible_landmarks": int((faces["visibility"][valid][j] > 0.5).sum()),
        "best_score_of_windows_iou_gt_0.5": round(float(scores[fitting].max()), 3)
        if fitting.any()
        else 0.0,
        "final_iou": round(float(final_iou[j]), 3),
      }
    )
  return rows


def study(an, store, batch_images=10):
  """Per-face, per-false-positive and per-proposal statistics over `store`."""
  best_prop, final_iou, fp_inside, fp_iou, raw, missed = [], [], [], [], [], []
  for start in range(0, len(store), batch_images):
    idx = list(range(start, min(len(store), start + batch_images)))
    images = [store.images[i] for i in idx]
    proposals = an.score_proposals(images)
    finals = an.refine(images, [dict(d) for d in proposals])
    for i, prop, final in zip(idx, proposals, finals, strict=True):
      faces = store.scene_faces(i)
      gt = faces["box"][faces["valid"]["box"]]
      if len(gt) == 0:
        fp_inside += [0.0] * len(final["box"])
        fp_iou += [0.0] * len(final["box"])
        raw.append(np.stack([np.zeros(len(prop["box"])), prop["score"]], 1))
        continue
      iou_p = box_lib.iou(prop["box"], gt)
      best_prop += list(iou_p.max(0))
      raw.append(np.stack([iou_p.max(1), prop["score"]], 1))
      iou_f = box_lib.iou(final["box"], gt) if len(final["box"]) else np.zeros((1, len(gt)))
      final_iou += list(iou_f.max(0))
      missed += _missed_faces(i, faces, iou_p, prop["score"], iou_f.max(0))
      if len(final["box"]) == 0:
        continue
      inside = (box_lib.intersection(final["box"], gt) / box_lib.area(final["box"])[:, None]).max(1)
      fp = iou_f.max(1) <= 0.5
      fp_inside += list(inside[fp])
      fp_iou += list(iou_f.max(1)[fp])
  raw = np.concatenate(raw) if raw else np.zeros((0, 2))
  out = {
    "faces": len(best_prop),
    "scenes": len(store),
    "faces_with_proposal_iou_gt_0.5": float(np.mean(np.array(best_prop) > 0.5)),
    "faces_found_iou_gt_0.5": float(np.mean(np.array(final_iou) > 0.5)),
    "false_positives_per_image": len(fp_iou) / max(len(store), 1),
    "missed_faces": missed,
    "false_positives_inside_a_face_gt_0.7": float(np.mean(np.array(fp_inside) > 0.7))
    if fp_inside
    else 0.0,
    "false_positive_iou_histogram": dict(
      zip(
        ["0-0.05", "0.05-0.2", "0.2-0.35", "0.35-0.5"],
        np.histogram(fp_iou, bins=[0, 0.05, 0.2, 0.35, 0.5])[0].tolist(),
        strict=True,
      )
    ),
  }
  for lo, hi in BANDS:
    band = (raw[:, 0] >= lo) & (raw[:, 0] < hi)
    out[f"proposals_iou_{lo}-{min(hi, 1.0)}_scored_gt_0.5"] = (
      float(np.mean(raw[band, 1] > 0.5)) if band.any() else float("nan")
    )
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--data_dir", default="tfds_data")
  p.add_argument("--split", default="test")
  p.add_argument("--num_scenes", type=int, default=50)
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  args = p.parse_args(argv)
  overrides = config_lib.parse_overrides(args.set)
  store = scene_store.SceneStore.from_tfds(
    "synth_faces", f"{args.split}[:{args.num_scenes}]", args.data_dir
  )
  an = analyzer_lib.FaceAnalyzer.from_workdir(args.workdir, **overrides)
  print(json.dumps(study(an, store), indent=1))


if __name__ == "__main__":
  main()
