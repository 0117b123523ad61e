"""HyperFace losses (docs/papers.md section 1.6) against hand-worked values."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from hyperface_jax import losses, tasks

HYPERFACE = tasks.resolve(("detection", "landmarks", "visibility", "pose", "gender"))


def _loss(task, outputs, batch):
  """One task's declared loss through the generic path (tasks.compute_losses)."""
  return tasks.compute_losses((tasks.get(task),), outputs, batch)[task]


def _batch(**over):
  b = dict(
    detection=jnp.array([1, 0]),
    detection_mask=jnp.array([1.0, 1.0]),
    landmarks=jnp.zeros((2, 21, 2)),
    visibility=jnp.zeros((2, 21)),
    landmarks_mask=jnp.array([1.0, 0.0]),
    visibility_mask=jnp.array([1.0, 0.0]),
    pose=jnp.zeros((2, 3)),
    pose_mask=jnp.array([1.0, 0.0]),
    gender=jnp.array([1, 0]),
    gender_mask=jnp.array([1.0, 0.0]),
    example_mask=jnp.array([1.0, 1.0]),
  )
  b.update(over)
  return b


def _outputs(**over):
  o = dict(
    detection=jnp.zeros((2, 2)),
    landmarks=jnp.zeros((2, 21, 2)),
    visibility=jnp.zeros((2, 21)),
    pose=jnp.zeros((2, 3)),
    gender=jnp.zeros((2, 2)),
  )
  o.update(over)
  return o


def test_detection_is_cross_entropy_with_ignored_rows():
  # Logits (0, log 3) -> p(face) = 3/4; row 0 is a face, row 1 ignored.
  out = _outputs(detection=jnp.array([[0.0, math.log(3.0)], [5.0, -5.0]]))
  s, c = _loss("detection", out, _batch(detection_mask=jnp.array([1.0, 0.0])))
  assert float(c) == 1.0
  np.testing.assert_allclose(float(s), -math.log(0.75), rtol=1e-6)


def test_landmarks_loss_counts_only_visible_points():
  # Two visible points off by (0.1, 0.2) and (0.3, 0); an invisible one off by 9.
  pred = np.zeros((2, 21, 2), np.float32)
  pred[0, 0] = (0.1, 0.2)
  pred[0, 1] = (0.3, 0.0)
  pred[0, 2] = (9.0, 9.0)
  vis = np.zeros((2, 21), np.float32)
  vis[0, :2] = 1.0
  s, c = _loss(
    "landmarks", _outputs(landmarks=jnp.asarray(pred)), _batch(visibility=jnp.asarray(vis))
  )
  expected = (0.01 + 0.04 + 0.09) / (2 * 21)  # 1/(2N) sum v_i ||d_i||^2
  assert float(c) == 1.0
  np.testing.assert_allclose(float(s), expected, rtol=1e-5)


def test_visibility_pose_gender_hand_values():
  vis_pred = jnp.full((2, 21), 0.5)
  s, c = _loss("visibility", _outputs(visibility=vis_pred), _batch())
  np.testing.assert_allclose(float(s), 0.25, rtol=1e-6)  # all targets 0
  assert float(c) == 1.0
  pose_pred = jnp.array([[0.1, -0.2, 0.3], [7.0, 7.0, 7.0]])
  s, c = _loss("pose", _outputs(pose=pose_pred), _batch())
  np.testing.assert_allclose(float(s), (0.01 + 0.04 + 0.09) / 3, rtol=1e-5)
  g_logits = jnp.array([[math.log(1.0), math.log(4.0)], [0.0, 0.0]])
  s, c = _loss("gender", _outputs(gender=g_logits), _batch())
  np.testing.assert_allclose(float(s), -math.log(0.8), rtol=1e-6)


def test_padding_rows_never_count():
  b = _batch(example_mask=jnp.array([0.0, 0.0]))
  for task, (s, c) in tasks.compute_losses(HYPERFACE, _outputs(), b).items():
    assert float(c) == 0.0 and float(s) == 0.0, task


def test_paper_weights():
  assert losses.HYPERFACE_LOSS_WEIGHTS == pytest.approx(
    {"detection": 1, "landmarks": 5, "visibility": 0.5, "pose": 5, "gender": 2}
  )
