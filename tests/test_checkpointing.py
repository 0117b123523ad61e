"""checkpointing.restore_variables: the one restore path of the model variables.

Inference (inference/batched.py), model_init and surgery read params + model_state of a
workdir with it; the arrays must be exactly those of the full train-state restore.
tests/test_train_e2e.py checks the same on a trained smoke run.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from hyperface_jax import checkpointing, registry
from hyperface_jax.inference import batched

MODEL = dict(width=0.125, dropout=0.0, norm="batch")  # batch_stats: a model_state collection
SIZE = 67


def assert_bitwise_equal(got, want):
  """Same tree structure, and per leaf the same dtype, shape and bytes."""
  flat_got = jax.tree_util.tree_flatten_with_path(got)[0]
  flat_want = jax.tree_util.tree_flatten_with_path(want)[0]
  assert [jax.tree_util.keystr(p) for p, _ in flat_got] == [
    jax.tree_util.keystr(p) for p, _ in flat_want
  ]
  for (path, a), (_, b) in zip(flat_got, flat_want, strict=True):
    a, b = np.asarray(a), np.asarray(b)
    assert (a.dtype, a.shape) == (b.dtype, b.shape), jax.tree_util.keystr(path)
    assert a.tobytes() == b.tobytes(), jax.tree_util.keystr(path)


def _train_state_like(seed):
  """A train-state pytree (as steps.TrainState saves it) with non-trivial values."""
  model = registry.MODELS.get("hyperface_alexnet")(**MODEL)
  variables = jax.jit(lambda rng: model.init(rng, jnp.zeros((1, SIZE, SIZE, 3)), train=False))(
    jax.random.PRNGKey(seed)
  )
  rng = np.random.default_rng(seed)
  noisy = lambda x: x + rng.normal(size=x.shape).astype(x.dtype)
  params = jax.tree.map(noisy, variables["params"])
  params["extra_bf16"] = jnp.asarray(rng.normal(size=(3, 5)), jnp.bfloat16)  # dtype kept
  opt_state = jax.tree.map(noisy, optax.sgd(0.1, momentum=0.9).init(params))
  return {
    "step": jnp.asarray(seed, jnp.int32),
    "params": params,
    "model_state": {"batch_stats": jax.tree.map(noisy, variables["batch_stats"])},
    "opt_state": opt_state,
    "weighting": {"weights": jnp.ones(5)},
  }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("run"))
  ckpt = checkpointing.Checkpointer(path)
  states = {step: _train_state_like(step) for step in (3, 6)}
  for step, state in states.items():
    ckpt.save(step, state)
  ckpt.close()
  return path, states


def _full_restore(path, state, step):
  one_device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = checkpointing.abstract_with_sharding(jax.eval_shape(lambda: state), one_device)
  ckpt = checkpointing.Checkpointer(path)
  try:
    return ckpt.restore(target, step=step)
  finally:
    ckpt.close()


def test_restore_variables_equals_the_full_state_restore_bit_for_bit(workdir):
  path, states = workdir
  for step in (3, 6):
    full = _full_restore(path, states[step], step)
    got = checkpointing.restore_variables(path, step)
    assert sorted(got) == ["batch_stats", "params"]
    assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(got))
    assert got["params"]["extra_bf16"].dtype == jnp.bfloat16
    assert_bitwise_equal(got, {"params": full["params"], **full["model_state"]})
    assert_bitwise_equal(got["params"], states[step]["params"])  # and the saved ones


def test_every_path_form_resolves_and_names_its_step(workdir):
  path, states = workdir
  item = checkpointing.resolve_checkpoint(path)
  assert checkpointing.checkpoint_step(item) == 6  # the latest
  for form in (
    path,
    os.path.join(path, "checkpoints"),
    os.path.join(path, "checkpoints", "6"),
    os.path.join(path, "checkpoints", "6", "default"),
  ):
    assert checkpointing.resolve_checkpoint(form) == item
    assert_bitwise_equal(checkpointing.restore_variables(form)["params"], states[6]["params"])
  with pytest.raises(FileNotFoundError, match=r"No step 4 .* steps there: \[3, 6\]"):
    checkpointing.restore_variables(path, 4)


def test_inference_loads_the_same_variables_without_the_train_state(workdir):
  path, states = workdir
  config = ml_collections.ConfigDict(
    dict(model_name="hyperface_alexnet", model=dict(MODEL, norm_axis_name="data"))
  )
  model, variables, step = batched.load_variables(config, path, 3)
  assert step == 3 and model.norm_axis_name is None
  assert_bitwise_equal(variables, checkpointing.restore_variables(path, 3))
  assert {x.devices().pop() for x in jax.tree.leaves(variables)} == {jax.local_devices()[0]}
  out = model.apply(variables, np.zeros((2, SIZE, SIZE, 3), np.float32), train=False)
  assert out["landmarks"].shape == (2, 21, 2)
  assert batched.load_variables(config, path)[2] == 6


def test_a_checkpoint_that_is_no_train_state_is_refused(tmp_path):
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(1, {"weights": np.ones(3, np.float32)})
  ckpt.close()
  with pytest.raises(
    KeyError, match=r"not a hyperface_jax train state.*\['params', 'model_state'\]"
  ):
    checkpointing.restore_variables(str(tmp_path))
