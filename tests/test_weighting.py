"""Task weightings (hyperface_jax/weighting/): hand-worked updates, frozen heads, 1 vs 8 devices.

The schemes' formulas are checked on hand-worked loss sequences through `update` alone;
the train step (steps.py) is checked with a tiny model whose parameter names follow
HyperFace's (backbone/..., fusion/fc_full, heads/fc_<task>1|2), so every scheme's defaults
(head_pattern, shared, gradnorm.layer) apply unchanged.
"""

import functools
import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from region_batches import random_region_batch

from hyperface_jax import (
  checkpointing,
  config_lib,
  optim,
  registry,
  sharding,
  steps,
  surgery,
  tasks,
  weighting,
)
from hyperface_jax.models.heads import TaskHeads
from hyperface_jax.weighting import learned, loss_based, pcgrad, tcdcn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ("detection", "landmarks", "visibility", "pose", "gender")
TASK_LIST = tasks.resolve(TASKS)
SIZE = 6  # tiny images: 6 x 6 x 3


class _Backbone(nn.Module):
  @nn.compact
  def __call__(self, x):
    return jnp.tanh(nn.Dense(12, name="conv1")(x.reshape((x.shape[0], -1))))


class _Fusion(nn.Module):
  @nn.compact
  def __call__(self, x):
    return jnp.tanh(nn.Dense(10, name="fc_full")(x))


class TinyHyperFace(nn.Module):
  """backbone/conv1 -> fusion/fc_full -> heads/fc_<task>1, fc_<task>2 (models/heads.py)."""

  @nn.compact
  def __call__(self, images, train=False):
    x = _Fusion(name="fusion")(_Backbone(name="backbone")(images))
    return TaskHeads(tasks=TASKS, head_width=6, dropout=0.0, name="heads")(x, train)


def _batch(rng, n=16):
  return random_region_batch(rng, n, SIZE)


def _optim_config(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3):
  c = ml_collections.ConfigDict()
  c.lr = lr
  c.optim = dict(name=name, momentum=momentum, weight_decay=weight_decay, grad_clip_norm=0.0)
  c.schedule = dict(name="constant", warmup_steps=0)
  return c


def _weigher(name, **own):
  config = config_lib.weighting_config(config_lib.HYPERFACE_LOSS_WEIGHTS, name)
  config.get(name, {}).update(own) if name in config else None
  return weighting.make_weighting(config, TASKS)


def _train(num_devices, weigher, num_steps=6, eval_after=(2, 4), seed=0, opt=None):
  """Runs the real train step; after the steps in `eval_after` it stores validation losses
  and increments val_count as train.py does. Returns per-step host snapshots."""
  mesh = sharding.make_mesh(jax.devices()[:num_devices])
  model = TinyHyperFace()
  optimizer = optim.make_optimizer(opt or _optim_config(), 100)
  init = lambda rng: steps.init_state(model, optimizer, weigher, TASKS, rng, (1, SIZE, SIZE, 3))
  state = sharding.replicate(mesh, jax.jit(init)(jax.random.PRNGKey(0)))
  step = steps.make_train_step(
    mesh,
    model=model,
    loss_fn=functools.partial(tasks.compute_losses, TASK_LIST),
    optimizer=optimizer,
    weighting=weigher,
    seed=seed,
  )
  rng = np.random.default_rng(seed)
  snapshots = [sharding.to_host(state)]
  metrics = []
  for i in range(1, num_steps + 1):
    state, m = step(state, sharding.global_batch(mesh, _batch(rng)))
    metrics.append(sharding.to_host(m))
    if i in eval_after:  # a made-up validation loss: moves with the training loss
      val = {t: np.float32(1.5 * m[f"train/loss/{t}"] + 0.01 * i) for t in TASKS}
      state = state.replace(
        val_losses=sharding.replicate(mesh, val),
        val_count=sharding.replicate(mesh, np.int32(int(state.val_count) + 1)),
      )
    snapshots.append(sharding.to_host(state))
  return snapshots, metrics


