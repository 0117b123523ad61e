"""PCGrad: projecting conflicting gradients (Yu et al.), on the shared parameters.

config.weighting.name = "pcgrad"   # config.weighting.shared: the projected parameters
"""

from __future__ import annotations

from typing import Dict, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from hyperface_jax import registry
from hyperface_jax.weighting import (
  DEFAULT_HEAD_PATTERN,
  DEFAULT_SHARED,
  TaskWeighting,
  configured_weights,
  per_task,
  prefixed,
  vector,
)


def gram_matrix(task_grads: Mapping[str, jax.Array], num_tasks: int) -> jax.Array:
  """[T, T] inner products g_i . g_j of the per-task gradients ({name: [T, ...]})."""
  out = jnp.zeros((num_tasks, num_tasks), jnp.float32)
  for g in task_grads.values():
    flat = g.reshape(num_tasks, -1).astype(jnp.float32)
    out = out + flat @ flat.T
  return out


def projected_sum_coefficients(gram: jax.Array, rng: jax.Array) -> jax.Array:
  """beta with sum_i g_i^PC = sum_j beta_j g_j (Yu et al. 2020, Algorithm 1).

  Algorithm 1: g_i^PC starts as g_i; for each other task j in a random order, if
  g_i^PC . g_j < 0, g_i^PC -= (g_i^PC . g_j / ||g_j||^2) g_j; the update is sum_i g_i^PC.
  Every g_i^PC stays in the span of the g_j, so writing g_i^PC = sum_k a_ik g_k the whole
  algorithm runs on the Gram matrix: g_i^PC . g_j = a_i . gram[:, j]. Task i's order is
  jax.random.permutation(fold_in(rng, i), T) without i. A zero gradient never projects.

  Args:
    gram: [T, T] Gram matrix of the task gradients.
    rng: a key (the step derives it from (seed, step): reproducible, device-independent).

  Returns:
    [T] beta.
  """
  n = gram.shape[0]
  eye = jnp.eye(n, dtype=gram.dtype)
  sq = jnp.diagonal(gram)
  beta = jnp.zeros((n,), gram.dtype)
  for i in range(n):
    order = jax.random.permutation(jax.random.fold_in(rng, i), n)
    a = eye[i]
    for pos in range(n):
      j = order[pos]
      dot = a @ gram[:, j]
      project = (j != i) & (dot < 0) & (sq[j] > 0)
      a = a - jnp.where(project, dot / jnp.where(sq[j] > 0, sq[j], 1.0), 0.0) * eye[j]
    beta = beta + a
  return beta


class PCGradState(NamedTuple):
  """State of `pcgrad`."""

  weights: Dict[str, jax.Array]  # the configured coefficients (constant)
  shared_coefs: Dict[
    str, jax.Array
  ]  # beta_t w_t of the last step: shared grad = sum of these x grad L_t


@registry.WEIGHTINGS.register("pcgrad")
def pcgrad(
  tasks: Sequence[str],
  weights=None,
  shared: str = DEFAULT_SHARED,
  head_pattern: str = DEFAULT_HEAD_PATTERN,
  **unused,
) -> TaskWeighting:
  """Gradient surgery, Yu, Kumar, Gupta, Levine, Hausman, Finn, NeurIPS 2020, Algorithm 1.

  The task gradients g_t = w_t grad L_t (w = config.weighting.weights; 1 each if none) of
  the shared parameters (`shared`, default everything outside the "heads..." modules) are
  projected as in `projected_sum_coefficients` and summed; the heads get sum_t w_t grad
  L_t (their gradients do not conflict: each belongs to one task). The exact per-task
  gradients of the shared parameters come from the train step (`task_grads`), which costs
  T backward passes through the shared layers instead of one, and T times their size in
  memory.

  Args:
    tasks: the run's tasks.
    weights: w_t per task; None: 1 each (LibMTL's PCGrad).
    shared: regex ("/" names) of the parameters whose gradients are projected.
    head_pattern: see weighting.TaskWeighting.
    **unused: other shared config keys.

  Returns:
    The `TaskWeighting`.
  """
  del unused
  tasks = tuple(tasks)
  w = jnp.asarray(list(configured_weights(weights, tasks).values()), jnp.float32)
  n = len(tasks)

  def init():
    return PCGradState(weights=per_task(w, tasks), shared_coefs=per_task(w, tasks))

  def coefficients(task_grads, weights, rng):
    wv = vector(weights, tasks)
    gram = gram_matrix(task_grads, n) * wv[:, None] * wv[None, :]
    return projected_sum_coefficients(gram, rng) * wv

  def shared_weights(state, *, task_grads, weights, rng):
    del state
    return per_task(coefficients(task_grads, weights, rng), tasks)

  def update(state, *, shared_weights=None, **unused):
    del unused
    return state._replace(shared_coefs=shared_weights)

  def log(state):
    return prefixed("pcgrad/coef", state.shared_coefs)

  return TaskWeighting(
    init,
    update,
    task_grads=shared,
    shared_weights=shared_weights,
    head_pattern=head_pattern,
    tasks=tasks,
    log=log,
  )
