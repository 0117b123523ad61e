"""Task-coefficient transforms, written the optax way (interface v2, docs/weighting.md).

A `TaskWeighting` is a NamedTuple of pure functions plus a few static facts the train step
reads (docs/design.md habit 5):

  state = weighting.init()
  coefs = weighting.step_weights(state, train_losses=..., train_counts=...)  # optional
  state = weighting.update(
      state, train_losses=..., train_counts=..., val_losses=..., val_count=..., step=...,
      task_grads=..., shared_weights=..., next_losses=..., rng=...)

The state is a NamedTuple of arrays with at least `weights` ({task: scalar}); it lives in
`TrainState.weighting`, so it is jitted, replicated, checkpointed and logged every step
(`weight/<task>`, plus whatever `log(state)` returns, e.g. `stopped_step/<task>`).

What the train step (steps.py) does with it, inside the one jitted data-parallel step:
  1. forward; exact global per-task losses L_t (psum of local sum / global count);
  2. coefficients c_t = `step_weights(state, ...)` if given (FAMO: they depend on this
     step's losses), else `state.weights`;
  3. gradient of sum_t c_t L_t (one backward pass, psum over devices);
  4. if `task_grads` (a regex of "/" parameter names) is set: the exact per-task gradients
     of L_t on those parameters (jax.vmap of the VJP over one-hot cotangents, psum), passed
     to `update` as {param name: [T, ...]} (T = tasks in `tasks` order); GradNorm asks for
     its layer, PCGrad for the shared parameters;
  5. if `shared_weights` is set: the gradient of the `task_grads` parameters is replaced by
     sum_t beta_t grad L_t with beta = shared_weights(state, task_grads=..., weights=c,
     rng=...) (PCGrad's projected sum lies in the span of the task gradients);
  6. optimiser step; if the state has `active` ({task: 0/1}), the updates of a stopped
     task's head (parameters matching `head_pattern`) are zeroed and its values kept bit
     for bit (optim.freeze_stopped_heads): a zero loss weight alone does not stop weight
     decay and momentum;
  7. if `needs_next_losses`: the losses of the updated parameters on the same batch
     (FAMO's same-batch variant, one extra forward pass);
  8. `update(...)` with the step's exact global losses and label counts, the last
     validation losses with `val_count` (how many evaluations have run: a scheme acts once
     per fresh validation result by remembering the count it last used), the step (the
     number of steps done before this one; the loop calls this step `step + 1`), the
     per-task gradients, the coefficients `shared_weights` returned, the next losses and
     a PRNG key that depends only on (seed, step), never on the device.

Learnable coefficients (uncertainty, GradNorm, FAMO) are arrays of the state updated by
their own optax optimiser inside `update`, from the exact global losses: their loss
term is counted once, not once per device.

Schemes (registry.WEIGHTINGS, `config.weighting.name`): static (here), tcdcn_early_stop
and tcdcn_dynamic (tcdcn.py), uncertainty and gradnorm (learned.py), dwa and famo
(loss_based.py), pcgrad (pcgrad.py). `make_weighting(config.weighting, tasks)` builds one.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import optax

from hyperface_jax import config_lib, registry

DEFAULT_HEAD_PATTERN = config_lib.WEIGHTING_DEFAULTS["head_pattern"]
DEFAULT_SHARED = config_lib.WEIGHTING_DEFAULTS["shared"]


class TaskWeighting(NamedTuple):
  """A task-coefficient transform (see the module docstring for how the step uses it).

  Attributes:
    init: `() -> state`, a NamedTuple of arrays with at least `weights` ({task: scalar}).
    update: `(state, *, train_losses, train_counts, val_losses, val_count, step,
      task_grads, shared_weights, next_losses, rng) -> state`, pure and jittable.
    step_weights: optional `(state, *, train_losses, train_counts) -> {task: coefficient}`
      of this step's loss; None: `state.weights`.
    task_grads: regex ("/" names, re.fullmatch) of the parameters whose per-task
      gradients the step computes; "" for none (no extra cost).
    shared_weights: optional `(state, *, task_grads, weights, rng) -> {task: beta}`; the
      gradient of the `task_grads` parameters becomes sum_t beta_t grad L_t.
    needs_next_losses: the step also computes the losses of the updated parameters.
    head_pattern: regex of a task's head parameters, `{task}` standing for the escaped
      task name; used when the state has `active` flags.
    log: optional `state -> {metric name: scalar}` logged every step besides weight/<task>.
    tasks: the task order of the scheme's [T] arrays (per-task gradients are stacked in it).
  """

  init: Callable[[], Any]
  update: Callable[..., Any]
  step_weights: Optional[Callable[..., Dict[str, jax.Array]]] = None
  task_grads: str = ""
  shared_weights: Optional[Callable[..., Dict[str, jax.Array]]] = None
  needs_next_losses: bool = False
  head_pattern: str = DEFAULT_HEAD_PATTERN
  log: Optional[Callable[[Any], Dict[str, jax.Array]]] = None
  tasks: Tuple[str, ...] = ()


class StaticState(NamedTuple):
  """State of `static`: the constant coefficients, one scalar per task."""

  weights: Mapping[str, jnp.ndarray]


def check_weights(weights: Mapping[str, float], tasks: Sequence[str]) -> None:
  """Raises naming the tasks that have no weight or are unknown."""
  missing = sorted(set(tasks) - set(weights))
  unexpected = sorted(set(weights) - set(tasks))
  if missing or unexpected:
    raise ValueError(
      f"Task weights must name exactly the tasks {sorted(tasks)}; "
      f"missing: {missing}, unexpected: {unexpected}."
    )


def configured_weights(weights, tasks: Sequence[str]) -> Dict[str, float]:
  """`weights` as a plain {task: float} checked against `tasks` (1.0 each if None)."""
  if weights is None:
    return {t: 1.0 for t in tasks}
  weights = {k: float(v) for k, v in dict(weights).items()}
  check_weights(weights, tasks)
  return {t: weights[t] for t in tasks}


def own_coefficient_tasks(tasks: Sequence[str], weights=None) -> Tuple[str, ...]:
  """The task tuple of a scheme that sets its own coefficients: `weights`, if configured,
  are only checked against `tasks` (a typo still fails early), not used."""
  tasks = tuple(tasks)
  if weights is not None:
    configured_weights(weights, tasks)
  return tasks


def vector(values: Mapping[str, Any], tasks: Sequence[str]) -> jax.Array:
  """{task: scalar} -> float32 [T] in `tasks` order."""
  return jnp.stack([jnp.asarray(values[t], jnp.float32) for t in tasks])


def per_task(values: jax.Array, tasks: Sequence[str]) -> Dict[str, jax.Array]:
  """[T] -> {task: scalar}."""
  return {t: values[i] for i, t in enumerate(tasks)}


def prefixed(prefix: str, values: Mapping[str, Any]) -> Dict[str, Any]:
  """{task: v} -> {prefix/task: v} (metric names)."""
  return {f"{prefix}/{t}": v for t, v in values.items()}


def task_grad_norms(task_grads: Mapping[str, jax.Array], num_tasks: int) -> jax.Array:
  """[T] L2 norms of the per-task gradients ({name: [T, ...]}) over all their leaves."""
  sq = sum(
    jnp.sum(g.reshape(num_tasks, -1).astype(jnp.float32) ** 2, axis=1) for g in task_grads.values()
  )
  return jnp.sqrt(sq)


def coefficient_optimizer(name: str, lr: float) -> optax.GradientTransformation:
  """The optimiser of learnable coefficients: "adam" or "sgd" (plain gradient descent)."""
  if name == "adam":
    return optax.adam(lr)
  if name == "sgd":
    return optax.sgd(lr)
  raise ValueError(f"coefficient optimizer {name!r}: expected 'adam' or 'sgd'.")


def fresh_validation(val_seen: jax.Array, val_count: jax.Array) -> jax.Array:
  """True when an evaluation ran since the scheme last used one (`val_seen`)."""
  return jnp.asarray(val_count, jnp.int32) > val_seen


@registry.WEIGHTINGS.register("static")
def static(
  weights: Mapping[str, float],
  tasks: Optional[Sequence[str]] = None,
  head_pattern: str = DEFAULT_HEAD_PATTERN,
  **unused,
) -> TaskWeighting:
  """Constant task coefficients (HyperFace, docs/papers.md section 1.6).

  Args:
    weights: {task: coefficient}, e.g. losses.HYPERFACE_LOSS_WEIGHTS.
    tasks: the tasks the loss produces; checked against `weights` if given.
    head_pattern: see `TaskWeighting` (unused: nothing stops).
    **unused: the shared config keys (`shared`) other schemes read.

  Returns:
    A `TaskWeighting` whose state never changes.
  """
  del unused
  weights = dict(weights)
  if tasks is not None:
    check_weights(weights, tasks)

  def init():
    return StaticState(weights={k: jnp.asarray(v, jnp.float32) for k, v in weights.items()})

  def update(state, **kwargs):
    del kwargs
    return state

  return TaskWeighting(init, update, head_pattern=head_pattern, tasks=tuple(weights))


def make_weighting(config, tasks: Sequence[str]) -> TaskWeighting:
  """Builds the weighting named by `config.name`.

  The factory receives `tasks`, `weights`, the shared keys (`head_pattern`, `shared`) and
  the keys of the sub-dict named like the scheme (config_lib.WEIGHTING_DEFAULTS); the
  other schemes' sub-dicts are not read.

  Args:
    config: `config.weighting` (a ConfigDict or dict).
    tasks: the run's task names, in `config.tasks` order.

  Returns:
    The `TaskWeighting`.
  """
  config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  name = config["name"]
  factory = registry.WEIGHTINGS.get(name)
  # Sub-dicts other than `weights` are the schemes' own keys.
  kwargs = {
    k: v for k, v in config.items() if k != "name" and (k == "weights" or not isinstance(v, dict))
  }
  own = config.get(name) or {}
  return factory(tasks=tuple(tasks), **kwargs, **dict(own))
