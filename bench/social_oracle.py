r"""What the synth_faces relation traits allow: oracles on true attributes (docs/social.md).

  PYTHONPATH=. .venv/bin/python bench/social_oracle.py [--workdir=runs/social_attributes_cpu]

The traits of a pair are a rule (data/render_relations.py) of both faces' expressions, open
mouths and yaws and of the box geometry, with 10 % of the bits flipped. On the synth_faces
pairs of configs/social_relation.py (3899 training, 950 test pairs), per trait, gradient-
boosted trees (scikit-learn, early stopping) fitted on the training pairs and scored on the
test pairs, from:

  rule            the noise-free rule itself on the true attributes (the ceiling, ~0.9)
  cues            the 9 spatial cues only (data/pairs.py; the evaluator's baseline)
  expr            + both true expressions (one-hot)
  expr+mouth      + both true mouth_open
  all             + both true yaws (degrees / 45)
  all+looks       + sign(dx) yaw_a and -sign(dx) yaw_b ("looks towards", made explicit)
  predicted       (with --workdir, a social_attributes run) its predicted outputs for both
                  faces (softmax / sigmoid probabilities, pose) + the cues: what any relation
                  head on the frozen attribute predictions can reach, and the run's
                  expression accuracy and per-class recall on the pair faces

Prints a markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np

from hyperface_jax.data import pairs as pairs_lib
from hyperface_jax.data import render_relations
from hyperface_jax.data import sources as source_lib

SYNTH_DATA = dict(train_size=6000, validation_size=300, test_size=1500, seed=0)
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def true_pairs(src, split):
  """Per pair: true attributes [P, 18] (a then b: expression one-hot 7, mouth_open,
  yaw / 45 deg), cues [P, 9], noisy traits [P, 8], noise-free rule traits [P, 8]; in the
  order of data/pairs.py PairSet.from_examples."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  from hyperface_jax.data import builders  # noqa: F401  (registers the TFDS builders)

  builder = tfds.builder(src["name"], data_dir=src["data_dir"], **source_lib.builder_kwargs(src))
  attrs, cues, traits, rule = [], [], [], []
  for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
    f, rel = ex["faces"], ex["relations"]
    box = np.asarray(f["box"], np.float32).reshape(-1, 4)
    valid = np.asarray(f["valid"]["box"], bool) & np.all(box[:, 2:] > 0, axis=1)
    h, w = ex["image"].shape[:2]
    for (a, b), t in zip(rel["faces"].reshape(-1, 2), rel["traits"].reshape(-1, 8), strict=True):
      if not (valid[a] and valid[b]):
        continue
      row = []
      for i in (a, b):
        row += list(np.eye(7)[f["expression"][i]]) + [f["mouth_open"][i]]
        row += [np.rad2deg(f["pose"][i][2]) / 45.0]
      attrs.append(row)
      cues.append(pairs_lib.spatial_cues(box[a], box[b], w, h))
      traits.append(t)
      yaw = f["pose"][:, 2]
      rule.append(render_relations.pair_traits(f["expression"], f["mouth_open"], yaw, box, a, b))
  return tuple(np.asarray(x, np.float32) for x in (attrs, cues, traits, rule))


def predicted(workdir, src, split):
  """A social_attributes run's outputs for both faces of every pair [P, 2 x K]."""
  import jax  # pylint: disable=g-import-not-at-top

  from hyperface_jax import tasks  # pylint: disable=g-import-not-at-top
  from hyperface_jax.data import preprocess  # pylint: disable=g-import-not-at-top
  from hyperface_jax.inference import batched  # pylint: disable=g-import-not-at-top

  config = batched.load_workdir_config(workdir)
  _, variables, _ = batched.load_variables(config, workdir, None)
  model = batched.inference_model(config)
  apply = jax.jit(lambda v, x: model.apply(v, x))
  arr = pairs_lib.eval_arrays([pairs_lib.load_split(src, split)], config.input_size)
  faces = arr["faces_uint8"]
  n = len(faces)
  x = preprocess.normalize(faces.reshape((-1,) + faces.shape[2:]), config.data.normalize)
  x = np.concatenate([x, np.zeros((-len(x) % 128,) + x.shape[1:], x.dtype)])
  outs = [apply(variables, x[i : i + 128]) for i in range(0, len(x), 128)]
  parts = []
  for name in config.model.tasks:
    value = np.concatenate([np.asarray(o[name]) for o in outs])[: 2 * n].reshape(2 * n, -1)
    if tasks.get(name).loss == "softmax_cross_entropy":
      value = np.exp(value - value.max(1, keepdims=True))
      value /= value.sum(1, keepdims=True)
    elif tasks.get(name).loss == "sigmoid_cross_entropy":
      value = 1 / (1 + np.exp(-value))
    parts.append(value)
  return np.concatenate(parts, 1).reshape(n, -1), list(config.model.tasks)


