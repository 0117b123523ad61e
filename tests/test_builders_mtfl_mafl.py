"""Tests of the `mtfl` and `mafl` builders on original-format fixtures."""

import os

import fixtures_celeba as fxc
import fixtures_mtfl as fxm
import numpy as np
import pytest
from tfds_testing import build, examples_by_filename

from hyperface_jax.data.builders import face_crops, manual, mtfl


@pytest.fixture(scope="module")
def mtfl_built(tmp_path_factory):
  raw = tmp_path_factory.mktemp("mtfl_raw")
  values = fxm.write_mtfl(raw / "MTFL")  # the zip's top folder: found from its parent
  return build("mtfl", raw, tmp_path_factory.mktemp("mtfl_data")), values


# Hand-written expectations of the code mapping (module docstring of mtfl.py):
# (gender, smiling, eyeglasses, pose_class) for the rows of fixtures_mtfl.TRAIN / TEST.
EXPECTED_LABELS = {
  "lfw_5590/Aaron_Guiel_0001.jpg": (0, 1, 0, 2),  # codes 1 1 2 3
  "net_7876/0001.jpg": (1, 0, 1, 0),  # codes 2 2 1 1
  "lfw_5590/Zoe_Ball_0001.jpg": (1, 1, 0, 4),  # codes 2 1 2 5
  "AFLW/0001-image20056.jpg": (0, 0, 0, 1),  # codes 1 2 2 2
  "AFLW/0002-image04227.jpg": (1, 1, 1, 3),  # codes 2 1 1 4
}


def test_mtfl_rows_leading_space_backslash_and_codes(mtfl_built):
  builder, values = mtfl_built
  assert {k: s.num_examples for k, s in builder.info.splits.items()} == {"train": 3, "test": 2}
  for split in ("train", "test"):
    got = examples_by_filename(builder, split)
    assert sorted(got) == sorted(rel for rel, _, _ in values[split])
    for rel, points, _ in values[split]:
      ex = got[rel]
      np.testing.assert_array_equal(ex["landmarks5"], points.astype(np.float32))
      assert (
        int(ex["gender"]),
        int(ex["smiling"]),
        int(ex["eyeglasses"]),
        int(ex["pose_class"]),
      ) == EXPECTED_LABELS[rel]
      np.testing.assert_allclose(ex["box"], face_crops.box_from_five(points))
      np.testing.assert_array_equal(ex["visibility5"], np.ones(5, np.float32))
      valid = ex["valid"]
      assert valid["pose_class"] and valid["gender"] and valid["landmarks5"]
      assert not valid["attributes"] and not valid["identity"] and not valid["pose"]
      assert ex["identity"] == -1 and ex["mouth_open"] == -1


def test_mtfl_parse_line_by_hand():
  rel, pts, labels = mtfl.parse_line(
    "training.txt",
    1,
    " lfw_5590\\Aaron_Guiel_0001.jpg 101.250000 146.750000 125.250000 "
    "93.750000 139.750000 112.250000 117.750000 137.750000 160.750000 164.750000 1 1 2 3",
  )
  assert rel == "lfw_5590/Aaron_Guiel_0001.jpg"
  np.testing.assert_array_equal(pts[0], [101.25, 112.25])  # left eye = (x1, y1)
  np.testing.assert_array_equal(pts[4], [139.75, 164.75])  # right mouth = (x5, y5)
  assert labels == {"gender": 0, "smiling": 1, "eyeglasses": 0, "pose_class": 2}


@pytest.mark.parametrize(
  "line,tail,message",
  [
    (2, "2 2 1 6", "unknown pose"),
    (1, "3 1 2 3", "unknown gender"),
    (3, "2 1 2", "expected 15 columns"),
  ],
)
def test_mtfl_contradictory_rows(tmp_path, line, tail, message):
  fxm.write_mtfl(tmp_path)
  path = tmp_path / "training.txt"
  text = path.read_text().splitlines()[line - 1]
  fxc.replace_line(path, line, text.rsplit(" ", 4)[0] + " " + tail)
  with pytest.raises(manual.AnnotationError, match=message) as err:
    build("mtfl", tmp_path, tmp_path / "data")
  assert err.value.path.endswith("training.txt") and err.value.line == line


def test_mtfl_landmark_outside_image(tmp_path):
  fxm.write_mtfl(tmp_path)
  path = tmp_path / "testing.txt"
  text = path.read_text().splitlines()[1].split()
  text[1] = "400.000000"  # x1 of a 100-pixel-wide image
  fxc.replace_line(path, 2, " " + " ".join(text))
  with pytest.raises(manual.AnnotationError, match="outside the 100x120 image") as err:
    build("mtfl", tmp_path, tmp_path / "data")
  assert err.value.path.endswith("testing.txt") and err.value.line == 2


def test_mtfl_missing_list(tmp_path):
  fxm.write_mtfl(tmp_path)
  os.remove(tmp_path / "testing.txt")
  with pytest.raises(manual.ManualFileMissing, match="testing.txt") as err:
    build("mtfl", tmp_path, tmp_path / "data")
  assert mtfl.URL in str(err.value)


@pytest.fixture(scope="module")
def mafl_raw(tmp_path_factory):
  raw = tmp_path_factory.mktemp("mafl_raw")
  values = fxc.write_celeba(raw, n=6)
  fxc.write_mafl_lists(raw, values["names"][:4], values["names"][4:])
  return raw, values


def test_mafl_splits_follow_lists_and_labels_come_from_celeba(mafl_raw, tmp_path):
  raw, v = mafl_raw
  builder = build("mafl/aligned", raw, tmp_path)
  assert {k: s.num_examples for k, s in builder.info.splits.items()} == {"train": 4, "test": 2}
  test = examples_by_filename(builder, "test")
  assert sorted(test) == v["names"][4:]
  ex = test[v["names"][5]]
  np.testing.assert_array_equal(ex["landmarks5"], v["aligned"][5].astype(np.float32))
  np.testing.assert_array_equal(ex["attributes"], (v["attrs"][5] > 0).astype(np.int64))
  assert ex["identity"] == v["identity"][5]


def test_mafl_name_missing_from_celeba_and_overlap(mafl_raw, tmp_path):
  raw, v = mafl_raw
  fxc.write_mafl_lists(raw, v["names"][:4], ["999999.jpg"])
  with pytest.raises(manual.AnnotationError, match="no row for image '999999.jpg'"):
    build("mafl/aligned", raw, tmp_path / "a")
  fxc.write_mafl_lists(raw, v["names"][:4], v["names"][3:])
  with pytest.raises(manual.AnnotationError, match="also in") as err:
    build("mafl/aligned", raw, tmp_path / "b")
  assert err.value.path.endswith("testing.txt")
  fxc.write_mafl_lists(raw, v["names"][:4], v["names"][4:])  # restore for other tests
