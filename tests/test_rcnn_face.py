"""R-CNN_Face (docs/papers.md 1.3): detection-only model, loss, evaluator, and the two-stage chain."""

import os
import sys

import jax
import numpy as np
import pytest

from hyperface_jax import checkpointing, registry, sharding, surgery, tasks, train
from hyperface_jax.data import inputs
from hyperface_jax.evaluation import metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from configs import hyperface_alexnet, rcnn_face, smoke  # noqa: E402  pylint: disable=g-import-not-at-top


def _shapes(model, size=67):
  return jax.tree.map(
    lambda x: x.shape,
    jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, size, size, 3), np.float32))
    ),
  )


def test_backbone_names_and_shapes_match_hyperface():
  kwargs = dict(width=0.5, conv_groups=2, norm="batch")
  rcnn = _shapes(registry.MODELS.get("rcnn_face_alexnet")(**kwargs))
  hyper = _shapes(registry.MODELS.get("hyperface_alexnet")(**kwargs))
  assert set(rcnn["params"]) == {"backbone", "classifier"}
  assert surgery.flatten(rcnn["params"]["backbone"]) == surgery.flatten(hyper["params"]["backbone"])
  assert surgery.flatten(rcnn["batch_stats"]) == surgery.flatten(
    {"backbone": hyper["batch_stats"]["backbone"]}
  )
  # docs/papers.md 1.3 (TK): fc6 4096 (scaled by width) -> fc7 512 -> fc8 2; pool5 1x1 at 67 px.
  head = surgery.flatten(rcnn["params"]["classifier"])
  assert head["fc6/kernel"] == (128, 2048) and head["fc7/kernel"] == (2048, 512)
  assert head["fc8/kernel"] == (512, 2)


def test_only_detection_is_predicted_and_lost():
  model = registry.MODELS.get("rcnn_face_alexnet")(width=0.125, dropout=0.0)
  images = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 67, 67, 3)).astype(np.float32)
  out = jax.jit(lambda x: model.apply(model.init(jax.random.PRNGKey(0), x), x))(images)
  assert list(out) == ["detection"] and out["detection"].shape == (4, 2)
  batch = {
    "detection": np.array([1, 0, 1, 1], np.int32),
    "detection_mask": np.array([1, 1, 0, 1], np.float32),
    "example_mask": np.ones(4, np.float32),
  }  # no labels of other tasks needed
  result = tasks.compute_losses(tasks.resolve(("detection",)), out, batch)
  assert list(result) == ["detection"]
  logits = np.asarray(out["detection"], np.float64)
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  expected = -(log_p[0, 1] + log_p[1, 0] + log_p[3, 1])  # row 2 masked out
  np.testing.assert_allclose(result["detection"][0], expected, rtol=1e-5)
  assert float(result["detection"][1]) == 3.0


def test_configured_tasks_need_model_outputs():
  outputs = {"detection": np.zeros((2, 2), np.float32)}
  batch = {
    "detection": np.zeros(2, np.int32),
    "detection_mask": np.ones(2, np.float32),
    "example_mask": np.ones(2, np.float32),
    "pose": np.zeros((2, 3), np.float32),
    "pose_mask": np.ones(2, np.float32),
  }
  with pytest.raises(
    ValueError, match=r"Task 'pose' has no model output; the model returns \['detection'\]"
  ):
    tasks.compute_losses(tasks.resolve(("detection", "pose")), outputs, batch)


def test_detection_evaluator_reads_only_detection():
  ev = registry.EVALUATORS.get("detection_regions")()
  logits = np.array([[0.0, 2.0], [1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 0.5]])
  labels = np.array([1, 0, 0, 0, 1])
  mask = np.array([1, 1, 1, 1, 0], np.float32)  # the last row is not labelled
  ev.update(
    {"detection": labels, "detection_mask": mask, "example_mask": np.ones(5)}, {"detection": logits}
  )
  r = ev.result()
  # Hand-worked over rows 0-3: p_face = (.88, .27, .73, .05), labels (1, 0, 0, 0):
  # accuracy 3/4; the only positive ranks first, so AP = 1; constant-score AP = 1/4.
  assert r["count/detection"] == 4 and r["count/landmarks"] == 0 and r["count/examples"] == 5
  assert r["detection/accuracy"] == pytest.approx(0.75)
  assert r["detection/ap"] == pytest.approx(
    metrics.average_precision(np.array([0.88, 0.27, 0.73, 0.05]), labels[:4])
  )
  assert r["detection/ap"] == pytest.approx(1.0)
  assert r["baseline/detection/ap"] == pytest.approx(0.25)
  assert not any(k.startswith(("landmarks/", "pose/", "gender/")) for k in r)


def _small(config, data_dir):
  s = smoke.get_config()
  for key in (
    "total_steps",
    "batch_size",
    "eval_batch_size",
    "log_every",
    "eval_every",
    "checkpoint_every",
    "input_size",
  ):
    setattr(config, key, s[key])
  config.model.width = 0.125
  config.model.dropout = 0.0
  config.model.norm = "batch"
  config.schedule.warmup_steps = 0
  config.data = s.data
  config.data.data_dir = str(data_dir)
  config.report.num_crops = 4
  config.total_steps = config.eval_every = config.checkpoint_every = 2
  config.log_every = 1
  return config


@pytest.mark.slow
def test_rcnn_face_then_hyperface_starts_from_its_convs(tmp_path):
  data_dir = tmp_path / "tfds"
  stage1 = _small(rcnn_face.get_config(), data_dir)
  inputs.ensure_prepared(stage1.data)
  results = train.train_and_evaluate(stage1, str(tmp_path / "rcnn"))
  assert 0.0 <= results["detection/ap"] <= 1.0 and results["count/detection"] > 0
  assert "landmarks/nme" not in results
  assert os.path.exists(tmp_path / "rcnn" / "report" / "results.md")

  stage2 = _small(hyperface_alexnet.get_config(), data_dir)
  stage2.model_init = str(tmp_path / "rcnn")
  mesh = sharding.make_mesh()
  _, _, _, _, init = train.build(stage2, mesh)
  ckpt = checkpointing.Checkpointer(str(tmp_path / "hyperface"))
  state = train.restore_or_init(stage2, mesh, init, ckpt)
  ckpt.close()
  loaded = checkpointing.restore_variables(str(tmp_path / "rcnn"))
  got = sharding.to_host({"params": state.params, **state.model_state})
  for coll in ("params", "batch_stats"):
    want, have = surgery.flatten(loaded[coll]["backbone"]), surgery.flatten(got[coll]["backbone"])
    assert sorted(want) == sorted(have)
    for name in want:
      np.testing.assert_array_equal(have[name], want[name], err_msg=f"{coll}/backbone/{name}")
  assert "fusion" in got["params"] and "heads" in got["params"]