def trees(x_train, y_train, x_test, y_test):
  """Per-trait test accuracy of gradient-boosted trees fitted on the training pairs."""
  from sklearn.ensemble import HistGradientBoostingClassifier  # pylint: disable=g-import-not-at-top

  out = []
  for k in range(y_train.shape[1]):
    m = HistGradientBoostingClassifier(max_iter=300, early_stopping=True, random_state=0)
    m.fit(x_train, y_train[:, k])
    out.append(float(np.mean(m.predict(x_test) == y_test[:, k])))
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--data_dir", default="tfds_data")
  p.add_argument("--workdir", default="", help="a social_attributes run (the 'predicted' row)")
  p.add_argument("--skip_oracles", action="store_true", help="only the rule and 'predicted' rows")
  args = p.parse_args()
  src = dict(name="synth_faces", data_dir=args.data_dir, builder_config=SYNTH_DATA)
  at_tr, cu_tr, y_tr, _ = true_pairs(src, "train")
  at_te, cu_te, y_te, rule_te = true_pairs(src, "test")

  def looks(attrs, cues):
    s = np.sign(cues[:, 6:7])
    return np.concatenate([s * attrs[:, 8:9], -s * attrs[:, 17:18]], 1)

  expr = list(range(7)) + list(range(9, 16))
  expr_mouth = expr + [7, 16]
  rows = {"rule (true attributes, noise-free rule)": list(np.mean(rule_te == y_te, 0))}
  arms = {
    "cues": (cu_tr, cu_te),
    "expr + cues": (np.c_[at_tr[:, expr], cu_tr], np.c_[at_te[:, expr], cu_te]),
    "expr + mouth + cues": (np.c_[at_tr[:, expr_mouth], cu_tr], np.c_[at_te[:, expr_mouth], cu_te]),
    "expr + mouth + yaw + cues": (np.c_[at_tr, cu_tr], np.c_[at_te, cu_te]),
    "expr + mouth + yaw + looks + cues": (
      np.c_[at_tr, cu_tr, looks(at_tr, cu_tr)],
      np.c_[at_te, cu_te, looks(at_te, cu_te)],
    ),
  }
  for name, (x_tr, x_te) in ({} if args.skip_oracles else arms).items():
    rows[f"trees: true {name}" if name != "cues" else "trees: cues only"] = trees(
      x_tr, y_tr, x_te, y_te
    )
  notes = []
  if args.workdir:
    p_tr, names = predicted(args.workdir, src, "train")
    p_te, _ = predicted(args.workdir, src, "test")
    rows[f"trees: {args.workdir} predictions + cues"] = trees(
      np.c_[p_tr, cu_tr], y_tr, np.c_[p_te, cu_te], y_te
    )
    if names[0] == "expression":
      k = p_te.shape[1] // 2
      pred = np.r_[p_te[:, :7].argmax(1), p_te[:, k : k + 7].argmax(1)]
      true = np.r_[at_te[:, :7].argmax(1), at_te[:, 9:16].argmax(1)]
      recall = [float(np.mean(pred[true == c] == c)) for c in range(7)]
      notes.append(
        f"{args.workdir} on the {len(true)} test pair faces: expression accuracy "
        f"{np.mean(pred == true):.3f}, recall "
        + ", ".join(f"{e} {r:.2f}" for e, r in zip(EXPRESSIONS, recall, strict=True))
      )
  traits = render_relations.TRAIT_NAMES
  print(f"{len(y_tr)} training / {len(y_te)} test pairs; test accuracy per trait.\n")
  print("| predictor | " + " | ".join(traits) + " | mean |")
  print("|---" * (len(traits) + 2) + "|")
  for name, accs in rows.items():
    print(f"| {name} | " + " | ".join(f"{a:.3f}" for a in accs) + f" | {np.mean(accs):.3f} |")
  for note in notes:
    print("\n" + note)


if __name__ == "__main__":
  main()
