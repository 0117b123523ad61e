"""Tests of HyperFace-AlexNet: hand-counted params, shapes, grid check, LRN and group conv."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hyperface_jax.models  # noqa: F401  (registers the model)
from hyperface_jax.models.alexnet import AlexNetBackbone
from hyperface_jax.models.fusion import fused_grid, valid_input_sizes
from hyperface_jax.models.hyperface import HyperFaceAlexNet
from hyperface_jax.models.layers import local_response_norm, scale_channels
from hyperface_jax.registry import MODELS


def abstract_params(model, size):
  """Param shapes only (jax.eval_shape), so the 34M-param model is never materialised."""
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  return jax.eval_shape(model.init, jax.random.key(0), x)["params"]


def numpy_variables(model, images, seed=0):
  """He-scaled NumPy params of the model's shapes: avoids compiling the jitted random init,
  which costs tens of seconds on a 2-core CPU (threefry)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(model.init, jax.random.key(0), images)

  def fill(s):
    fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 1
    return jnp.asarray(rng.normal(size=s.shape) * np.sqrt(2.0 / fan_in), jnp.float32)

  return jax.tree.map(fill, shapes)


def count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# docs/papers.md section 1.2, per layer: kh * kw * C_in / groups * C_out + C_out (bias).
CONV1 = 11 * 11 * 3 * 96 + 96  # 34_944
CONV3 = 3 * 3 * 256 * 384 + 384  # 885_120
CONV1A = 4 * 4 * 96 * 256 + 256  # 393_472
CONV3A = 2 * 2 * 384 * 256 + 256  # 393_472
CONV_ALL = 1 * 1 * 768 * 192 + 192  # 147_648
FC_FULL = 6 * 6 * 192 * 3072 + 3072  # 21_236_736
HEADS = 5 * (3072 * 512 + 512)  # five fc_<task>1: 7_866_880
# fc_<task>2 for detection 2, landmarks 42, visibility 21, pose 3, gender 2: 35_910.
HEADS += (512 * 2 + 2) + (512 * 42 + 42) + (512 * 21 + 21) + (512 * 3 + 3) + (512 * 2 + 2)
FUSION_AND_HEADS = CONV1A + CONV3A + CONV_ALL + FC_FULL + HEADS


def test_paper_param_count_by_hand():
  assert MODELS.get("hyperface_alexnet") is HyperFaceAlexNet
  conv2 = 5 * 5 * 96 * 256 + 256  # 614_656
  conv4 = 3 * 3 * 384 * 384 + 384  # 1_327_488
  conv5 = 3 * 3 * 384 * 256 + 256  # 884_992
  expected = CONV1 + conv2 + CONV3 + conv4 + conv5 + FUSION_AND_HEADS
  assert expected == 33_821_318
  params = abstract_params(HyperFaceAlexNet(), 227)
  assert count(params) == expected
  assert count(params["backbone"]) == 3_747_200
  assert count(params["fusion"]["fc_full"]) == 21_236_736
  assert params["heads"]["fc_landmarks2"]["kernel"].shape == (512, 42)


def test_bvlc_grouped_param_count_by_hand():
  # BVLC AlexNet: conv2, conv4, conv5 see half of their input channels per group.
  conv2 = 5 * 5 * 48 * 256 + 256  # 307_456
  conv4 = 3 * 3 * 192 * 384 + 384  # 663_936
  conv5 = 3 * 3 * 192 * 256 + 256  # 442_624
  expected = CONV1 + conv2 + CONV3 + conv4 + conv5 + FUSION_AND_HEADS
  assert expected == 32_408_198
  params = abstract_params(HyperFaceAlexNet(conv_groups=2), 227)
  assert count(params) == expected
  assert count(params["backbone"]) == 2_334_080
  assert params["backbone"]["conv2"]["kernel"].shape == (5, 5, 48, 256)


def backbone_shapes(size, width=1.0):
  x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
  model = AlexNetBackbone(width=width)
  out = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), jnp.zeros(x.shape)))
  return {k: v.shape[1:] for k, v in out[0].items()}


