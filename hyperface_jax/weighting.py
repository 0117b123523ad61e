"""Task-coefficient transforms, written the optax way.

A `TaskWeighting` is a NamedTuple of two pure functions (optax's
`GradientTransformation` habit, docs/design.md habit 5):

  state = weighting.init()
  state = weighting.update(state, train_losses=..., val_losses=...,
                           val_valid=..., step=...)

The state is a NamedTuple of arrays with at least a `weights` field
({task: scalar}); it lives in the `TrainState`, so it is jitted, replicated,
checkpointed and logged (`weight/<task>`) every step. The training step uses
`state.weights` for step t's loss, then calls `update` with that step's exact
global per-task training losses; the loop stores the per-task validation
losses of the last evaluation in the train state and passes them too, with
`val_valid` (0 until the first evaluation). That is all the information the
dynamic schemes need: TCDCN's task-wise early stopping (ECCV'14, docs/papers.md
section 2.1) and dynamic coefficients (TPAMI'16, section 2.2) read the
training-loss window and the validation loss; DWA reads training-loss ratios.
Uncertainty weighting and GradNorm have learnable coefficients, which live in
the parameters with their own optax partition instead (docs/design.md section 2).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax.numpy as jnp

from hyperface_jax import registry


class TaskWeighting(NamedTuple):
  """A task-coefficient transform: pure `init` and `update` functions."""

  init: Callable[[], Any]
  update: Callable[..., Any]


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


@registry.WEIGHTINGS.register("static")
def static(weights: Mapping[str, float], tasks: Optional[Sequence[str]] = None) -> TaskWeighting:
  """Constant task coefficients (HyperFace, docs/papers.md section 1.6).

  Args:
    weights: {task: coefficient}, e.g. losses.HYPERFACE_LOSS_WEIGHTS.
    tasks: the tasks the loss produces; checked against `weights` if given.

  Returns:
    A `TaskWeighting` whose state never changes.
  """
  weights = dict(weights)
  if tasks is not None:
    check_weights(weights, tasks)

  def init():
    return StaticState(weights={k: jnp.asarray(v, jnp.float32) for k, v in weights.items()})

  def update(state, *, train_losses=None, val_losses=None, val_valid=None, step=None):
    del train_losses, val_losses, val_valid, step
    return state

  return TaskWeighting(init, update)


def make_weighting(config, tasks: Sequence[str]) -> TaskWeighting:
  """Builds the weighting named by `config.name` with the other config keys."""
  kwargs = {k: v for k, v in config.items() if k != "name"}
  if "weights" in kwargs and hasattr(kwargs["weights"], "to_dict"):
    kwargs["weights"] = kwargs["weights"].to_dict()
  return registry.WEIGHTINGS.get(config.name)(tasks=tasks, **kwargs)
