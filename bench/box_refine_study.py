r"""Why and how box refinement (inference/box_refine.py) moves the pipeline's final boxes.

  PYTHONPATH=. .venv/bin/python bench/box_refine_study.py --workdir=runs/demo \
      --split=validation --num_scenes=300 [--set KEY=VALUE ...] [--output=FILE.json]

On synth_faces scenes, with the configured pipeline (inference/config.py + --set) minus
its box refinement, it prints:
  1. the face score's log-odds (`score_logit`) of the network's windows -- the proposals
     and, after IRP, the landmark-fitted boxes -- per band of their IoU with the nearest
     face (median and quartiles), beside the share whose softmax score rounds to >= 0.99:
     the evidence that the log-odds keep ranking windows by fit where the score saturates;
  2. AP@0.5 (at detection thresholds 0 and the configured one) and false positives per
     image of the final detections, without refinement and refined with each candidate
     setting: the windows x STEP^k (k = -M..M) about each final box, weighted by
     softmax(log-odds / T). Every final detection is refined (as at detection threshold
     0), so one network pass over the widest window set serves every setting.
The defaults of inference/config.py `box_refine` were chosen on --split=validation by this
table (the highest AP at the configured threshold; ties go to fewer windows).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from run_record import write_run_record  # bench/run_record.py

from hyperface_jax.data import boxes as box_lib
from hyperface_jax.data import scene_store
from hyperface_jax.evaluation import detection
from hyperface_jax.inference import analyzer as analyzer_lib
from hyperface_jax.inference import box_refine, irp
from hyperface_jax.inference import config as config_lib

IOU_BANDS = ((0.0, 0.2), (0.2, 0.35), (0.35, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 1.01))
# (scale step, windows per box) candidates; the scales are STEP^k for k = -M..M.
CANDIDATES = ((1.08, 3), (1.08, 5), (1.15, 3), (1.15, 5), (1.25, 3), (1.25, 5))
TEMPERATURES = (1.0, 2.0, 4.0)


def collect(an, store, batch_images: int):
  """Per scene: faces, final detections (no refinement), their scored windows; and the
  (IoU, log-odds, score) of every window the network saw before L-NMS."""
  cfg = config_lib.with_overrides(
    an.config, {"detection_threshold": 0.0, "max_faces": 10**6, "box_refine.enabled": False}
  )
  scales = sorted({s for step, n in CANDIDATES for s in box_refine.window_scales(step, n)})
  scenes, windows = [], []
  for start in range(0, len(store), batch_images):
    idx = list(range(start, min(len(store), start + batch_images)))
    images = [store.images[i] for i in idx]
    raw = an.score_proposals(images)
    after_irp = irp.iterative_region_proposals(
      an.network,
      images,
      [dict(d) for d in raw],
      iterations=cfg.irp.iterations if cfg.irp.enabled else 0,
      score_threshold=0.0,  # every window, low-scoring ones included, for the IoU table
      keep="both",
      visibility_threshold=cfg.nms.visibility_threshold,
    )
    finals = an.refine(images, [dict(d) for d in raw], cfg)
    scored = an.network(images, [box_refine.scaled_boxes(f["box"], scales) for f in finals])
    for i, d, f, s in zip(idx, after_irp, finals, scored, strict=True):
      faces = store.scene_faces(i)
      gt = faces["box"][faces["valid"]["box"]]
      if len(gt) and len(d["score"]):
        iou = box_lib.iou(np.asarray(d["box"]), gt).max(1)
        windows.append(np.stack([iou, d["score_logit"], d["score"]], 1))
      n = len(f["score"])
      scenes.append(
        {
          "gt": gt,
          "final": f,
          "logits": np.asarray(s["score_logit"], np.float64).reshape(n, len(scales)),
          "windows": np.asarray(s["box"], np.float64).reshape(n, len(scales), 4),
        }
      )
  return scenes, np.concatenate(windows), scales


def logit_table(windows):
  rows = []
  for lo, hi in IOU_BANDS:
    band = windows[(windows[:, 0] >= lo) & (windows[:, 0] < hi)]
    if len(band) == 0:
      continue
    q = np.percentile(band[:, 1], [25, 50, 75])
    rows.append(
      {
        "iou": f"{lo:.2f}-{min(hi, 1.0):.2f}",
        "windows": len(band),
        "log_odds_p25": float(q[0]),
        "log_odds_median": float(q[1]),
        "log_odds_p75": float(q[2]),
        "score_ge_0.99": float((band[:, 2] >= 0.99).mean()),
      }
    )
  return rows


def score(scenes, boxes_fn, thresholds):
  """AP / false positives per image of the final detections with boxes from boxes_fn."""
  scores, is_tp, num_gt = [], [], 0
  for sc in scenes:
    s = np.asarray(sc["final"]["score"], np.float64)
    tp, _ = detection.match_detections(boxes_fn(sc), s, sc["gt"])
    scores.append(s)
    is_tp.append(np.asarray(tp, bool))
    num_gt += len(sc["gt"])
  scores, is_tp = np.concatenate(scores), np.concatenate(is_tp)
  out = {}
  for t in thresholds:
    keep = scores >= t
    out[f"ap@{t:g}"] = detection.average_precision_voc(scores[keep], is_tp[keep], num_gt)
    out[f"fp_per_image@{t:g}"] = float((keep & ~is_tp).sum() / len(scenes))
  return out


def refined_boxes(columns, temperature):
  def fn(sc):
    w, lg = sc["windows"][:, columns], sc["logits"][:, columns]
    out = [box_refine.weighted_box(b, g, temperature) for b, g in zip(w, lg, strict=True)]
    return np.asarray(out, np.float64).reshape(-1, 4)

  return fn


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--data_dir", default="tfds_data")
  p.add_argument("--split", default="validation")
  p.add_argument("--num_scenes", type=int, default=300)
  p.add_argument("--batch_images", type=int, default=10)
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  p.add_argument("--output", default="")
  args = p.parse_args(argv)
  store = scene_store.SceneStore.from_tfds(
    "synth_faces", f"{args.split}[:{args.num_scenes}]", args.data_dir
  )
  an = analyzer_lib.FaceAnalyzer.from_workdir(args.workdir, **config_lib.parse_overrides(args.set))
  scenes, windows, scales = collect(an, store, args.batch_images)
  table = logit_table(windows)
  print("| IoU with the nearest face | windows | log-odds p25 / median / p75 | score >= 0.99 |")
  print("|---|---|---|---|")
  for r in table:
    print(
      f"| {r['iou']} | {r['windows']} | {r['log_odds_p25']:.1f} / {r['log_odds_median']:.1f}"
      f" / {r['log_odds_p75']:.1f} | {r['score_ge_0.99']:.2f} |"
    )
  thresholds = (0.0, float(an.config.detection_threshold))
  rows = {"without refinement": score(scenes, lambda sc: sc["final"]["box"], thresholds)}
  for step, n in CANDIDATES:
    cols = [scales.index(s) for s in box_refine.window_scales(step, n)]
    for t in TEMPERATURES:
      rows[f"x{step} x {n} windows, T={t:g}"] = score(scenes, refined_boxes(cols, t), thresholds)
  faces = sum(len(sc["gt"]) for sc in scenes)
  print(f"\n{args.split}, {len(scenes)} scenes, {faces} faces")
  head = " | ".join(f"AP@0.5 at threshold {t:g} | FP/img" for t in thresholds)
  print(f"| boxes | {head} |\n|---|" + "---|" * (2 * len(thresholds)))
  for name, r in rows.items():
    cells = " | ".join(f"{r[f'ap@{t:g}']:.4f} | {r[f'fp_per_image@{t:g}']:.2f}" for t in thresholds)
    print(f"| {name} | {cells} |")
  if args.output:
    write_run_record(args.output, log_odds_by_iou=table, ap=rows, faces=faces)
  print(json.dumps({"faces": faces, "ap": rows}, indent=1))


if __name__ == "__main__":
  main()
