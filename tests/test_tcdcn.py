"""TCDCN end to end (docs/papers.md section 2): network, tasks, grey input, evaluator,
68-point head surgery and short runs of the :cpu configs."""

import json
import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperface_jax import checkpointing, registry, sharding, surgery, tasks, train
from hyperface_jax import model_init as model_init_lib
from hyperface_jax.data import inputs, preprocess
from hyperface_jax.evaluation import baselines
from hyperface_jax.evaluation.landmarks5_regions import TCDCNRegionEvaluator
from hyperface_jax.metric_writer import read_metrics
from hyperface_jax.models import tcdcn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# docs/papers.md 2.1, worked out by hand: (kernel shape, bias) per layer.
ECCV14_PARAMS = {
  "backbone/conv1": ((5, 5, 1, 16), 16),  # 400 + 16 = 416
  "backbone/conv2": ((3, 3, 16, 48), 48),  # 6,912 + 48 = 6,960
  "backbone/conv3": ((3, 3, 48, 64), 64),  # 27,648 + 64 = 27,712
  "backbone/conv4": ((2, 2, 64, 64), 64),  # 16,384 + 64 = 16,448
  "backbone/fc": ((2 * 2 * 64, 100), 100),  # 25,600 + 100 = 25,700
  "heads/landmarks5": ((100, 10), 10),  # 1,010
  "heads/pose_class": ((100, 5), 5),  # 505
  "heads/gender": ((100, 2), 2),  # 202
  "heads/eyeglasses": ((100, 2), 2),  # 202
  "heads/smiling": ((100, 2), 2),  # 202
}
ECCV14_TOTAL = 416 + 6_960 + 27_712 + 16_448 + 25_700 + 1_010 + 505 + 3 * 202  # 79,357


def _init(model, size=40, channels=3):
  return model.init(jax.random.PRNGKey(0), jnp.zeros((2, size, size, channels)))


# ------------------------------------------------------------------------- network


def test_eccv14_parameters_match_the_hand_count():
  variables = _init(registry.MODELS.get("tcdcn")())
  flat = surgery.flatten(variables["params"])
  got = {n.rsplit("/", 1)[0] for n in flat}
  assert got == set(ECCV14_PARAMS)
  for layer, (kernel, bias) in ECCV14_PARAMS.items():
    assert flat[f"{layer}/kernel"].shape == kernel, layer
    assert flat[f"{layer}/bias"].shape == (bias,), layer
  assert surgery.count_params(variables["params"]) == ECCV14_TOTAL == 79_357


def test_layer_output_shapes_follow_the_table():
  model = registry.MODELS.get("tcdcn")()
  variables = _init(model)
  out, state = model.apply(
    variables, jnp.zeros((3, 40, 40, 3)), capture_intermediates=True, mutable=["intermediates"]
  )
  inter = state["intermediates"]["backbone"]
  for name, shape in (
    ("conv1", (3, 36, 36, 16)),
    ("conv2", (3, 16, 16, 48)),
    ("conv3", (3, 6, 6, 64)),
    ("conv4", (3, 2, 2, 64)),
    ("fc", (3, 100)),
  ):
    assert inter[name]["__call__"][0].shape == shape, name
  assert {k: v.shape for k, v in out.items()} == {
    "landmarks5": (3, 5, 2),
    "pose_class": (3, 5),
    "gender": (3, 2),
    "eyeglasses": (3, 2),
    "smiling": (3, 2),
  }


def test_tpami16_heads_come_from_the_task_declarations():
  model = registry.MODELS.get("tcdcn_tpami16")()
  out = model.apply(_init(model), jnp.zeros((1, 40, 40, 3)))
  assert out["landmarks5"].shape == (1, 5, 2) and out["attributes22"].shape == (1, 22)
  wide = registry.MODELS.get("tcdcn")(
    tasks=("landmarks68",), conv_features=(8, 8, 8, 8), feature_dim=32
  )
  v = wide.init(jax.random.PRNGKey(0), jnp.zeros((1, 60, 60, 3)))
  # 60 px: 56 -> 28 -> 26 -> 13 -> 11 -> 5 -> 4: fc sees 4 x 4 x 8.
  assert v["params"]["backbone"]["fc"]["kernel"].shape == (128, 32)
  assert v["params"]["heads"]["landmarks68"]["kernel"].shape == (32, 136)