# ------------------------------------------------------------------ TCDCN, hand-worked


def _vals(x, tasks_=("landmarks", "pose", "gender")):
  return {t: jnp.float32(x) for t in tasks_}


def test_early_stopping_criterion_is_the_formula():
  # Window [1.0, 0.6, 0.5] (k = 2): med 0.6, sum 2.1 -> 2 * 0.6 / (2.1 - 1.2) = 4/3;
  # gap (0.6 - 0.5) / (1 * 0.5) = 0.2 -> 4/15.
  got = tcdcn.early_stopping_criterion(
    jnp.array([[1.0], [0.6], [0.5]]), jnp.array([0.6]), jnp.array([0.5]), jnp.array([1.0]), 2
  )
  np.testing.assert_allclose(got, [4 / 15], rtol=1e-6)
  # Against numpy on random windows, several tasks and lambdas.
  rng = np.random.default_rng(0)
  for k in (1, 2, 3, 5):
    window = rng.uniform(0.2, 2.0, size=(k + 1, 4)).astype(np.float32)
    val, tmin = rng.uniform(0.2, 2.0, 4), window.min(0)
    lam = np.array([0.5, 1.0, 2.0, 4.0])
    med = np.median(window, axis=0)
    ref = k * med / (window.sum(0) - k * med) * (val - tmin) / (lam * tmin)
    got = tcdcn.early_stopping_criterion(window, val, tmin, lam, k)
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_tcdcn_early_stop_fires_exactly_when_the_formula_says():
  """2 steps per evaluation interval, k = 2, epsilon = 0.5; pose (lambda 1) and gender
  (lambda 4) get the same losses, landmarks (main) too.

  interval j   step losses (counts)      E_tr(j)              E_val(j)
  1            1.2 (1), 0.8 (1)          1.0                  1.1
  2            0.8 (1), 0.5 (2)          (0.8 + 1.0) / 3 = .6 5.0  (j < k+1: no check)
  3            0.5, 0.5                  0.5                  0.6
  4            0.5, 0.5                  0.5                  0.8
  j = 3: window [1, .6, .5]: 4/3 * (0.6 - 0.5) / (lambda 0.5) = 0.267 / lambda: no stop.
  j = 4: window [.6, .5, .5]: med .5, 1.0 / (1.6 - 1.0) = 5/3; gap (0.8 - 0.5) / 0.5
         = 0.6 / lambda -> pose 1.0 > 0.5 stops; gender 0.25 does not; landmarks never.
  """
  names = ("landmarks", "pose", "gender")
  w = tcdcn.tcdcn_early_stop(
    names, weights=dict(landmarks=1.0, pose=1.0, gender=4.0), k=2, epsilon=0.5
  )
  state = w.init()
  losses = [1.2, 0.8, 0.8, 0.5, 0.5, 0.5, 0.5, 0.5, 0.4]
  counts = [1, 1, 1, 2, 1, 1, 1, 1, 1]
  evals = {2: 1.1, 4: 5.0, 6: 0.6, 8: 0.8}  # val loss measured after that many steps
  update = jax.jit(w.update)
  val_count, val = 0, 0.0
  for s, (loss, count) in enumerate(zip(losses, counts, strict=True)):
    if s in evals:
      val_count, val = val_count + 1, evals[s]
    state = update(
      state,
      train_losses=_vals(loss, names),
      train_counts=_vals(count, names),
      val_losses=_vals(val, names),
      val_count=jnp.int32(val_count),
      step=jnp.int32(s),
    )
    stopped = s >= 8  # the update of step index 8 (loop step 9) sees evaluation 4
    assert float(state.active["pose"]) == (0.0 if stopped else 1.0), s
    assert float(state.weights["pose"]) == (0.0 if stopped else 1.0), s
    assert int(state.stopped_step["pose"]) == (9 if stopped else -1), s
    assert float(state.active["gender"]) == 1.0 and float(state.weights["gender"]) == 4.0
    assert float(state.active["landmarks"]) == 1.0 and int(state.stopped_step["landmarks"]) == -1
    if s == 6:
      np.testing.assert_allclose(state.criterion["pose"], 4 / 15, rtol=1e-5)
      np.testing.assert_allclose(state.train_history[:, 1], [1.0, 0.6, 0.5], rtol=1e-6)
  np.testing.assert_allclose(state.criterion["pose"], 1.0, rtol=1e-5)
  np.testing.assert_allclose(state.criterion["gender"], 0.25, rtol=1e-5)
  # A stopped task stays stopped even when its criterion falls again.
  for s in range(9, 13):
    state = update(
      state,
      train_losses=_vals(0.1, names),
      train_counts=_vals(1, names),
      val_losses=_vals(0.1, names),
      val_count=jnp.int32(val_count + s),
      step=jnp.int32(s),
    )
  assert float(state.active["pose"]) == 0.0 and int(state.stopped_step["pose"]) == 9


