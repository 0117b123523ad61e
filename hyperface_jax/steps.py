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
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Mapping

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import PartitionSpec as P

from hyperface_jax.sharding import DATA_AXIS
from hyperface_jax.weighting import TaskWeighting


@flax.struct.dataclass
class TrainState:
  """Everything that evolves during training; checkpointed as one pytree."""

  step: jax.Array
  params: Any
  model_state: Any  # non-parameter collections (e.g. batch_stats)
  opt_state: Any
  weighting: Any  # task-weighting state (weighting.py)
  val_losses: Dict[str, jax.Array]  # per-task losses of the last evaluation
  val_valid: jax.Array  # 0 until the first evaluation has run


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
    val_valid=jnp.zeros((), jnp.float32),
  )


def _exact_means(sums_counts: Mapping[str, Any]):
  """Local sum / global count per task, and the global counts."""
  counts = {t: lax.psum(c, DATA_AXIS) for t, (_, c) in sums_counts.items()}
  local = {t: s / jnp.maximum(counts[t], 1.0) for t, (s, _) in sums_counts.items()}
  return local, counts


def _train_step(
  state: TrainState, batch, *, model, loss_fn, optimizer, weighting: TaskWeighting, seed: int
):
  """Per-device body of the train step (runs under shard_map)."""
  # Dropout differs per device and step; a pure function of (seed, step).
  rng = jax.random.fold_in(
    jax.random.fold_in(jax.random.PRNGKey(seed), state.step), lax.axis_index(DATA_AXIS)
  )
  weights = state.weighting.weights
  mutable = list(state.model_state.keys())
  # Parameters enter as per-device values so that the gradient below is this
  # device's own contribution and the cross-device reduction is explicit.
  params = lax.pcast(state.params, DATA_AXIS, to="varying")

  def objective(params):
    variables = {"params": params, **state.model_state}
    outputs, new_model_state = model.apply(
      variables, batch["image"], train=True, rngs={"dropout": rng}, mutable=mutable
    )
    local, counts = _exact_means(loss_fn(outputs, batch))
    total = sum(weights[t] * local[t] for t in local)
    return total, (local, counts, new_model_state)

  grads, (local, counts, new_model_state) = jax.grad(objective, has_aux=True)(params)
  grads = lax.psum(grads, DATA_AXIS)
  task_losses = {t: lax.psum(v, DATA_AXIS) for t, v in local.items()}
  new_model_state = lax.pmean(new_model_state, DATA_AXIS)  # e.g. synced BN stats
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  new_weighting = weighting.update(
    state.weighting,
    train_losses=task_losses,
    val_losses=state.val_losses,
    val_valid=state.val_valid,
    step=state.step,
  )
  total = sum(weights[t] * task_losses[t] for t in task_losses)
  metrics = {"train/loss": total, "train/grad_norm": optax.global_norm(grads)}
  for t in task_losses:
    metrics[f"train/loss/{t}"] = task_losses[t]
    metrics[f"train/count/{t}"] = counts[t]
    metrics[f"weight/{t}"] = weights[t]
  new_state = state.replace(
    step=state.step + 1,
    params=params,
    model_state=new_model_state,
    opt_state=opt_state,
    weighting=new_weighting,
  )
  return new_state, metrics


def _eval_step(state: TrainState, batch, *, model, loss_fn):
  """Per-device body of the eval step: outputs per example, exact task losses."""
  variables = {"params": state.params, **state.model_state}
  outputs = model.apply(variables, batch["image"], train=False)
  local, counts = _exact_means(loss_fn(outputs, batch))
  losses = {t: lax.psum(v, DATA_AXIS) for t, v in local.items()}
  return outputs, losses, counts


def make_train_step(
  mesh, *, model, loss_fn: Callable, optimizer, weighting: TaskWeighting, seed: int
):
  """Returns jitted `train_step(state, batch) -> (state, metrics)`; state donated."""
  body = functools.partial(
    _train_step, model=model, loss_fn=loss_fn, optimizer=optimizer, weighting=weighting, seed=seed
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
