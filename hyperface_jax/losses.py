"""Masked loss functions of the tasks, each returning a (sum, count) pair.

A task declaration (hyperface_jax/tasks.py) names one of these (registry.LOSSES) as its
loss; the
training step calls it as `loss(pred, labels, weight)` with the task's head output,
its label arrays (the keys the task declares, in declaration order) and
`weight = <task>_mask * example_mask` ([B], 0 or 1). Every loss is the weighted sum
over this device's examples with the number of weighted examples, so that the step
forms the exact global mean sum / count across devices (docs/design.md habit 6)
instead of a mean of per-device means.
"""

from __future__ import annotations

from typing import Mapping, Tuple

import jax
import jax.numpy as jnp
import optax

from hyperface_jax import registry
from hyperface_jax.config_lib import HYPERFACE_LOSS_WEIGHTS  # noqa: F401  (re-export)

SumCount = Tuple[jax.Array, jax.Array]


def masked_sum(per_example: jax.Array, weight: jax.Array) -> SumCount:
  """(sum of per_example * weight, sum of weight)."""
  weight = weight.astype(per_example.dtype)
  return jnp.sum(per_example * weight), jnp.sum(weight)


def _single(labels: Mapping[str, jax.Array]) -> jax.Array:
  if len(labels) != 1:
    raise ValueError(f"this loss takes one label array; got {sorted(labels)}.")
  return next(iter(labels.values()))


@registry.LOSSES.register("softmax_cross_entropy")
def softmax_cross_entropy(pred, labels, weight) -> SumCount:
  """Softmax cross-entropy of [B, C] logits against int labels [B] (loss_D and loss_G of
  docs/papers.md section 1.6)."""
  ce = optax.softmax_cross_entropy_with_integer_labels(pred, _single(labels))
  return masked_sum(ce, weight)


@registry.LOSSES.register("sigmoid_cross_entropy")
def sigmoid_cross_entropy(pred, labels, weight) -> SumCount:
  """Binary cross-entropy of [B, K] logits against 0/1 labels [B, K], summed over K."""
  target = _single(labels).astype(pred.dtype)
  return masked_sum(jnp.sum(optax.sigmoid_binary_cross_entropy(pred, target), axis=-1), weight)


@registry.LOSSES.register("visibility_weighted_l2")
def visibility_weighted_l2(pred, labels, weight) -> SumCount:
  """loss_L of docs/papers.md section 1.6: 1/(2N) sum_i v_i ((x_i - a_i)^2 + (y_i - b_i)^2).

  `labels` holds the [B, N, 2] region-normalized targets first, then the [B, N]
  visibility (docs/papers.md section 1.5); invisible points do not count.
  """
  target, vis = labels.values()
  sq = jnp.sum((pred - target) ** 2, axis=-1)  # [B, N]
  per_example = jnp.sum(vis * sq, axis=-1) / (2.0 * target.shape[-2])
  return masked_sum(per_example, weight)


@registry.LOSSES.register("mean_squared_error")
def mean_squared_error(pred, labels, weight) -> SumCount:
  """Mean over the output's elements of the squared error (loss_V and loss_P of
  docs/papers.md section 1.6: visibility over the N points; roll, pitch, yaw in radians)."""
  sq = (pred - _single(labels)) ** 2
  return masked_sum(jnp.mean(sq.reshape(sq.shape[0], -1), axis=-1), weight)
