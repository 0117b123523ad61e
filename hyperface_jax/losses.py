"""Per-task HyperFace losses, each returned as a (sum, count) pair.

docs/papers.md section 1.6. Every loss is a sum over the examples of this device
that carry the task's label (the masks of the region batch contract), with
the number of such examples, so that the training step can form the exact
global mean sum/count across devices (docs/design.md habit 6) instead of a mean of
per-device means.
"""

from __future__ import annotations

from typing import Dict, Mapping, Tuple

import jax
import jax.numpy as jnp
import optax

from hyperface_jax import registry

SumCount = Tuple[jax.Array, jax.Array]

# docs/papers.md section 1.6: lambda_D = 1, lambda_L = 5, lambda_V = 0.5,
# lambda_P = 5, lambda_G = 2 (CNBLOG; MAH hyperparams.py).
HYPERFACE_LOSS_WEIGHTS = {
  "detection": 1.0,
  "landmarks": 5.0,
  "visibility": 0.5,
  "pose": 5.0,
  "gender": 2.0,
}


def _masked(per_example: jax.Array, mask: jax.Array) -> SumCount:
  mask = mask.astype(per_example.dtype)
  return jnp.sum(per_example * mask), jnp.sum(mask)


def detection_loss(outputs, batch) -> SumCount:
  """Softmax cross-entropy face/non-face, loss_D of docs/papers.md section 1.6."""
  ce = optax.softmax_cross_entropy_with_integer_labels(outputs["detection"], batch["detection"])
  return _masked(ce, batch["detection_mask"] * batch["example_mask"])


def landmarks_loss(outputs, batch) -> SumCount:
  """Visibility-masked Euclidean loss, loss_L of docs/papers.md section 1.6.

  loss_L = 1/(2N) sum_i v_i ((x_i - a_i)^2 + (y_i - b_i)^2), N landmarks, with
  targets normalized to the region (docs/papers.md section 1.5).
  """
  pred, target, vis = outputs["landmarks"], batch["landmarks"], batch["visibility"]
  num_points = target.shape[-2]
  sq = jnp.sum((pred - target) ** 2, axis=-1)  # [B, N]
  per_example = jnp.sum(vis * sq, axis=-1) / (2.0 * num_points)
  return _masked(per_example, batch["landmarks_mask"] * batch["example_mask"])


def visibility_loss(outputs, batch) -> SumCount:
  """Euclidean (MSE) visibility loss, loss_V = 1/N sum_i (v^_i - v_i)^2 (section 1.6)."""
  per_example = jnp.mean((outputs["visibility"] - batch["visibility"]) ** 2, axis=-1)
  return _masked(per_example, batch["visibility_mask"] * batch["example_mask"])


def pose_loss(outputs, batch) -> SumCount:
  """loss_P = ((roll^-roll)^2 + (pitch^-pitch)^2 + (yaw^-yaw)^2)/3, radians (section 1.6)."""
  per_example = jnp.mean((outputs["pose"] - batch["pose"]) ** 2, axis=-1)
  return _masked(per_example, batch["pose_mask"] * batch["example_mask"])


def gender_loss(outputs, batch) -> SumCount:
  """Softmax cross-entropy male/female, loss_G of docs/papers.md section 1.6."""
  ce = optax.softmax_cross_entropy_with_integer_labels(outputs["gender"], batch["gender"])
  return _masked(ce, batch["gender_mask"] * batch["example_mask"])


HYPERFACE_LOSSES = {
  "detection": detection_loss,
  "landmarks": landmarks_loss,
  "visibility": visibility_loss,
  "pose": pose_loss,
  "gender": gender_loss,
}


@registry.LOSSES.register("hyperface")
def hyperface_losses(
  outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array]
) -> Dict[str, SumCount]:
  """All five HyperFace task losses as {task: (sum, count)} (docs/papers.md 1.6)."""
  return {task: fn(outputs, batch) for task, fn in HYPERFACE_LOSSES.items()}


@registry.LOSSES.register("hyperface_present")
def hyperface_present_losses(
  outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array]
) -> Dict[str, SumCount]:
  """The HyperFace task losses of the tasks the model predicts (keys of `outputs`).

  For models with a subset of the heads, e.g. R-CNN_Face (docs/papers.md 1.3) that predicts
  only "detection": the other tasks need no output. train.py checks that the tasks
  returned equal config.tasks, so a head missing by mistake still fails loudly.
  """
  present = {task: fn for task, fn in HYPERFACE_LOSSES.items() if task in outputs}
  if not present:
    raise ValueError(
      f"hyperface_present: the model outputs {sorted(outputs)} contain no "
      f"HyperFace task {sorted(HYPERFACE_LOSSES)}."
    )
  return {task: fn(outputs, batch) for task, fn in present.items()}