def test_tcdcn_early_stop_rejects_bad_configs():
  with pytest.raises(ValueError, match=r"main_task 'landmarks' is not one of"):
    tcdcn.tcdcn_early_stop(("pose", "gender"), weights=dict(pose=1.0, gender=1.0))
  with pytest.raises(ValueError, match=r"auxiliary tasks \['pose'\] have weight <= 0"):
    tcdcn.tcdcn_early_stop(("landmarks", "pose"), weights=dict(landmarks=1.0, pose=0.0))


def test_tcdcn_dynamic_rule_on_a_hand_worked_sequence():
  """One step per evaluation. pose: E_tr 1.0, 0.8, 0.6, 0.6; E_val 1.0, 0.9, 0.9, 0.45.
  j=2: lambda 2 * (1/.9) / (1/.8) = 2 * 0.8/0.9 = 1.7778; j=3: * (0.9/0.9) / (0.8/0.6) =
  0.75 -> 1.3333; j=4: * (0.9/0.45) / 1 = 2 -> 2.6667, clipped to max_factor * 2 = 2."""
  names = ("landmarks", "pose")
  w = tcdcn.tcdcn_dynamic(names, weights=dict(landmarks=5.0, pose=2.0), eta=1.0)
  state = w.init()
  train = [1.0, 0.8, 0.6, 0.6, 0.6]
  val = [0.0, 1.0, 0.9, 0.9, 0.45]  # val[s]: the evaluation after step s - 1 (none before 1)
  want = [2.0, 2.0, 2.0 * 0.8 / 0.9, 2.0 * 0.8 / 0.9 * 0.75, 2.0]
  for s in range(5):
    state = w.update(
      state,
      train_losses=_vals(train[s], names),
      train_counts=_vals(1, names),
      val_losses=_vals(val[s], names),
      val_count=jnp.int32(s),
      step=jnp.int32(s),
    )
    np.testing.assert_allclose(state.weights["pose"], want[s], rtol=1e-5, err_msg=str(s))
    assert float(state.weights["landmarks"]) == 5.0


# ------------------------------------------------------------------ other schemes, by hand


def test_uncertainty_update_by_hand():
  # d/ds [exp(-s) L + s] at s = 0, L = 2: 1 - 2 = -1; SGD lr 0.1 -> s = 0.1.
  w = learned.uncertainty(("landmarks", "pose"), optimizer="sgd", lr=0.1)
  state = w.update(
    w.init(),
    train_losses=dict(landmarks=jnp.float32(2.0), pose=jnp.float32(0.5)),
    train_counts=dict(landmarks=jnp.float32(3), pose=jnp.float32(0)),  # pose: no label
  )
  np.testing.assert_allclose(state.log_vars["landmarks"], 0.1, rtol=1e-6)
  np.testing.assert_allclose(state.weights["landmarks"], np.exp(-0.1), rtol=1e-6)
  assert float(state.log_vars["pose"]) == 0.0  # a task without labels leaves s alone
  # scale 0.5 (Eq. 7's regression form, LibMTL): gradient 0.5 * (1 - e^{0.5} 2).
  w = learned.uncertainty(("pose",), optimizer="sgd", lr=0.1, init_log_var=-0.5, scale=0.5)
  state = w.update(w.init(), train_losses=dict(pose=jnp.float32(2.0)), train_counts=dict(pose=1.0))
  np.testing.assert_allclose(
    state.log_vars["pose"], -0.5 - 0.1 * 0.5 * (1 - np.exp(0.5) * 2), rtol=1e-6
  )


