"""Box refinement by the face score's log-odds (inference/box_refine.py), hand-worked."""

from __future__ import annotations

import numpy as np
import pytest

from hyperface_jax.inference import box_refine, config


def test_scaled_boxes_hand_worked():
  got = box_refine.scaled_boxes([[10.0, 20.0, 40.0, 40.0], [0.0, 0.0, 10.0, 20.0]], (0.5, 1.0, 2.0))
  # Box 0: centre (30, 40); box 1: centre (5, 10); box-major rows.
  want = [
    [20, 30, 20, 20],
    [10, 20, 40, 40],
    [-10, 0, 80, 80],
    [2.5, 5, 5, 10],
    [0, 0, 10, 20],
    [-5, -10, 20, 40],
  ]
  np.testing.assert_allclose(got, want)
  assert box_refine.scaled_boxes(np.zeros((0, 4)), (0.9, 1.1)).shape == (0, 4)


def test_weighted_box_hand_worked():
  boxes = [[0.0, 0.0, 10.0, 10.0], [10.0, 10.0, 20.0, 20.0]]
  # Log-odds 0 and 2 ln 3 at temperature 2: weights 1 : 3.
  got = box_refine.weighted_box(boxes, [0.0, 2 * np.log(3.0)], 2.0)
  np.testing.assert_allclose(got, [7.5, 7.5, 17.5, 17.5])
  # Huge log-odds do not overflow (the softmax is shifted by its maximum).
  np.testing.assert_allclose(box_refine.weighted_box(boxes, [1e4, 0.0], 1.0), boxes[0])


class _SideNetwork:
  """A stand-in network whose face log-odds peak at windows of side 50 px: -|w - 50| / 5."""

  def __init__(self):
    self.calls = []

  def __call__(self, images, regions):
    self.calls.append([np.array(r) for r in regions])
    return [{"score_logit": -np.abs(r[:, 2] - 50.0) / 5.0, "box": r} for r in regions]


def test_refine_boxes_moves_each_box_toward_the_best_scored_window():
  images = [np.zeros((100, 120, 3), np.uint8), np.zeros((60, 60, 3), np.uint8)]
  dets = [
    {
      "box": np.array([[10.0, 10.0, 40.0, 40.0], [50.0, 20.0, 50.0, 50.0]]),
      "score": np.array([0.9, 0.8]),
      "landmarks": np.ones((2, 21, 2)),
    },
    {"box": np.zeros((0, 4)), "score": np.zeros(0), "landmarks": np.zeros((0, 21, 2))},
  ]
  net = _SideNetwork()
  got = box_refine.refine_boxes(net, images, dets, scale_step=1.25, windows=3, temperature=1.0)
  # One network call for all images: 3 windows per box, none for the empty image.
  assert len(net.calls) == 1
  assert [len(r) for r in net.calls[0]] == [6, 0]
  # Box 0 (side 40, centre (30, 30)): windows of side 32, 40, 50 with log-odds -3.6, -2,
  # 0 -> weights e^-3.6 : e^-2 : 1; the centre stays, the side is their weighted mean.
  w = np.exp([-3.6, -2.0, 0.0])
  side = (w * [32.0, 40.0, 50.0]).sum() / w.sum()
  np.testing.assert_allclose(got[0]["box"][0], [30 - side / 2, 30 - side / 2, side, side])
  # Box 1 (side 50): windows of side 40, 50, 62.5 with log-odds -2, 0, -2.5.
  w = np.exp([-2.0, 0.0, -2.5])
  side = (w * [40.0, 50.0, 62.5]).sum() / w.sum()
  np.testing.assert_allclose(got[0]["box"][1], [75 - side / 2, 45 - side / 2, side, side])
  # Only the box changes; the inputs are not modified.
  np.testing.assert_array_equal(got[0]["score"], [0.9, 0.8])
  np.testing.assert_array_equal(got[0]["landmarks"], dets[0]["landmarks"])
  np.testing.assert_array_equal(dets[0]["box"][0], [10, 10, 40, 40])
  assert got[1]["box"].shape == (0, 4)
  # A high temperature averages the windows evenly: the mean of the three scales.
  even = box_refine.refine_boxes(
    net, images[:1], dets[:1], scale_step=1.25, windows=3, temperature=1e9
  )
  np.testing.assert_allclose(even[0]["box"][0, 2], 40 * (0.8 + 1.0 + 1.25) / 3)


def test_refine_boxes_bad_settings_and_network():
  images = [np.zeros((50, 50, 3), np.uint8)]
  dets = [{"box": np.array([[5.0, 5.0, 20.0, 20.0]]), "score": np.array([0.9])}]
  net = _SideNetwork()
  for step in (1.0, 0.8, float("nan")):
    with pytest.raises(ValueError, match="box_refine.scale_step"):
      box_refine.refine_boxes(net, images, dets, scale_step=step)
  for windows in (1, 4, 3.5):
    with pytest.raises(ValueError, match="box_refine.windows"):
      box_refine.refine_boxes(net, images, dets, windows=windows)
  for temperature in (0.0, -1.0, float("inf")):
    with pytest.raises(ValueError, match="box_refine.temperature"):
      box_refine.refine_boxes(net, images, dets, temperature=temperature)

  def no_logit(images, regions):
    return [{"score": np.ones(len(r)), "box": r} for r in regions]

  with pytest.raises(ValueError, match="score_logit"):
    box_refine.refine_boxes(no_logit, images, dets)


def test_window_scales_and_pipeline_defaults():
  np.testing.assert_allclose(box_refine.window_scales(2.0, 5), [0.25, 0.5, 1.0, 2.0, 4.0])
  np.testing.assert_allclose(box_refine.window_scales(1.25, 3), [0.8, 1.0, 1.25])
  c = config.inference_config().box_refine
  assert c.enabled
  box_refine.check_settings(c.scale_step, c.windows, c.temperature)
