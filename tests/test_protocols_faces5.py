"""Tests of the 5-point (MAFL/MTFL) evaluator on a hand-worked example (values derived by
hand in the comments, not by the evaluator's formulas)."""

import os

import numpy as np
import pytest

from hyperface_jax import registry
from hyperface_jax.evaluation import protocols_faces5

# Face A: eyes (0,0), (10,0) -> inter-ocular 10. Errors: LE (3,4) = 5 -> 0.5, RE 0,
# nose (0,0.5) -> 0.05, LM (1.2,1.6) = 2 -> 0.2, RM 0. NME = 0.75 / 5 = 0.15.
TRUE_A = np.array([[0, 0], [10, 0], [5, 5], [2, 10], [8, 10]], float)
PRED_A = TRUE_A + [[3, 4], [0, 0], [0, 0.5], [1.2, 1.6], [0, 0]]
# Face B: eyes (0,0), (0,20) -> 20; every point off by (1, 0) -> 0.05 each; NME 0.05.
TRUE_B = np.array([[0, 0], [0, 20], [8, 10], [15, 3], [15, 17]], float)
PRED_B = TRUE_B + [1, 0]
# Face D: face A x 2 (inter-ocular 20), nose NOT visible (its 100 px error is ignored).
# Errors: LE 3 -> 0.15, RE 0, LM (4.8, 6.4) = 8 -> 0.4, RM 0. NME = 0.55 / 4 = 0.1375.
TRUE_D = 2 * TRUE_A
PRED_D = TRUE_D + [[3, 0], [0, 0], [100, 0], [4.8, 6.4], [0, 0]]
GARBAGE = np.full((5, 2), 1e6)


def _batch():
  batch = {
    "landmarks5": np.stack([TRUE_A, TRUE_B, GARBAGE, TRUE_D]),
    "visibility5": np.array([[1] * 5, [1] * 5, [1] * 5, [1, 1, 0, 1, 1]], float),
    "example_mask": np.array([1, 1, 0, 1], float),
  }
  outputs = {"landmarks5": np.stack([PRED_A, PRED_B, -GARBAGE, PRED_D])}
  return batch, outputs


def test_landmarks5_hand_worked():
  ev = registry.EVALUATORS.get("landmarks5_interocular")(dataset="mtfl")
  batch, outputs = _batch()
  ev.update({k: v[:2] for k, v in batch.items()}, {k: v[:2] for k, v in outputs.items()})
  ev.update({k: v[2:] for k, v in batch.items()}, {k: v[2:] for k, v in outputs.items()})
  r = ev.result()
  assert r["count/landmarks5"] == 3
  assert r["landmarks5/nme"] == pytest.approx((0.15 + 0.05 + 0.1375) / 3)
  assert r["landmarks5/failure_rate_0.1"] == pytest.approx(2 / 3)  # A and D exceed 0.1
  # Per point > 0.1: LE {A .5, D .15} 2/3; RE 0; nose {.05, .05} 0/2; LM {.2, .4} 2/3; RM 0.
  assert r["landmarks5/failure_rate_0.1/LeftEye"] == pytest.approx(2 / 3)
  assert r["landmarks5/failure_rate_0.1/Nose"] == 0.0
  assert r["landmarks5/point_failure_rate_0.1"] == pytest.approx((2 / 3 + 2 / 3) / 5)
  assert r["landmarks5/nme/MouthLeft"] == pytest.approx((0.2 + 0.05 + 0.4) / 3)
  assert r["landmarks5/nme/Nose"] == pytest.approx(0.05)  # D's nose not scored
  # CED AUC on [0, 0.1]: mean of clip(1 - e / 0.1, 0, 1) = (0 + 0.5 + 0) / 3.
  assert r["landmarks5/auc_0.1"] == pytest.approx(0.5 / 3)
  assert "inter-ocular" in ev.protocol()["landmarks5/nme"]
  assert "mtfl" in ev.protocol()["landmarks5/nme"]


def test_landmarks5_region_normalized_inputs_give_the_same_numbers():
  batch, outputs = _batch()
  region = np.tile([[-20.0, -30.0, 100.0, 100.0]], (4, 1))
  centre = region[:, None, :2] + 50.0
  norm = dict(batch, landmarks5=(batch["landmarks5"] - centre) / 100.0, region=region)
  ev = protocols_faces5.Landmarks5Evaluator()
  ev.update(norm, {"landmarks5": (outputs["landmarks5"] - centre) / 100.0})
  assert ev.result()["landmarks5/nme"] == pytest.approx((0.15 + 0.05 + 0.1375) / 3)


def test_landmarks5_rejects_coincident_eyes_and_counts_mask():
  ev = protocols_faces5.Landmarks5Evaluator()
  with pytest.raises(ValueError, match="eye centres coincide"):
    ev.update({"landmarks5": np.zeros((1, 5, 2))}, {"landmarks5": np.zeros((1, 5, 2))})
  ev.reset()
  ev.update(
    {"landmarks5": np.stack([TRUE_A, TRUE_B]), "landmarks5_mask": np.array([0, 1])},
    {"landmarks5": np.stack([PRED_A, PRED_B])},
  )
  assert ev.result()["landmarks5/nme"] == pytest.approx(0.05)


def test_landmarks5_valid_flags_and_ced_plot(tmp_path):
  batch, outputs = _batch()
  batch["valid/landmarks5"] = np.array([True, False, True, True])  # drops face B
  ev = protocols_faces5.Landmarks5Evaluator()
  ev.update(batch, outputs)
  assert ev.result()["landmarks5/nme"] == pytest.approx((0.15 + 0.1375) / 2)
  assert ev.plots(str(tmp_path)) == [str(tmp_path / "ced.png")]
  assert os.path.getsize(tmp_path / "ced.png") > 0
