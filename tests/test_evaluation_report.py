"""Report files from a fake run, and the drawing conventions of viz.py."""

import json
import os

import cv2
import numpy as np
import pytest

from hyperface_jax import viz
from hyperface_jax.evaluation import evaluators, report


def _fake_eval(n=24, seed=0):
  """A random evaluator run with baselines and the matching crops/labels/outputs."""
  rng = np.random.default_rng(seed)
  landmarks = rng.uniform(-0.3, 0.3, (n, 21, 2)).astype(np.float32)
  batch = {
    "detection": (rng.uniform(size=n) < 0.7).astype(np.int32),
    "detection_mask": np.ones(n, np.float32),
    "landmarks": landmarks,
    "visibility": (rng.uniform(size=(n, 21)) < 0.8).astype(np.float32),
    "landmarks_mask": np.ones(n, np.float32),
    "visibility_mask": np.ones(n, np.float32),
    "pose": rng.uniform(-1.4, 1.4, (n, 3)).astype(np.float32),
    "pose_mask": np.ones(n, np.float32),
    "gender": rng.integers(0, 2, n).astype(np.int32),
    "gender_mask": np.ones(n, np.float32),
    "example_mask": np.ones(n, np.float32),
    "region": np.tile(np.float32([[0, 0, 64, 64]]), (n, 1)),
    "face_box": np.tile(np.float32([[8, 8, 48, 48]]), (n, 1)),
    "image_uint8": rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8),
  }
  outputs = {
    "landmarks": landmarks + rng.normal(0, 0.03, landmarks.shape).astype(np.float32),
    "visibility": rng.uniform(size=(n, 21)).astype(np.float32),
    "pose": batch["pose"] + rng.normal(0, 0.1, (n, 3)).astype(np.float32),
    "gender": rng.normal(size=(n, 2)).astype(np.float32),
    "detection": rng.normal(size=(n, 2)).astype(np.float32),
  }
  ev = evaluators.HyperFaceRegionEvaluator(
    baselines=evaluators.baseline_stats(batch), keep_examples=5
  )
  ev.update(batch, outputs)
  return ev, batch["image_uint8"], batch, outputs


