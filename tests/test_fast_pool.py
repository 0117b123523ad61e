"""models/fast_pool.py: the max-pool with the masked-slice gradient equals nn.max_pool in
values and (tie-free) gradients, and hands a tied window's gradient to its first maximum."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperface_jax.models import alexnet
from hyperface_jax.models.fast_pool import max_pool_masked_grad, resolve_pool_impl


def _xla_pool(x, window, strides):
  return nn.max_pool(x, window, strides=strides, padding="VALID")


# (shape, window, strides): AlexNet's three pools (pool1 at 55, pool2 at 27, pool5 at 13,
# batch 1), sizes whose floor drops a border, non-overlapping and rectangular windows.
CASES = [
  ((1, 55, 55, 96), (3, 3), (2, 2)),
  ((1, 27, 27, 256), (3, 3), (2, 2)),
  ((2, 13, 13, 32), (3, 3), (2, 2)),
  ((2, 12, 14, 3), (3, 3), (2, 2)),  # even extents: the last row / column is never read
  ((2, 8, 8, 4), (2, 2), (2, 2)),
  ((1, 9, 11, 2), (3, 2), (1, 3)),
]


@pytest.mark.parametrize("shape,window,strides", CASES, ids=str)
def test_values_and_gradients_equal_nn_max_pool(shape, window, strides):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)  # continuous: no ties
  y = _xla_pool(x, window, strides)
  g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
  np.testing.assert_array_equal(max_pool_masked_grad(x, window, strides), y)

  def grad(pool):
    return jax.jit(jax.grad(lambda x_: jnp.sum(pool(x_, window, strides) * g)))(x)

  # Equal up to float32 summation order where overlapping windows add two cotangents.
  np.testing.assert_allclose(grad(max_pool_masked_grad), grad(_xla_pool), rtol=1e-6, atol=1e-6)


def test_tied_window_gradient_goes_to_its_first_maximum():
  """Hand-worked 3x5 input, two 3x3 / 2 windows (columns 0-2 and 2-4): window 0 attains its
  maximum 5 five times, first (row-major) at (0, 1); window 1 its maximum 7 three times,
  first at (0, 4). Each first maximum gets its output's cotangent, as with jax.grad."""
  x = np.array([[1, 5, 5, 2, 7], [0, 2, 5, 7, 1], [5, 1, 5, 7, 3]], np.float32)
  xj = jnp.asarray(x)[None, :, :, None]
  g = jnp.asarray([[[[10.0], [100.0]]]])  # cotangents of the two outputs
  np.testing.assert_array_equal(max_pool_masked_grad(xj, (3, 3), (2, 2))[0, :, :, 0], [[5, 7]])
  expected = np.zeros_like(x)
  expected[0, 1], expected[0, 4] = 10.0, 100.0
  for pool in (max_pool_masked_grad, _xla_pool):
    dx = jax.grad(lambda v, p=pool: jnp.sum(p(v, (3, 3), (2, 2)) * g))(xj)
    np.testing.assert_array_equal(np.asarray(dx)[0, :, :, 0], expected)


def test_relu_zero_windows_keep_the_total_gradient():
  """After ReLU whole windows are 0 (ties): per window exactly one cell gets the gradient,
  so the input gradient sums to the output cotangent's sum, as XLA's does."""
  rng = np.random.default_rng(3)
  x = jax.nn.relu(jnp.asarray(rng.normal(size=(2, 15, 15, 8)) - 1.0, jnp.float32))
  g = jnp.asarray(rng.uniform(size=(2, 7, 7, 8)), jnp.float32)
  for pool in (max_pool_masked_grad, _xla_pool):
    dx = jax.grad(lambda v, p=pool: jnp.sum(p(v, (3, 3), (2, 2)) * g))(x)
    np.testing.assert_allclose(float(jnp.sum(dx)), float(jnp.sum(g)), rtol=1e-5)
    assert int(jnp.sum(dx != 0)) <= g.size


def test_unknown_pool_impl_is_refused():
  model = alexnet.AlexNetBackbone(width=0.125, pool_impl="cudnn")
  with pytest.raises(ValueError, match="pool_impl must be one of"):
    model.init(jax.random.key(0), jnp.zeros((1, 67, 67, 3)))


def test_auto_is_masked_grad_on_cpu():
  expected = "masked_grad" if jax.default_backend() == "cpu" else "xla"
  assert resolve_pool_impl("auto") == expected
  assert resolve_pool_impl("xla") == "xla"
