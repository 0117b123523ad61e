r"""Faces synth_faces 1.1.0 no longer annotates, and what they did to full-image detection.

  PYTHONPATH=. .venv/bin/python bench/hidden_faces.py --num_scenes=300
  PYTHONPATH=. .venv/bin/python bench/hidden_faces.py --num_scenes=100 --workdir=runs/demo

Re-renders the scenes of a synth_faces split (the same (seed, split, index) as the stored
examples, data/builders/synth_faces.py) with every drawn face annotated
(`render.SceneConfig(min_visible_fraction=0)`, the 1.0.0 labels) and prints how many faces
fall below the annotation threshold, their visible fraction and visible landmarks, and the
visible fraction of the least-visible annotated face. With --workdir the configured
pipeline (inference/config.py + --set) is scored on both label sets of the same images
(one pipeline pass, two FullImageEvaluators), which separates the label change from the
model.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from hyperface_jax.data import render, scene_store
from hyperface_jax.data.builders import synth_faces
from hyperface_jax.evaluation.full_image import FullImageEvaluator
from hyperface_jax.inference import analyzer as analyzer_lib
from hyperface_jax.inference import config as config_lib


def every_face_examples(store, split, seed=0, image_size=160):
  """The store's scenes re-rendered with every drawn face annotated (1.0.0 labels)."""
  config = render.SceneConfig(image_size=image_size, min_visible_fraction=0.0)
  out = []
  for i, name in enumerate(store.filenames):
    index = int(os.path.splitext(os.path.basename(name))[0])
    ex = render.render_scene(
      np.random.default_rng([seed, synth_faces.SPLIT_IDS[split], index]), config
    )
    if not np.array_equal(ex["image"], store.images[i]):
      raise ValueError(
        f"{name}: re-rendered image differs from the stored one; build the "
        f"dataset with seed {seed} at this commit (hyperface_jax.data.prepare)."
      )
    out.append(ex)
  return out


def label_statistics(examples, threshold) -> dict:
  """Counts and visibility of the faces below / at or above the annotation threshold."""
  frac = np.concatenate([ex["faces"]["visible_fraction"] for ex in examples])
  landmarks = np.concatenate([ex["faces"]["visibility"].sum(-1) for ex in examples])
  hidden = frac < threshold
  return {
    "scenes": len(examples),
    "drawn_faces": int(len(frac)),
    "not_annotated": int(hidden.sum()),
    "not_annotated_visible_fraction_max": float(frac[hidden].max()) if hidden.any() else None,
    "not_annotated_visible_landmarks_max": int(landmarks[hidden].max()) if hidden.any() else None,
    "annotated_visible_fraction_min": float(frac[~hidden].min()) if (~hidden).any() else None,
  }


def score_both(an, store, every_face, batch_images=8) -> dict:
  """Detection AP / recall / FP per image of the pipeline on both label sets."""
  evals = {
    "1.1.0 labels": FullImageEvaluator(),
    "1.0.0 labels (every drawn face)": FullImageEvaluator(),
  }
  for start in range(0, len(store), batch_images):
    idx = range(start, min(len(store), start + batch_images))
    for i, dets in zip(idx, an.detect([store.images[i] for i in idx]), strict=True):
      evals["1.1.0 labels"].update({"faces": store.scene_faces(i)}, dets)
      evals["1.0.0 labels (every drawn face)"].update({"faces": every_face.scene_faces(i)}, dets)
  keys = ("detection/ap", "detection/recall", "detection/false_positives_per_image")
  return {name: {k: ev.result()[k] for k in keys} for name, ev in evals.items()}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--data_dir", default="tfds_data")
  p.add_argument("--split", default="test")
  p.add_argument("--num_scenes", type=int, default=100)
  p.add_argument("--workdir", default="", help="also score this model on both label sets")
  p.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="pipeline setting override (inference/config.py), repeatable",
  )
  args = p.parse_args(argv)
  store = scene_store.SceneStore.from_tfds(
    "synth_faces", f"{args.split}[:{args.num_scenes}]", args.data_dir
  )
  examples = every_face_examples(store, args.split)
  result = label_statistics(examples, render.SceneConfig().min_visible_fraction)
  stored = sum(len(store.scene_faces(i)["box"]) for i in range(len(store)))
  if stored != result["drawn_faces"] - result["not_annotated"]:
    raise ValueError(
      f"the stored split has {stored} faces, the re-rendering "
      f"{result['drawn_faces'] - result['not_annotated']}: rebuild the dataset."
    )
  if args.workdir:
    an = analyzer_lib.FaceAnalyzer.from_workdir(
      args.workdir, **config_lib.parse_overrides(args.set)
    )
    result.update(
      score_both(an, store, scene_store.SceneStore.from_examples(examples, "re-rendered"))
    )
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
