"""ResNet backbones, ImageNet classifiers and HyperFace-ResNet: counts, names, numerics."""

import functools
import importlib.util
import os

import caffe_fixture as cf  # NumPy NCHW conv / pooling reference (tests/)
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import hyperface_jax.models  # noqa: F401  (registers the models)
from hyperface_jax import sharding, steps, train
from hyperface_jax.models.classifiers import adaptive_avg_pool
from hyperface_jax.models.hyperface_resnet import HyperFaceResNet, adaptive_max_pool
from hyperface_jax.models.resnet import Bottleneck, ResNet, block_names, ceil_mode_padding
from hyperface_jax.registry import MODELS


def count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def abstract_variables(model, size, batch=1):
  x = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape)))


@pytest.mark.parametrize(
  "name,expected", [("resnet50", 25_557_032), ("resnet101", 44_549_160), ("resnet152", 60_192_808)]
)
def test_classifier_param_counts_equal_torchvision(name, expected):
  variables = abstract_variables(MODELS.get(name)(), 224)
  assert count(variables["params"]) == expected  # torchvision's published counts
  assert sorted(variables["params"]) == ["backbone", "classifier"]
  assert variables["params"]["classifier"]["fc"]["kernel"].shape == (2048, 1000)


def test_caffe_block_names():
  names = block_names(101)
  assert names[0] == ["res2a", "res2b", "res2c"]
  assert names[1] == ["res3a", "res3b1", "res3b2", "res3b3"]
  assert len(names[2]) == 23 and names[2][-1] == "res4b22"
  assert block_names(50)[2] == [f"res4{c}" for c in "abcdef"]
  assert block_names(26) == [[f"res{s}a", f"res{s}b"] for s in (2, 3, 4, 5)]
  assert block_names(152)[1][-1] == "res3b7" and block_names(152)[2][-1] == "res4b35"
  with pytest.raises(ValueError, match="depth must be one of"):
    block_names(34)


def test_named_output_shapes_resnet50_224():
  model = ResNet(depth=50)
  x = jnp.zeros((1, 224, 224, 3))
  variables = abstract_variables(model, 224)
  out = jax.eval_shape(model.apply, variables, x)
  shapes = {k: v.shape[1:] for k, v in out.items()}
  assert shapes["conv1"] == (112, 112, 64) and shapes["pool1"] == (56, 56, 64)
  assert shapes["res2c"] == shapes["res2"] == (56, 56, 256)
  assert shapes["res3a"] == shapes["res3d"] == (28, 28, 512)
  assert shapes["res4a"] == shapes["res4f"] == (14, 14, 1024)
  assert shapes["res5a"] == shapes["res5"] == (7, 7, 2048)
  assert len(shapes) == 2 + 16 + 4
  kernel = variables["params"]["res3a"]
  assert kernel["branch1"]["kernel"].shape == (1, 1, 256, 512)
  assert kernel["branch2b"]["kernel"].shape == (3, 3, 128, 128)
  assert variables["batch_stats"]["res3a"]["bn_branch2c"]["var"].shape == (512,)


def test_ceil_mode_padding_by_hand():
  # 112: ceil((112 - 3) / 2) + 1 = 56 windows, the last at 110..112 -> pad 1 on the high side.
  assert ceil_mode_padding(112, 3, 2, 0) == (0, 1)
  assert ceil_mode_padding(113, 3, 2, 0) == (0, 0)  # (113 - 3) / 2 + 1 = 56 exactly
  assert ceil_mode_padding(6, 3, 2, 1) == (1, 2)  # ceil(5 / 2) + 1 = 4 windows: 3 * 2 + 3 = 9
  # 3 px, window 2, pad 1: ceil(3 / 2) + 1 = 3, but the last would start in the padding
  # (2 * 2 >= 3 + 1), so Caffe keeps 2 windows and no high padding is needed.
  assert ceil_mode_padding(3, 2, 2, 1) == (1, 0)