NAMES = ("conv1", "max1", "norm1", "conv2", "max2", "norm2", "conv3", "conv4", "conv5", "pool5")


def test_feature_map_shapes_227():
  # (H, C) per map, H = W: 55 = (227 - 11) / 4 + 1, 27 = (55 - 3) / 2 + 1, 13, 6.
  hc = [(55, 96), (27, 96), (27, 96), (27, 256), (13, 256), (13, 256), (13, 384), (13, 384)]
  hc += [(13, 256), (6, 256)]
  assert backbone_shapes(227) == {n: (h, h, c) for n, (h, c) in zip(NAMES, hc, strict=True)}


def test_feature_map_shapes_99_half_width():
  # 99 = 35 + 32 * 2: conv1 7 + 8 * 2 = 23, max1 3 + 4 * 2 = 11, max2 1 + 2 * 2 = 5, pool5 2.
  hc = [(23, 48), (11, 48), (11, 48), (11, 128), (5, 128), (5, 128), (5, 192), (5, 192)]
  hc += [(5, 128), (2, 128)]
  assert backbone_shapes(99, width=0.5) == {
    n: (h, h, c) for n, (h, c) in zip(NAMES, hc, strict=True)
  }
  params = abstract_params(HyperFaceAlexNet(width=0.5), 99)
  # conv_all 96 channels on a 2 x 2 grid -> fc_full 384 -> 1536.
  assert params["fusion"]["fc_full"]["kernel"].shape == (2 * 2 * 96, 1536)


def test_grid_arithmetic():
  assert fused_grid(227) == (6, 6, 6)
  assert fused_grid(131) == (3, 3, 3)
  assert fused_grid(99) == (2, 2, 2)
  sizes = valid_input_sizes(300)
  assert sizes == [35 + 32 * g + r for g in range(1, 9) for r in range(8)]
  assert 96 not in sizes and 227 in sizes


def test_invalid_input_size_raises():
  # 96: conv1 22, max1 10, max2 4, pool5 1, conv1a 2, conv3a 2 -> grids disagree.
  x = jax.ShapeDtypeStruct((1, 96, 96, 3), jnp.float32)
  with pytest.raises(ValueError, match=r"35 \+ 32\*g.*227 -> 6x6"):
    jax.eval_shape(HyperFaceAlexNet(width=0.25).init, jax.random.key(0), x)
  with pytest.raises(ValueError, match="NHWC"):
    jax.eval_shape(
      HyperFaceAlexNet().init, jax.random.key(0), jax.ShapeDtypeStruct((1, 3, 99, 99), jnp.float32)
    )


def test_outputs_contract_and_dropout():
  model = HyperFaceAlexNet(width=0.125, fc_full=256, head_width=32)
  images = jnp.asarray(np.random.default_rng(1).normal(size=(3, 67, 67, 3)), jnp.float32)
  variables = numpy_variables(model, images)
  # One jitted apply (eager Flax apply compiles op by op, which is slow on 2 cores).
  apply = jax.jit(model.apply, static_argnames=("train", "capture_intermediates"))
  out = apply(variables, images)
  shapes = {"detection": (3, 2), "landmarks": (3, 21, 2), "visibility": (3, 21)}
  shapes.update(pose=(3, 3), gender=(3, 2))
  assert {k: v.shape for k, v in out.items()} == shapes
  assert all(v.dtype == jnp.float32 for v in out.values())
  again = apply(variables, images, train=False)
  for k in out:
    np.testing.assert_array_equal(out[k], again[k])
  t1 = apply(variables, images, train=True, rngs={"dropout": jax.random.key(2)})
  t2 = apply(variables, images, train=True, rngs={"dropout": jax.random.key(3)})
  t1b = apply(variables, images, train=True, rngs={"dropout": jax.random.key(2)})
  assert not np.allclose(t1["pose"], t2["pose"])
  assert not np.allclose(t1["pose"], out["pose"])
  np.testing.assert_array_equal(t1["pose"], t1b["pose"])
  # Landmark head: 42 outputs read as (x1, y1, ..., x21, y21), checked against a NumPy
  # recomputation of the head from the captured hyperfeature.
  _, state = apply(variables, images, capture_intermediates=True)
  hyper = np.asarray(state["intermediates"]["fusion"]["__call__"][0])
  p = jax.tree.map(np.asarray, variables["params"]["heads"])
  h = np.maximum(hyper @ p["fc_landmarks1"]["kernel"] + p["fc_landmarks1"]["bias"], 0)
  flat = h @ p["fc_landmarks2"]["kernel"] + p["fc_landmarks2"]["bias"]
  np.testing.assert_allclose(out["landmarks"][:, 4, 1], flat[:, 9], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out["landmarks"], flat.reshape(3, 21, 2), rtol=1e-4, atol=1e-5)


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  model = HyperFaceAlexNet(width=0.125, fc_full=64, head_width=16, dtype=jnp.bfloat16)
  images = jnp.ones((1, 67, 67, 3))
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
  out = jax.eval_shape(model.apply, variables, images)
  assert out["landmarks"].dtype == jnp.float32


