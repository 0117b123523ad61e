"""Every registered evaluator, through the one evaluation loop, on oracle predictions.

For each entry of registry.EVALUATORS: the class satisfies the contract
(evaluation/contract.py), is built from its defaults (what a config naming it gets),
and `runner.consume` feeds it the (batch, outputs) pairs of its `inputs` kind, produced
by the real producers (data/pipeline.py region sets, evaluation/face_runner.py,
evaluation/image_runner.py) on rendered synth_faces scenes with outputs equal to the
truth. Every accuracy and AP must then be 1 and every error 0: a metric that reads the
wrong key, the wrong rows or the wrong units fails here.
"""

import itertools

import numpy as np
import pytest

from hyperface_jax import registry, tasks
from hyperface_jax.data import pipeline, render
from hyperface_jax.data.scene_store import SceneStore
from hyperface_jax.evaluation import contract, face_runner, image_runner, runner

NAMES = tuple(registry.EVALUATORS.names())
# Tasks labelled on the region sets: those the synth_faces scenes carry.
REGION_TASKS = (
  "detection",
  "landmarks",
  "visibility",
  "pose",
  "gender",
  "landmarks5",
  "landmarks68",
  "pose_class",
  "smiling",
  "eyeglasses",
  "expression",
)


@pytest.fixture(scope="module")
def store():
  """Six rendered scenes with the fields every evaluator reads; FDDB-style ellipses
  (ra, rb, theta, cx, cy) inscribed in the boxes, and random CelebA-style attributes."""
  scenes = [render.render_scene(np.random.default_rng(i)) for i in range(6)]
  rng = np.random.default_rng(0)
  for s in scenes:
    f = s["faces"]
    box = np.asarray(f["box"], np.float32)
    f["ellipse"] = np.stack(
      [
        box[:, 3] / 2,
        box[:, 2] / 2,
        np.zeros(len(box)),
        box[:, 0] + box[:, 2] / 2,
        box[:, 1] + box[:, 3] / 2,
      ],
      axis=1,
    ).astype(np.float32)
    f["attributes"] = rng.integers(0, 2, (len(box), 40))
    f["valid"]["attributes"] = np.ones(len(box), bool)
  fields = tasks.face_fields(tasks.resolve(REGION_TASKS + ("attributes",)))
  fields["ellipse"] = ((5,), np.float32)
  return SceneStore.from_examples(scenes, fields=fields)


def _oracle(task_names, batch):
  """Outputs equal to the labels: one-hot logits, +-10 binary logits, copied values."""
  out = {}
  for t in tasks.resolve(task_names):
    first = batch[next(iter(t.labels))]
    if np.issubdtype(first.dtype, np.integer) and first.ndim == 1:  # softmax class
      out[t.name] = 10.0 * np.eye(t.output_shape[0], dtype=np.float32)[first]
    elif np.issubdtype(first.dtype, np.integer):  # independent binary outputs
      out[t.name] = np.where(first > 0, 10.0, -10.0).astype(np.float32)
    else:
      out[t.name] = np.asarray(first, np.float32)
  return out


def _region_pairs(store):
  regions = pipeline.eval_regions(
    store, seed=0, regions_per_scene=6, image_size=None, task_names=REGION_TASKS
  )
  for batch in pipeline.iterate_batches(regions, 16):
    yield batch, _oracle(REGION_TASKS, batch)


def _face_pairs(store):
  """face_pairs with a model that returns each crop's truth, region-normalized."""
  rows = face_runner.face_rows(store)
  counter = itertools.count()
  batch_size = 8

  def apply(images):
    lo = next(counter) * batch_size
    sl = slice(lo, lo + batch_size)
    region = np.asarray(rows["crop_box"][sl], np.float64)
    n = len(region)
    centre = region[:, None, :2] + region[:, None, 2:] / 2
    out = {}
    for key in ("landmarks", "landmarks5", "landmarks68"):
      pts = (np.asarray(rows[key][sl], np.float64) - centre) / region[:, None, 2:]
      out[key] = np.concatenate([pts, np.zeros((batch_size - n,) + pts.shape[1:])])
    out["pose"] = _pad(rows["pose"][sl], batch_size)
    out["gender"] = 10.0 * np.eye(2)[_pad(np.maximum(rows["gender"][sl], 0), batch_size)]
    out["attributes"] = np.where(_pad(rows["attributes"][sl], batch_size) > 0, 10.0, -10.0)
    return out

  return face_runner.face_pairs(
    apply, store, input_size=16, normalize="minus_half", batch_size=batch_size
  )


