"""Tests of the shared face-crop pieces (face_crops.py) and of the registration of the
real face-crop / scene builders with TFDS and `prepare`."""

import os

import fixtures_mtfl as fxm
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from hyperface_jax.data import prepare
from hyperface_jax.data.builders import face_crops, manual


def test_inside_image_and_margin_check():
  pts = np.array([[0, 0], [99, 79], [-0.5, 10], [10, 80], [50, 40]], float)
  np.testing.assert_array_equal(face_crops.inside_image(pts, 100, 80), [1, 1, 0, 0, 1])
  face_crops.check_points(np.array([[-25.0, 0], [124, 99]]), 100, 80, "f.txt", 3)  # in margin
  with pytest.raises(manual.AnnotationError, match="f.txt:3: landmark 1"):
    face_crops.check_points(np.array([[0.0, 0], [124.5, 0]]), 100, 80, "f.txt", 3)


def test_crop_example_marks_only_given_labels_valid():
  ex = face_crops.crop_example(
    b"jpeg", "a.jpg", gender=1, landmarks5=np.ones((5, 2)), visibility5=np.ones(5)
  )
  assert ex["valid"]["gender"] and ex["valid"]["landmarks5"]
  assert not ex["valid"]["attributes"] and ex["smiling"] == -1 and ex["pose_class"] == -1
  with pytest.raises(ValueError, match="without visibility5"):
    face_crops.crop_example(b"", "a.jpg", landmarks5=np.ones((5, 2)))
  with pytest.raises(KeyError, match="unknown crop label 'age'"):
    face_crops.crop_example(b"", "a.jpg", age=3)


def test_encoded_reader_keeps_rgb_jpeg_bytes_converts_grey(tmp_path):
  rgb, grey = tmp_path / "rgb.jpg", tmp_path / "grey.jpg"
  Image.fromarray(np.full((6, 8, 3), 120, np.uint8)).save(rgb)
  Image.fromarray(np.full((6, 8), 200, np.uint8)).save(grey)
  reader = face_crops.EncodedImageReader("t", max_bad_fraction=0.5)
  data, hw = reader.read_encoded(rgb)
  assert data == rgb.read_bytes() and hw == (6, 8)
  arr, hw = reader.read_encoded(grey)
  assert arr.shape == (6, 8, 3) and hw == (6, 8) and abs(int(arr[0, 0, 2]) - 200) <= 1
  assert reader.read_encoded(tmp_path / "missing.jpg") is None
  assert reader.finish()["bad_images"] == [str(tmp_path / "missing.jpg")]


def test_crop_builders_share_one_feature_spec():
  specs = {
    name: repr(tfds.builder(name).info.features)
    for name in ("celeba/aligned", "celeba/in_the_wild", "mafl", "mtfl", "lfwa")
  }
  assert len(set(specs.values())) == 1, specs.keys()


def test_prepare_builds_mtfl_and_registers_all_builders(tmp_path):
  from hyperface_jax.data import builders  # noqa: F401  (the package import registers every builder)

  for name in ("celeba", "mafl", "mtfl", "lfwa", "expw", "social_relation"):
    assert tfds.builder_cls(name).__module__ == f"hyperface_jax.data.builders.{name}"
  fxm.write_mtfl(tmp_path / "raw")
  builder, _ = prepare.prepare("mtfl", str(tmp_path / "data"), str(tmp_path / "raw"))
  assert builder.info.splits["test"].num_examples == 2
  assert os.path.exists(tmp_path / "data/mtfl/1.0.0/metadata.json")