def test_abs_tanh_and_max_pool():
  x = jnp.array([-3.0, -0.5, 0.0, 0.5, 3.0])
  np.testing.assert_allclose(tcdcn.abs_tanh(x), np.abs(np.tanh(np.asarray(x))), rtol=1e-6)
  y = jax.random.normal(jax.random.PRNGKey(1), (2, 7, 6, 3))  # odd side: floor
  np.testing.assert_array_equal(
    tcdcn.max_pool(y, 2), nn.max_pool(y, (2, 2), strides=(2, 2), padding="VALID")
  )


def test_shared_feature_is_abs_tanh_of_the_fc_layer():
  """The heads read |tanh(fc)|: rebuild an output from the captured fc pre-activation."""
  model = registry.MODELS.get("tcdcn")()
  variables = _init(model)
  images = jax.random.normal(jax.random.PRNGKey(2), (4, 40, 40, 3))
  out, state = model.apply(variables, images, capture_intermediates=True, mutable=["intermediates"])
  pre = state["intermediates"]["backbone"]["fc"]["__call__"][0]
  head = variables["params"]["heads"]["pose_class"]
  want = np.abs(np.tanh(np.asarray(pre))) @ np.asarray(head["kernel"]) + np.asarray(head["bias"])
  np.testing.assert_allclose(out["pose_class"], want, rtol=1e-5, atol=1e-6)
  conv1 = np.asarray(state["intermediates"]["backbone"]["conv1"]["__call__"][0])
  assert conv1.min() < 0  # pre-activations take both signs; the feature cannot
  feat = np.abs(np.tanh(np.asarray(pre)))
  assert feat.min() >= 0 and feat.max() <= 1


# ---------------------------------------------------------------------- grey input


def test_grey_normalization_by_hand():
  px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200], [0, 0, 0]]], np.uint8)
  got = preprocess.normalize(px, "grey")
  # BT.601: Y = 0.299 R + 0.587 G + 0.114 B, then Y / 255 - 0.5, in all 3 channels.
  want = [0.299 - 0.5, 0.587 - 0.5, 0.114 - 0.5, (29.9 + 88.05 + 22.8) / 255 - 0.5, -0.5]
  assert got.shape == (1, 5, 3) and got.dtype == np.float32
  for c in range(3):
    np.testing.assert_allclose(got[0, :, c], want, atol=1e-6)


