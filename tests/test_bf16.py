"""config.compute_dtype: bfloat16 computation with float32 parameters, optimiser state and
losses (train.build_model, steps.float32_outputs, config_checks)."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperface_jax import config_checks, sharding, steps, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(name="smoke", arg=None, **over):
  sys.path.insert(0, REPO)
  import importlib  # pylint: disable=g-import-not-at-top

  c = importlib.import_module(f"configs.{name}").get_config(arg)
  for k, v in over.items():
    setattr(c, k, v)
  return c


def _random_batch(n, size, seed=0):
  """A region batch of the smoke config's five tasks, every task labelled."""
  rng = np.random.default_rng(seed)
  ones = np.ones(n, np.float32)
  return dict(
    image=rng.uniform(-0.5, 0.5, (n, size, size, 3)).astype(np.float32),
    detection=rng.integers(0, 2, n).astype(np.int32),
    detection_mask=ones,
    landmarks=rng.normal(0, 0.2, (n, 21, 2)).astype(np.float32),
    visibility=(rng.uniform(size=(n, 21)) < 0.8).astype(np.float32),
    landmarks_mask=ones,
    visibility_mask=ones,
    pose=rng.normal(0, 0.3, (n, 3)).astype(np.float32),
    pose_mask=ones,
    gender=rng.integers(0, 2, n).astype(np.int32),
    gender_mask=ones,
    example_mask=ones,
  )


class _NoCheckpoint:
  def latest_step(self):
    return None


def _train(config, num_steps):
  """(losses per step, the final state) of `num_steps` train steps on fixed random batches."""
  mesh = sharding.make_mesh()
  model, loss_fn, optimizer, weigher, init = train.build(config, mesh)
  state = train.restore_or_init(config, mesh, init, _NoCheckpoint())
  step = steps.make_train_step(
    mesh, model=model, loss_fn=loss_fn, optimizer=optimizer, weighting=weigher, seed=0
  )
  losses = []
  for i in range(num_steps):
    batch = sharding.global_batch(mesh, _random_batch(config.batch_size, config.input_size, i))
    state, metrics = step(state, batch)
    losses.append(sharding.to_host(metrics))
  return losses, state


def test_bf16_smoke_trains_with_float32_params_and_close_first_loss():
  fp32, _ = _train(_config(), 1)
  bf16, state = _train(_config(compute_dtype="bfloat16"), 3)
  for metrics in bf16:
    for key, value in metrics.items():
      if key.startswith(("train/loss", "train/grad_norm")):
        assert np.isfinite(value) and value.dtype == np.float32, key
  for leaf in jax.tree.leaves((state.params, state.opt_state)):
    if jnp.issubdtype(leaf.dtype, jnp.floating):
      assert leaf.dtype == jnp.float32
  # bfloat16 keeps 8 bits of mantissa: the first losses (same init, same batch) agree to ~1 %.
  for key in fp32[0]:
    if key.startswith("train/loss"):
      assert bf16[0][key] == pytest.approx(fp32[0][key], rel=0.03, abs=1e-3), key
  assert bf16[0]["train/loss"] != fp32[0]["train/loss"]  # the computation did change


@pytest.mark.parametrize(
  "name,arg", [("smoke", None), ("hyperface_resnet101", "cpu"), ("tcdcn_eccv14", None)]
)
def test_build_model_passes_the_compute_dtype(name, arg):
  config = _config(name, arg, compute_dtype="bfloat16")
  config_checks.check(config)
  assert train.build_model(config).dtype == jnp.bfloat16
  config.compute_dtype = "float32"
  assert train.build_model(config).dtype == jnp.float32


def test_bad_compute_dtype_is_a_config_error():
  with pytest.raises(config_checks.ConfigError, match=r"compute_dtype='float16'.*bfloat16"):
    config_checks.check(_config(compute_dtype="float16"))
  config = _config("social_attributes", compute_dtype="bfloat16")
  with pytest.raises(config_checks.ConfigError, match="no computation dtype"):
    config_checks.check(config)
