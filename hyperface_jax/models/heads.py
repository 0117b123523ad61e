"""Per-task heads of HyperFace: fc_<task>1 (512 + ReLU + dropout) -> fc_<task>2."""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperface_jax import registry
from hyperface_jax.models.alexnet import relu_init

DEFAULT_TASKS = ("detection", "landmarks", "visibility", "pose", "gender")


def task_output_shape(task: str, num_landmarks: int = 21) -> Tuple[int, ...]:
  """Per-example output shape of a declared task (hyperface_jax/tasks.py).

  Args:
    task: a registered task name (registry.TASKS), e.g. "landmarks".
    num_landmarks: point count of the AFLW "landmarks" / "visibility" heads when it
      differs from the declared 21 (a model-surgery experiment; the labels stay 21).

  Returns:
    Shape without the batch axis, e.g. (21, 2) for "landmarks".
  """
  if task not in registry.TASKS:
    raise ValueError(
      f"Unknown HyperFace task {task!r}: no declaration in hyperface_jax/tasks.py; declared "
      f"tasks: {list(registry.TASKS.names())} (or add a head through extra_tasks)."
    )
  shape = tuple(registry.TASKS.get(task).output_shape)
  if task in ("landmarks", "visibility") and num_landmarks != shape[0]:
    shape = (num_landmarks,) + shape[1:]
  return shape


class TaskHeads(nn.Module):
  """One two-layer head per task on the shared hyperfeature.

  Attributes:
    tasks: built-in tasks to predict, each named fc_<task>1 / fc_<task>2 in the params.
    num_landmarks: number of landmarks (21 for AFLW).
    head_width: width of each fc_<task>1 layer (512 in the paper, not scaled by width).
    dropout: rate after each fc_<task>1 (documented default 0.5, docs/papers.md 1.2 notes).
    extra_tasks: additional heads as ((name, output_shape), ...), e.g.
      (("landmarks68", (68, 2)),); the head output is reshaped to [B, *output_shape].
    dtype: computation dtype; outputs are returned in float32 for the losses.
  """

  tasks: Sequence[str] = DEFAULT_TASKS
  num_landmarks: int = 21
  head_width: int = 512
  dropout: float = 0.5
  extra_tasks: Tuple[Tuple[str, Tuple[int, ...]], ...] = ()
  dtype: Any = jnp.float32

  def output_shapes(self) -> Dict[str, Tuple[int, ...]]:
    """Per-example output shape of every head, in call order."""
    shapes = {t: task_output_shape(t, self.num_landmarks) for t in self.tasks}
    for name, shape in self.extra_tasks:
      if name in shapes:
        raise ValueError(f"TaskHeads: task {name!r} is both in tasks and extra_tasks.")
      shapes[name] = tuple(shape)
    return shapes

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> Dict[str, jax.Array]:
    """Applies every head.

    Args:
      x: hyperfeature [B, D].
      train: enables dropout (rng stream "dropout").

    Returns:
      Dict task -> float32 array [B, *output_shape].
    """
    out = {}
    for task, shape in self.output_shapes().items():
      h = nn.Dense(self.head_width, kernel_init=relu_init, dtype=self.dtype, name=f"fc_{task}1")(x)
      h = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(h))
      size = 1
      for s in shape:
        size *= s
      y = nn.Dense(size, dtype=self.dtype, name=f"fc_{task}2")(h)
      out[task] = y.reshape((x.shape[0],) + shape).astype(jnp.float32)
    return out
