"""The data-parallel train step: exact, device-count independent, weights logged."""

import functools

import jax
import ml_collections
import numpy as np
import pytest
from region_batches import random_region_batch

from hyperface_jax import (
  losses,
  models,  # noqa: F401
  optim,
  registry,
  sharding,
  steps,
  tasks,
  weighting,
)

HYPERFACE = tasks.resolve(tuple(losses.HYPERFACE_LOSS_WEIGHTS))


def _config():
  c = ml_collections.ConfigDict()
  c.lr = 0.002
  c.optim = dict(name="sgd", momentum=0.9, weight_decay=5e-4, grad_clip_norm=0.0)
  c.schedule = dict(name="constant", warmup_steps=0)
  return c


def _random_batch(rng, n, size=67):
  return random_region_batch(rng, n, size, pose_gender_fraction=0.4)


def _model(axis_name="data"):
  # BatchNorm synchronised over 'data': the test also covers cross-device BN statistics.
  return registry.MODELS.get("hyperface_alexnet")(
    width=0.125, dropout=0.0, norm="batch", norm_axis_name=axis_name
  )


def _run(num_devices, batches):
  mesh = sharding.make_mesh(jax.devices()[:num_devices])
  model = _model()
  names = tuple(losses.HYPERFACE_LOSS_WEIGHTS)
  opt = optim.make_optimizer(_config(), 10)
  weigher = weighting.static(losses.HYPERFACE_LOSS_WEIGHTS, names)
  init = lambda rng: steps.init_state(model, opt, weigher, names, rng, (1, 67, 67, 3))
  state = sharding.replicate(mesh, jax.jit(init)(jax.random.PRNGKey(0)))
  step = steps.make_train_step(
    mesh,
    model=model,
    loss_fn=functools.partial(tasks.compute_losses, HYPERFACE),
    optimizer=opt,
    weighting=weigher,
    seed=0,
  )
  metrics, first = [], None
  for b in batches:
    state, m = step(state, sharding.global_batch(mesh, b))
    metrics.append(sharding.to_host(m))
    if first is None:
      first = sharding.to_host({"params": state.params, **state.model_state})
  return sharding.to_host({"params": state.params, **state.model_state}), metrics, first


@pytest.fixture(scope="module")
def runs():
  rng = np.random.default_rng(0)
  batches = [_random_batch(rng, 16) for _ in range(3)]
  return batches, {n: _run(n, batches) for n in (1, 8)}


def test_one_and_eight_devices_give_the_same_parameters(runs):
  _, results = runs
  (p1, m1, f1), (p8, m8, f8) = results[1], results[8]
  # After one step the parameters and BatchNorm statistics agree to float rounding.
  for a, b in zip(jax.tree.leaves(f1), jax.tree.leaves(f8), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)
  # Losses of every step agree (step 1 to rounding); after three steps the BatchNorm network has amplified the
  # fp32 summation-order differences of 1 vs 8 partial sums (measured: 2e-5 on conv1
  # weights that moved by ~1e-2; 3e-8 for the same network without BatchNorm), hence a
  # looser bound on the final parameters.
  for i, (a, b) in enumerate(zip(m1, m8, strict=True)):
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-4 if i == 0 else 1e-3, atol=1e-6, err_msg=k)
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
  # Parameters really moved (the test could otherwise pass vacuously).
  assert set(p1) == {"params", "batch_stats"}
  p0 = sharding.to_host(
    steps.init_state(
      _model(),
      optim.make_optimizer(_config(), 10),
      weighting.static(losses.HYPERFACE_LOSS_WEIGHTS),
      (),
      jax.random.PRNGKey(0),
      (1, 67, 67, 3),
    ).params
  )
  moved = max(
    float(np.max(np.abs(a - b)))
    for a, b in zip(jax.tree.leaves(p0), jax.tree.leaves(p1["params"]), strict=True)
  )
  assert moved > 1e-4


def test_losses_are_exact_global_masked_means(runs):
  batches, results = runs
  m = results[8][1][0]
  # Independent reference: the initial params on the whole first batch at once, with
  # BatchNorm statistics of the whole global batch (no cross-device axis needed).
  model = _model(axis_name=None)
  variables = model.init(jax.random.PRNGKey(0), np.zeros((1, 67, 67, 3), np.float32), train=False)
  batch = batches[0]
  out, _ = model.apply(variables, batch["image"], train=True, mutable=["batch_stats"])
  total = 0.0
  for task, (s, c) in tasks.compute_losses(HYPERFACE, out, batch).items():
    ref = float(s) / max(float(c), 1.0)
    np.testing.assert_allclose(m[f"train/loss/{task}"], ref, rtol=1e-4)
    assert m[f"train/count/{task}"] == float(c)
    assert m[f"weight/{task}"] == pytest.approx(losses.HYPERFACE_LOSS_WEIGHTS[task])
    total += losses.HYPERFACE_LOSS_WEIGHTS[task] * ref
  np.testing.assert_allclose(m["train/loss"], total, rtol=1e-4)


def test_batch_not_divisible_by_devices_fails_before_compiling():
  mesh = sharding.make_mesh(jax.devices()[:8])
  with pytest.raises(ValueError, match=r"batch_size=12 must be a positive multiple.*8"):
    sharding.check_batch_size(12, mesh)


def test_static_weighting_rejects_unknown_tasks():
  with pytest.raises(ValueError, match=r"missing: \['pose'\].*unexpected: \['posee'\]"):
    weighting.static({"detection": 1.0, "posee": 1.0}, tasks=("detection", "pose"))
