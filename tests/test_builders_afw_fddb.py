"""Tests of the `afw` and `fddb` builders on fixtures in the original formats."""

import fixtures_afw_fddb as fx
import numpy as np
import pytest
from tfds_testing import build, examples_by_filename

from hyperface_jax.data.builders import afw, fddb, manual


def test_afw_parsed_values(tmp_path):
  fx.write_afw(str(tmp_path / "m" / "AFW"), fx.AFW_ROWS)
  ex = examples_by_filename(build("afw", tmp_path / "m", tmp_path / "d"), "test")
  assert sorted(ex) == ["1004109301.jpg", "1051618982.jpg"]
  faces = ex["1004109301.jpg"]["faces"]
  # [x1 y1; x2 y2] 1-based -> x, y, w, h 0-based
  np.testing.assert_allclose(faces["box"], [[10, 20, 30, 40], [1, 2, 10, 12]])
  # pose [yaw pitch roll] deg -> (roll, pitch, yaw) rad
  np.testing.assert_allclose(faces["pose"][0], np.radians([5.0, -15.0, 30.0]), rtol=1e-6)
  # 6 points -> AFLW-21 LeftEyeCenter(7), RightEyeCenter(10), NoseCenter(14), mouth 17-19
  np.testing.assert_allclose(
    faces["landmarks"][0, [7, 10, 14, 17, 18, 19]],
    np.array([[15, 30], [30, 30], [22, 40], [16, 50], [22, 51], [29, 50]]) - 1.0,
  )
  np.testing.assert_array_equal(np.nonzero(faces["visibility"][1])[0], [7, 10, 17, 18, 19])
  np.testing.assert_array_equal(faces["visibility6"][1], [1, 1, 0, 1, 1, 1])
  assert faces["valid"]["gender"].tolist() == [False, False]
  assert ex["1051618982.jpg"]["faces"]["box"].shape == (1, 4)


def test_afw_errors(tmp_path):
  with pytest.raises(manual.ManualFileMissing, match="anno.mat.*xzhu"):
    build("afw", tmp_path, tmp_path / "d")
  rows = [("a.jpg", [[[10, 10], [5, 20]]], [np.ones((6, 2))], [[0, 0, 0]])]
  fx.write_afw(str(tmp_path / "bad"), rows)
  with pytest.raises(manual.AnnotationError, match=r"anno.mat:1: anno\{1,:\} \(a.jpg\) face 1"):
    list(afw.parse_anno(str(tmp_path / "bad" / "anno.mat")))


def test_fddb_folds_ellipses_boxes(tmp_path):
  folds = dict(fx.FDDB_FOLDS)
  folds[3] = [(f"2003/x/img_{i}", [[5.0, 4.0, 0.0, 20.0, 20.0]]) for i in range(120)]
  for fold in range(4, 11):
    folds[fold] = [(f"2004/f{fold}", [[6.0, 5.0, 0.0, 30.0, 30.0]])]
  fx.write_fddb(
    str(tmp_path / "m"), folds, corrupt=["2003/x/img_7"], gray=["2002/08/26/big/img_265"]
  )
  b = build("fddb", tmp_path / "m", tmp_path / "d")
  assert b.info.splits["fold01"].num_examples == 2
  assert b.info.splits["fold02"].num_examples == 1
  assert b.info.splits["fold03"].num_examples == 119  # one corrupt of 120 skipped
  assert b.info.splits["fold10"].num_examples == 1
  assert b.info.metadata["fold03/bad_images"] == ["2003/x/img_7.jpg"]
  ex = examples_by_filename(b, "fold01")
  faces = ex["2002/08/11/big/img_591"]["faces"]
  np.testing.assert_allclose(faces["ellipse"][0], [30, 20, 1.5707963, 40, 35], rtol=1e-6)
  # theta = 90 deg: the major axis is vertical -> half extents (20, 30) around (40, 35)
  np.testing.assert_allclose(faces["box"][0], [20, 5, 40, 60], atol=1e-4)
  np.testing.assert_allclose(faces["box"][1], [60, 10, 20, 20], atol=1e-5)
  assert ex["2002/08/26/big/img_265"]["image"].shape == (80, 90, 3)  # gray -> RGB


def test_ellipse_to_box_independent():
  # Independent route: sample the rotated ellipse densely and take the extremes.
  ra, rb, t, cx, cy = 9.0, 4.0, 0.7, 3.0, -2.0
  s = np.linspace(0, 2 * np.pi, 200001)
  x = cx + ra * np.cos(s) * np.cos(t) - rb * np.sin(s) * np.sin(t)
  y = cy + ra * np.cos(s) * np.sin(t) + rb * np.sin(s) * np.cos(t)
  expect = [x.min(), y.min(), x.max() - x.min(), y.max() - y.min()]
  np.testing.assert_allclose(fddb.ellipse_to_box([ra, rb, t, cx, cy]), expect, atol=1e-6)


@pytest.mark.parametrize(
  "text, line, words",
  [
    ("img_a\n2\n10 5 0 20 20 1\nimg_b\n1\n3 3 0 5 5 1\n", 4, "expected 'major_radius"),
    ("img_a\nx\n", 2, "face count"),
    ("img_a\n1\n10 -5 0 20 20 1\n", 3, "radii"),
    ("img_a\n1\n10 5 0 20 20 1\nimg_a\n0\n", 4, "already has a record at line 1"),
  ],
)
def test_fddb_bad_records_name_file_and_line(tmp_path, text, line, words):
  (tmp_path / "FDDB-folds").mkdir()
  for fold in range(1, 11):
    (tmp_path / "FDDB-folds" / f"FDDB-fold-{fold:02d}-ellipseList.txt").write_text(
      text if fold == 1 else ""
    )
  (tmp_path / "originalPics").mkdir()
  with pytest.raises(manual.AnnotationError) as err:
    build("fddb", tmp_path, tmp_path / "d")
  assert err.value.line == line and words in str(err.value)
  assert err.value.path.endswith("FDDB-fold-01-ellipseList.txt")


def test_fddb_empty_fold_is_an_error(tmp_path):
  fx.write_fddb(str(tmp_path), {1: fx.FDDB_FOLDS[1]})
  with pytest.raises(manual.AnnotationError, match="FDDB-fold-02-ellipseList.txt: lists no"):
    build("fddb", tmp_path, tmp_path / "d")


def test_fddb_missing_fold_names_file(tmp_path):
  with pytest.raises(manual.ManualFileMissing, match="FDDB-fold-01-ellipseList.txt.*umass"):
    build("fddb", tmp_path, tmp_path / "d")
