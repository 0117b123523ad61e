"""Tests of the CelebA/LFWA gender and attribute evaluator on hand-worked examples."""

import numpy as np
import pytest

from hyperface_jax import registry
from hyperface_jax.evaluation import protocols_attributes


def test_attributes_and_gender_hand_worked():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, size=(5, 40))
  pred = labels.copy()
  pred[0, 0] ^= 1
  pred[1, 0] ^= 1
  pred[2, 5] ^= 1
  logits = np.where(pred == 1, 2.0, -2.0)
  logits[4] = np.where(labels[4] == 1, -9.0, 9.0)  # row 4 is padding: all wrong, ignored
  batch = {
    "attributes": labels,
    "example_mask": np.array([1, 1, 1, 1, 0]),
    "gender": np.array([0, 1, 1, -1, 0]),
  }
  outputs = {
    "attributes": logits,
    "gender": np.array([[2, 1], [0, 3], [1.5, 1], [0, -1], [0, 5]], float),
  }
  ev = registry.EVALUATORS.get("face_attributes")(dataset="celeba")
  ev.update(batch, outputs)
  r = ev.result()
  # Attribute 0 wrong on 2 of 4 faces, attribute 5 on 1 of 4, the other 38 right:
  assert r["attributes/accuracy/5_o_Clock_Shadow"] == 0.5
  assert r["attributes/accuracy/Bangs"] == 0.75
  assert r["attributes/mean_accuracy"] == pytest.approx((0.5 + 0.75 + 38) / 40)
  # Gender: face 3 unknown (-1), face 4 padding; predictions 0, 1, 0 vs 0, 1, 1 -> 2/3.
  assert r["count/gender"] == 3 and r["gender/accuracy"] == pytest.approx(2 / 3)
  assert r["baseline/gender/accuracy"] == pytest.approx(2 / 3)  # majority female: 2 of 3
  assert "Male" in ev.protocol()["gender/accuracy"]


def test_gender_from_male_attribute_when_no_gender_head():
  male = protocols_attributes.ATTRIBUTE_INDEX["Male"]
  logits = np.zeros((3, 40))
  logits[:, male] = [3.0, -1.0, -2.0]  # predicted male, female, female
  ev = protocols_attributes.FaceAttributeEvaluator()
  ev.update(
    {"attributes": np.zeros((3, 40), int), "gender": np.array([0, 0, 1])}, {"attributes": logits}
  )
  assert ev.result()["gender/accuracy"] == pytest.approx(2 / 3)


def test_valid_flags_and_attribute_plot(tmp_path):
  labels = np.zeros((2, 40), int)
  logits = np.full((2, 40), -1.0)
  logits[1] = 1.0  # row 1 all wrong, but its attributes are not valid
  ev = protocols_attributes.FaceAttributeEvaluator(dataset="lfwa")
  ev.update(
    {"attributes": labels, "valid/attributes": np.array([True, False])}, {"attributes": logits}
  )
  r = ev.result()
  assert r["count/attributes"] == 1 and r["attributes/mean_accuracy"] == 1.0
  assert ev.plots(str(tmp_path)) == [str(tmp_path / "attributes.png")]
