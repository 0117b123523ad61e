"""Tests of the `pascal_faces` builder on fixtures in the toolbox's annotation format."""

import fixtures_pascal_faces as fx
import numpy as np
import pytest
import tensorflow_datasets as tfds
from tfds_testing import build, examples_by_filename

from hyperface_jax.data.builders import manual, pascal_faces


def test_parsed_values_order_and_ignore_flags(tmp_path):
  fx.write_pascal_faces(str(tmp_path / "m"), fx.PASCAL_ROWS)
  b = build("pascal_faces", tmp_path / "m", tmp_path / "d")
  assert b.info.splits["test"].num_examples == 3
  ds = b.as_dataset(split="test", shuffle_files=False)
  names = [ex["image/filename"].decode() for ex in tfds.as_numpy(ds)]
  assert names == [r[0] for r in fx.PASCAL_ROWS]  # the order of the annotation file
  ex = examples_by_filename(b, "test")
  faces = ex["2008_000034.jpg"]["faces"]
  # [left top right bottom] 1-based -> x, y, w, h 0-based (corners minus 1)
  np.testing.assert_allclose(faces["box"], [[10, 20, 30, 30], [50, 4, 10, 10]])
  assert faces["ignore"].tolist() == [False, True]
  assert faces["valid"]["box"].tolist() == [True, True]
  assert faces["valid"]["landmarks"].tolist() == [False, False]
  four = ex["2009_000020.jpg"]["faces"]  # 4 columns: nothing ignored
  np.testing.assert_allclose(four["box"], [[4, 4, 20, 25]])
  assert four["ignore"].tolist() == [False]
  assert ex["2010_000005.jpg"]["faces"]["box"].shape == (0, 4)
  assert ex["2008_000034.jpg"]["image"].shape == (60, 80, 3)


def test_missing_annotation_names_file_and_page(tmp_path):
  with pytest.raises(manual.ManualFileMissing, match="Annotations_Face_PASCALLayout.*face-eval"):
    build("pascal_faces", tmp_path, tmp_path / "d")


def test_too_many_missing_images_fail(tmp_path):
  fx.write_pascal_faces(str(tmp_path / "m"), fx.PASCAL_ROWS, missing=["2009_000020.jpg"])
  with pytest.raises(manual.TooManyBadImages, match="1 of 3"):
    build("pascal_faces", tmp_path / "m", tmp_path / "d")


@pytest.mark.parametrize(
  "rows, entry, words",
  [
    ([("a.jpg", [[10, 10, 20, 20]]), ("b.jpg", [[30, 10, 20, 20]])], 2, "b.jpg) face 1"),
    ([("a.jpg", [[10, 10, 20]])], 1, "objects is (1, 3)"),
    ([("a.jpg", [[10, 10, 20, 20]]), ("a.jpg", [])], 2, "also Annotations(1)"),
    ([("", [[10, 10, 20, 20]])], 1, "imgname is empty"),
    ([("a.jpg", [[10, np.nan, 20, 20]])], 1, "non-finite"),
  ],
)
def test_bad_entries_name_file_and_entry(tmp_path, rows, entry, words):
  path = str(tmp_path / fx.ANNOTATION)
  fx.write_annotations(path, rows)
  with pytest.raises(manual.AnnotationError) as err:
    list(pascal_faces.parse_annotations(path))
  assert err.value.line == entry and words in str(err.value)
  assert str(err.value).startswith(f"{path}:{entry}: Annotations({entry})")


def test_not_a_toolbox_file(tmp_path):
  from scipy import io as sio

  path = str(tmp_path / fx.ANNOTATION)
  sio.savemat(path, {"anno": np.zeros((2, 2))})
  with pytest.raises(manual.AnnotationError, match="struct array 'Annotations'.*anno"):
    list(pascal_faces.parse_annotations(path))
