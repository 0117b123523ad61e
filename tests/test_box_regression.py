"""The proposal net's box regression: deltas (data/boxes.py), the `box_regression` task
(tasks.py), the head of models/fast_proposal_net.py and its evaluation."""

import numpy as np
import pytest

from hyperface_jax import tasks
from hyperface_jax.data import boxes as box_lib


def test_encode_hand_worked_and_round_trip():
  # Region 10 px square at (0, 0), centre (5, 5); face 20 x 5 at (10, 0), centre (20, 2.5).
  got = box_lib.encode_box_deltas([[10.0, 0.0, 20.0, 5.0]], [[0.0, 0.0, 10.0, 10.0]])
  np.testing.assert_allclose(got, [[1.5, -0.25, np.log(2.0), np.log(0.5)]])
  rng = np.random.default_rng(0)
  regions = np.concatenate([rng.uniform(-50, 50, (100, 2)), rng.uniform(10, 40, (100, 2))], 1)
  faces = np.concatenate(
    [rng.uniform(-50, 50, (100, 2)), rng.uniform(10, 40, (100, 2))], 1
  )  # ratio < e^2
  back = box_lib.decode_box_deltas(box_lib.encode_box_deltas(faces, regions), regions)
  np.testing.assert_allclose(back, faces, rtol=1e-12, atol=1e-10)
  with pytest.raises(ValueError, match="w, h > 0"):
    box_lib.encode_box_deltas([[0.0, 0.0, 0.0, 5.0]], [[0.0, 0.0, 10.0, 10.0]])


def test_decode_clips_wild_log_scales():
  got = box_lib.decode_box_deltas([[0.0, 0.0, 50.0, -50.0]], [[0.0, 0.0, 10.0, 10.0]])
  np.testing.assert_allclose(got[0, 2:], [10 * np.exp(2.0), 10 * np.exp(-2.0)])
  np.testing.assert_allclose(got[0, :2] + got[0, 2:] / 2, [5.0, 5.0])  # centre kept


def test_paired_iou_is_the_diagonal_of_the_pairwise_iou():
  rng = np.random.default_rng(1)
  a = np.concatenate([rng.uniform(0, 20, (30, 2)), rng.uniform(1, 20, (30, 2))], 1)
  b = np.concatenate([rng.uniform(0, 20, (30, 2)), rng.uniform(1, 20, (30, 2))], 1)
  np.testing.assert_allclose(box_lib.paired_iou(a, b), np.diag(box_lib.iou(a, b)))
  assert box_lib.paired_iou([0, 0, 0, 0], [5, 5, 0, 0]) == 0.0  # empty union


def _context(face, region, iou):
  return tasks.LabelContext(
    matched={"box": np.asarray(face, np.float32)},
    valid={"box": np.ones(len(face), bool)},
    regions=np.asarray(region, np.float64),
    iou=np.asarray(iou, np.float64),
    thresholds={},
  )


def test_task_labels_regions_above_iou_0_4_and_zeroes_the_rest():
  task = tasks.get("box_regression")
  ctx = _context(
    [[10, 0, 20, 5], [0, 0, 0, 0], [2, 2, 10, 10]],  # the middle region matched no face
    [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]],
    [0.45, 0.0, 0.39],
  )
  labels, mask = tasks.label(task, ctx)
  np.testing.assert_array_equal(mask, [True, False, False])  # IoU > 0.4 (MTCNN's part faces)
  np.testing.assert_allclose(
    labels["box_regression"], [[1.5, -0.25, np.log(2), np.log(0.5)], [0] * 4, [0] * 4], rtol=1e-6
  )
  assert labels["box_regression"].dtype == np.float32


def test_flip_rule_equals_encoding_the_mirrored_boxes():
  rng = np.random.default_rng(2)
  faces = np.concatenate([rng.uniform(0, 60, (20, 2)), rng.uniform(5, 40, (20, 2))], 1)
  regions = np.concatenate([rng.uniform(0, 60, (20, 2)), rng.uniform(5, 40, (20, 2))], 1)
  width = 100
  mirrored = box_lib.encode_box_deltas(
    box_lib.flip_boxes(faces, width), box_lib.flip_boxes(regions, width)
  )
  flipped = tasks.get("box_regression").flip(
    {"box_regression": box_lib.encode_box_deltas(faces, regions)}
  )["box_regression"]
  np.testing.assert_allclose(flipped, mirrored, atol=1e-12)


def test_metrics_iou_of_the_decoded_boxes():
  metrics = tasks.get("box_regression").metrics
  target = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0]])
  # Row 0 exact (IoU 1); row 1 half the width about the centre (IoU 0.5); row 2 masked out.
  pred = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, np.log(0.5), 0.0], [0.0, 0.0, 0.0, 0.0]])
  got = metrics(pred, {"box_regression": target}, np.array([1.0, 1.0, 0.0]))
  assert got["iou"] == pytest.approx((1.5, 2.0))
  assert got["mse"] == pytest.approx((np.log(0.5) ** 2 / 4, 2.0))


def test_box_head_dense_map_equals_the_crop_outputs():
  import jax
  import jax.numpy as jnp

  from hyperface_jax.models.fast_proposal_net import FastProposalNet

  net = FastProposalNet(width=0.5, box_regression=True)
  image = jax.random.uniform(jax.random.PRNGKey(0), (1, 40, 48, 3)) - 0.5
  variables = net.init(jax.random.PRNGKey(1), image[:, :24, :24])
  dense = net.apply(variables, image)
  assert sorted(dense) == ["box_regression_map", "detection_map"]
  assert dense["box_regression_map"].shape == (1, 5, 7, 4)
  crops = jnp.stack([image[0, 4 * i : 4 * i + 24, 4 * j : 4 * j + 24] for i, j in [(0, 0), (4, 6)]])
  out = net.apply(variables, crops)
  assert out["box_regression"].shape == (2, 4)
  np.testing.assert_allclose(
    out["box_regression"],
    dense["box_regression_map"][0, [0, 4], [0, 6]],
    rtol=1e-5,
    atol=1e-5,
  )
  assert "box_regression" not in FastProposalNet(width=0.5).apply(
    FastProposalNet(width=0.5).init(jax.random.PRNGKey(1), crops), crops
  )


def test_detection_regions_evaluator_scores_the_box_task():
  from hyperface_jax.evaluation.detection_regions import DetectionRegionEvaluator

  ev = DetectionRegionEvaluator()
  batch = {
    "example_mask": np.array([1.0, 1.0, 1.0]),
    "detection": np.array([1, 0, 1]),
    "detection_mask": np.array([1.0, 1.0, 1.0]),
    "box_regression": np.zeros((3, 4), np.float32),
    "box_regression_mask": np.array([1.0, 0.0, 1.0]),
  }
  outputs = {
    "detection": np.array([[0.0, 2.0], [2.0, 0.0], [0.0, 1.0]]),
    "box_regression": np.array([[0.0, 0, 0, 0], [9.0, 9, 9, 9], [0, 0, np.log(0.5), 0]]),
  }
  ev.update(batch, outputs)
  got = ev.result()
  assert got["box_regression/iou"] == pytest.approx(0.75)
  assert got["count/box_regression"] == 2.0
  assert got["detection/accuracy"] == 1.0
