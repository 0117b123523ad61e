r"""Full-image evaluation of the HyperFace pipeline on face scenes, and its ablation table.

  PYTHONPATH=. .venv/bin/python bench/full_image_eval.py --workdir=runs/demo \
      --num_scenes=100 [--ablation] [--set nms.top_k=3 ...] [--output=FILE.json] \
      [--variant 'LABEL: KEY=VALUE KEY=VALUE' ...]

Without --ablation: the analyzer's configured pipeline (default: "auto" proposals -> IRP ->
L-NMS) on the first `num_scenes` scenes of the split; prints the flat metrics of
evaluation/full_image.py. With --ablation: docs/papers.md 1.8's table -- plain NMS vs IRP vs
IRP + L-NMS on the same proposals, then the proposal generators (selective search,
learned, sliding window) with IRP + L-NMS -- as a markdown table (AP, NME of matched
faces, pose MAE, gender accuracy, seconds per image). Post-processing variants share one
proposal + network pass; a variant's time per image is the sum of the stages it uses.
With --variant (repeatable): each variant is the configured pipeline plus its settings,
run whole (its own proposals and network pass) on the same scenes: one row each, e.g. the
AP-latency trade-off of the proposal settings (docs/inference.md).
With --thresholds=0.3,0.5,...: the configured pipeline's final detections are kept once
and scored at each `detection_threshold` (AP, recall, false positives per image): how
inference/config.py's threshold is calibrated (on --split=validation).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from run_record import write_run_record  # bench/run_record.py

from hyperface_jax.data import scene_store
from hyperface_jax.evaluation import detection
from hyperface_jax.evaluation.full_image import FullImageEvaluator
from hyperface_jax.inference import analyzer as analyzer_lib
from hyperface_jax.inference import config as config_lib
from hyperface_jax.inference import lnms

# name -> overrides (docs/papers.md 1.8 ablation); plain NMS with its standard best-box score.
# The paper's stages only: box refinement (ours, inference/box_refine.py) is off but in the
# default row.
PLAIN = {"nms.method": "plain", "nms.score_mode": "max", "box_refine.enabled": False}
# The paper's L-NMS choices (inference/lnms.py PAPER_LNMS) with the configured thresholds.
PAPER_LNMS = {
  "nms.method": "lnms",
  **{f"nms.{k}": lnms.PAPER_LNMS[k] for k in ("group_by", "output_box", "score_mode")},
  "box_refine.enabled": False,
}
DEFAULT = "proposals -> net -> IRP -> L-NMS -> box refinement (default)"
POSTPROCESSING = {
  "proposals -> net -> plain NMS": dict(PLAIN, **{"irp.enabled": False}),
  "proposals -> net -> IRP -> plain NMS": dict(PLAIN, **{"irp.enabled": True}),
  # The paper's IRP keeps the better of a candidate's two boxes (docs/papers.md 1.8 step 3).
  "proposals -> net -> IRP -> L-NMS (paper)": dict(
    PAPER_LNMS, **{"irp.enabled": True, "irp.keep": "better"}
  ),
  DEFAULT: {"irp.enabled": True},  # the configured L-NMS (inference/config.py)
}


def evaluate(an, store, indices, variants, batch_images, min_visible=4):
  """Runs `variants` (name -> config) on the scenes; returns name -> metrics.

  Each variant is scored twice: every face counts, and (keys "visible_faces/...") faces
  with fewer than `min_visible` visible landmarks are ignored (full_image.py).
  """
  evals = {name: FullImageEvaluator() for name in variants}
  lenient = {name: FullImageEvaluator(min_visible_landmarks=min_visible) for name in variants}
  seconds = {name: 0.0 for name in variants}
  proposals_count = 0.0
  for start in range(0, len(indices), batch_images):
    idx = indices[start : start + batch_images]
    images = [store.images[i] for i in idx]
    raw = an.score_proposals(images)
    shared = an.timings["proposals"] + an.timings["network"]
    proposals_count += an.timings["num_proposals"]
    for name, cfg in variants.items():
      dets = an.refine(images, [dict(d) for d in raw], cfg)
      seconds[name] += shared + sum(an.timings[s] for s in ("irp", "lnms", "box_refine"))
      for i, d in zip(idx, dets, strict=True):
        evals[name].update({"faces": store.scene_faces(i)}, d)
        lenient[name].update({"faces": store.scene_faces(i)}, d)
  out = {}
  for name, ev in evals.items():
    res = ev.result()
    res.update(
      {
        f"visible_faces/{k}": v
        for k, v in lenient[name].result().items()
        if k.startswith(("detection/", "count/gt"))
      }
    )
    res["seconds_per_image"] = seconds[name] / len(indices)
    res["proposals_per_image"] = proposals_count / len(indices)
    out[name] = res
  return out


def threshold_sweep(an, store, indices, thresholds, batch_images):
  """AP / recall / FP per image of the configured pipeline at each detection threshold."""
  cfg = config_lib.with_overrides(an.config, {"detection_threshold": 0.0, "max_faces": 10**6})
  scores, is_tp, num_gt = [], [], 0
  for start in range(0, len(indices), batch_images):
    idx = indices[start : start + batch_images]
    images = [store.images[i] for i in idx]
    dets = an.refine(images, an.score_proposals(images), cfg)
    for i, d in zip(idx, dets, strict=True):
      faces = store.scene_faces(i)
      gt = faces["box"][faces["valid"]["box"]]
      tp, _ = detection.match_detections(d["box"], d["score"], gt)
      scores.append(np.asarray(d["score"], np.float64))
      is_tp.append(tp)
      num_gt += len(gt)
  scores, is_tp = np.concatenate(scores), np.concatenate(is_tp)
  rows = {}
  for t in thresholds:
    keep = scores >= t
    rows[t] = {
      "detection/ap": detection.average_precision_voc(scores[keep], is_tp[keep], num_gt),
      "detection/recall": float(is_tp[keep].sum() / max(num_gt, 1)),
      "detection/false_positives_per_image": float((keep & ~is_tp).sum() / len(indices)),
    }
  return rows


def table(rows):
  head = (
    "| pipeline | proposals/img | AP@0.5 | recall | FP/img | AP@0.5, faces with >= 4 "
    "visible landmarks | NME (matched) | pose MAE deg | gender acc | s/img |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
  )
  lines = [head]
  for name, r in rows.items():
    lines.append(
      f"| {name} | {r['proposals_per_image']:.0f} | {r['detection/ap']:.4f} | "
      f"{r['detection/recall']:.4f} | "
      f"{r['detection/false_positives_per_image']:.2f} | "
      f"{r.get('visible_faces/detection/ap', float('nan')):.4f} | "
      f"{r.get('landmarks/nme', float('nan')):.4f} | "
      f"{r.get('pose/mae_mean_deg', float('nan')):.2f} | "
      f"{r.get('gender/accuracy', float('nan')):.4f} | "
      f"{r['seconds_per_image']:.3f} |"
    )
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--data_dir", default="tfds_data")
  p.add_argument("--dataset", default="synth_faces")
  p.add_argument("--split", default="test")
  p.add_argument("--num_scenes", type=int, default=100)
  p.add_argument("--batch_images", type=int, default=8)
  p.add_argument("--ablation", action="store_true")
  p.add_argument(
    "--proposals_ablation",
    default="selective_search,learned,sliding_window",
    help="generators compared with IRP + L-NMS under --ablation",
  )
  p.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="pipeline setting override (inference/config.py), repeatable",
  )
  p.add_argument(
    "--variant",
    action="append",
    default=[],
    metavar="'LABEL: KEY=VALUE ...'",
    help="a whole pipeline with these settings on top of --set, repeatable (one row each)",
  )
  p.add_argument(
    "--thresholds",
    default="",
    help="comma-separated detection thresholds to score the configured pipeline at",
  )
  p.add_argument("--output", default="")
  args = p.parse_args(argv)
  overrides = config_lib.parse_overrides(args.set)
  store = scene_store.SceneStore.from_tfds(
    args.dataset, f"{args.split}[:{args.num_scenes}]", args.data_dir
  )
  indices = list(range(len(store)))
  an = analyzer_lib.FaceAnalyzer.from_workdir(args.workdir, **overrides)
  an(store.images[:1])  # compile once, outside the timings
  results = {}
  if args.thresholds:
    thresholds = [float(t) for t in args.thresholds.split(",") if t]
    sweep = threshold_sweep(an, store, indices, thresholds, args.batch_images)
    print("| detection_threshold | AP@0.5 | recall | FP/img |\n|---|---|---|---|")
    for t, r in sweep.items():
      print(
        f"| {t:g} | {r['detection/ap']:.4f} | {r['detection/recall']:.4f} | "
        f"{r['detection/false_positives_per_image']:.2f} |"
      )
    results = {f"detection_threshold={t:g}": r for t, r in sweep.items()}
  elif args.variant:
    for text in args.variant:
      label, sep, rest = text.rpartition(":")
      if not sep:
        raise ValueError(f"--variant needs 'LABEL: KEY=VALUE ...'; got {text!r}.")
      other = analyzer_lib.FaceAnalyzer(
        an.network, an.config, **config_lib.parse_overrides(rest.split())
      )
      other(store.images[:1])  # compiles the buckets / proposal levels it needs
      res = evaluate(other, store, indices, {label: other.config}, args.batch_images)
      results[label.strip()] = res[label]
      print(label, json.dumps(res[label]), flush=True)
  elif not args.ablation:
    results["configured pipeline"] = evaluate(
      an, store, indices, {"configured pipeline": an.config}, args.batch_images
    )["configured pipeline"]
  else:
    variants = {k: config_lib.with_overrides(an.config, v) for k, v in POSTPROCESSING.items()}
    name = an.config.proposals.name
    res = evaluate(an, store, indices, variants, args.batch_images)
    results.update({f"{name}: {k}": v for k, v in res.items()})
    for gen in [g for g in args.proposals_ablation.split(",") if g and g != name]:
      if gen == "learned" and not an.config.proposals.learned.workdir:
        print(
          "skipping learned proposals: set --set proposals.learned.workdir=DIR", file=sys.stderr
        )
        continue
      other = analyzer_lib.FaceAnalyzer(an.network, an.config, **{"proposals.name": gen})
      other(store.images[:1])
      full = {DEFAULT: other.config}
      res = evaluate(other, store, indices, full, args.batch_images)
      results.update({f"{gen}: {k}": v for k, v in res.items()})
  if not args.thresholds:
    print(table(results))
  print(json.dumps(results, indent=1, sort_keys=True))
  if args.output:
    write_run_record(args.output, results=results)


if __name__ == "__main__":
  main()