def test_gradnorm_update_by_hand():
  """T = 2, SGD lr 0.1, alpha 1, L(0) = (1, 1), L = (0.5, 1.0) -> r = (2/3, 4/3);
  norms (1, 3), w = (1, 1): G = (1, 3), G_bar = 2, target = (4/3, 8/3);
  dL_grad/dw = sign(G - target) * norm = (-1, +3) -> w = (1.1, 0.7), renormalised to sum 2:
  (1.1, 0.7) * 2 / 1.8."""
  names = ("a", "b")
  w = learned.gradnorm(names, alpha=1.0, optimizer="sgd", lr=0.1, layer="x")
  ones = dict(a=jnp.float32(1), b=jnp.float32(1))
  grads = {"x/kernel": jnp.array([[1.0, 0.0], [0.0, 3.0]])}  # [T, ...]: norms 1 and 3
  state = w.update(w.init(), train_losses=ones, train_counts=ones, step=0, task_grads=grads)
  np.testing.assert_allclose(list(state.weights.values()), [1.0, 1.0])  # step 0: L(0) only
  np.testing.assert_allclose(state.initial_sum, [1.0, 1.0])
  losses = dict(a=jnp.float32(0.5), b=jnp.float32(1.0))
  state = w.update(state, train_losses=losses, train_counts=ones, step=1, task_grads=grads)
  np.testing.assert_allclose(
    [state.weights["a"], state.weights["b"]], np.array([1.1, 0.7]) * 2 / 1.8, rtol=1e-6
  )
  np.testing.assert_allclose(state.grad_norms["b"], 3.0, rtol=1e-6)


def test_dwa_by_hand():
  """interval 2 steps, T = 2: interval means (a, b) = (1, 1), then (0.5, 1.0): from step 4
  on lambda = 2 softmax((0.5, 1.0) / 2); the count-weighted mean ignores a 0-count step."""
  names = ("a", "b")
  w = loss_based.dwa(names, temperature=2.0, interval=2)
  state = w.init()
  seq = [((1.0, 1.0), (1, 1)), ((1.0, 1.0), (1, 1)), ((0.5, 1.0), (2, 1)), ((9.0, 1.0), (0, 1))]
  for s, ((la, lb), (ca, cb)) in enumerate(seq):
    state = w.update(
      state,
      train_losses=dict(a=jnp.float32(la), b=jnp.float32(lb)),
      train_counts=dict(a=jnp.float32(ca), b=jnp.float32(cb)),
      step=s,
    )
    if s < 3:
      assert [float(v) for v in state.weights.values()] == [1.0, 1.0], s
  want = 2 * np.exp(np.array([0.25, 0.5])) / np.exp(np.array([0.25, 0.5])).sum()
  np.testing.assert_allclose([state.weights["a"], state.weights["b"]], want, rtol=1e-6)


def _pcgrad_reference(g, orders):
  """Yu et al. 2020 Algorithm 1 on explicit vectors, with the given per-task orders."""
  pc = g.copy()
  for i in range(len(g)):
    for j in orders[i]:
      if j == i:
        continue
      dot = pc[i] @ g[j]
      if dot < 0:
        pc[i] = pc[i] - dot / (g[j] @ g[j]) * g[j]
  return pc.sum(0)


