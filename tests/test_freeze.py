"""Freezing by regex (optim.with_frozen): frozen params bit-for-bit unchanged by training."""

import functools

import jax
import ml_collections
import numpy as np
import optax
import pytest

from hyperface_jax import (  # noqa: F401
  losses,
  models,
  optim,
  registry,
  sharding,
  steps,
  surgery,
  tasks,
  weighting,
)

FREEZE = ("backbone/.*",)

HYPERFACE = tasks.resolve(tuple(losses.HYPERFACE_LOSS_WEIGHTS))


def _config(freeze=FREEZE):
  c = ml_collections.ConfigDict()
  c.lr = 0.01
  # Weight decay and momentum on: neither may touch a frozen parameter.
  c.optim = dict(name="sgd", momentum=0.9, weight_decay=5e-3, grad_clip_norm=1.0, freeze=freeze)
  c.schedule = dict(name="constant", warmup_steps=0)
  return c


def _batch(rng, n=8, size=67):
  return dict(
    image=rng.uniform(-0.5, 0.5, size=(n, size, size, 3)).astype(np.float32),
    detection=rng.integers(0, 2, n).astype(np.int32),
    detection_mask=np.ones(n, np.float32),
    landmarks=rng.normal(scale=0.2, size=(n, 21, 2)).astype(np.float32),
    visibility=(rng.random((n, 21)) < 0.7).astype(np.float32),
    landmarks_mask=np.ones(n, np.float32),
    visibility_mask=np.ones(n, np.float32),
    pose=rng.normal(scale=0.5, size=(n, 3)).astype(np.float32),
    pose_mask=np.ones(n, np.float32),
    gender=rng.integers(0, 2, n).astype(np.int32),
    gender_mask=np.ones(n, np.float32),
    example_mask=np.ones(n, np.float32),
  )


@pytest.fixture(scope="module")
def trained():
  """Three train steps of a tiny BatchNorm HyperFace on 2 devices with the backbone frozen."""
  mesh = sharding.make_mesh(jax.devices()[:2])
  model = registry.MODELS.get("hyperface_alexnet")(
    width=0.125, dropout=0.0, norm="batch", norm_axis_name="data"
  )
  names = tuple(losses.HYPERFACE_LOSS_WEIGHTS)
  opt = optim.make_optimizer(_config(), 10)
  weigher = weighting.static(losses.HYPERFACE_LOSS_WEIGHTS, names)
  init = lambda rng: steps.init_state(model, opt, weigher, names, rng, (1, 67, 67, 3))
  state = sharding.replicate(mesh, jax.jit(init)(jax.random.PRNGKey(0)))
  before = sharding.to_host({"params": state.params, **state.model_state})
  step = steps.make_train_step(
    mesh,
    model=model,
    loss_fn=functools.partial(tasks.compute_losses, HYPERFACE),
    optimizer=opt,
    weighting=weigher,
    seed=0,
  )
  rng = np.random.default_rng(0)
  for _ in range(3):
    state, metrics = step(state, sharding.global_batch(mesh, _batch(rng)))
  after = sharding.to_host({"params": state.params, **state.model_state})
  return before, after, state, sharding.to_host(metrics)


def test_frozen_params_are_bit_for_bit_unchanged_and_others_move(trained):
  before, after, _, metrics = trained
  assert metrics["train/grad_norm"] > 0
  b, a = surgery.flatten(before["params"]), surgery.flatten(after["params"])
  frozen = [n for n in b if n.startswith("backbone/")]
  assert len(frozen) == 20  # conv1..conv5: kernel, bias, BN scale, BN bias
  for name in frozen:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  for name in b:
    if not name.startswith("backbone/"):
      assert np.max(np.abs(a[name] - b[name])) > 0, f"{name} did not train"


def test_frozen_batchnorm_statistics_still_follow_the_data(trained):
  # Documented choice (optim.with_frozen): only params freeze; running stats update.
  before, after, _, _ = trained
  b, a = surgery.flatten(before["batch_stats"]), surgery.flatten(after["batch_stats"])
  assert np.max(np.abs(a["backbone/conv1_bn/mean"] - b["backbone/conv1_bn/mean"])) > 0


def test_frozen_params_carry_no_optimiser_state(trained):
  _, after, state, _ = trained
  trained_count = sum(
    x.size for n, x in surgery.flatten(after["params"]).items() if not n.startswith("backbone/")
  )
  # SGD momentum is the only array state: one trace entry per trained scalar.
  state_count = sum(np.size(x) for x in jax.tree.leaves(state.opt_state) if np.ndim(x) > 0)
  assert state_count == trained_count


def test_clipping_and_decay_see_only_trained_parameters():
  params = {"a": np.array([3.0, 4.0], np.float32), "b": np.array([100.0], np.float32)}
  grads = {"a": np.array([3.0, 4.0], np.float32), "b": np.array([1e3], np.float32)}
  inner = optax.chain(
    optax.clip_by_global_norm(1.0), optax.add_decayed_weights(0.1), optax.sgd(1.0)
  )
  opt = optim.with_frozen(inner, ["b"])
  updates, _ = opt.update(grads, opt.init(params), params)
  # Hand-worked: |g_a| = 5 -> clipped to (0.6, 0.8); + 0.1 * a = (0.9, 1.2); sgd negates.
  np.testing.assert_allclose(updates["a"], [-0.9, -1.2], rtol=1e-6)
  np.testing.assert_array_equal(updates["b"], [0.0])


def test_freeze_regex_matching_nothing_fails_naming_it():
  opt = optim.make_optimizer(_config(freeze=("backbon/.*",)), 10)
  with pytest.raises(ValueError, match=r"\['frozen'\] match no parameter.*backbone/"):
    opt.init({"backbone": {"conv1": {"kernel": np.zeros(3)}}})