def test_task_selection_extension_and_conv1a_input():
  model = HyperFaceAlexNet(
    width=0.125,
    tasks=("landmarks", "pose"),
    extra_tasks=(("landmarks68", (68, 2)),),
    conv1a_input="max1",
  )
  x = jax.ShapeDtypeStruct((2, 67, 67, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  out = jax.eval_shape(model.apply, variables, x)
  shapes = {"landmarks": (2, 21, 2), "pose": (2, 3), "landmarks68": (2, 68, 2)}
  assert {k: v.shape for k, v in out.items()} == shapes
  heads = [f"fc_{t}{i}" for t in ("landmarks", "pose", "landmarks68") for i in (1, 2)]
  assert sorted(variables["params"]["heads"]) == sorted(heads)
  with pytest.raises(ValueError, match="conv1a_input"):
    jax.eval_shape(HyperFaceAlexNet(width=0.125, conv1a_input="conv1").init, jax.random.key(0), x)
  with pytest.raises(ValueError, match="Unknown HyperFace task"):
    jax.eval_shape(HyperFaceAlexNet(width=0.125, tasks=("age",)).init, jax.random.key(0), x)


def lrn_reference(x, size, alpha, beta, k):
  """Caffe LRNLayer::CrossChannelForward, written as loops."""
  out = np.zeros_like(x)
  channels = x.shape[-1]
  pre = (size - 1) // 2
  for idx in np.ndindex(x.shape[:-1]):
    for c in range(channels):
      s = 0.0
      for j in range(c - pre, c - pre + size):
        if 0 <= j < channels:
          s += x[idx + (j,)] ** 2
      out[idx + (c,)] = x[idx + (c,)] / (k + alpha / size * s) ** beta
  return out


@pytest.mark.parametrize(
  "size,alpha,beta,k", [(5, 1e-4, 0.75, 1.0), (4, 0.5, 0.6, 2.0), (1, 0.3, 1.0, 1.0)]
)
def test_lrn_matches_caffe_loop(size, alpha, beta, k):
  x = np.random.default_rng(0).normal(size=(2, 3, 2, 7)).astype(np.float64) * 3
  got = local_response_norm(jnp.asarray(x, jnp.float32), size, alpha, beta, k)
  np.testing.assert_allclose(got, lrn_reference(x, size, alpha, beta, k), rtol=1e-5, atol=1e-6)


def test_lrn_hand_example():
  # One pixel, channels [1, 2, 3], size 3, alpha 3 (alpha / size = 1), beta 1, k 1:
  # c0: 1 / (1 + 1 + 4) = 1/6, c1: 2 / (1 + 1 + 4 + 9) = 2/15, c2: 3 / (1 + 4 + 9) = 3/14.
  got = local_response_norm(jnp.array([[1.0, 2.0, 3.0]]), 3, 3.0, 1.0, 1.0)
  np.testing.assert_allclose(got, [[1 / 6, 2 / 15, 3 / 14]], rtol=1e-6)


def test_group_conv_equals_two_convs_on_halves():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 9, 9, 6)), jnp.float32)
  conv = nn.Conv(8, (3, 3), padding=((1, 1), (1, 1)), feature_group_count=2)
  params = numpy_variables(conv, x)["params"]
  got = jax.jit(conv.apply)({"params": params}, x)
  kernel, bias = params["kernel"], params["bias"]
  assert kernel.shape == (3, 3, 3, 8)
  halves = []
  for g in range(2):
    ref = jax.lax.conv_general_dilated(
      x[..., 3 * g : 3 * g + 3],
      kernel[..., 4 * g : 4 * g + 4],
      (1, 1),
      ((1, 1), (1, 1)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    halves.append(ref + bias[4 * g : 4 * g + 4])
  np.testing.assert_allclose(got, jnp.concatenate(halves, -1), rtol=1e-5, atol=1e-5)


def test_scale_channels():
  assert scale_channels(96, 1.0) == 96
  assert scale_channels(96, 0.5, groups=2) == 48
  assert scale_channels(256, 0.01) == 8
  assert scale_channels(100, 1.0, groups=8) == 104  # 12.5 groups round half up to 13
  assert scale_channels(30, 0.5, groups=4) == 16  # 3.75 groups -> 4
  assert scale_channels(10, 0.5, groups=4) == 8  # 1.25 -> 1 group, raised to the minimum 8
  with pytest.raises(ValueError, match="width"):
    scale_channels(96, 0.0)


def test_batch_norm_option_normalizes_with_batch_statistics():
  """norm="batch": every conv gets a BatchNorm; train mode uses the batch moments."""
  model = HyperFaceAlexNet(width=0.125, dropout=0.0, norm="batch")
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 67, 67, 3)) * 3.0 + 1.0
  variables = model.init(jax.random.PRNGKey(0), x[:1])
  stats = variables["batch_stats"]
  assert sorted(stats["backbone"]) == [f"conv{i}_bn" for i in range(1, 6)]
  assert sorted(stats["fusion"]) == ["conv1a_bn", "conv3a_bn", "conv_all_bn"]
  # Reference for conv1: conv -> (x - batch mean) / sqrt(batch var + eps) * scale + bias.
  conv1 = nn.Conv(scale_channels(96, 0.125), (11, 11), strides=(4, 4), padding="VALID")
  y = conv1.apply({"params": variables["params"]["backbone"]["conv1"]}, x)
  mean, var = y.mean((0, 1, 2)), y.var((0, 1, 2))
  expected = jax.nn.relu((y - mean) / jnp.sqrt(var + 1e-5))  # scale 1, bias 0 at init
  feats, updates = AlexNetBackbone(width=0.125, norm="batch").apply(
    {
      "params": variables["params"]["backbone"],
      "batch_stats": variables["batch_stats"]["backbone"],
    },
    x,
    train=True,
    mutable=["batch_stats"],
  )
  np.testing.assert_allclose(feats["conv1"], expected, rtol=1e-4, atol=1e-4)
  # Running averages move towards the batch moments (momentum 0.9).
  new_mean = updates["batch_stats"]["conv1_bn"]["mean"]
  np.testing.assert_allclose(new_mean, 0.1 * mean, rtol=1e-4, atol=1e-5)
  # Eval mode uses the running averages (initially mean 0, var 1): the plain conv + ReLU.
  feats_eval = AlexNetBackbone(width=0.125, norm="batch").apply(
    {
      "params": variables["params"]["backbone"],
      "batch_stats": variables["batch_stats"]["backbone"],
    },
    x,
    train=False,
  )
  np.testing.assert_allclose(
    feats_eval["conv1"], jax.nn.relu(y / jnp.sqrt(1 + 1e-5)), rtol=1e-4, atol=1e-4
  )
  with pytest.raises(ValueError, match="norm must be one of"):
    HyperFaceAlexNet(width=0.125, norm="group").init(jax.random.PRNGKey(0), x[:1])