def test_pcgrad_coefficients_equal_algorithm_1_on_vectors():
  rng = np.random.default_rng(0)
  key = jax.random.PRNGKey(3)
  for trial in range(5):
    g = rng.normal(size=(4, 7))
    g[1] = -0.8 * g[0] + 0.3 * g[1]  # a conflicting pair
    if trial == 0:
      g[3] = 0.0  # a task without gradient never projects
    gram = jnp.asarray(g @ g.T, jnp.float32)
    k = jax.random.fold_in(key, trial)
    beta = pcgrad.projected_sum_coefficients(gram, k)
    orders = [np.asarray(jax.random.permutation(jax.random.fold_in(k, i), 4)) for i in range(4)]
    np.testing.assert_allclose(beta @ g, _pcgrad_reference(g, orders), rtol=1e-4, atol=1e-5)


def test_famo_two_steps_match_the_official_update():
  """Two updates with SGD (the paper's plain step), against the official code's formulas
  written out in numpy: z = softmax(xi), d_i = z_i / D_i / sum(z / D), xi -= lr (J^T delta
  + gamma xi) with delta = log D(before) - log D(after)."""
  names = ("a", "b", "c")
  w = loss_based.famo(names, optimizer="sgd", lr=0.5, gamma=0.01)
  state = w.init()
  xi = np.zeros(3)
  before = [np.array([1.0, 2.0, 0.5]), np.array([0.8, 1.9, 0.3])]
  after = [np.array([0.9, 2.0, 0.4]), np.array([0.6, 1.8, 0.35])]
  ones = {t: jnp.float32(1) for t in names}
  for b, a in zip(before, after, strict=True):
    coefs = w.step_weights(state, train_losses=dict(zip(names, b, strict=True)), train_counts=ones)
    z = np.exp(xi) / np.exp(xi).sum()
    d = b + 1e-8
    np.testing.assert_allclose([coefs[t] for t in names], z / d / (z / d).sum(), rtol=1e-5)
    state = w.update(
      state,
      train_losses={t: jnp.float32(v) for t, v in zip(names, b, strict=True)},
      train_counts=ones,
      next_losses={t: jnp.float32(v) for t, v in zip(names, a, strict=True)},
    )
    delta = np.log(b + 1e-8) - np.log(a + 1e-8)
    jac = np.diag(z) - np.outer(z, z)
    xi = xi - 0.5 * (jac.T @ delta + 0.01 * xi)
    np.testing.assert_allclose([state.logits[t] for t in names], xi, rtol=1e-5, atol=1e-7)


def test_every_scheme_builds_from_the_default_config():
  for name in (
    "static",
    "tcdcn_early_stop",
    "tcdcn_dynamic",
    "uncertainty",
    "gradnorm",
    "dwa",
    "pcgrad",
    "famo",
  ):
    assert name in registry.WEIGHTINGS
    w = weighting.make_weighting(
      config_lib.weighting_config(config_lib.HYPERFACE_LOSS_WEIGHTS, name), TASKS
    )
    state = w.init()
    assert sorted(state.weights) == sorted(TASKS), name
    # No two leaves share an array: the train step donates the state, and a buffer that
    # two leaves share cannot be donated twice (a replicated, un-jitted init must work).
    leaves = jax.tree.leaves(state)
    assert len({id(x) for x in leaves}) == len(leaves), name


def test_head_pattern_errors_name_the_problem():
  params = {"heads": {"fc_pose1": {"kernel": np.zeros(2)}, "fc_pose2": {"kernel": np.zeros(2)}}}
  owners = optim.head_owners(params, ("pose",), config_lib.WEIGHTING_DEFAULTS["head_pattern"])
  assert owners == {"heads/fc_pose1/kernel": "pose", "heads/fc_pose2/kernel": "pose"}
  with pytest.raises(ValueError, match=r"must contain '\{task\}'"):
    optim.head_owners(params, ("pose",), "heads/.*")
  with pytest.raises(ValueError, match=r"matches no parameter of task\(s\) \['gender'\]"):
    optim.head_owners(params, ("pose", "gender"), config_lib.WEIGHTING_DEFAULTS["head_pattern"])
  # landmarks68's head is not landmarks' (fc_landmarks681 does not match fc_landmarks[12]).
  params = {"heads": {"fc_landmarks1": {"b": 0}, "fc_landmarks681": {"b": 0}}}
  owners = optim.head_owners(
    params, ("landmarks", "landmarks68"), config_lib.WEIGHTING_DEFAULTS["head_pattern"]
  )
  assert owners == {"heads/fc_landmarks1/b": "landmarks", "heads/fc_landmarks681/b": "landmarks68"}