def _pad(v, n):
  v = np.asarray(v)
  return np.concatenate([v, np.zeros((n - len(v),) + v.shape[1:], v.dtype)])


class _OracleAnalyzer:
  """Detects exactly the annotated faces of each image, with their true labels."""

  def __init__(self, store):
    self.by_image = {id(im): i for i, im in enumerate(store.images)}
    self.store = store

  def detect(self, images):
    dets = []
    for image in images:
      f = self.store.scene_faces(self.by_image[id(image)])
      dets.append(
        {
          "box": np.asarray(f["box"], np.float32),
          "score": np.linspace(1.0, 0.9, len(f["box"])).astype(np.float32),
          "landmarks": np.asarray(f["landmarks"], np.float32),
          "visibility": np.asarray(f["visibility"], np.float32),
          "pose": np.asarray(f["pose"], np.float32),
          "p_female": np.asarray(f["gender"] == 1, np.float32),
        }
      )
    return dets


def _pair_rows():
  """Every labelled face pair of rendered scenes (data/pairs.py), outputs = +-10 logits of
  the true traits."""
  from hyperface_jax.data import pairs  # pylint: disable=g-import-not-at-top

  scenes = [render.render_scene(np.random.default_rng(i)) for i in range(20)]
  rows = pairs.eval_arrays([pairs.PairSet.from_examples(scenes)], 16)
  for batch in pipeline.iterate_batches(rows, 16):
    yield batch, {"relations": np.where(batch["relations"] > 0, 10.0, -10.0)}


def _pairs(kind, store):
  if kind == "regions":
    return _region_pairs(store)
  if kind == "pairs":
    return _pair_rows()
  if kind == "faces":
    return _face_pairs(store)
  return image_runner.image_pairs(_OracleAnalyzer(store), store)


@pytest.mark.parametrize("name", NAMES)
def test_every_evaluator_scores_oracle_predictions_perfectly(name, store):
  cls = registry.EVALUATORS.get(name)
  contract.check(cls, name)
  evaluator = runner.make_evaluator({"name": name})
  results, protocol = runner.consume(evaluator, _pairs(evaluator.inputs, store))
  # Trivial baselines (baseline/..., social's test_majority/...) are not the model's.
  scored = {
    k: v
    for k, v in results.items()
    if not k.startswith(("count/", "baseline/")) and "majority" not in k.split("/")[0]
  }
  assert scored, f"{name} reported no metric: {sorted(results)}"
  assert protocol and all(isinstance(v, str) and v for v in protocol.values())
  checked = 0
  for key, value in scored.items():
    parts = key.split("/")[1:]  # e.g. landmarks/nme_inter_ocular/full -> nme_inter_ocular
    if any(
      p.startswith(("accuracy", "ap", "auc", "balanced_accuracy", "tpr", "fddb_")) for p in parts
    ):
      assert value == pytest.approx(1.0, abs=1e-6), (name, key, value)
      checked += 1
    elif any(p.startswith(("nme", "error", "mae", "failure_rate", "mse")) for p in parts):
      assert value == pytest.approx(0.0, abs=1e-5), (name, key, value)
      checked += 1
  assert checked, f"{name}: no metric was checked among {sorted(scored)}"


def test_contract_check_names_what_is_missing():
  class NoInputs:
    def reset(self): ...

    def update(self, batch, outputs): ...

  with pytest.raises(TypeError, match=r"missing methods \['result', 'protocol'\].*inputs=None"):
    contract.check(NoInputs, "broken")
