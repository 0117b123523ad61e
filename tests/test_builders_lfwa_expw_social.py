"""Tests of the `lfwa`, `expw` and `social_relation` builders on generated fixtures."""

import os

import fixtures_celeba as fxc
import fixtures_scenes as fxs
import numpy as np
import pytest
from tfds_testing import build, examples_by_filename

from hyperface_jax.data.builders import expw, lfwa, manual, social_relation  # noqa: F401


def test_lfwa_attributes_gender_and_partition(tmp_path):
  attrs, codes = fxc.write_lfwa(tmp_path / "raw")
  builder = build("lfwa", tmp_path / "raw", tmp_path / "data")
  assert {k: s.num_examples for k, s in builder.info.splits.items()} == {"train": 2, "test": 1}
  got = {**examples_by_filename(builder, "train"), **examples_by_filename(builder, "test")}
  assert set(got) == set(attrs)
  for name, a in attrs.items():
    ex = got[name]
    np.testing.assert_array_equal(ex["attributes"], (a > 0).astype(np.int64))
    assert ex["gender"] == (0 if a[20] == 1 else 1)  # Male is attribute 21
    assert ex["valid"]["gender"] and not ex["valid"]["box"] and not ex["valid"]["landmarks5"]
  assert codes["Zoe_Ball_0001.jpg"] == 2
  assert list(examples_by_filename(builder, "test")) == ["Zoe_Ball_0001.jpg"]


def test_lfwa_without_partition_and_folder_names(tmp_path):
  attrs, _ = fxc.write_lfwa(tmp_path / "raw", partition=False, folder_in_name=True)
  builder = build("lfwa", tmp_path / "raw", tmp_path / "data")
  assert sorted(examples_by_filename(builder, "full")) == sorted(attrs)
  assert "Aaron_Eckhart/Aaron_Eckhart_0001.jpg" in attrs


@pytest.fixture(scope="module")
def expw_built(tmp_path_factory):
  raw = tmp_path_factory.mktemp("expw_raw")
  fxs.write_expw(raw)
  return build("expw", raw, tmp_path_factory.mktemp("expw_data"))


def test_expw_faces_per_image_and_duplicate_dropped(expw_built):
  builder = expw_built
  got = examples_by_filename(builder, "train")
  assert sorted(got) == ["afraid_african_214.jpg", "angry_actor_104.jpg"]
  afraid = got["afraid_african_214.jpg"]["faces"]
  assert len(afraid["box"]) == 1  # row 3 duplicated row 1
  # top 10, left 20, right 50, bottom 52 -> x 20, y 10, w 30, h 42.
  np.testing.assert_array_equal(afraid["box"][0], [20, 10, 30, 42])
  assert afraid["expression"][0] == 2 and afraid["confidence"][0] == pytest.approx(98.2)
  angry = got["angry_actor_104.jpg"]["faces"]
  np.testing.assert_array_equal(angry["face_id"], [0, 1])  # ordered by face id
  np.testing.assert_array_equal(angry["expression"], [0, 6])
  np.testing.assert_array_equal(angry["box"][1], [70, 30, 30, 32])
  assert angry["valid"]["box"].all() and not angry["valid"]["landmarks"].any()
  assert (angry["gender"] == -1).all()
  assert got["angry_actor_104.jpg"]["image"].shape == fxs.SCENE_HW + (3,)
  assert builder.info.metadata["train/num_duplicate_rows_dropped"] == 1


def test_expw_parse_counts_duplicates(tmp_path):
  fxs.write_expw(tmp_path)
  faces, duplicates = expw.parse_labels(tmp_path / "label" / "label.lst")
  assert duplicates == 1 and sum(len(v) for v in faces.values()) == 3


@pytest.mark.parametrize(
  "row,line,message",
  [
    (("a.jpg", 0, 10, 20, 50, 52, 98.2, 7), 1, "unknown expression label 7"),
    (("a.jpg", 0, 60, 20, 50, 52, 98.2, 1), 1, "non-positive size"),
  ],
)
def test_expw_bad_rows(tmp_path, row, line, message):
  fxs.write_expw(tmp_path, rows=(row,))
  with pytest.raises(manual.AnnotationError, match=message) as err:
    build("expw", tmp_path, tmp_path / "data")
  assert err.value.path.endswith("label.lst") and err.value.line == line


def test_expw_contradictory_duplicate_and_missing_labels(tmp_path):
  rows = fxs.EXPW_ROWS[:2] + (("afraid_african_214.jpg", 0, 10, 20, 50, 52, 98.2, 3),)
  fxs.write_expw(tmp_path, rows=rows)
  with pytest.raises(manual.AnnotationError, match="contradicts line 1") as err:
    build("expw", tmp_path, tmp_path / "d1")
  assert err.value.line == 3
  os.remove(tmp_path / "label" / "label.lst")
  with pytest.raises(manual.ManualFileMissing, match="label.lst") as err:
    build("expw", tmp_path, tmp_path / "d2")
  assert expw.URL in str(err.value)


def test_expw_corrupt_image_over_one_percent_fails(tmp_path):
  fxs.write_expw(tmp_path, corrupt=("angry_actor_104.jpg",))
  with pytest.raises(manual.TooManyBadImages, match="1 of 2"):
    build("expw", tmp_path, tmp_path / "data")


def test_social_relation_faces_and_relations(tmp_path):
  fxs.write_social(tmp_path / "raw")
  builder = build("social_relation", tmp_path / "raw", tmp_path / "data")
  train = examples_by_filename(builder, "train")
  fam = train["family_001.jpg"]
  # Distinct boxes in order of first appearance: (5,6,..), (60,8,..), (90,40,..).
  np.testing.assert_array_equal(
    fam["faces"]["box"], [[5, 6, 30, 30], [60, 8, 28, 28], [90, 40, 20, 20]]
  )
  np.testing.assert_array_equal(fam["relations"]["faces"], [[0, 1], [1, 2]])
  np.testing.assert_array_equal(
    fam["relations"]["traits"], [fxs.SOCIAL_TRAIN[0][3], fxs.SOCIAL_TRAIN[1][3]]
  )
  assert fam["relations"]["traits"].dtype == np.int64
  test = examples_by_filename(builder, "test")["party_3.jpg"]
  np.testing.assert_array_equal(test["relations"]["traits"], [[1] * 8])
  assert builder.info.splits["test"].num_examples == 1


def test_social_relation_bad_trait_code(tmp_path):
  bad = (("office_17.jpg", (10, 10, 25, 25), (70, 12, 25, 25), (0, 1, -1, 0, 0, 0, 1, 1)),)
  fxs.write_social(tmp_path, train=fxs.SOCIAL_TRAIN[:2] + bad)
  with pytest.raises(manual.AnnotationError, match="trait trusting has code -1") as err:
    build("social_relation", tmp_path, tmp_path / "data")
  assert err.value.path.endswith("relation_trainset.txt") and err.value.line == 3