# ------------------------------------------------------------------ the real train step


def test_stopped_task_head_is_frozen_bit_for_bit_with_momentum_and_weight_decay():
  # k = 1 and epsilon = -inf: every auxiliary task stops at the first check, i.e. at the
  # update that sees the second evaluation (evaluations after steps 1 and 2 -> step 3).
  w = _weigher("tcdcn_early_stop", k=1, epsilon=float("-inf"))
  snaps, metrics = _train(2, w, num_steps=6, eval_after=(1, 2))
  stop = 3
  for t in TASKS:
    assert metrics[stop - 1][f"stopped_step/{t}"] == (-1 if t == "landmarks" else stop), t
    assert metrics[stop - 2][f"stopped_step/{t}"] == -1
  assert metrics[stop - 1]["weight/pose"] == 5.0 and metrics[stop]["weight/pose"] == 0.0
  flat = [surgery.flatten(s.params) for s in snaps]
  final = flat[stop]  # the parameters after step `stop` are the stopped heads' last values
  moved = set()
  for name, value in final.items():
    task = name.split("/")[1][3:-1] if name.startswith("heads/") else None
    for later in flat[stop + 1 :]:
      if task is not None and task != "landmarks":
        assert later[name].tobytes() == value.tobytes(), name
      elif np.max(np.abs(later[name] - value)) > 0:
        moved.add(name)
  assert "heads/fc_landmarks2/kernel" in moved and "fusion/fc_full/kernel" in moved
  # Without the mask the stopped heads would move: their momentum trace is not zero.
  trace = surgery.flatten(snaps[-1].opt_state[1][0].trace)
  assert np.max(np.abs(trace["heads/fc_pose2/kernel"])) > 0
  # And they did train before the stop.
  assert np.max(np.abs(flat[stop]["heads/fc_pose2/kernel"] - flat[0]["heads/fc_pose2/kernel"])) > 0


SCHEMES = {
  "static": {},
  "tcdcn_early_stop": dict(k=1, epsilon=float("-inf")),
  "tcdcn_dynamic": dict(eta=4.0, max_factor=2.0),
  "uncertainty": dict(optimizer="sgd", lr=0.2),
  "gradnorm": dict(optimizer="sgd", lr=0.5, alpha=1.5),
  "dwa": dict(interval=1),
  "pcgrad": {},
  "famo": dict(lr=0.1),
  "famo_next_batch": dict(lr=0.1, same_batch=False),
}


@pytest.mark.slow
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_one_and_eight_devices_agree(scheme):
  name = "famo" if scheme.startswith("famo") else scheme
  w = _weigher(name, **SCHEMES[scheme])
  runs = {n: _train(n, w, num_steps=5, eval_after=(1, 2, 3, 4)) for n in (1, 8)}
  (s1, m1), (s8, m8) = runs[1], runs[8]
  for a, b in zip(m1, m8, strict=True):
    assert sorted(a) == sorted(b)
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=2e-5, atol=1e-6, err_msg=k)
  for a, b in zip(jax.tree.leaves(s1[-1]), jax.tree.leaves(s8[-1]), strict=True):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
  weights = np.array([[m[f"weight/{t}"] for t in TASKS] for m in m1])
  # The coefficients really moved (otherwise the test would pass vacuously).
  if scheme not in ("static", "pcgrad"):
    assert np.max(np.abs(weights - weights[0])) > 1e-3, weights
  if scheme == "tcdcn_early_stop":
    assert m1[-1]["stopped_step/pose"] == 3
  if scheme == "pcgrad":  # the projection changed the shared gradient's coefficients
    coefs = np.array([[m[f"pcgrad/coef/{t}"] for t in TASKS] for m in m1])
    assert np.max(np.abs(coefs - weights)) > 1e-4


