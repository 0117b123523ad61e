"""Tests of the `celeba` builder and the CelebA list parsers on generated original-format
fixtures (tests/fixtures_celeba.py)."""

import json
import os

import fixtures_celeba as fx
import numpy as np
import pytest
import tensorflow_datasets as tfds
from tfds_testing import build, examples_by_filename

from hyperface_jax.data.builders import celeba, celeba_lists, face_crops, manual


def _build(manual_dir, data_dir, config="aligned"):
  return build(f"celeba/{config}", manual_dir, data_dir)


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
  root = tmp_path_factory.mktemp("celeba_raw")
  values = fx.write_celeba(root, n=6)
  return _build(root, tmp_path_factory.mktemp("celeba_data")), values, root


def test_attribute_rows_with_multiple_spaces_parse(tmp_path):
  path = tmp_path / "list_attr_celeba.txt"
  row = "000007.jpg " + " ".join(["-1"] * 20 + [" 1"] + ["-1"] * 19)  # Male = 1
  path.write_text("1\n" + "  ".join(celeba_lists.CELEBA_ATTRIBUTES) + " \n" + row + "\n")
  assert "  1" in row  # the padding quirk is really there
  table = celeba_lists.read_attributes(path)
  values, line = table.row("000007.jpg")
  assert line == 3
  np.testing.assert_array_equal(values, np.eye(40, dtype=np.int64)[20])


def test_attributes_mapped_by_header_name_not_position(tmp_path):
  names = list(celeba_lists.CELEBA_ATTRIBUTES)
  names[0], names[1] = names[1], names[0]  # file lists Arched_Eyebrows first
  path = tmp_path / "list_attr_celeba.txt"
  path.write_text("1\n" + " ".join(names) + "\nx.jpg  1 " + " ".join(["-1"] * 39) + "\n")
  values, _ = celeba_lists.read_attributes(path).row("x.jpg")
  assert values[celeba_lists.ATTRIBUTE_INDEX["Arched_Eyebrows"]] == 1 and values.sum() == 1


def test_aligned_values_and_splits(aligned):
  builder, v, _ = aligned
  counts = {k: s.num_examples for k, s in builder.info.splits.items()}
  assert counts == {"train": 2, "validation": 2, "test": 2}
  split_of = {0: "train", 1: "validation", 2: "test"}
  for i, name in enumerate(v["names"]):
    ex = examples_by_filename(builder, split_of[v["partition"][i]])[name]
    np.testing.assert_array_equal(ex["attributes"], (v["attrs"][i] > 0).astype(np.int64))
    male = v["attrs"][i][celeba_lists.CELEBA_ATTRIBUTES.index("Male")]
    assert ex["gender"] == (0 if male == 1 else 1)
    assert ex["smiling"] == int(v["attrs"][i][31] == 1)  # Smiling is column 32
    assert ex["eyeglasses"] == int(v["attrs"][i][15] == 1)  # Eyeglasses is column 16
    np.testing.assert_array_equal(ex["landmarks5"], v["aligned"][i].astype(np.float32))
    np.testing.assert_array_equal(ex["visibility5"], np.ones(5, np.float32))
    assert ex["identity"] == v["identity"][i]
    assert ex["image"].shape == fx.ALIGNED_HW + (3,)
    valid = ex["valid"]
    assert valid["landmarks5"] and valid["attributes"] and valid["gender"] and valid["box"]
    assert not valid["landmarks"] and not valid["pose"] and not valid["pose_class"]
    assert ex["pose_class"] == -1
    # Box rule by hand: side = max(2.6 * eye distance, 2.3 * eye-mouth distance).
    p = v["aligned"][i].astype(np.float64)
    eye, mouth = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    side = max(2.6 * np.hypot(*(p[0] - p[1])), 2.3 * np.hypot(*(eye - mouth)))
    cx, cy = (eye + mouth) / 2
    np.testing.assert_allclose(ex["box"], [cx - side / 2, cy - side / 2, side, side], rtol=1e-5)


def test_image_bytes_are_the_original_jpeg(aligned):
  builder, v, root = aligned
  ds = builder.as_dataset(
    split="train", shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()}
  )
  stored = {ex["image/filename"].decode(): ex["image"] for ex in tfds.as_numpy(ds)}
  name = v["names"][0]
  with open(os.path.join(root, "img_align_celeba", name), "rb") as f:
    assert stored[name] == f.read()  # no re-encoding