def test_model_reads_one_luma_channel():
  rng = np.random.default_rng(0)
  px = rng.integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
  grey, rgb = preprocess.normalize(px, "grey"), preprocess.normalize(px, "minus_half")
  np.testing.assert_allclose(tcdcn.to_grey(jnp.asarray(grey))[..., 0], grey[..., 0], atol=1e-6)
  np.testing.assert_allclose(tcdcn.to_grey(jnp.asarray(rgb))[..., 0], grey[..., 0], atol=1e-6)
  model = registry.MODELS.get("tcdcn")()
  variables = _init(model)
  one = model.apply(variables, jnp.asarray(grey[..., :1]))  # [B, H, W, 1] works too
  three = model.apply(variables, jnp.asarray(grey))
  for k in one:
    np.testing.assert_allclose(one[k], three[k], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- tasks


def test_tcdcn_task_declarations():
  for name, classes in (
    ("pose_class", 5),
    ("smiling", 2),
    ("eyeglasses", 2),
    ("mouth_open", 2),
    ("expression", 7),
    ("age_group", 4),
  ):
    task = tasks.get(name)
    assert task.output_shape == (classes,) and task.loss == "softmax_cross_entropy"
    assert list(task.valid({name: np.array([-1, 0, classes - 1, classes])})) == [0, 1, 1, 0]
  assert tasks.get("attributes22").output_shape == (22,)


def test_pose_class_flip_swaps_left_and_right():
  task = tasks.get("pose_class")
  labels = task.flip({"pose_class": np.array([0, 1, 2, 3, 4], np.int32)})["pose_class"]
  assert labels.tolist() == [4, 3, 2, 1, 0] and labels.dtype == np.int32
  logits = np.arange(10, dtype=np.float32).reshape(2, 5)
  np.testing.assert_array_equal(task.flip({"pose_class": logits})["pose_class"], logits[:, ::-1])
  # Synth pose classes come from yaw, which a mirror negates (docs/synth_faces.md).
  from hyperface_jax.data import face_model

  yaw = np.deg2rad([-80, -30, 5, 30, 80])
  assert (4 - face_model.pose_class(yaw)).tolist() == face_model.pose_class(-yaw).tolist()


def test_attributes22_rule_and_encoding():
  from hyperface_jax.data.builders import celeba_lists

  names = celeba_lists.CELEBA_ATTRIBUTES
  assert [names[i] for i in tasks.ATTRIBUTES22_INDEX] == list(tasks.ATTRIBUTES22)
  hair = [n for n in names if "Hair" in n or n in ("Bald", "Bangs")]
  assert not set(hair) & set(tasks.ATTRIBUTES22)
  attrs = np.zeros((2, 40), np.int64)
  attrs[0, names.index("Smiling")] = 1
  attrs[1, names.index("Wearing_Hat")] = 1  # not among the 22
  enc = tasks.get("attributes22").encode({"attributes": attrs}, np.zeros((2, 4)))
  assert enc["attributes22"][0].tolist() == [int(n == "Smiling") for n in tasks.ATTRIBUTES22]
  assert enc["attributes22"][1].sum() == 0


# ------------------------------------------------------------ baselines, evaluator


def _region_batch():
  """Two real rows and one padding row, square regions of 40 px at the origin."""
  region = np.array([[0, 0, 40, 40], [10, 10, 40, 40], [0, 0, 1, 1]], np.float32)
  pts = np.zeros((3, 5, 2), np.float32)
  pts[:, 0] = (-0.25, -0.1)  # left eye
  pts[:, 1] = (0.25, -0.1)  # right eye: inter-ocular 0.5 x 40 = 20 px
  return {
    "region": region,
    "face_box": np.array([[0, 0, 40, 40], [10, 10, 40, 40], [0, 0, 1, 1]], np.float32),
    "example_mask": np.array([1, 1, 0], np.float32),
    "landmarks5": pts,
    "visibility5": np.array([[1] * 5, [1, 1, 1, 1, 0], [1] * 5], np.float32),
    "landmarks5_mask": np.ones(3, np.float32),
    "smiling": np.array([1, 1, 0], np.int32),
    "smiling_mask": np.array([1, 1, 1], np.float32),
    "pose_class": np.array([2, 0, 0], np.int32),
    "pose_class_mask": np.array([1, 1, 0], np.float32),
  }


def test_task_constants_by_hand():
  b = _region_batch()
  b["landmarks5"][1, 4] = (0.2, 0.4)  # invisible in row 1: not in the mean
  b["landmarks5"][0, 4] = (0.1, 0.3)
  const = baselines.task_constants([b])
  np.testing.assert_allclose(const["landmarks5"][4], (0.1, 0.3), atol=1e-6)
  np.testing.assert_allclose(const["landmarks5"][0], (-0.25, -0.1), atol=1e-6)
  np.testing.assert_array_equal(const["smiling"], [0, 1])  # padding row 2 does not count
  np.testing.assert_array_equal(const["pose_class"], [1, 0, 0, 0, 0])  # tie 0 vs 2 -> 0


def test_tcdcn_regions_evaluator_by_hand():
  b = _region_batch()
  pred = b["landmarks5"].copy()
  pred[0, :, 0] += 0.04  # row 0: every point 1.6 px off: NME 1.6 / 20 = 0.08 (no failure)
  pred[1, :4, 1] += 0.1  # row 1: the 4 visible points 4 px off: NME 0.2 (failure)
  outputs = {
    "landmarks5": pred,
    "smiling": np.array([[0, 1], [1, 0], [0, 1]], np.float32),  # row 1 wrong
    "pose_class": np.zeros((3, 5), np.float32),
  }
  ev = TCDCNRegionEvaluator(failure_threshold=0.1)
  ev.set_baselines(
    task_constants={"landmarks5": b["landmarks5"][0], "smiling": np.array([-1.0, 1.0])}
  )
  ev.reset()
  ev.update(b, outputs)
  r = ev.result()
  assert r["landmarks5/nme_interocular"] == pytest.approx(0.14)
  assert r["landmarks5/failure_rate_0.1"] == pytest.approx(0.5)
  assert r["landmarks5/nme_box"] == pytest.approx((1.6 / 40 + 4 / 40) / 2)
  assert r["landmarks5/nme_interocular/frontal"] == pytest.approx(0.08)
  assert r["landmarks5/nme_interocular/left_profile"] == pytest.approx(0.2)
  assert r["landmarks5/failure_rate_0.1/frontal"] == 0.0
  assert r["landmarks5/failure_rate_0.1/left_profile"] == 1.0
  assert r["smiling/accuracy"] == pytest.approx(0.5)
  assert r["baseline/smiling/accuracy"] == pytest.approx(1.0)
  assert r["baseline/landmarks5/nme_interocular"] == pytest.approx(0.0)
  assert r["count/landmarks5_interocular"] == 2
  # The same rows in two batches (with padding) give the same numbers.
  ev2 = TCDCNRegionEvaluator(failure_threshold=0.1)
  ev2.set_baselines(
    task_constants={"landmarks5": b["landmarks5"][0], "smiling": np.array([-1.0, 1.0])}
  )
  ev2.reset()
  for rows in ([0, 2], [1, 2]):
    ev2.update({k: v[rows] for k, v in b.items()}, {k: v[rows] for k, v in outputs.items()})
  assert ev2.result() == pytest.approx(r)
  assert "landmarks5/nme_interocular" in ev.protocol()


# ------------------------------------------------------------------- head surgery


def test_set_linear_head():
  params = {
    "heads": {
      "landmarks68": {"kernel": np.ones((4, 136), np.float32), "bias": np.ones(136, np.float32)}
    }
  }
  mean = np.arange(136, dtype=np.float64).reshape(68, 2)
  out = surgery.set_linear_head(params, "heads/landmarks68", mean)
  assert out["heads"]["landmarks68"]["kernel"].sum() == 0
  np.testing.assert_array_equal(out["heads"]["landmarks68"]["bias"], mean.reshape(-1))
  assert out["heads"]["landmarks68"]["bias"].dtype == np.float32
  with pytest.raises(ValueError, match="136"):
    surgery.set_linear_head(params, "heads/landmarks68", np.zeros(10))
  with pytest.raises(KeyError, match="not a Dense"):
    surgery.set_linear_head(params, "heads/nope", mean)


# ---------------------------------------------------------------- end-to-end runs


def _configs():
  sys.path.insert(0, REPO)
  from configs import tcdcn_eccv14, tcdcn_tpami16  # pylint: disable=g-import-not-at-top

  return tcdcn_eccv14, tcdcn_tpami16


def _shrink(c, data_dir, steps=4):
  c.data.data_dir = str(data_dir)
  c.data.builder_config = dict(train_size=32, validation_size=8, test_size=8, seed=0)
  c.total_steps = steps
  c.batch_size = 16
  c.eval_batch_size = 16
  c.log_every = 1
  c.eval_every = 1
  c.checkpoint_every = steps
  c.schedule.warmup_steps = 0
  c.report.num_crops = 0
  return c


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("tfds")
  eccv, _ = _configs()
  inputs.ensure_prepared(_shrink(eccv.get_config("cpu"), d).data)
  return d


def test_configs_load():
  eccv, tpami = _configs()
  assert eccv.get_config("cpu").model_name == "tcdcn"
  for arg in tpami.VARIANTS:
    assert tpami.get_config(arg).input_size == 40
  with pytest.raises(ValueError, match="unknown variant"):
    tpami.get_config("nope")


@pytest.mark.slow
def test_eccv14_cpu_run_with_early_stopping(data_dir, tmp_path):
  eccv, _ = _configs()
  c = _shrink(eccv.get_config("cpu"), data_dir, steps=8)
  c.weighting.name = "tcdcn_early_stop"
  c.weighting.tcdcn_early_stop.k = 1
  c.weighting.tcdcn_early_stop.epsilon = -1e9  # every auxiliary task stops at its first check
  workdir = str(tmp_path / "eccv")
  results = train.train_and_evaluate(c, workdir)
  with open(os.path.join(workdir, "results.json")) as f:
    saved = json.load(f)
  for key in (
    "landmarks5/nme_interocular",
    "landmarks5/failure_rate_0.1",
    "baseline/landmarks5/nme_interocular",
    "baseline/landmarks5/failure_rate_0.1",
    "pose_class/accuracy",
    "baseline/pose_class/accuracy",
    "smiling/accuracy",
    "baseline/smiling/accuracy",
  ):
    assert key in saved and np.isfinite(saved[key]), key
  assert saved["landmarks5/nme_interocular"] == pytest.approx(results["landmarks5/nme_interocular"])
  assert os.path.getsize(os.path.join(workdir, "report", "weights.png")) > 0
  rows = read_metrics(workdir)
  last = [r for r in rows if "stopped_step/gender" in r][-1]
  assert last["stopped_step/landmarks5"] == -1  # the main task never stops
  assert last["stopped_step/gender"] > 0 and last["weight/gender"] == 0.0


@pytest.mark.slow
def test_tpami16_pretrain_then_68_point_finetune(data_dir, tmp_path):
  _, tpami = _configs()
  pre_dir = str(tmp_path / "pre")
  train.train_and_evaluate(_shrink(tpami.get_config("cpu"), data_dir), pre_dir)
  c = _shrink(tpami.get_config("finetune68_cpu"), data_dir)
  c.model_init = pre_dir
  # The state the fine-tune starts from (what the train loop builds before step 1).
  mesh = sharding.make_mesh()
  *_, init = train.build(c, mesh)
  ckpt = checkpointing.Checkpointer(str(tmp_path / "ft_probe"))
  state = train.restore_or_init(c, mesh, init, ckpt)
  ckpt.close()
  params = sharding.to_host(state.params)
  pre = checkpointing.restore_variables(pre_dir)["params"]
  flat, flat_pre = surgery.flatten(params), surgery.flatten(pre)
  backbone = [n for n in flat if n.startswith("backbone/")]
  assert len(backbone) == 10
  for n in backbone:
    assert flat[n].dtype == flat_pre[n].dtype and flat[n].tobytes() == flat_pre[n].tobytes(), n
  assert set(surgery.flatten(params["heads"])) == {"landmarks68/kernel", "landmarks68/bias"}
  mean = model_init_lib.training_mean(c, "landmarks68")
  assert mean.shape == (68, 2) and np.abs(mean).max() < 1
  model = registry.MODELS.get(c.model_name)(**c.model)
  images = np.random.default_rng(0).normal(size=(3, 40, 40, 3)).astype(np.float32)
  out = model.apply({"params": params}, images)["landmarks68"]
  np.testing.assert_array_equal(out, np.broadcast_to(mean, (3, 68, 2)))
  # ... and the fine-tune itself runs and evaluates the 68 points with their baseline.
  results = train.train_and_evaluate(c, str(tmp_path / "ft"))
  assert np.isfinite(results["landmarks68/nme_interocular"])
  assert "baseline/landmarks68/nme_interocular" in results


def test_report_lists_final_weights_and_stopped_steps():
  from hyperface_jax.evaluation import report

  rows = [
    {"step": 10, "weight/gender": 1.0, "stopped_step/gender": -1, "train/loss": 2.0},
    {"step": 20, "weight/gender": 0.0, "stopped_step/gender": 12, "weight/landmarks5": 100.0},
  ]
  summary = report.training_summary(rows)
  assert summary == {"weight/gender": 0.0, "stopped_step/gender": 12, "weight/landmarks5": 100.0}
  md = report.training_markdown(summary)
  assert "| gender | 0 | 12 |" in md and "| landmarks5 | 100 |  |" in md
  assert report.training_markdown({}) == ""


def test_tcdcn_regions_reports_each_of_the_22_attributes():
  labels = np.zeros((3, 22), np.int32)
  labels[:, tasks.ATTRIBUTES22.index("Smiling")] = (1, 1, 0)
  batch = {
    "example_mask": np.array([1, 1, 0], np.float32),
    "attributes22": labels,
    "attributes22_mask": np.array([1, 1, 1], np.float32),
  }
  logits = np.full((3, 22), -1.0, np.float32)
  logits[0, tasks.ATTRIBUTES22.index("Smiling")] = 1.0  # right on row 0, wrong on row 1
  ev = TCDCNRegionEvaluator()
  ev.set_baselines(task_constants={"attributes22": np.where(labels[0] > 0, 1.0, -1.0)})
  ev.reset()
  ev.update(batch, {"attributes22": logits})
  r = ev.result()
  assert r["attributes22/accuracy/Smiling"] == pytest.approx(0.5)
  assert r["attributes22/accuracy/Male"] == pytest.approx(1.0)
  assert r["baseline/attributes22/accuracy/Smiling"] == pytest.approx(1.0)
  assert r["attributes22/accuracy"] == pytest.approx(43 / 44)  # task_metrics: all outputs