@pytest.mark.slow
def test_pcgrad_step_gives_the_projected_sum_of_the_task_gradients():
  """The step's shared-parameter update equals Algorithm 1 applied to per-task gradients
  computed independently (jax.grad of each task's exact loss on the whole batch)."""
  w = _weigher("pcgrad")
  opt = _optim_config(lr=1.0, momentum=0.0, weight_decay=0.0)  # update = -gradient
  snaps, metrics = _train(4, w, num_steps=1, eval_after=(), opt=opt)
  model = TinyHyperFace()
  batch = _batch(np.random.default_rng(0))
  params = snaps[0].params

  def task_loss(p, t):
    out = model.apply({"params": p}, batch["image"])
    s, c = tasks.compute_losses(TASK_LIST, out, batch)[t]
    return s / jnp.maximum(c, 1.0)

  grad = jax.jit(jax.grad(task_loss), static_argnums=1)
  grads = [surgery.flatten(grad(params, t)) for t in TASKS]
  shared = [n for n in grads[0] if not n.startswith("heads/")]
  g = np.stack([np.concatenate([gr[n].ravel() for n in shared]) for gr in grads])
  g = g * np.array([config_lib.HYPERFACE_LOSS_WEIGHTS[t] for t in TASKS])[:, None]
  coefs = np.array([metrics[0][f"pcgrad/coef/{t}"] for t in TASKS])
  got = np.concatenate(
    [
      (surgery.flatten(snaps[0].params)[n] - surgery.flatten(snaps[1].params)[n]).ravel()
      for n in shared
    ]
  )
  # The coefficients are the ones Algorithm 1 gives for this step's (seed, step) order.
  key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(0), 0), 2**31 - 1)
  gram = jnp.asarray(g @ g.T, jnp.float32)
  beta = np.asarray(pcgrad.projected_sum_coefficients(gram, key))
  weights = np.array([config_lib.HYPERFACE_LOSS_WEIGHTS[t] for t in TASKS])
  np.testing.assert_allclose(coefs, beta * weights, rtol=1e-3, atol=1e-6)
  np.testing.assert_allclose(got, beta @ g, rtol=1e-3, atol=1e-6)
  assert np.max(np.abs(beta - 1)) > 1e-3  # there were conflicts to project


def test_weighting_override_builds_and_traces_on_the_demo_config():
  """`--config.weighting.name=X` on configs/demo.py: the weighting builds and the real train
  step traces (shapes only: jax.eval_shape) with the demo model at its input size."""
  sys.path.insert(0, REPO)
  from configs import demo  # pylint: disable=g-import-not-at-top
  from hyperface_jax import train  # pylint: disable=g-import-not-at-top

  for name in ("uncertainty", "gradnorm", "pcgrad", "famo", "tcdcn_early_stop"):
    config = demo.get_config()
    config.lock()
    config.weighting.name = name
    config.batch_size = 8
    mesh = sharding.make_mesh(jax.devices()[:8])
    model, loss_fn, optimizer, weigher, init = train.build(config, mesh)
    repl, rows = sharding.replicated(mesh), sharding.data_sharded(mesh)
    abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
    abstract = checkpointing.abstract_with_sharding(abstract, repl)
    step = steps.make_train_step(
      mesh, model=model, loss_fn=loss_fn, optimizer=optimizer, weighting=weigher, seed=0
    )
    specs = {
      "image": ((config.input_size, config.input_size, 3), np.float32),
      "example_mask": ((), np.float32),
    }
    for t in tasks.resolve(config.tasks):
      specs.update({k: v for k, v in t.labels.items()}, **{t.mask_key: ((), np.float32)})
    batch = {
      k: jax.ShapeDtypeStruct(
        (8,) + tuple(shape), np.int32 if np.dtype(dtype).kind == "i" else dtype, sharding=rows
      )
      for k, (shape, dtype) in specs.items()
    }
    _, metrics = jax.eval_shape(step, abstract, batch)
    assert "weight/landmarks" in metrics and "train/grad_norm" in metrics, name