def test_write_report_writes_valid_files(tmp_path):
  lines = []
  for step in range(0, 200, 10):
    row = {
      "step": step,
      "train/loss": 5.0 / (1 + step),
      "train/loss/landmarks": 1.0 / (1 + step),
      "train/loss/detection": 0.7,
      "weight/detection": 1.0,
      "weight/landmarks": 5.0,
    }
    if step % 50 == 0:
      row["val/loss"] = 6.0 / (1 + step)
    lines.append(json.dumps(row))
  lines.append('{"step": 200, "train/lo')  # a line cut by a crash is skipped
  (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
  ev, crops, batch, outputs = _fake_eval()
  results = dict(ev.result(), protocol=ev.protocol())
  paths = report.write_report(str(tmp_path), results, ev.arrays(), crops[:9], batch, outputs)
  names = sorted(os.path.basename(p) for p in paths)
  assert names == ["ced.png", "crops.png", "losses.png", "results.md", "weights.png"]
  for path in paths:
    assert os.path.dirname(path) == str(tmp_path / "report")
    if path.endswith(".png"):
      image = cv2.imread(path)
      assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
      assert image.std() > 1.0  # not a blank canvas
  assert not [f for f in os.listdir(tmp_path / "report") if ".tmp" in f]
  md = (tmp_path / "report" / "results.md").read_text()
  nme, base = results["landmarks/nme"], results["baseline/landmarks/nme"]
  assert f"| landmarks/nme | {nme:.4f} | {base:.4f} |" in md
  assert "| landmarks | 24 |" in md and "## Protocol" in md


def test_write_report_without_metrics_or_crops(tmp_path):
  ev, _, _, _ = _fake_eval(n=6)
  paths = report.write_report(str(tmp_path), ev.result(), ev.arrays(), num_crops=0)
  assert sorted(os.path.basename(p) for p in paths) == ["ced.png", "results.md"]


def test_crops_from_evaluator_examples_and_region_dict(tmp_path, monkeypatch):
  ev, _, batch, outputs = _fake_eval(n=8)
  arrays = ev.arrays()
  # The evaluator kept the first 5 real rows whole, outputs included.
  np.testing.assert_array_equal(arrays["examples/image_uint8"], batch["image_uint8"][:5])
  np.testing.assert_array_equal(arrays["examples/output/pose"], outputs["pose"][:5])
  seen = []
  monkeypatch.setattr(
    report, "plot_crops", lambda c, lab, out, path, n: seen.append((c, lab, out, n)) or path
  )
  report.write_report(str(tmp_path), {}, arrays)  # kept examples
  report.write_report(str(tmp_path), {}, arrays, batch, num_crops=3)  # region dict
  assert [len(c) for c, _, _, _ in seen] == [5, 5] and seen[1][3] == 3
  for crops, labels, out, _ in seen:
    np.testing.assert_array_equal(crops, batch["image_uint8"][:5])
    np.testing.assert_array_equal(labels["landmarks"], batch["landmarks"][:5])
    np.testing.assert_array_equal(out["landmarks"], outputs["landmarks"][:5])
  shuffled = {k: v[::-1] for k, v in batch.items()}
  with pytest.raises(ValueError, match="crop_outputs"):
    report.write_report(str(tmp_path), {}, arrays, shuffled)


def test_results_markdown_by_hand():
  md = report.results_markdown(
    {
      "gender/accuracy": 0.9,
      "baseline/gender/accuracy": 0.5,
      "pose/mae_yaw_deg": 7.25,
      "count/gender": 10.0,
    }
  )
  assert "| gender/accuracy | 0.9000 | 0.5000 |" in md
  assert "| pose/mae_yaw_deg | 7.2500 |  |" in md
  assert "| gender | 10 |" in md
  md = report.results_markdown({"step": 5, "protocol/pose": "MAE in degrees"})
  assert "| step |" not in md and "- **pose**: MAE in degrees" in md


def test_pose_axes_convention():
  length = 10.0
  # Frontal: x right, y up (image -y), z towards the camera (a dot).
  np.testing.assert_allclose(
    viz.pose_axes_2d((0, 0, 0), length), [[length, 0], [0, -length], [0, 0]], atol=1e-9
  )
  # yaw > 0 swings z to image-right; pitch > 0 swings z down (image +y).
  np.testing.assert_allclose(viz.pose_axes_2d((0, 0, np.pi / 2), length)[2], [length, 0], atol=1e-9)
  np.testing.assert_allclose(viz.pose_axes_2d((0, np.pi / 2, 0), length)[2], [0, length], atol=1e-9)
  # roll > 0 turns x up on screen (counter-clockwise); 30 deg by hand.
  np.testing.assert_allclose(
    viz.pose_axes_2d((np.pi / 6, 0, 0), length)[0],
    [length * np.sqrt(3) / 2, -length / 2],
    atol=1e-9,
  )
  # A horizontal flip (roll, yaw negated) mirrors the drawing: y, z axes mirror, and the
  # x axis (which itself points the other way on the mirrored head) becomes -mirror(x).
  pose = (0.3, -0.2, 0.5)
  flipped = (-0.3, -0.2, -0.5)
  a, b = viz.pose_axes_2d(pose, length), viz.pose_axes_2d(flipped, length)
  np.testing.assert_allclose(b[1:, 1], a[1:, 1], atol=1e-9)
  np.testing.assert_allclose(b[1:, 0], -a[1:, 0], atol=1e-9)
  np.testing.assert_allclose(b[0], [a[0, 0], -a[0, 1]], atol=1e-9)  # x axis itself flips


def test_draw_face_filled_and_hollow_points():
  image = np.zeros((40, 40, 3), np.uint8)
  out = viz.draw_face(
    image,
    landmarks=np.array([[10.0, 10.0], [30.0, 30.0]]),
    visibility=np.array([0.9, 0.1]),
    colour=(255, 0, 0),
    radius=4,
  )
  assert image.max() == 0  # drawn on a copy
  assert tuple(out[10, 10]) == (255, 0, 0)  # visible: filled centre
  assert tuple(out[30, 30]) == (0, 0, 0)  # invisible: hollow centre
  assert out[26:35, 26:35, 0].max() > 0  # ... with a ring around it


def test_draw_face_pose_axes_and_errors():
  image = np.zeros((60, 60, 3), np.uint8)
  out = viz.draw_face(
    image,
    box=(10, 10, 40, 40),
    pose=(0.0, 0.0, 0.0),
    gender=1,
    p_female=0.8,
    score=0.9,
    colour=(255, 255, 0),
    axis_length=12,
  )
  # Frontal axes from the box centre (30, 30): x (red) to the right, y (green) upwards.
  # (Anti-aliased lines: check the dominant channel.)
  assert out[30, 38, 0] > 150 and out[30, 38, 1:].max() == 0
  assert out[22, 30, 1] > 150 and out[22, 30, [0, 2]].max() == 0
  assert out[30, 22].max() == 0 and out[38, 30].max() == 0  # nothing left or below
  with pytest.raises(ValueError, match="uint8"):
    viz.draw_face(image.astype(np.float32))
