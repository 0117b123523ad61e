"""Tests of the `ibug_300w` and `helen` builders on fixtures in the original formats."""

import os

import fixtures_w300_helen as fx
import numpy as np
import pytest
from tfds_testing import build, examples_by_filename

from hyperface_jax.data import schemes
from hyperface_jax.data.builders import helen, manual, w300

FOLDERS = {
  "lfpw/trainset": 2,
  "helen/trainset": 1,
  "afw": 1,
  "lfpw/testset": 1,
  "helen/testset": 1,
  "ibug": 2,
}


@pytest.fixture(scope="module")
def w300_built(tmp_path_factory):
  root = tmp_path_factory.mktemp("w300m")
  points = fx.write_300w(str(root), FOLDERS)
  return build("ibug_300w", root, tmp_path_factory.mktemp("w300d")), points


def test_300w_splits(w300_built):
  b, _ = w300_built
  counts = {k: v.num_examples for k, v in b.info.splits.items()}
  assert counts == {"train": 4, "common": 2, "challenging": 2, "full": 4}
  assert sorted(examples_by_filename(b, "challenging")) == [
    "ibug/image_0000.jpg",
    "ibug/image_0001.jpg",
  ]
  assert sorted(examples_by_filename(b, "common")) == [
    "helen/testset/image_0000.jpg",
    "lfpw/testset/image_0000.png",
  ]


def test_300w_points_are_zero_based(w300_built):
  b, points = w300_built
  ex = examples_by_filename(b, "train")["lfpw/trainset/image_0001.png"]
  expect = points["lfpw/trainset/image_0001.png"] - 1.0  # .pts is 1-based
  np.testing.assert_allclose(ex["landmarks68"], expect, atol=1e-4)
  assert ex["image"].shape == (60, 70, 3)
  lo, hi = expect.min(0), expect.max(0)
  np.testing.assert_allclose(ex["box"], np.concatenate([lo, hi - lo]), atol=1e-4)
  # AFLW-21 view: NoseCenter = point 30, RightEyeCenter = mean of 42..47, ears not visible
  np.testing.assert_allclose(ex["landmarks"][14], expect[30], atol=1e-4)
  np.testing.assert_allclose(ex["landmarks"][10], expect[42:48].mean(0), atol=1e-4)
  assert ex["visibility"][[12, 16]].tolist() == [0, 0] and ex["visibility"].sum() == 19
  assert not ex["valid"]["pose"] and not ex["valid"]["gender"] and ex["valid"]["landmarks"]


def test_pts_header_and_body_errors(tmp_path):
  p = str(tmp_path / "a.pts")
  fx.write_pts(p, fx.points68(1), header=("version: 1", "n_points: 67"))
  with pytest.raises(manual.AnnotationError, match=r"a.pts:2: n_points is '67'"):
    w300.parse_pts(p)
  with open(p, "w") as f:
    f.write("version: 1\nn_points: 68\n{\n" + "1 2\n" * 10 + "1 x\n" + "3 4\n" * 57 + "}\n")
  with pytest.raises(manual.AnnotationError, match=r"a.pts:14: expected 'x y'"):
    w300.parse_pts(p)


def test_300w_missing_folder_names_it(tmp_path):
  fx.write_300w(str(tmp_path), {"afw": 1})
  with pytest.raises(manual.ManualFileMissing, match=r"lfpw/trainset.*ibug.doc.ic.ac.uk"):
    build("ibug_300w", tmp_path, tmp_path / "d")


def test_68_to_aflw21_commutes_with_flip():
  pts = fx.points68(3)
  width = 70
  a = schemes.flip_landmarks(schemes.ibug68_to_aflw21(pts), width, "aflw21")
  b = schemes.ibug68_to_aflw21(schemes.flip_landmarks(pts, width, "ibug68"))
  np.testing.assert_allclose(a, b)  # NaN ears compare equal


def test_helen_values_and_splits(tmp_path):
  points = fx.write_helen(str(tmp_path / "m"), ["100032540_1", "10405146_1"], ["2908549_1"])
  b = build("helen", tmp_path / "m", tmp_path / "d")
  train, test = examples_by_filename(b, "train"), examples_by_filename(b, "test")
  assert sorted(train) == ["100032540_1", "10405146_1"] and list(test) == ["2908549_1"]
  ex = train["10405146_1"]
  np.testing.assert_allclose(ex["landmarks194"], points["10405146_1"], atol=1e-4)
  lo, hi = points["10405146_1"].min(0), points["10405146_1"].max(0)
  np.testing.assert_allclose(ex["box"], np.concatenate([lo, hi - lo]), atol=1e-4)
  assert not ex["valid"]["landmarks"] and ex["valid"]["box"]


def test_helen_bad_line_and_unknown_name(tmp_path):
  fx.write_helen(str(tmp_path), ["a_1"], ["b_1"])
  ann = tmp_path / "annotation" / "1.txt"
  lines = ann.read_text().splitlines()
  lines[5] = "12.0 ; 4"
  ann.write_text("\n".join(lines) + "\n")
  with pytest.raises(manual.AnnotationError, match=r"1.txt:6: expected 'x , y'"):
    helen.parse_annotation(str(ann))
  (tmp_path / "testnames.txt").write_text("b_1\nzz_9\n")
  fx.write_helen(str(tmp_path / "ok"), ["a_1"], ["b_1"])
  (tmp_path / "ok" / "testnames.txt").write_text("b_1\nzz_9\n")
  with pytest.raises(manual.AnnotationError, match=r"testnames.txt:2: 'zz_9' has no"):
    build("helen", tmp_path / "ok", tmp_path / "d")
  assert os.path.exists(tmp_path / "ok" / "annotation" / "2.txt")
