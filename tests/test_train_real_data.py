"""Training on real-dataset builds: HyperFace on AFLW, and two crop datasets mixed.

Both build small fixtures written in the original formats (tests/fixtures_*.py), then
run the one training loop for a few steps on them (8 fake CPU devices).
"""

import os
import sys

import fixtures_aflw as fxa
import fixtures_celeba as fxc
import fixtures_mtfl as fxm
import numpy as np
import pytest
from tfds_testing import build

from hyperface_jax import train
from hyperface_jax.data import inputs
from hyperface_jax.data.builders import aflw_split
from hyperface_jax.metric_writer import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _short(c, data_dir):
  c.data.data_dir = str(data_dir)
  c.total_steps = 2
  c.batch_size = 16
  c.eval_batch_size = 32
  c.log_every = 1
  c.eval_every = 2
  c.checkpoint_every = 2
  c.input_size = 67
  c.model.width = 0.125
  c.schedule.warmup_steps = 0
  c.report.num_crops = 2
  return c


def test_hyperface_trains_on_the_aflw_build(tmp_path, monkeypatch):
  from configs import smoke  # pylint: disable=g-import-not-at-top

  images = fxa.many_images(12, size=(64, 64), faces_per_image=2)
  root = tmp_path / "manual" / "aflw" / "data"
  fxa.write_aflw(str(root), images)
  test_ids = [100000 + i for i in range(8)]  # the faces of the first four images
  monkeypatch.setattr(aflw_split, "read_face_ids", lambda path=None: list(test_ids))
  build("aflw", tmp_path / "manual", tmp_path / "data")

  c = _short(smoke.get_config(), tmp_path / "data")
  c.data.name = "aflw"
  c.data.builder_config = {}
  c.data.prepare_if_missing = False
  c.data.eval_split = "test"
  results = train.train_and_evaluate(c, str(tmp_path / "run"))
  rows = read_metrics(str(tmp_path / "run"))
  assert rows[-1]["step"] == 2
  for task in ("detection", "landmarks", "visibility", "pose", "gender"):
    assert np.isfinite(rows[0][f"train/loss/{task}"]), task
  # Every AFLW face carries all five labels, so each task is scored on the test regions.
  for key in ("landmarks/nme", "pose/mae_yaw_deg", "gender/accuracy", "visibility/accuracy"):
    assert np.isfinite(results[key]), key
  assert results["count/landmarks"] > 0


@pytest.fixture(scope="module")
def crop_builds(tmp_path_factory):
  data = tmp_path_factory.mktemp("crop_data")
  mtfl_raw = tmp_path_factory.mktemp("mtfl_raw")
  fxm.write_mtfl(mtfl_raw / "MTFL")
  build("mtfl", mtfl_raw, data)
  celeba_raw = tmp_path_factory.mktemp("celeba_raw")
  fxc.write_celeba(str(celeba_raw), n=6)
  build("celeba/aligned", celeba_raw, data)
  return data


def test_two_crop_datasets_with_different_label_sets_train_mixed(crop_builds, tmp_path):
  from configs import face_crops  # pylint: disable=g-import-not-at-top

  c = _short(face_crops.get_config("celeba+mtfl"), crop_builds)
  c.model.norm = "none"
  assert [s["name"] for s in c.data.sources] == ["celeba", "mtfl"]
  data = inputs.load(c)
  assert data.names == ["celeba", "mtfl"]
  batch = data.train_batch(1, c.batch_size)
  # One region per scene: each row is one crop of one of the two datasets. MTFL has no
  # attributes, CelebA has them: the attribute mask tells the rows apart, and both
  # datasets carry landmarks5 and gender.
  attr = batch["attributes_mask"] > 0
  assert 0 < attr.sum() < len(attr), "both datasets should appear in a batch of 16 slots"
  assert np.all(batch["landmarks5_mask"] == 1) and np.all(batch["gender_mask"] == 1)
  assert np.all(batch["attributes"][~attr] == 0)  # no invented labels on MTFL rows
  results = train.train_and_evaluate(c, str(tmp_path / "run"))
  for key in ("landmarks5/error_region", "gender/accuracy", "attributes/accuracy"):
    assert np.isfinite(results[key]), key
  # Evaluation covers both datasets' eval splits: CelebA validation (its fixture's
  # partition) and MTFL test (2 crops); attributes only from CelebA.
  assert results["count/landmarks5"] == results["count/gender"]
  assert 0 < results["count/attributes"] < results["count/landmarks5"]


def test_unknown_source_key_is_refused(crop_builds):
  from configs import face_crops  # pylint: disable=g-import-not-at-top

  c = _short(face_crops.get_config("celeba+mtfl"), crop_builds)
  c.data.sources = (dict(name="celeba", wieght=2.0),)
  with pytest.raises(ValueError, match=r"unknown keys \['wieght'\]"):
    inputs.load(c)