@pytest.mark.parametrize("stride_in_1x1", [False, True], ids=["torchvision", "caffe"])
def test_bottleneck_matches_numpy(stride_in_1x1):
  rng = np.random.default_rng(0)
  block = Bottleneck(4, stride=2, project=True, stride_in_1x1=stride_in_1x1)
  x = rng.normal(size=(2, 9, 9, 8)).astype(np.float32)
  shapes = jax.eval_shape(block.init, jax.random.key(0), x)
  variables = jax.tree.map(
    lambda s: (
      rng.uniform(0.5, 1.5, s.shape).astype(np.float32)
      if len(s.shape) == 1
      else rng.normal(size=s.shape).astype(np.float32) * 0.3
    ),
    shapes,
  )
  out = np.asarray(jax.jit(block.apply)(variables, x))
  p, s = variables["params"], variables["batch_stats"]

  def branch(name, y, stride, pad):
    w = np.transpose(p[name]["kernel"], (3, 2, 0, 1))  # HWIO -> OIHW
    y = cf.conv(y, w, stride=stride, pad=pad)
    bn, st = p[f"bn_{name}"], s[f"bn_{name}"]
    norm = (y - st["mean"][:, None, None]) / np.sqrt(st["var"][:, None, None] + 1e-5)
    return norm * bn["scale"][:, None, None] + bn["bias"][:, None, None]

  xc = x.transpose(0, 3, 1, 2).astype(np.float64)
  s1, s3 = (2, 1) if stride_in_1x1 else (1, 2)
  y = cf.relu(branch("branch2a", xc, s1, 0))
  y = cf.relu(branch("branch2b", y, s3, 1))
  y = cf.relu(branch("branch2c", y, 1, 0) + branch("branch1", xc, 2, 0))
  assert out.shape == (2, 5, 5, 16)
  np.testing.assert_allclose(out, y.transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


def test_adaptive_pools_match_torch_bins():
  x = jnp.arange(2 * 7 * 5 * 1, dtype=jnp.float32).reshape(2, 7, 5, 1)
  # torch AdaptiveAvgPool2d(3) bins over 7 rows: [0, 3), [2, 5), [4, 7); over 5: [0, 2), [1, 4), [3, 5).
  rows, cols = [(0, 3), (2, 5), (4, 7)], [(0, 2), (1, 4), (3, 5)]
  xn = np.asarray(x)
  avg = np.array(
    [[[xn[b, r0:r1, c0:c1].mean() for c0, c1 in cols] for r0, r1 in rows] for b in range(2)]
  )
  mx = np.array(
    [[[xn[b, r0:r1, c0:c1].max() for c0, c1 in cols] for r0, r1 in rows] for b in range(2)]
  )
  np.testing.assert_allclose(adaptive_avg_pool(x, (3, 3))[..., 0], avg, rtol=1e-6)
  np.testing.assert_array_equal(adaptive_max_pool(x, (3, 3))[..., 0], mx)


def test_batchnorm_statistics_synchronised_over_data_axis():
  mesh = sharding.make_mesh(jax.devices()[:4])
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 32, 32, 3)).astype(np.float32) + np.arange(8)[:, None, None, None]

  xs = jax.device_put(x, sharding.data_sharded(mesh))
  base = ResNet(depth=26, base_width=4)
  variables = jax.jit(base.init)(jax.random.key(0), x[:1])

  def stats(axis_name):
    model = base.clone(norm_axis_name=axis_name)

    def body(v, xs):
      _, new = model.apply(v, xs, train=True, mutable=["batch_stats"])
      return jax.lax.all_gather(new["batch_stats"]["bn_conv1"]["mean"], "data")

    f = jax.shard_map(body, mesh=mesh, in_specs=(P(), P("data")), out_specs=P(), check_vma=False)
    return np.asarray(jax.jit(f)(variables, xs)), model, variables

  synced, model, variables = stats("data")
  local, _, _ = stats("None")  # what --config.model.norm_axis_name=None delivers
  # Synchronised: every device holds the same running mean, that of the whole batch.
  np.testing.assert_allclose(synced, np.broadcast_to(synced[0], synced.shape), rtol=1e-5)
  whole_apply = functools.partial(base.apply, train=True, mutable=["batch_stats"])
  _, whole = jax.jit(whole_apply)(variables, x)
  np.testing.assert_allclose(
    synced[0], whole["batch_stats"]["bn_conv1"]["mean"], rtol=1e-4, atol=1e-6
  )
  assert np.abs(local[0] - local[3]).max() > 1e-3  # per-device statistics differ


def hand_count_paper_fusion_and_heads():
  bn = lambda c: 2 * c
  fusion = (512 * 256 + bn(256)) + (1024 * 256 + bn(256)) + (2048 * 256 + bn(256))
  fusion += 768 * 192 + bn(192)  # conv_all on the 3 x 256 concat
  fusion += 7 * 7 * 192 * 1024 + 1024  # fc_local on the 7 x 7 grid
  fusion += 2048 * 1024 + 1024  # fc_global on pooled res5c
  fc1 = 1024 * 512 + 512
  local = 2 * fc1 + (512 * 42 + 42) + (512 * 21 + 21)
  global_ = 3 * fc1 + (512 * 2 + 2) + (512 * 3 + 3) + (512 * 2 + 2)
  return fusion, local, global_


def test_hyperface_resnet_paper_param_counts():
  assert MODELS.get("hyperface_resnet") is HyperFaceResNet
  params = abstract_variables(HyperFaceResNet(), 224)["params"]
  fusion, local, global_ = hand_count_paper_fusion_and_heads()
  backbone = 44_549_160 - (2048 * 1000 + 1000)  # ResNet-101 without its fc
  assert count(params["backbone"]) == backbone
  assert (count(params["fusion"]), count(params["heads_local"]), count(params["heads_global"])) == (
    fusion,
    local,
    global_,
  )
  assert count(params) == backbone + fusion + local + global_ == 57_959_942
  assert sorted(params["heads_local"]) == [
    "fc_landmarks1",
    "fc_landmarks2",
    "fc_visibility1",
    "fc_visibility2",
  ]


