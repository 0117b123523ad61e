"""Pure data-parallel train and eval steps.

Each step is per-device code (pmap semantics) with explicit collectives over
the 'data' mesh axis, run as `jax.jit(jax.shard_map(...))` over all devices
with the train state donated (docs/design.md section 2, docs/design.md habit 3). Static
things (model, losses, optimiser, weighting) are closed over.

Exact cross-device means (docs/design.md habit 6): each task loss is (sum, count);
a device contributes sum_local / count_global, and the psum of those
contributions -- of the losses and, explicitly, of the gradients -- is the
exact mean over the global batch, whatever the number of devices. This is
what `lax.pmean` of per-device means approximates when devices hold different
numbers of labelled examples per task.

Task weighting (hyperface_jax/weighting/, docs/weighting.md) inside the same step: one
`jax.vjp` of the per-task losses; the combined gradient is its pullback of the task
coefficients (one backward pass); a scheme that asks for them (`TaskWeighting.task_grads`)
also gets the exact per-task gradients of the parameters it names (a vmap of the same
pullback over one-hot cotangents, psum-ed), PCGrad may replace the shared parameters'
gradient (`shared_weights`), FAMO may ask for the updated parameters' losses
(`needs_next_losses`), and the heads of stopped tasks (`state.weighting.active`) keep their
values bit for bit (optim.freeze_stopped_heads).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Dict, Mapping

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import PartitionSpec as P

from hyperface_jax import optim
from hyperface_jax.sharding import DATA_AXIS
from hyperface_jax.weighting import TaskWeighting


@flax.struct.dataclass
class TrainState:
  """Everything that evolves during training; checkpointed as one pytree."""

  step: jax.Array
  params: Any
  model_state: Any  # non-parameter collections (e.g. batch_stats)
  opt_state: Any
  weighting: Any  # task-weighting state (hyperface_jax/weighting/)
  val_losses: Dict[str, jax.Array]  # per-task losses of the last evaluation
  val_count: jax.Array  # int32: evaluations run so far (0: val_losses are not real yet)


def init_state(
  model: nn.Module,
  optimizer: optax.GradientTransformation,
  weighting: TaskWeighting,
  tasks,
  rng: jax.Array,
  image_shape,
) -> TrainState:
  """Initialises the train state; call under `jax.eval_shape` first (shape-first)."""
  variables = model.init(
    {"params": rng, "dropout": rng}, jnp.zeros(image_shape, jnp.float32), train=False
  )
  variables = dict(variables)
  params = variables.pop("params")
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    model_state=variables,
    opt_state=optimizer.init(params),
    weighting=weighting.init(),
    val_losses={t: jnp.zeros((), jnp.float32) for t in tasks},
    val_count=jnp.zeros((), jnp.int32),
  )


def float32_outputs(outputs):
  """The model's floating outputs in float32, so that the losses (and the evaluators) are
  float32 whatever the computation dtype (config.compute_dtype); a no-op in float32."""

  def cast(x):
    return x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x

  return jax.tree.map(cast, outputs)


def _exact_means(sums_counts: Mapping[str, Any]):
  """Local sum / global count per task, and the global counts."""
  counts = {t: lax.psum(c, DATA_AXIS) for t, (_, c) in sums_counts.items()}
  local = {t: s / jnp.maximum(counts[t], 1.0) for t, (s, _) in sums_counts.items()}
  return local, counts


# The weighting's PRNG stream: fold_in(step key, this) differs from every device's dropout
# key fold_in(step key, device index), and is the same on every device.
_WEIGHTING_STREAM = 2**31 - 1


def _param_names(tree) -> list:
  """The "/" name of every leaf of a parameter tree, in leaf order."""
  paths = jax.tree_util.tree_flatten_with_path(tree)[0]
  return ["/".join(str(getattr(k, "key", k)) for k in path) for path, _ in paths]


def _task_gradients(vjp_fn, local, params, regex: str, tasks):
  """Exact per-task gradients {name: [T, ...]} (T in `tasks` order) of the parameters
  matching `regex`.

  One VJP per task (jax.vmap over one-hot cotangents); only the selected leaves are kept,
  so XLA drops the part of each backward pass that only other parameters need (GradNorm's
  one layer costs the heads' backward pass T times, PCGrad's shared parameters T full
  backward passes). The psum makes them the gradients of the exact global mean losses.
  """
  names = _param_names(params)
  pattern = re.compile(regex)
  keep = [i for i, n in enumerate(names) if pattern.fullmatch(n)]
  if not keep:
    raise ValueError(
      f"weighting: the per-task gradient regex {regex!r} matches no parameter; "
      f"names look like {names[:3]} ... {names[-2:]} (config.weighting.shared or "
      "config.weighting.gradnorm.layer, re.fullmatch)."
    )
  eye = lax.pcast(jnp.eye(len(tasks), dtype=jnp.float32), DATA_AXIS, to="varying")

  def one_task(e):
    (grads,) = vjp_fn({t: e[i].astype(local[t].dtype) for i, t in enumerate(tasks)})
    leaves = jax.tree.leaves(grads)
    return [leaves[i] for i in keep]

  stacked = lax.psum(jax.vmap(one_task)(eye), DATA_AXIS)
  return {names[i]: g for i, g in zip(keep, stacked, strict=True)}


def _replace_leaves(tree, new):
  """`tree` with the leaves named in `new` ({"/" name: array}) replaced."""
  leaves, treedef = jax.tree.flatten(tree)
  names = _param_names(tree)
  leaves = [new[n].astype(x.dtype) if n in new else x for n, x in zip(names, leaves, strict=True)]
  return jax.tree.unflatten(treedef, leaves)


def _train_step(
  state: TrainState,
  batch,
  *,
  model,
  loss_fn,
  optimizer,
  weighting: TaskWeighting,
  seed: int,
  prng_impl=None,
):
  """Per-device body of the train step (runs under shard_map)."""
  # Dropout differs per device and step: a pure function of (seed, step, device index).
  step_key = jax.random.fold_in(jax.random.key(seed, impl=prng_impl), state.step)
  rng = jax.random.fold_in(step_key, lax.axis_index(DATA_AXIS))
  weighting_rng = jax.random.fold_in(step_key, _WEIGHTING_STREAM)
  mutable = list(state.model_state.keys())
  # Parameters enter as per-device values so that the gradient below is this
  # device's own contribution and the cross-device reduction is explicit.
  params = lax.pcast(state.params, DATA_AXIS, to="varying")

  def forward(params):
    variables = {"params": params, **state.model_state}
    outputs, new_model_state = model.apply(
      variables, batch["image"], train=True, rngs={"dropout": rng}, mutable=mutable
    )
    local, counts = _exact_means(loss_fn(float32_outputs(outputs), batch))
    return local, (counts, new_model_state)

  # local[t] = this device's sum / the global count: the psum is the exact global mean.
  local, vjp_fn, (counts, new_model_state) = jax.vjp(forward, params, has_aux=True)
  task_losses = {t: lax.psum(v, DATA_AXIS) for t, v in local.items()}
  if weighting.step_weights is not None:
    weights = weighting.step_weights(state.weighting, train_losses=task_losses, train_counts=counts)
  else:
    weights = state.weighting.weights
  weights = {t: jnp.asarray(weights[t], local[t].dtype) for t in local}
  # Gradient of sum_t w_t L_t: one backward pass with the coefficients as cotangents.
  (grads,) = vjp_fn({t: lax.pcast(w, DATA_AXIS, to="varying") for t, w in weights.items()})
  grads = lax.psum(grads, DATA_AXIS)
  task_grads = shared = None
  if weighting.task_grads:
    order = tuple(weighting.tasks) or tuple(local)  # the scheme's [T] order
    task_grads = _task_gradients(vjp_fn, local, params, weighting.task_grads, order)
    if weighting.shared_weights is not None:
      shared = weighting.shared_weights(
        state.weighting, task_grads=task_grads, weights=weights, rng=weighting_rng
      )
      beta = jnp.stack([shared[t] for t in order])
      grads = _replace_leaves(
        grads, {n: jnp.tensordot(beta, g.astype(beta.dtype), axes=1) for n, g in task_grads.items()}
      )
  new_model_state = lax.pmean(new_model_state, DATA_AXIS)  # e.g. synced BN stats
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  new_params = optax.apply_updates(state.params, updates)
  active = getattr(state.weighting, "active", None)
  if active is not None:  # stopped tasks' heads stay bit for bit (optim.freeze_stopped_heads)
    new_params, updates = optim.freeze_stopped_heads(
      state.params, new_params, updates, active, weighting.head_pattern
    )
  next_losses = None
  if weighting.needs_next_losses:  # FAMO: the updated parameters' losses on this batch
    next_local, _ = forward(lax.pcast(new_params, DATA_AXIS, to="varying"))
    next_losses = {t: lax.psum(v, DATA_AXIS) for t, v in next_local.items()}
  new_weighting = weighting.update(
    state.weighting,
    train_losses=task_losses,
    train_counts=counts,
    val_losses=state.val_losses,
    val_count=state.val_count,
    step=state.step,
    task_grads=task_grads,
    shared_weights=shared,
    next_losses=next_losses,
    rng=weighting_rng,
  )
  total = sum(weights[t] * task_losses[t] for t in task_losses)
  metrics = {"train/loss": total, "train/grad_norm": optax.global_norm(grads)}
  for t in task_losses:
    metrics[f"train/loss/{t}"] = task_losses[t]
    metrics[f"train/count/{t}"] = counts[t]
    metrics[f"weight/{t}"] = weights[t]
  if weighting.log is not None:
    metrics.update(weighting.log(new_weighting))
  new_state = state.replace(
    step=state.step + 1,
    params=new_params,
    model_state=new_model_state,
    opt_state=opt_state,
    weighting=new_weighting,
  )
  return new_state, metrics


def _eval_step(state: TrainState, batch, *, model, loss_fn):
  """Per-device body of the eval step: outputs per example, exact task losses."""
  variables = {"params": state.params, **state.model_state}
  outputs = float32_outputs(model.apply(variables, batch["image"], train=False))
  local, counts = _exact_means(loss_fn(outputs, batch))
  losses = {t: lax.psum(v, DATA_AXIS) for t, v in local.items()}
  return outputs, losses, counts


def make_train_step(
  mesh,
  *,
  model,
  loss_fn: Callable,
  optimizer,
  weighting: TaskWeighting,
  seed: int,
  prng_impl=None,
):
  """Returns jitted `train_step(state, batch) -> (state, metrics)`; state donated."""
  body = functools.partial(
    _train_step,
    model=model,
    loss_fn=loss_fn,
    optimizer=optimizer,
    weighting=weighting,
    seed=seed,
    prng_impl=prng_impl,
  )
  mapped = jax.shard_map(body, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(), P()))
  return jax.jit(mapped, donate_argnums=(0,))


def make_eval_step(mesh, *, model, loss_fn: Callable):
  """Returns jitted `eval_step(state, batch) -> (outputs, losses, counts)`."""
  body = functools.partial(_eval_step, model=model, loss_fn=loss_fn)
  mapped = jax.shard_map(
    body, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(DATA_AXIS), P(), P())
  )
  return jax.jit(mapped)
