"""models/fast_conv.py (shifted-matmul weight gradient) equals XLA's convolution in values
and gradients, in isolation and in a HyperFace-AlexNet train step (where models/winograd.py's
convolutions and models/fast_pool.py's pool gradient are checked too); which layers each
conv_impl changes."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from hyperface_jax import sharding, steps, train
from hyperface_jax.models import alexnet
from hyperface_jax.models.fast_conv import (
  WINOGRAD_MIN_MACS,
  FastConv,
  conv2d_shifted_dw,
  conv_algorithm,
  shifted_weight_grad,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from model_flops import random_batch  # noqa: E402  (bench/model_flops.py)

from configs import smoke  # noqa: E402

DIMS = ("NHWC", "HWIO", "NHWC")


def _rel(a, b) -> float:
  return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def _lax_conv(x, w, strides, padding, groups):
  return lax.conv_general_dilated(
    x, w, strides, padding, dimension_numbers=DIMS, feature_group_count=groups
  )


# (batch, size, cin, cout, kernel, stride, pad, groups): AlexNet's conv1, conv2, conv3 at
# their real sizes and channels (batch 1), BVLC's grouped conv2 / conv4, the fusion's
# strided conv1a / conv3a, torchvision's padded conv1 and odd strided / grouped cases.
CASES = [
  (1, 227, 3, 96, 11, 4, 0, 1),  # conv1 (space-to-depth weight gradient)
  (1, 27, 96, 256, 5, 1, 2, 1),  # conv2
  (1, 13, 256, 384, 3, 1, 1, 1),  # conv3
  (1, 27, 96, 256, 5, 1, 2, 2),  # BVLC conv2, 2 groups
  (1, 13, 384, 384, 3, 1, 1, 2),  # BVLC conv4, 2 groups
  (2, 27, 96, 64, 4, 4, 0, 1),  # fusion conv1a (K = stride)
  (2, 13, 64, 32, 2, 2, 0, 1),  # fusion conv3a
  (2, 67, 3, 16, 11, 4, 2, 1),  # torchvision conv1 (padding 2)
  (2, 20, 4, 6, 5, 3, 1, 1),  # K not a multiple of the stride, floor drops a border
  (2, 11, 8, 6, 3, 2, 1, 2),  # strided and grouped (direct offsets)
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "b{}s{}c{}o{}k{}st{}p{}g{}".format(*c))
def test_values_and_gradients_equal_xla(case):
  b, size, cin, cout, k, stride, pad, groups = case
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(b, size, size, cin)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, k, cin // groups, cout)) / np.sqrt(k * k * cin), jnp.float32)
  args = ((stride, stride), ((pad, pad), (pad, pad)), groups)
  y_ref = _lax_conv(x, w, *args)
  dy = jnp.asarray(rng.normal(size=y_ref.shape), jnp.float32)

  def grads(conv):
    return jax.grad(lambda x_, w_: jnp.sum(conv(x_, w_, *args) * dy), argnums=(0, 1))(x, w)

  np.testing.assert_array_equal(conv2d_shifted_dw(x, w, *args), y_ref)  # XLA's forward
  (dx, dw), (dx_ref, dw_ref) = grads(conv2d_shifted_dw), grads(_lax_conv)
  assert dw.shape == dw_ref.shape
  assert _rel(dw, dw_ref) < 1e-5
  assert _rel(dx, dx_ref) < 1e-5


def test_weight_gradient_jits_and_keeps_dtype():
  x = jnp.ones((1, 9, 9, 2))
  dy = jnp.ones((1, 9, 9, 4))
  dw = jax.jit(shifted_weight_grad, static_argnums=(2, 3, 4, 5))(
    x, dy, (3, 3), (1, 1), ((1, 1), (1, 1)), 1
  )
  assert dw.shape == (3, 3, 2, 4) and dw.dtype == jnp.float32
  assert float(dw[1, 1, 0, 0]) == 81.0  # the centre tap sees every pixel


@pytest.mark.parametrize("stride,padding,groups", [(4, "VALID", 1), (1, ((2, 2), (2, 2)), 2)])
def test_module_matches_nn_conv(stride, padding, groups):
  """Same parameter names, shapes and initial values; same outputs and parameter grads."""
  kw = dict(strides=(stride, stride), padding=padding, feature_group_count=groups)
  ref, fast = nn.Conv(8, (5, 5), **kw), FastConv(8, (5, 5), **kw)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 23, 23, 4)), jnp.float32)
  p_ref = ref.init(jax.random.key(0), x)
  p_fast = fast.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, p_ref) == jax.tree.map(jnp.shape, p_fast)
  jax.tree.map(np.testing.assert_array_equal, p_ref, p_fast)

  def loss(module, p):
    return jnp.sum(jnp.sin(module.apply(p, x)))

  np.testing.assert_array_equal(fast.apply(p_ref, x), ref.apply(p_ref, x))
  g_ref, g_fast = jax.grad(lambda p: loss(ref, p))(p_ref), jax.grad(lambda p: loss(fast, p))(p_ref)
  for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref), strict=True):
    assert _rel(a, b) < 1e-5


# Multiply-adds per image of HyperFace-AlexNet's layers at 227 px (width 1) and of the
# demo's (99 px, width 0.5): output pixels x Cout x K x K x Cin.
CONV1 = 55 * 55 * 96 * 11 * 11 * 3  # 105 M
CONV2 = 27 * 27 * 256 * 5 * 5 * 96  # 448 M
CONV5 = 13 * 13 * 256 * 3 * 3 * 384  # 150 M
DEMO_CONV1 = 23 * 23 * 48 * 11 * 11 * 3  # 9 M
DEMO_CONV3 = 5 * 5 * 192 * 3 * 3 * 128  # 6 M
KERNELS = dict(alexnet.WINOGRAD_TILES)  # 3 and 5


@pytest.mark.parametrize(
  "impl, kernel, stride, groups, macs, want",
  [
    ("xla", 11, 4, 1, CONV1, "xla"),
    ("shifted_dw", 11, 4, 1, CONV1, "shifted_dw"),
    ("shifted_dw", 3, 1, 1, CONV5, "xla"),
    ("winograd", 11, 4, 1, CONV1, "winograd"),  # 3x3 after space-to-depth
    ("winograd", 11, 4, 1, DEMO_CONV1, "winograd"),  # explicit: however small
    ("winograd", 3, 1, 1, DEMO_CONV3, "winograd"),
    ("winograd", 5, 1, 1, CONV2, "winograd"),
    ("winograd", 3, 1, 2, CONV5, "xla"),  # grouped: XLA's
    ("winograd", 7, 2, 1, CONV1, "shifted_dw"),  # 4x4 after space-to-depth: not in KERNELS
    ("winograd", 1, 1, 1, CONV5, "xla"),
    ("auto", 11, 4, 1, CONV1, "winograd"),
    ("auto", 5, 1, 1, CONV2, "winograd"),
    ("auto", 3, 1, 1, CONV5, "winograd"),
    ("auto", 3, 1, 1, WINOGRAD_MIN_MACS - 1, "xla"),  # smaller: not worth it
    ("auto", 11, 4, 1, DEMO_CONV1, "shifted_dw"),
    ("auto", 3, 1, 1, DEMO_CONV3, "xla"),
  ],
)
def test_conv_algorithm_per_layer(impl, kernel, stride, groups, macs, want):
  if impl == "auto" and jax.default_backend() != "cpu":
    want = "xla"
  got = conv_algorithm(
    impl,
    kernel=kernel,
    stride=stride,
    groups=groups,
    macs_per_image=macs,
    winograd_kernels=tuple(KERNELS),
  )
  assert got == want


def test_unknown_conv_impl_is_refused():
  model = alexnet.AlexNetBackbone(width=0.125, conv_impl="cudnn")
  with pytest.raises(ValueError, match="conv_impl"):
    model.init(jax.random.key(0), jnp.zeros((1, 67, 67, 3)))


def _train_steps(num_steps: int = 2, **model_overrides):
  config = smoke.get_config()
  config.model.update(model_overrides)
  config.batch_size = 4
  mesh = sharding.make_mesh(jax.devices()[:1])
  model, loss_fn, optimizer, weigher, init = train.build(config, mesh)
  state = jax.jit(init)(train.prng_key(config))
  step = steps.make_train_step(
    mesh, model=model, loss_fn=loss_fn, optimizer=optimizer, weighting=weigher, seed=0
  )
  losses = []
  for i in range(num_steps):
    batch = random_batch(np.random.default_rng(i), config.batch_size, config.input_size)
    state, metrics = step(state, sharding.global_batch(mesh, batch))
    losses.append(float(metrics["train/loss"]))
  return losses, jax.device_get(state.params)


@functools.lru_cache(maxsize=None)
def _xla_reference():
  return _train_steps(conv_impl="xla", pool_impl="xla")


@pytest.mark.parametrize(
  "lever",
  [dict(conv_impl="shifted_dw"), dict(conv_impl="winograd"), dict(pool_impl="masked_grad")],
  ids=lambda d: str(d),
)
def test_train_step_fast_impl_equals_xla(lever):
  """HyperFace-AlexNet (configs/smoke.py, SGD) trained two steps with XLA's convolution and
  pools, and with one CPU lever (models/fast_conv.py; models/winograd.py for conv1..conv5
  of the narrow smoke backbone, conv1 through space-to-depth; models/fast_pool.py)."""
  losses_xla, params_xla = _xla_reference()
  losses_fast, params_fast = _train_steps(**{"conv_impl": "xla", "pool_impl": "xla", **lever})
  np.testing.assert_allclose(losses_fast, losses_xla, rtol=1e-4)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params_fast, params_xla
  )


def test_config_default_tiles_are_the_models():
  """config_lib writes the default out (configs import no JAX): it must stay the model's."""
  assert tuple(map(tuple, smoke.get_config().model.winograd_tiles)) == alexnet.WINOGRAD_TILES
