"""models/winograd.py: the transform matrices are Lavin & Gray's, and the Winograd
convolution and its input and weight gradients equal XLA's convolution."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from hyperface_jax.models import alexnet, winograd
from hyperface_jax.models.fast_conv import FastConv


def _lax_conv(x, w, padding, strides=(1, 1)):
  return lax.conv_general_dilated(
    x, w, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
  )


def test_f2x3_matrices_are_the_papers():
  """Lavin & Gray (2016) section 4.1, F(2, 3), written out by hand. Their last column of A^T
  is (0, -1) and last row of B^T (0, 1, 0, -1); ours are both negated (the point at
  infinity's sign), which leaves every product A^T[:, 3] * B^T[3, :] the same."""
  at, g, bt = winograd.transforms(2, 3)
  np.testing.assert_array_equal(at, [[1, 1, 1, 0], [0, 1, -1, 1]])
  np.testing.assert_array_equal(g, [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
  np.testing.assert_allclose(
    bt, [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]], atol=1e-12
  )


def test_f2x3_by_hand_on_one_tile():
  """1-D F(2, 3) of d = (1, 2, 3, 4), g = (1, 10, 100): the correlation outputs are
  1 + 20 + 300 = 321 and 2 + 30 + 400 = 432."""
  at, g, bt = winograd.transforms(2, 3)
  d, k = np.array([1.0, 2, 3, 4]), np.array([1.0, 10, 100])
  np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), [321, 432])


@pytest.mark.parametrize("m, r", [(2, 3), (4, 3), (2, 5), (3, 2), (6, 3)])
def test_transforms_compute_every_correlation(m, r):
  """y_i = sum_k d[i + k] g[k] for random d, g: 1-D and, nested, 2-D tiles."""
  at, g, bt = winograd.transforms(m, r)
  rng = np.random.default_rng(m * 10 + r)
  d, k = rng.standard_normal(m + r - 1), rng.standard_normal(r)
  want = np.array([d[i : i + r] @ k for i in range(m)])
  np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), want, rtol=1e-9, atol=1e-9)
  d2, k2 = rng.standard_normal((m + r - 1,) * 2), rng.standard_normal((r, r))
  want2 = np.array([[np.sum(d2[i : i + r, j : j + r] * k2) for j in range(m)] for i in range(m)])
  got2 = at @ ((g @ k2 @ g.T) * (bt @ d2 @ bt.T)) @ at.T
  np.testing.assert_allclose(got2, want2, rtol=1e-9, atol=1e-9)


def test_too_large_a_tile_is_refused():
  with pytest.raises(ValueError, match=r"F\(9, 5\)"):
    winograd.transforms(9, 5)


CASES = [  # (tile, kernel, padding, input H, input W): odd, even and partial last tiles
  (2, 3, 1, 13, 13),  # the paper's conv3..conv5 grid
  (2, 3, 1, 6, 9),
  (2, 3, 0, 9, 8),
  (4, 3, 1, 14, 11),
  (5, 3, 1, 13, 13),  # conv3..conv5 with the default tile (WINOGRAD_TILES)
  (2, 5, 2, 27, 27),  # conv2
  (4, 5, 2, 11, 12),
]


STRIDED = [  # (tile, kernel, stride, padding, input H, input W, channels)
  (4, 11, 4, 0, 67, 67, 3),  # conv1 of the paper (Caffe, VALID) at the smallest input
  (5, 11, 4, 0, 67, 67, 3),  # the same with the default 3x3 tile (WINOGRAD_TILES)
  (2, 11, 4, 2, 70, 66, 3),  # torchvision's padding, rows / columns left over
  (2, 5, 2, 1, 17, 16, 4),  # 3x3 after space-to-depth over 16 channels
]


@pytest.mark.parametrize("tile, r, pad, h, w", CASES)
def test_conv_and_gradients_equal_xla(tile, r, pad, h, w):
  _check_against_xla(tile, r, 1, pad, h, w, 5)


@pytest.mark.parametrize("tile, r, stride, pad, h, w, c", STRIDED)
def test_strided_conv_by_space_to_depth_equals_xla(tile, r, stride, pad, h, w, c):
  _check_against_xla(tile, r, stride, pad, h, w, c)


