"""TCDCN's task coefficients: task-wise early stopping (ECCV'14) and dynamic (TPAMI'16).

Both act once per fresh validation result (`val_count` moved since the scheme last used
one). Time is counted in evaluations: evaluation j gives E_val(j), the exact per-task
validation loss, and E_tr(j), the exact mean training loss of the task over the steps since
the previous evaluation (sum of loss x label count over those steps / sum of the counts, so
a step whose batch holds no label of the task does not count as a zero loss). A
per-step window would compare the validation loss of one model with the training loss of
single noisy batches; the interval mean is the training-set loss of the same stretch of
training that the evaluation closes.

  config.weighting.name = "tcdcn_early_stop"   # k, epsilon, main_task
  config.weighting.name = "tcdcn_dynamic"      # eta, min_factor, max_factor, main_task
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from hyperface_jax import registry
from hyperface_jax.weighting import (
  DEFAULT_HEAD_PATTERN,
  TaskWeighting,
  configured_weights,
  fresh_validation,
  per_task,
  prefixed,
  vector,
)


def _interval(interval_sum, interval_count, fresh):
  """(E_tr of the interval a fresh evaluation closes, tasks for which it exists)."""
  valid = fresh & (interval_count > 0)
  return interval_sum / jnp.maximum(interval_count, 1.0), valid


def _accumulate(interval_sum, interval_count, fresh, losses, counts):
  """Adds this step (after a fresh evaluation: starts a new interval with it)."""
  keep = jnp.where(fresh, 0.0, 1.0)
  return keep * interval_sum + losses * counts, keep * interval_count + counts


def _aux_mask(tasks: Sequence[str], main_task: str) -> jax.Array:
  if main_task not in tasks:
    raise ValueError(
      f"weighting: main_task {main_task!r} is not one of the run's tasks {list(tasks)}; "
      "set config.weighting.<scheme>.main_task."
    )
  return jnp.asarray([t != main_task for t in tasks])


def early_stopping_criterion(window, val, train_min, lam, k: int):
  """ECCV'14 task-wise early stopping criterion (docs/papers.md section 2.1), per task.

    k * med(window) / (sum(window) - k * med(window))
      * (E_val(t) - min_{j<=t} E_tr(j)) / (lam * min_{j<=t} E_tr(j))

  Args:
    window: [k + 1, T] E_tr(t - k .. t), the k + 1 values of the formula's
      j = t - k .. t (inclusive, as written; with an even count jnp.median averages the
      two middle values, so k = 1 makes the first factor 1).
    val: [T] E_val(t).
    train_min: [T] min over j <= t of E_tr(j).
    lam: [T] the task coefficients lambda_a.
    k: the window length.

  Returns:
    [T] the criterion; a non-positive first denominator (the training loss did not go
    down inside the window) gives +inf times the sign of the second factor.
  """
  med = jnp.median(window, axis=0)
  denom = jnp.sum(window, axis=0) - k * med
  plateau = jnp.where(denom > 0, k * med / jnp.where(denom > 0, denom, 1.0), jnp.inf)
  gap = (val - train_min) / (lam * train_min)
  return plateau * gap


class EarlyStopState(NamedTuple):
  """State of `tcdcn_early_stop` ([T] arrays in the factory's `tasks` order)."""

  weights: Dict[str, jax.Array]  # lambda_a while active, 0 once stopped
  active: Dict[str, jax.Array]  # 1.0 training, 0.0 stopped (head frozen)
  stopped_step: Dict[str, jax.Array]  # int32 step whose update stopped it; -1: active
  criterion: Dict[str, jax.Array]  # the criterion at the last check (0 before any)
  interval_sum: jax.Array  # sum of loss x count over the steps since the last evaluation
  interval_count: jax.Array
  train_history: jax.Array  # [k + 1, T] E_tr of the last k + 1 evaluations, oldest first
  evaluations: jax.Array  # int32 [T] E_tr values seen per task
  train_min: jax.Array  # min_j E_tr(j)
  val_seen: jax.Array  # int32 val_count last used


@registry.WEIGHTINGS.register("tcdcn_early_stop")
def tcdcn_early_stop(
  tasks: Sequence[str],
  weights=None,
  k: int = 5,
  epsilon: float = 1.0,
  main_task: str = "landmarks",
  head_pattern: str = DEFAULT_HEAD_PATTERN,
  **unused,
) -> TaskWeighting:
  """Task-wise early stopping, Zhang et al. ECCV 2014 Eq. (5) (docs/papers.md section 2.1).

  At evaluation t (see the module docstring for E_tr, E_val and the time unit), an
  auxiliary task a that is still active stops when `early_stopping_criterion` > epsilon,
  which needs t >= k + 1 evaluations. A stopped task stays stopped: its weight is 0 and its
  head is frozen bit for bit (the step masks the optimiser updates of the parameters
  matching `head_pattern`). The main task never stops. `stopped_step/<task>` is the step
  whose update took the decision (the first step after the evaluation); the head's
  parameters after that step are final, from the next step on its weight is 0.

  Args:
    tasks: the run's tasks.
    weights: lambda_a per task (config.weighting.weights); the formula divides by it, so
      every auxiliary task needs a positive one.
    k: window length in evaluations ([?] in the paper; documented default 5).
    epsilon: threshold ([?]; documented default 1.0: with the window factor about k
      for a steady trend, a task with lambda 1 stops when its validation loss exceeds its
      best training loss by about 1/k = 20 %).
    main_task: never stops (TCDCN's landmarks).
    head_pattern: see weighting.TaskWeighting.
    **unused: other shared config keys.

  Returns:
    The `TaskWeighting`.
  """
  del unused
  tasks = tuple(tasks)
  k = int(k)
  if k < 1:
    raise ValueError(f"tcdcn_early_stop: k must be >= 1, got {k}.")
  lam = configured_weights(weights, tasks)
  aux = _aux_mask(tasks, main_task)
  bad = [t for t in tasks if t != main_task and lam[t] <= 0]
  if bad:
    raise ValueError(
      f"tcdcn_early_stop: auxiliary tasks {bad} have weight <= 0; the criterion divides by "
      "lambda_a (config.weighting.weights)."
    )
  lam_vec = jnp.asarray([lam[t] for t in tasks], jnp.float32)
  n = len(tasks)

  def init():
    return EarlyStopState(
      weights=per_task(lam_vec, tasks),
      active={t: jnp.ones((), jnp.float32) for t in tasks},
      stopped_step={t: jnp.full((), -1, jnp.int32) for t in tasks},
      criterion={t: jnp.zeros((), jnp.float32) for t in tasks},
      interval_sum=jnp.zeros((n,), jnp.float32),
      interval_count=jnp.zeros((n,), jnp.float32),
      train_history=jnp.zeros((k + 1, n), jnp.float32),
      evaluations=jnp.zeros((n,), jnp.int32),
      train_min=jnp.full((n,), jnp.inf, jnp.float32),
      val_seen=jnp.zeros((), jnp.int32),
    )

  def update(state, *, train_losses, train_counts, val_losses, val_count, step, **unused):
    del unused
    fresh = fresh_validation(state.val_seen, val_count)
    e_tr, valid = _interval(state.interval_sum, state.interval_count, fresh)
    pushed = jnp.concatenate([state.train_history[1:], e_tr[None]], axis=0)
    history = jnp.where(valid[None], pushed, state.train_history)
    evaluations = state.evaluations + valid.astype(jnp.int32)
    train_min = jnp.where(valid, jnp.minimum(state.train_min, e_tr), state.train_min)
    crit = early_stopping_criterion(history, vector(val_losses, tasks), train_min, lam_vec, k)
    active = vector(state.active, tasks) > 0
    check = valid & (evaluations >= k + 1) & aux & active
    stop = check & (crit > epsilon)
    active = active & ~stop
    stopped = jnp.where(stop, jnp.asarray(step, jnp.int32) + 1, vector(state.stopped_step, tasks))
    interval_sum, interval_count = _accumulate(
      state.interval_sum,
      state.interval_count,
      fresh,
      vector(train_losses, tasks),
      vector(train_counts, tasks),
    )
    return EarlyStopState(
      weights=per_task(jnp.where(active, lam_vec, 0.0), tasks),
      active=per_task(active.astype(jnp.float32), tasks),
      stopped_step=per_task(stopped.astype(jnp.int32), tasks),
      criterion=per_task(jnp.where(check, crit, vector(state.criterion, tasks)), tasks),
      interval_sum=interval_sum,
      interval_count=interval_count,
      train_history=history,
      evaluations=evaluations,
      train_min=train_min,
      val_seen=jnp.where(fresh, jnp.asarray(val_count, jnp.int32), state.val_seen),
    )

  def log(state):
    return {
      **prefixed("stopped_step", state.stopped_step),
      **prefixed("tcdcn/criterion", state.criterion),
    }

  return TaskWeighting(init, update, head_pattern=head_pattern, tasks=tasks, log=log)


class DynamicState(NamedTuple):
  """State of `tcdcn_dynamic` ([T] arrays in the factory's `tasks` order)."""

  weights: Dict[str, jax.Array]
  interval_sum: jax.Array
  interval_count: jax.Array
  prev_train: jax.Array  # E_tr at the previous evaluation
  prev_val: jax.Array  # E_val at the previous evaluation
  has_prev: jax.Array  # int32 [T]
  val_seen: jax.Array


@registry.WEIGHTINGS.register("tcdcn_dynamic")
def tcdcn_dynamic(
  tasks: Sequence[str],
  weights=None,
  main_task: str = "landmarks",
  eta: float = 1.0,
  min_factor: float = 0.0,
  max_factor: float = 1.0,
  head_pattern: str = DEFAULT_HEAD_PATTERN,
  **unused,
) -> TaskWeighting:
  """Dynamic task coefficients in the spirit of Zhang et al. TPAMI 2016 (papers.md 2.2).

  The paper updates each auxiliary coefficient "from the training and validation errors
  reached so far" but its formula is not published ([?] in docs/papers.md 2.2). Rule chosen
  here (docs/weighting.md), at each evaluation j >= 2 with E_tr, E_val as in the module
  docstring, for every auxiliary task a:

    lambda_a(j) = clip( lambda_a(j-1) * [ (E_val(j-1) / E_val(j)) / (E_tr(j-1) / E_tr(j)) ]^eta,
                        min_factor * lambda_a(0), max_factor * lambda_a(0) )

  i.e. the coefficient is multiplied by the ratio of the task's relative validation
  improvement to its relative training improvement. Why: it reads the same two signals as
  ECCV'14's stopping rule (training trend, generalisation), but softly and reversibly --
  equal progress on both keeps lambda, a validation loss that stalls or rises while the
  training loss falls (the over-fitting ECCV'14 stops) shrinks it geometrically, and a
  task that helps generalisation again regains weight, up to max_factor * lambda_a(0)
  (default 1: never more than configured, as early stopping). One hyperparameter, eta.
  The main task keeps its weight. Nothing is frozen (no `active` flags).

  Args:
    tasks: the run's tasks.
    weights: lambda_a(0) per task (config.weighting.weights).
    main_task: keeps its coefficient.
    eta: exponent (documented default 1).
    min_factor: lower bound as a fraction of lambda_a(0) (default 0).
    max_factor: upper bound as a fraction of lambda_a(0) (default 1).
    head_pattern: see weighting.TaskWeighting (unused: nothing is frozen).
    **unused: other shared config keys.

  Returns:
    The `TaskWeighting`.
  """
  del unused
  tasks = tuple(tasks)
  lam0 = jnp.asarray(list(configured_weights(weights, tasks).values()), jnp.float32)
  aux = _aux_mask(tasks, main_task)
  n = len(tasks)

  def init():
    # A new array per field: leaves sharing one buffer could not all be donated.
    zeros = lambda: jnp.zeros((n,), jnp.float32)
    return DynamicState(
      weights=per_task(lam0, tasks),
      interval_sum=zeros(),
      interval_count=zeros(),
      prev_train=zeros(),
      prev_val=zeros(),
      has_prev=jnp.zeros((n,), jnp.int32),
      val_seen=jnp.zeros((), jnp.int32),
    )

  def update(state, *, train_losses, train_counts, val_losses, val_count, **unused):
    del unused
    fresh = fresh_validation(state.val_seen, val_count)
    e_tr, valid = _interval(state.interval_sum, state.interval_count, fresh)
    e_val = vector(val_losses, tasks)
    valid = valid & (e_val > 0) & (e_tr > 0)
    move = valid & (state.has_prev > 0) & aux
    safe = lambda x: jnp.where(move, x, 1.0)
    ratio = (safe(state.prev_val) / safe(e_val)) / (safe(state.prev_train) / safe(e_tr))
    lam = vector(state.weights, tasks)
    lam = jnp.where(move, jnp.clip(lam * ratio**eta, min_factor * lam0, max_factor * lam0), lam)
    interval_sum, interval_count = _accumulate(
      state.interval_sum,
      state.interval_count,
      fresh,
      vector(train_losses, tasks),
      vector(train_counts, tasks),
    )
    return DynamicState(
      weights=per_task(lam, tasks),
      interval_sum=interval_sum,
      interval_count=interval_count,
      prev_train=jnp.where(valid, e_tr, state.prev_train),
      prev_val=jnp.where(valid, e_val, state.prev_val),
      has_prev=jnp.where(valid, 1, state.has_prev),
      val_seen=jnp.where(fresh, jnp.asarray(val_count, jnp.int32), state.val_seen),
    )

  return TaskWeighting(init, update, head_pattern=head_pattern, tasks=tasks)
