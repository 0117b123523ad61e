"""The task contract (hyperface_jax/tasks.py): a new task is one declaration.

`yaw_side` below is declared in this file alone -- which way the face is turned, from
the sign of the true yaw, with its flip rule (a mirror turns the face the other way) --
and is then labelled by the region sampler, flipped, trained and evaluated by the
unchanged code.
"""

import json
import os
import sys

import numpy as np
import pytest

from hyperface_jax import registry, tasks, train
from hyperface_jax.data import inputs, preprocess, sampling
from hyperface_jax.metric_writer import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _side_flip(arrays):
  """Mirroring swaps the sides: labels 0 <-> 1, and the two logits."""
  out = dict(arrays)
  v = np.asarray(out["yaw_side"])
  out["yaw_side"] = v[..., ::-1].copy() if v.ndim == 2 else 1 - v
  return out


YAW_SIDE = tasks.Task(
  name="yaw_side",
  labels={"yaw_side": ((), np.int32)},
  fields={"pose": ((3,), np.float32)},
  output_shape=(2,),
  loss="softmax_cross_entropy",
  metrics=tasks.class_metrics,
  min_iou=0.5,
  encode=lambda fields, regions: {"yaw_side": (np.asarray(fields["pose"])[:, 2] > 0)},
  flip=_side_flip,
)
if "yaw_side" not in registry.TASKS:
  tasks.register(YAW_SIDE)


def _faces(boxes, yaws):
  n = len(boxes)
  pose = np.zeros((n, 3), np.float32)
  pose[:, 2] = yaws
  return {
    "box": np.asarray(boxes, np.float32).reshape(n, 4),
    "pose": pose,
    "valid": {"box": np.ones(n, bool), "pose": np.ones(n, bool)},
  }


def test_declared_task_is_labelled_from_faces_by_its_iou_rule():
  faces = _faces([[10, 10, 40, 40], [100, 10, 40, 40]], [0.4, -0.7])
  regions = np.array(
    [
      [10, 10, 40, 40],  # face 0 exactly: IoU 1
      [100, 10, 40, 40],  # face 1 exactly
      [14, 10, 40, 40],  # face 0 shifted by 4: IoU 36/44 > 0.5
      [30, 10, 40, 40],  # shifted by 20: IoU 20/60 = 1/3 <= 0.5: no label
    ]
  )
  lab = sampling.label_regions(regions, faces, task_names=("detection", "yaw_side"))
  np.testing.assert_array_equal(lab["yaw_side"], [1, 0, 1, 0])
  np.testing.assert_array_equal(lab["yaw_side_mask"], [1, 1, 1, 0])
  np.testing.assert_array_equal(lab["detection"], [1, 1, 1, 0])
  np.testing.assert_array_equal(lab["detection_mask"], [1, 1, 1, 1])  # 1/3 < 0.35
  # The config's threshold for the task overrides its declared default.
  lab = sampling.label_regions(regions, faces, {"yaw_side": 0.9}, task_names=("yaw_side",))
  np.testing.assert_array_equal(lab["yaw_side_mask"], [1, 1, 0, 0])
  assert set(lab) == {"yaw_side", "yaw_side_mask", "region", "face_box", "iou"}


def test_invalid_field_masks_the_task():
  faces = _faces([[10, 10, 40, 40]], [0.4])
  faces["valid"]["pose"][:] = False
  lab = sampling.label_regions(np.array([[10, 10, 40, 40]]), faces, task_names=("yaw_side",))
  assert lab["yaw_side_mask"][0] == 0 and lab["yaw_side"][0] == 0


def test_flip_rules_apply_once_per_key():
  labels = {
    "yaw_side": np.array([1, 0]),
    "pose": np.array([[0.1, 0.2, 0.3], [0, 0, -0.5]], np.float32),
    "visibility": np.tile(np.arange(21, dtype=np.float32), (2, 1)),
  }
  out = preprocess.flip_labels(labels)
  np.testing.assert_array_equal(out["yaw_side"], [0, 1])
  np.testing.assert_allclose(out["pose"], [[-0.1, 0.2, -0.3], [0, 0, 0.5]])
  # visibility is declared by both landmarks and visibility: permuted exactly once.
  from hyperface_jax.data import schemes  # pylint: disable=g-import-not-at-top

  np.testing.assert_array_equal(out["visibility"][0], schemes.AFLW21_FLIP.astype(np.float32))
  # Outputs use the task's name: logits swap.
  np.testing.assert_array_equal(
    preprocess.flip_labels({"yaw_side": np.array([[2.0, -1.0]])})["yaw_side"], [[-1.0, 2.0]]
  )


def test_batch_keys_and_conflicting_specs():
  keys = tasks.batch_keys(tasks.resolve(("landmarks", "visibility", "yaw_side")))
  assert keys == (
    "image",
    "example_mask",
    "landmarks",
    "visibility",
    "landmarks_mask",
    "visibility_mask",
    "yaw_side",
    "yaw_side_mask",
  )
  with pytest.raises(KeyError, match="Unknown task 'nope'"):
    tasks.resolve(("nope",))


def _config(data_dir):
  sys.path.insert(0, REPO)
  from configs import smoke  # pylint: disable=g-import-not-at-top

  c = smoke.get_config()
  c.data.data_dir = str(data_dir)
  c.total_steps = 2
  c.eval_every = 2
  c.checkpoint_every = 2
  c.tasks = ("detection", "yaw_side")
  c.model.tasks = ("detection",)
  c.model.extra_tasks = (("yaw_side", (2,)),)
  c.weighting.weights = {"detection": 1.0, "yaw_side": 1.0}
  return c


def test_a_declared_task_trains_and_evaluates_through_the_one_loop(tmp_path):
  config = _config(tmp_path / "tfds")
  inputs.ensure_prepared(config.data)
  batch = inputs.load(config).train_batch(1, config.batch_size)
  assert set(batch) == set(tasks.batch_keys(tasks.resolve(config.tasks)))
  assert batch["yaw_side_mask"].sum() > 0
  results = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["count/yaw_side"] > 0 and 0.0 <= results["yaw_side/accuracy"] <= 1.0
  rows = read_metrics(str(tmp_path / "run"))
  losses = [r["train/loss/yaw_side"] for r in rows if "train/loss/yaw_side" in r]
  assert losses and np.all(np.isfinite(losses))
  assert [r["weight/yaw_side"] for r in rows if "weight/yaw_side" in r][0] == 1.0
  with open(tmp_path / "run" / "results.json") as f:
    saved = json.load(f)
  assert "class_metrics" not in saved["protocol/yaw_side/accuracy"]
  assert saved["yaw_side/accuracy"] == pytest.approx(results["yaw_side/accuracy"])


def test_model_output_of_the_wrong_shape_is_refused():
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  batch = {
    "yaw_side": jnp.zeros(2, jnp.int32),
    "yaw_side_mask": jnp.ones(2),
    "example_mask": jnp.ones(2),
  }
  with pytest.raises(ValueError, match=r"per-example shape \(3,\) but the task declares \(2,\)"):
    tasks.compute_losses((YAW_SIDE,), {"yaw_side": jnp.zeros((2, 3))}, batch)
  with pytest.raises(ValueError, match="has no model output"):
    tasks.compute_losses((YAW_SIDE,), {}, batch)