def test_local_and_global_routing_matches_numpy():
  model = HyperFaceResNet(
    depth=26,
    base_width=4,
    fuse_channels=8,
    fusion_channels=8,
    fc_local=16,
    fc_global=16,
    head_width=8,
    dropout=0.0,
  )
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
  variables = jax.jit(model.init)(jax.random.key(1), x)
  apply = jax.jit(
    functools.partial(model.apply, capture_intermediates=True, mutable=["intermediates"])
  )
  out, state = apply(variables, x)
  assert {k: v.shape for k, v in out.items()} == {
    "detection": (2, 2),
    "landmarks": (2, 21, 2),
    "visibility": (2, 21),
    "pose": (2, 3),
    "gender": (2, 2),
  }
  inter = state["intermediates"]
  res5 = np.asarray(inter["backbone"]["res5b"]["__call__"][0])
  local, global_ = (np.asarray(t) for t in inter["fusion"]["__call__"][0])
  p = jax.tree.map(np.asarray, variables["params"])
  dense = lambda h, d: h @ d["kernel"] + d["bias"]
  relu = lambda h: np.maximum(h, 0)
  # Global branch: pooled res5 (res5b in ResNet-26) -> fc_global -> pose head.
  np.testing.assert_allclose(
    global_, relu(dense(res5.mean(axis=(1, 2)), p["fusion"]["fc_global"])), rtol=1e-4, atol=1e-5
  )
  hg = p["heads_global"]
  pose = dense(relu(dense(global_, hg["fc_pose1"])), hg["fc_pose2"])
  np.testing.assert_allclose(out["pose"], pose, rtol=1e-4, atol=1e-5)
  hl = p["heads_local"]
  marks = dense(relu(dense(local, hl["fc_landmarks1"])), hl["fc_landmarks2"])
  np.testing.assert_allclose(out["landmarks"], marks.reshape(2, 21, 2), rtol=1e-4, atol=1e-5)
  # 64 px: res3a 8x8 and res4a 4x4 are max-pooled to the 2x2 res5 grid before reduction.
  assert p["fusion"]["fc_local"]["kernel"].shape == (2 * 2 * 8, 16)
  with pytest.raises(ValueError, match="fuse_layers.*res9a"):
    jax.eval_shape(
      HyperFaceResNet(depth=26, base_width=4, fuse_layers=("res9a",)).init, jax.random.key(0), x
    )


def load_config(arg=None):
  path = os.path.join(os.path.dirname(__file__), "..", "configs", "hyperface_resnet101.py")
  spec = importlib.util.spec_from_file_location("hyperface_resnet101_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_configs_build_the_documented_models():
  cpu = load_config("cpu")
  assert (cpu.model_name, cpu.model.depth, cpu.input_size) == ("hyperface_resnet", 26, 64)
  caffe = load_config("caffe")
  assert caffe.model.stride_in_1x1 and caffe.data.normalize == "caffe_bgr"
  with pytest.raises(ValueError, match="Unknown variant 'gpu'"):
    load_config("gpu")


@pytest.mark.slow  # about 90 s of CPU, mostly compiling the ResNet-101 train step
def test_paper_size_hyperface_resnet101_takes_a_train_step():
  config = load_config()
  assert config.model.depth == 101 and config.input_size == 224
  config.batch_size = 1
  config.schedule.warmup_steps = 0  # a linear warm-up from 0 would make step 1 a no-op
  mesh = sharding.make_mesh(jax.devices()[:1])
  model, loss_fn, optimizer, weigher, init = train.build(config, mesh)
  state = jax.jit(init)(jax.random.key(0))
  rng = np.random.default_rng(0)
  batch = dict(
    image=rng.normal(size=(1, 224, 224, 3)).astype(np.float32),
    detection=np.ones(1, np.int32),
    detection_mask=np.ones(1, np.float32),
    landmarks=rng.uniform(-0.4, 0.4, (1, 21, 2)).astype(np.float32),
    landmarks_mask=np.ones(1, np.float32),
    visibility=np.ones((1, 21), np.float32),
    visibility_mask=np.ones(1, np.float32),
    pose=np.zeros((1, 3), np.float32),
    pose_mask=np.ones(1, np.float32),
    gender=np.zeros(1, np.int32),
    gender_mask=np.ones(1, np.float32),
    example_mask=np.ones(1, np.float32),
  )
  before = np.asarray(state.params["heads_global"]["fc_pose2"]["kernel"]).copy()
  var_before = np.asarray(state.model_state["batch_stats"]["backbone"]["bn_conv1"]["var"]).copy()
  step = steps.make_train_step(
    mesh, model=model, loss_fn=loss_fn, optimizer=optimizer, weighting=weigher, seed=0
  )
  state, metrics = step(state, sharding.global_batch(mesh, batch))
  assert int(state.step) == 1
  assert all(np.isfinite(float(metrics[f"train/loss/{t}"])) for t in config.tasks)
  assert float(metrics["train/loss"]) > 0
  moved = np.abs(np.asarray(state.params["heads_global"]["fc_pose2"]["kernel"]) - before)
  assert moved.max() > 0
  new_var = state.model_state["batch_stats"]["backbone"]["bn_conv1"]["var"]
  assert not np.allclose(new_var, var_before)  # BatchNorm statistics were updated
