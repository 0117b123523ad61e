"""Learned task coefficients: uncertainty weighting (Kendall et al.) and GradNorm (Chen et al.).

The coefficients are arrays of the weighting state, trained by their own optax optimiser
inside `update` from the step's exact global losses (and, for GradNorm, the exact global
per-task gradient norms): their objective is evaluated once on global quantities, never
once per device, so 1 and 8 devices give the same coefficients.

  config.weighting.name = "uncertainty"   # optimizer, lr, init_log_var, scale
  config.weighting.name = "gradnorm"      # alpha, optimizer, lr, layer, parametrization, ...
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
  coefficient_optimizer,
  own_coefficient_tasks,
  per_task,
  prefixed,
  task_grad_norms,
  vector,
)


class UncertaintyState(NamedTuple):
  """State of `uncertainty`."""

  weights: Dict[str, jax.Array]  # scale * exp(-s_t): the coefficient of L_t
  log_vars: Dict[str, jax.Array]  # s_t = log sigma_t^2
  opt_state: Any  # the optimiser state of log_vars


@registry.WEIGHTINGS.register("uncertainty")
def uncertainty(
  tasks: Sequence[str],
  weights=None,
  optimizer: str = "adam",
  lr: float = 0.01,
  init_log_var: float = 0.0,
  scale: float = 1.0,
  head_pattern: str = DEFAULT_HEAD_PATTERN,
  **unused,
) -> TaskWeighting:
  """Homoscedastic uncertainty weighting, Kendall, Gal, Cipolla, CVPR 2018.

  Eq. (7) with s_t = log sigma_t^2 learned (Section 3.2, "in practice we train the network
  to predict the log variance"), in the common form for every task:

    loss = scale * sum_t ( exp(-s_t) L_t + s_t )

  scale = 1 is the form used in the paper's implementation notes and most re-
  implementations; Eq. (7)'s regression terms 1/(2 sigma^2) L + log sigma are scale = 1/2,
  which is also LibMTL's UW (L / (2 exp(s)) + s / 2, tests/test_weighting_libmtl.py).
  The parameters get the gradient of sum_t scale exp(-s_t) L_t (coefficient = the logged
  weight); s gets d loss / d s_t = scale (1 - exp(-s_t) L_t) from the exact global L_t,
  applied by its own optimiser. A task with no labelled example in the step (L_t = 0 by
  the (sum, count) convention, not an observed zero loss) leaves its s_t untouched.
  `config.weighting.weights` are not used: the coefficients start at scale exp(-init_log_var).

  Args:
    tasks: the run's tasks.
    weights: checked against `tasks` if given, otherwise unused.
    optimizer: "adam" (documented default: its step does not depend on the loss scale,
      which differs by ~1000x between HyperFace's tasks) or "sgd" (as LibMTL, where the
      model's optimiser trains s).
    lr: learning rate of s (documented default 0.01: s moves by about lr per step under
      Adam, so a few hundred steps reach the sigma of a task).
    init_log_var: s_t at step 0 (paper: 0; LibMTL: -0.5).
    scale: 1 (default) or 0.5 (Eq. (7)'s regression form, LibMTL).
    head_pattern: see weighting.TaskWeighting.
    **unused: other shared config keys.

  Returns:
    The `TaskWeighting`.
  """
  del unused
  tasks = own_coefficient_tasks(tasks, weights)
  opt = coefficient_optimizer(optimizer, lr)

  def init():
    log_vars = {t: jnp.asarray(init_log_var, jnp.float32) for t in tasks}
    weights = {t: scale * jnp.exp(-s) for t, s in log_vars.items()}
    return UncertaintyState(weights=weights, log_vars=log_vars, opt_state=opt.init(log_vars))

  def update(state, *, train_losses, train_counts, **unused):
    del unused

    def objective(log_vars):
      return sum(
        jnp.where(train_counts[t] > 0, scale * (jnp.exp(-s) * train_losses[t] + s), 0.0)
        for t, s in log_vars.items()
      )

    grads = jax.grad(objective)(state.log_vars)
    updates, opt_state = opt.update(grads, state.opt_state, state.log_vars)
    log_vars = optax.apply_updates(state.log_vars, updates)
    weights = {t: scale * jnp.exp(-s) for t, s in log_vars.items()}
    return UncertaintyState(weights=weights, log_vars=log_vars, opt_state=opt_state)

  def log(state):
    return prefixed("uncertainty/log_var", state.log_vars)

  return TaskWeighting(init, update, head_pattern=head_pattern, tasks=tasks, log=log)


class GradNormState(NamedTuple):
  """State of `gradnorm` ([T] arrays in the factory's `tasks` order)."""

  weights: Dict[str, jax.Array]  # w_t, summing to T
  params: jax.Array  # w itself ("renormalize") or the logits ("softmax")
  opt_state: Any
  initial_sum: jax.Array  # sum of L_t x count over the first initial_loss_steps steps
  initial_count: jax.Array
  grad_norms: Dict[str, jax.Array]  # ||grad_W L_t|| of the last step (logged)


@registry.WEIGHTINGS.register("gradnorm")
def gradnorm(
  tasks: Sequence[str],
  weights=None,
  alpha: float = 1.5,
  optimizer: str = "adam",
  lr: float = 0.01,
  layer: str = "fusion/fc_full/.*",
  parametrization: str = "renormalize",
  initial_loss_steps: int = 1,
  min_weight: float = 0.0,
  head_pattern: str = DEFAULT_HEAD_PATTERN,
  **unused,
) -> TaskWeighting:
  """GradNorm, Chen, Badrinarayanan, Lee, Rabinovich, ICML 2018 (Algorithm 1, Eqs. 1-2).

  With W the last shared layer (`layer`), G_W^(i)(t) = ||grad_W w_i(t) L_i(t)||,
  G_bar = mean_i G_W^(i), L~_i = L_i(t) / L_i(0), r_i = L~_i / mean_j L~_j:

    L_grad = sum_i | G_W^(i)(t) - G_bar(t) * r_i(t)^alpha |_1            (Eq. 2)

  with the target G_bar r_i^alpha held constant. The weights take an optimiser step on
  grad_w L_grad and are renormalised to sum to T ("renormalize", the paper; negative
  values are first clipped at `min_weight`), or, "softmax" (LibMTL's GradNorm), w = T
  softmax(logits) and the step is on the logits. The step's parameter gradient uses w(t);
  the update gives w(t+1). L_i(0) is the mean loss of the first `initial_loss_steps` steps,
  during which the weights stay 1 (LibMTL: the first epoch). The exact per-task gradients
  of `layer` come from the train step (`task_grads`: only the backward pass from the heads
  to W is repeated per task; XLA drops the rest). Tasks with no labelled example in the
  step take no part in the means and in L_grad. `config.weighting.weights` are not used.

  Args:
    tasks: the run's tasks.
    weights: checked against `tasks` if given, otherwise unused.
    alpha: restoring-force strength (paper: 0.06-2.5 by task; LibMTL default 1.5).
    optimizer: "adam" (documented default: |d L_grad / d w_i| = ||grad_W L_i|| has the
      scale of the gradients, which Adam's step ignores) or "sgd" (LibMTL).
    lr: learning rate of the weights (documented default 0.01).
    layer: regex of the parameters of W ("/" names); default HyperFace's fc_full, the last
      layer every head reads (hyperface_resnet: its last shared layer is in the backbone).
    parametrization: "renormalize" or "softmax".
    initial_loss_steps: steps averaged for L_i(0) (documented default 1: the first loss).
    min_weight: floor before renormalising ("renormalize" only).
    head_pattern: see weighting.TaskWeighting.
    **unused: other shared config keys.

  Returns:
    The `TaskWeighting`.
  """
  del unused
  tasks = own_coefficient_tasks(tasks, weights)
  if parametrization not in ("renormalize", "softmax"):
    raise ValueError(
      f"gradnorm: parametrization {parametrization!r}: expected 'renormalize' or 'softmax'."
    )
  if int(initial_loss_steps) < 1:
    raise ValueError(f"gradnorm: initial_loss_steps must be >= 1, got {initial_loss_steps}.")
  n = len(tasks)
  opt = coefficient_optimizer(optimizer, lr)

  def weights_of(p):
    return n * jax.nn.softmax(p) if parametrization == "softmax" else p

  def init():
    p = jnp.zeros((n,), jnp.float32) if parametrization == "softmax" else jnp.ones((n,))
    p = p.astype(jnp.float32)
    return GradNormState(
      weights=per_task(weights_of(p), tasks),
      params=p,
      opt_state=opt.init(p),
      initial_sum=jnp.zeros((n,), jnp.float32),
      initial_count=jnp.zeros((n,), jnp.float32),
      grad_norms={t: jnp.zeros((), jnp.float32) for t in tasks},
    )

  def update(state, *, train_losses, train_counts, step, task_grads, **unused):
    del unused
    losses, counts = vector(train_losses, tasks), vector(train_counts, tasks)
    norms = task_grad_norms(task_grads, n)
    warm = jnp.asarray(step) < initial_loss_steps
    initial_sum = jnp.where(warm, state.initial_sum + losses * counts, state.initial_sum)
    initial_count = jnp.where(warm, state.initial_count + counts, state.initial_count)
    l0 = initial_sum / jnp.maximum(initial_count, 1.0)
    valid = (counts > 0) & (l0 > 0)
    nvalid = jnp.maximum(jnp.sum(valid), 1)
    ratio = jnp.where(valid, losses / jnp.where(valid, l0, 1.0), 0.0)
    r = ratio / (jnp.sum(ratio) / nvalid)

    def l_grad(p):
      g = weights_of(p) * norms
      g_bar = jax.lax.stop_gradient(jnp.sum(jnp.where(valid, g, 0.0)) / nvalid)
      target = jax.lax.stop_gradient(g_bar * jnp.where(valid, r, 0.0) ** alpha)
      return jnp.sum(jnp.where(valid, jnp.abs(g - target), 0.0))

    grad = jax.grad(l_grad)(state.params)
    updates, opt_state = opt.update(grad, state.opt_state, state.params)
    p = optax.apply_updates(state.params, updates)
    if parametrization == "renormalize":
      p = jnp.maximum(p, min_weight)
      p = n * p / jnp.sum(p)
    keep = lambda new, old: jnp.where(warm, old, new)
    p = keep(p, state.params)
    opt_state = jax.tree.map(keep, opt_state, state.opt_state)
    return GradNormState(
      weights=per_task(weights_of(p), tasks),
      params=p,
      opt_state=opt_state,
      initial_sum=initial_sum,
      initial_count=initial_count,
      grad_norms=per_task(norms, tasks),
    )

  def log(state):
    return prefixed("gradnorm/grad_norm", state.grad_norms)

  return TaskWeighting(
    init, update, task_grads=layer, head_pattern=head_pattern, tasks=tasks, log=log
  )