def _check_against_xla(tile, r, stride, pad, h, w, c):
  """Output, input and weight gradients of winograd.conv2d against lax's convolution."""
  rng = np.random.default_rng(h * w + tile)
  x = jnp.asarray(rng.standard_normal((3, h, w, c)), jnp.float32)
  k = jnp.asarray(rng.standard_normal((r, r, c, 7)), jnp.float32)
  padding = ((pad, pad), (pad, pad))
  ho, wo = ((n + 2 * pad - r) // stride + 1 for n in (h, w))
  cot = jnp.asarray(rng.standard_normal((3, ho, wo, 7)))

  def value_and_grads(conv):  # one compiled program per case (eager is slower)
    y, vjp = jax.vjp(conv, x, k)
    return (y, *vjp(cot.astype(y.dtype)))

  st = (stride, stride)
  want = jax.jit(lambda: value_and_grads(lambda x, k: _lax_conv(x, k, padding, st)))()
  got = jax.jit(lambda: value_and_grads(lambda x, k: winograd.conv2d(x, k, padding, tile, st)))()
  # F(m, 5)'s transforms hold entries up to 5 and 1/4..1/6 (F(m, 3)'s: 1 and 1/2), which
  # roughly triples float32 rounding relative to the result's scale.
  rel = 1e-5 if -(-r // stride) == 3 else 5e-5
  for a, b in zip(got, want, strict=True):  # the output, dL/dx, dL/dw
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * float(jnp.max(jnp.abs(b))))


def test_float32_error_is_rounding_only_at_the_paper_size():
  """conv4 of HyperFace-AlexNet at batch 2 (384 -> 384, 13x13): F(2x2, 3x3) stays within a
  few float32 ulps of XLA's convolution relative to the output's scale."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(np.maximum(rng.standard_normal((2, 13, 13, 384)), 0), jnp.float32)
  k = jnp.asarray(rng.standard_normal((3, 3, 384, 384)) * np.sqrt(2 / 3456), jnp.float32)
  padding = ((1, 1), (1, 1))
  want, got = _lax_conv(x, k, padding), winograd.conv2d(x, k, padding, 2)
  rel = float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))
  assert rel < 4e-6, rel


def test_bfloat16_input_is_transformed_in_float32():
  """A bfloat16 input gives a bfloat16 output within bfloat16 rounding of the float32
  convolution of the same (rounded) values: F(4x4, 5x5)'s transforms in bfloat16 would be
  off by far more (their constants reach 10)."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((2, 12, 12, 8)), jnp.bfloat16)
  k = jnp.asarray(rng.standard_normal((5, 5, 8, 4)), jnp.bfloat16)
  padding = ((2, 2), (2, 2))
  got = winograd.conv2d(x, k, padding, 4)
  assert got.dtype == jnp.bfloat16
  want = _lax_conv(x.astype(jnp.float32), k.astype(jnp.float32), padding)
  err = float(jnp.max(jnp.abs(got.astype(jnp.float32) - want)) / jnp.max(jnp.abs(want)))
  assert err < 2**-8, err


def test_fast_conv_winograd_module_has_nn_conv_parameters_and_values():
  kw = dict(features=6, kernel_size=(3, 3), padding=((1, 1), (1, 1)))
  x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 7, 7, 4)), jnp.float32)
  ref, fast = nn.Conv(**kw), FastConv(**kw, algorithm="winograd")
  params = ref.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, fast.init(jax.random.key(0), x)) == jax.tree.map(jnp.shape, params)
  np.testing.assert_allclose(fast.apply(params, x), ref.apply(params, x), atol=1e-5)


@pytest.mark.parametrize(
  "kw, message",
  [
    (dict(strides=(2, 1)), "needs 1 group, square kernels and strides"),
    (dict(feature_group_count=2), "needs 1 group, square kernels and strides"),
    (dict(algorithm="fft"), "FastConv.algorithm must be one of"),
  ],
)
def test_fast_conv_refuses_what_winograd_cannot_do(kw, message):
  module = FastConv(
    **{"features": 4, "kernel_size": (3, 3), "padding": "VALID", "algorithm": "winograd", **kw}
  )
  with pytest.raises(ValueError, match=message):
    module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 4)))


@pytest.mark.parametrize("tiles", [((3,),), ((3, 0),), (("a", 4),), 3])
def test_malformed_winograd_tiles_are_refused(tiles):
  model = alexnet.AlexNetBackbone(width=0.125, conv_impl="winograd", winograd_tiles=tiles)
  with pytest.raises(ValueError, match=r"model.winograd_tiles must be \(\(kernel size"):
    model.init(jax.random.key(0), jnp.zeros((1, 67, 67, 3)))
