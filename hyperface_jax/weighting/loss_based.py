"""Coefficients from the course of the training losses alone: DWA (Liu, Johns, Davison) and
FAMO (Liu et al.). No per-task gradients are needed.

  config.weighting.name = "dwa"    # temperature, interval (the "epoch", in steps)
  config.weighting.name = "famo"   # optimizer, lr, gamma, min_loss, epsilon, same_batch
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from hyperface_jax import registry
from hyperface_jax.weighting import (
  DEFAULT_HEAD_PATTERN,
  TaskWeighting,
  own_coefficient_tasks,
  per_task,
  prefixed,
  vector,
)


class DWAState(NamedTuple):
  """State of `dwa` ([T] arrays in the factory's `tasks` order)."""

  weights: Dict[str, jax.Array]
  interval_sum: jax.Array  # sum of L_t x count over the current interval
  interval_count: jax.Array
  last: jax.Array  # mean loss of the last complete interval, L(t-1)
  before_last: jax.Array  # that of the one before, L(t-2)
  intervals: jax.Array  # int32 complete intervals


@registry.WEIGHTINGS.register("dwa")
def dwa(
  tasks: Sequence[str],
  weights=None,
  temperature: float = 2.0,
  interval: int = 100,
  head_pattern: str = DEFAULT_HEAD_PATTERN,
  **unused,
) -> TaskWeighting:
  """Dynamic Weight Average, Liu, Johns, Davison, CVPR 2019 ("End-to-End Multi-Task Learning
  with Attention"), Eq. (1):

    lambda_k(t) = K exp(w_k(t-1) / T) / sum_i exp(w_i(t-1) / T),  w_k(t-1) = L_k(t-1) / L_k(t-2)

  L_k(t) is the task's average loss over epoch t, here an `interval` of steps (the
  exact mean over the interval's labelled examples: sum of loss x count / sum of counts;
  a task with no label in an interval carries its previous mean over, ratio 1).
  lambda_k = 1 until two intervals are complete (the paper: w_k(t) = 1 for t = 1, 2).
  The weights switch at the first step of each interval, as LibMTL's DWA switches per
  epoch. `config.weighting.weights` are not used.

  Args:
    tasks: the run's tasks (K of them).
    weights: checked against `tasks` if given, otherwise unused.
    temperature: T (paper: 2).
    interval: steps per "epoch" (documented default 100: configs/demo.py trains 1600
      steps, so 16 intervals).
    head_pattern: see weighting.TaskWeighting.
    **unused: other shared config keys.

  Returns:
    The `TaskWeighting`.
  """
  del unused
  tasks = own_coefficient_tasks(tasks, weights)
  interval = int(interval)
  if interval < 1:
    raise ValueError(f"dwa: interval must be >= 1 step, got {interval}.")
  n = len(tasks)

  def init():
    # A new array per field: leaves sharing one buffer could not all be donated.
    zeros = lambda: jnp.zeros((n,), jnp.float32)
    return DWAState(
      weights={t: jnp.ones((), jnp.float32) for t in tasks},
      interval_sum=zeros(),
      interval_count=zeros(),
      last=zeros(),
      before_last=zeros(),
      intervals=jnp.zeros((), jnp.int32),
    )

  def update(state, *, train_losses, train_counts, step, **unused):
    del unused
    counts = vector(train_counts, tasks)
    total = state.interval_sum + vector(train_losses, tasks) * counts
    count = state.interval_count + counts
    end = (jnp.asarray(step) + 1) % interval == 0
    mean = jnp.where(count > 0, total / jnp.maximum(count, 1.0), state.last)
    last = jnp.where(end, mean, state.last)
    before_last = jnp.where(end, state.last, state.before_last)
    intervals = state.intervals + end.astype(jnp.int32)
    ratio = last / jnp.where(before_last > 0, before_last, 1.0)
    lam = jnp.where(intervals >= 2, n * jax.nn.softmax(ratio / temperature), 1.0)
    return DWAState(
      weights=per_task(lam, tasks),
      interval_sum=jnp.where(end, 0.0, total),
      interval_count=jnp.where(end, 0.0, count),
      last=last,
      before_last=before_last,
      intervals=intervals,
    )

  return TaskWeighting(init, update, head_pattern=head_pattern, tasks=tasks)


class FAMOState(NamedTuple):
  """State of `famo` ([T] arrays in the factory's `tasks` order)."""

  weights: Dict[str, jax.Array]  # the coefficients of the last step's loss (sum 1)
  logits: Dict[str, jax.Array]  # xi
  opt_state: Any
  prev_losses: jax.Array  # last step's losses (same_batch=False)
  prev_counts: jax.Array


@registry.WEIGHTINGS.register("famo")
def famo(
  tasks: Sequence[str],
  weights=None,
  optimizer: str = "adam",
  lr: float = 0.025,
  gamma: float = 0.001,
  min_loss: float = 0.0,
  epsilon: float = 1e-8,
  same_batch: bool = True,
  head_pattern: str = DEFAULT_HEAD_PATTERN,
  **unused,
) -> TaskWeighting:
  """FAMO, Liu, Liu, Jin, Stone, Liu, NeurIPS 2023 ("FAMO: Fast Adaptive Multitask
  Optimization"), Algorithm 1.

  With logits xi, z = softmax(xi) and D_i = L_i - min_loss + epsilon (the official code's
  l_i - l_i^* + 1e-8), the parameters move along

    d = sum_i c z_i grad log D_i = sum_i (c z_i / D_i) grad L_i,   c = 1 / sum_j (z_j / D_j)

  (Eq. 9), i.e. loss coefficients z_i / (c D_i) summing to 1, computed from this step's
  exact global losses (`step_weights`). Then (Eq. 10, with the official code's Adam and
  its weight decay gamma):

    delta = J_z(xi)^T (log D(theta_t) - log D(theta_{t+1})),   xi <- Adam(delta + gamma xi)

  same_batch=True (default, as the official code): D(theta_{t+1}) is measured on the same
  batch after the parameter update (the step runs one more forward pass). same_batch=False:
  the loss change is taken between consecutive steps (two batches), no extra forward
  pass; the logits then move one step later. Tasks without a labelled example in a
  step get coefficient 0 and no logit change. `config.weighting.weights` are not used.

  Args:
    tasks: the run's tasks.
    weights: checked against `tasks` if given, otherwise unused.
    optimizer: "adam" (official) or "sgd" (the paper's plain step).
    lr: step size of xi (official default 0.025).
    gamma: weight decay of xi (official default 0.001).
    min_loss: l^*, a lower bound of the losses (0).
    epsilon: added to L - min_loss (official 1e-8).
    same_batch: see above.
    head_pattern: see weighting.TaskWeighting.
    **unused: other shared config keys.

  Returns:
    The `TaskWeighting`.
  """
  del unused
  tasks = own_coefficient_tasks(tasks, weights)
  n = len(tasks)
  base = {"adam": optax.adam, "sgd": optax.sgd}.get(optimizer)
  if base is None:
    raise ValueError(f"famo: optimizer {optimizer!r}: expected 'adam' or 'sgd'.")
  # torch.optim.Adam(weight_decay=gamma) adds gamma * xi to the gradient, before Adam.
  opt = optax.chain(optax.add_decayed_weights(gamma), base(lr))

  def log_d(losses):
    return jnp.log(losses - min_loss + epsilon)

  def coefficients(logits, losses, valid):
    z = jax.nn.softmax(logits)
    d = losses - min_loss + epsilon
    ratio = jnp.where(valid, z / jnp.where(valid, d, 1.0), 0.0)
    return ratio / jnp.maximum(jnp.sum(ratio), jnp.finfo(jnp.float32).tiny)

  def init():
    # A new array per field: leaves sharing one buffer could not all be donated.
    zeros = lambda: jnp.zeros((n,), jnp.float32)
    return FAMOState(
      weights={t: jnp.full((), 1.0 / n, jnp.float32) for t in tasks},
      logits=per_task(zeros(), tasks),
      opt_state=opt.init(zeros()),
      prev_losses=zeros(),
      prev_counts=zeros(),
    )

  def step_weights(state, *, train_losses, train_counts):
    valid = vector(train_counts, tasks) > 0
    logits = vector(state.logits, tasks)
    return per_task(coefficients(logits, vector(train_losses, tasks), valid), tasks)

  def update(state, *, train_losses, train_counts, next_losses=None, **unused):
    del unused
    losses, counts = vector(train_losses, tasks), vector(train_counts, tasks)
    logits = vector(state.logits, tasks)
    if same_batch:
      before, after, valid = losses, vector(next_losses, tasks), counts > 0
    else:
      before, after = state.prev_losses, losses
      valid = (state.prev_counts > 0) & (counts > 0)
    delta = jnp.where(valid, log_d(before) - log_d(after), 0.0)
    _, vjp = jax.vjp(jax.nn.softmax, logits)
    (grad,) = vjp(delta)
    updates, opt_state = opt.update(grad, state.opt_state, logits)
    return FAMOState(
      weights=per_task(coefficients(logits, losses, counts > 0), tasks),
      logits=per_task(optax.apply_updates(logits, updates), tasks),
      opt_state=opt_state,
      prev_losses=losses,
      prev_counts=counts,
    )

  def log(state):
    return prefixed("famo/logit", state.logits)

  return TaskWeighting(
    init,
    update,
    step_weights=step_weights,
    needs_next_losses=bool(same_batch),
    head_pattern=head_pattern,
    tasks=tasks,
    log=log,
  )