def test_in_the_wild_drive_layout(tmp_path):
  v = fx.write_celeba(tmp_path / "raw", n=3, layout="drive")
  builder = _build(tmp_path / "raw", tmp_path / "data", "in_the_wild")
  ex = examples_by_filename(builder, "train")[v["names"][0]]
  np.testing.assert_array_equal(ex["box"], v["boxes"][0].astype(np.float32))
  np.testing.assert_array_equal(ex["landmarks5"], v["wild"][0].astype(np.float32))
  assert ex["image"].shape == fx.WILD_HW + (3,)
  meta = json.loads((tmp_path / "data/celeba/in_the_wild/1.0.0/metadata.json").read_text())
  assert meta["attribute_names"][20] == "Male"
  assert meta["train/num_bad_images"] == 0 and meta["train/num_images"] == 1


def test_corrupt_image_skipped_and_listed_then_too_many_fail(tmp_path):
  names = [f"{i + 1:06d}.jpg" for i in range(303)]  # 101 per split
  fx.write_celeba(tmp_path / "raw", n=303, corrupt=(names[3],))
  builder = _build(tmp_path / "raw", tmp_path / "data")
  assert builder.info.splits["train"].num_examples == 100
  assert names[3] not in examples_by_filename(builder, "train")
  meta = builder.info.metadata
  assert meta["train/num_bad_images"] == 1 and meta["train/bad_images"] == [names[3]]
  assert meta["train/num_images"] == 101 and meta["test/num_bad_images"] == 0
  fx.write_celeba(tmp_path / "raw2", n=303, corrupt=(names[0], names[3]))
  with pytest.raises(manual.TooManyBadImages, match="2 of 101"):
    _build(tmp_path / "raw2", tmp_path / "data2")
  assert not os.path.exists(tmp_path / "data2/celeba/aligned/1.0.0")  # nothing half-built


def test_missing_file_names_file_and_page(tmp_path):
  fx.write_celeba(tmp_path, n=3)
  os.remove(tmp_path / "identity_CelebA.txt")
  with pytest.raises(manual.ManualFileMissing) as err:
    _build(tmp_path, tmp_path / "data")
  assert "identity_CelebA.txt" in str(err.value) and celeba.URL in str(err.value)
  assert "Anno/identity_CelebA.txt" in str(err.value)


@pytest.mark.parametrize(
  "fname,line,text,message",
  [
    ("list_attr_celeba.txt", 4, "000002.jpg " + " ".join(["0"] * 40), "expected -1 or 1"),
    ("list_attr_celeba.txt", 3, "000001.jpg  1 -1", "expected 41 columns"),
    ("list_landmarks_align_celeba.txt", 5, "000003.jpg 1 2 3 4 5 6 7 8 9 x", "'x' is not"),
    (
      "list_landmarks_align_celeba.txt",
      3,
      "000001.jpg 12 18 27 18 20 26 14 34 26 900",
      "outside the 40x48 image",
    ),
    ("list_eval_partition.txt", 2, "000002.jpg 3", "unknown partition code 3"),
    ("list_attr_celeba.txt", 1, "7", "announces 7 images but 3 rows"),
    ("list_attr_celeba.txt", 2, " ".join(["Smiling"] * 40), "expected the 40 CelebA attribute"),
    ("list_landmarks_align_celeba.txt", 2, "x y", "expected the header"),
    ("identity_CelebA.txt", 3, "000003.jpg 12 13", "expected 2 columns"),
  ],
)
def test_contradictory_rows_name_file_and_line(tmp_path, fname, line, text, message):
  fx.write_celeba(tmp_path, n=3)
  fx.replace_line(tmp_path / fname, line, text)
  with pytest.raises(manual.AnnotationError, match=message) as err:
    _build(tmp_path, tmp_path / "data")
  assert err.value.path.endswith(fname) and err.value.line == line


def test_image_missing_from_a_list_is_reported(tmp_path):
  fx.write_celeba(tmp_path, n=3)
  fx.replace_line(tmp_path / "identity_CelebA.txt", 2, "000009.jpg 5")
  with pytest.raises(manual.AnnotationError, match="no row for image '000002.jpg'"):
    _build(tmp_path, tmp_path / "data")


def test_box_from_five_frontal_matches_calibration():
  pts = np.array([[40.0, 50], [60, 50], [50, 60], [42, 72], [58, 72]])
  box = face_crops.box_from_five(pts)
  # eye distance 20 -> 52; eye-mouth 22 -> 50.6: side 52, centre (50, 61).
  np.testing.assert_allclose(box, [24, 35, 52, 52], rtol=1e-6)
