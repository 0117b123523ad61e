"""Tests of the `aflw` TFDS builder on a generated AFLW distribution (real SQLite + JPEGs)."""

import os
import sqlite3

import fixtures_aflw as fx
import numpy as np
import pytest
import tensorflow_datasets as tfds
from tfds_testing import build, examples_by_filename

from hyperface_jax.data.builders import aflw, aflw_split, manual


def _build(manual_dir, data_dir, test_ids=None, monkeypatch=None):
  if monkeypatch is not None:
    monkeypatch.setattr(aflw_split, "read_face_ids", lambda path=None: list(test_ids or []))
  return build("aflw", manual_dir, data_dir)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  images = fx.standard_images()
  images.append(fx.FixtureImage("0/image09999.jpg", [fx.FixtureFace(40600)], corrupt=True))
  images += fx.many_images(100, size=(32, 32), faces_per_image=1)  # 1 bad of 104 images
  root = tmp_path_factory.mktemp("manual") / "aflw" / "data"
  fx.write_aflw(str(root), images)
  mp = pytest.MonkeyPatch()
  try:
    builder = _build(root.parent.parent, tmp_path_factory.mktemp("data"), [40001], mp)
  finally:
    mp.undo()
  return builder


def test_values_visibility_and_codes(built):
  train = examples_by_filename(built, "train")
  ex = train["0/image00002.jpg"]
  assert ex["image"].shape == (48, 64, 3)
  faces = ex["faces"]
  np.testing.assert_array_equal(faces["face_id"], [39341, 39342])
  np.testing.assert_allclose(faces["box"][0], [5, 6, 30, 30])
  np.testing.assert_allclose(faces["pose"][1], [-0.02, 0.3, -1.2], rtol=1e-6)  # radians as stored
  np.testing.assert_array_equal(faces["gender"], [0, 1])  # 'm' -> 0, 'f' -> 1
  vis = faces["visibility"][0]
  np.testing.assert_array_equal(np.nonzero(vis)[0], [0, 7, 10, 14, 20])  # feature_id - 1
  np.testing.assert_allclose(faces["landmarks"][0, 0], [7.5, 9.25])
  np.testing.assert_allclose(faces["landmarks"][0, 20], [19.0, 33.0])
  np.testing.assert_array_equal(faces["landmarks"][0, 1], [0, 0])  # not annotated
  np.testing.assert_allclose(faces["landmarks"][1, 12], [53.0, 15.0])
  assert faces["visibility"][1].sum() == 21
  for key in ("box", "landmarks", "visibility", "pose", "gender"):
    np.testing.assert_array_equal(faces["valid"][key], [True, True])


def test_missing_rows_become_masks(built):
  faces = examples_by_filename(built, "train")["3/image00035.jpg"]["faces"]
  assert not faces["valid"]["pose"][0] and not faces["valid"]["gender"][0]
  assert faces["gender"][0] == -1
  assert not faces["valid"]["landmarks"][0]
  assert faces["valid"]["visibility"][0] and faces["visibility"][0].sum() == 0


def test_test_split_and_box_outside_image_kept(built):
  test = examples_by_filename(built, "test")
  assert sorted(test) == ["2/image13457.jpg"]
  face = test["2/image13457.jpg"]["faces"]
  np.testing.assert_allclose(face["box"][0], [-12, 20, 70, 70])  # kept as stored
  np.testing.assert_array_equal(np.nonzero(face["visibility"][0])[0], [12, 17])
  np.testing.assert_allclose(face["landmarks"][0, 17], [20.5, 40.25])
  assert "2/image13457.jpg" not in examples_by_filename(built, "train")


def test_corrupt_image_skipped_and_listed(built):
  assert built.info.splits["train"].num_examples == 102  # 104 images - 1 test - 1 corrupt
  meta = built.info.metadata
  assert meta["train/num_bad_images"] == 1
  assert meta["test_faces_source"].startswith("repository list")
  assert meta["test_faces_missing"] == []
  assert meta["feature_name_mismatches"] == []
  assert meta["train/bad_images"] == [os.path.join("0", "image09999.jpg")]
  reloaded = tfds.builder("aflw", data_dir=built.data_dir_root)
  assert reloaded.info.metadata["train/bad_images"] == [os.path.join("0", "image09999.jpg")]


def test_scene_store_loads_aflw(built):
  from hyperface_jax.data.scene_store import SceneStore

  store = SceneStore.from_tfds("aflw", "train", data_dir=built.data_dir_root)
  assert len(store) == 102
  i = store.filenames.index("0/image00002.jpg")
  np.testing.assert_allclose(store.scene_faces(i)["box"][1], [40, 2, 20, 20])


def _write(tmp_path, images, extra_sql=()):
  root = tmp_path / "m"
  fx.write_aflw(str(root), images, extra_sql)
  return root


@pytest.mark.parametrize(
  "extra_sql, table, rowid, words",
  [
    (["INSERT INTO FeatureCoords VALUES (39341, 22, 1.0, 2.0)"], "FeatureCoords", 29, "22"),
    (["UPDATE FaceRect SET w = -4 WHERE face_id = 39342"], "FaceRect", 2, "w=-4"),
    (["UPDATE FaceMetaData SET sex = 'x' WHERE face_id = 40001"], "FaceMetaData", 3, "'x'"),
    (["INSERT INTO FacePose VALUES (39341, 0.5, 0.5, 0.5, 1)"], "FacePose", 4, "contradictory"),
  ],
)
def test_bad_rows_name_table_and_row(tmp_path, extra_sql, table, rowid, words):
  sqlite_path = str(_write(tmp_path, fx.standard_images(), extra_sql) / "aflw.sqlite")
  with aflw_split.connect_readonly(sqlite_path) as conn:
    with pytest.raises(manual.AnnotationError) as err:
      list(aflw.iterate_images(conn, sqlite_path))
  assert err.value.path == f"{sqlite_path}:{table}" and err.value.line == rowid
  assert words in str(err.value)


def test_missing_files_name_file_and_page(tmp_path):
  with pytest.raises(manual.ManualFileMissing) as err:
    _build(tmp_path, tmp_path / "d")
  assert "aflw.sqlite" in str(err.value) and aflw.URL in str(err.value)
  root = _write(tmp_path, fx.standard_images()[:1])
  import shutil

  shutil.rmtree(root / "flickr")
  with pytest.raises(manual.ManualFileMissing) as err:
    _build(root, tmp_path / "d2")
  assert "flickr" in str(err.value)


def test_missing_column_reported(tmp_path):
  root = _write(tmp_path, fx.standard_images()[:1])
  conn = sqlite3.connect(str(root / "aflw.sqlite"))
  conn.executescript("DROP TABLE FacePose; CREATE TABLE FacePose (face_id INTEGER, roll FLOAT);")
  conn.close()
  with aflw_split.connect_readonly(str(root / "aflw.sqlite")) as c:
    with pytest.raises(manual.AnnotationError, match="FacePose.*'pitch'"):
      aflw.check_schema(c, str(root / "aflw.sqlite"))


def test_split_rule_and_list_file(tmp_path):
  images = {f"{i}.jpg": [10 * i, 10 * i + 1][: 1 + i % 2] for i in range(50)}
  ids = aflw_split.select_test_faces(images, seed=3, num_faces=20)
  # Independent route: replay the documented rule by hand.
  paths = sorted(images)
  expect, n = [], 0
  for i in np.random.default_rng(3).permutation(50):
    if n >= 20:
      break
    expect += images[paths[i]]
    n += len(images[paths[i]])
  assert ids == sorted(expect) and 20 <= len(ids) <= 21
  path = str(tmp_path / "list.txt")
  aflw_split.write_face_ids(ids, path)
  assert aflw_split.read_face_ids(path) == ids
  shipped = aflw_split.read_face_ids(aflw_split.TEST_FACES_FILE)  # empty until committed
  assert shipped == sorted(set(shipped)) and (not shipped or len(shipped) >= 1000)


def test_prepare_cli_passes_manual_dir(tmp_path, monkeypatch, capsys):
  from hyperface_jax.data import prepare

  root = _write(tmp_path, fx.standard_images())
  monkeypatch.setattr(aflw_split, "read_face_ids", lambda path=None: [40500])
  argv = ["prepare", "aflw", f"--data_dir={tmp_path / 'd'}", f"--manual_dir={root}"]
  assert prepare.main(argv) == 0
  out = capsys.readouterr().out
  assert "'train': 2" in out and "'test': 1" in out
  assert prepare.main(argv) == 0  # said, not skipped silently
  assert capsys.readouterr().out.startswith("already prepared, nothing built: aflw (default)")
  assert (
    prepare.main(["prepare", "aflw", f"--data_dir={tmp_path / 'd2'}", f"--manual_dir={tmp_path}"])
    == 2
  )  # no aflw.sqlite: clean error
  assert "aflw.sqlite" in capsys.readouterr().err


def test_aflw_store_feeds_training_batches(built):
  from hyperface_jax.data import pipeline

  store = pipeline.SceneStore.from_tfds("aflw", "train", data_dir=built.data_dir_root)
  batch = pipeline.train_batch(
    store, seed=0, step=0, batch_size=8, image_size=32, regions_per_scene=2
  )
  assert batch["image"].shape == (8, 32, 32, 3)
  assert np.isfinite(batch["landmarks"]).all() and batch["detection"].shape[0] == 8


def test_feature_name_check(tmp_path):
  root = _write(
    tmp_path,
    fx.standard_images()[:1],
    [
      "UPDATE FeatureCoordTypes SET descr = 'Left Brow Left Corner' WHERE feature_id = 1",
      "UPDATE FeatureCoordTypes SET descr = 'RightEar' WHERE feature_id = 13",
    ],
  )
  with aflw_split.connect_readonly(str(root / "aflw.sqlite")) as conn:
    assert aflw.feature_name_mismatches(conn) == ["feature_id 13: 'RightEar' (expected 'LeftEar')"]


def test_listed_ids_missing_from_the_users_copy(tmp_path, monkeypatch):
  root = _write(tmp_path, fx.standard_images())
  b = _build(root, tmp_path / "d", [40001, 99999], monkeypatch)
  assert b.info.metadata["test_faces_missing"] == [99999]
  assert list(examples_by_filename(b, "test")) == ["2/image13457.jpg"]
  assert b.info.splits["train"].num_examples == 2


def test_subset_smaller_than_the_test_rule_says_what_to_do(tmp_path, monkeypatch, capsys):
  """3 images / 4 faces: the 1000-face test rule would leave no train image."""
  from hyperface_jax.data import inputs, prepare

  root = _write(tmp_path, fx.standard_images())
  monkeypatch.setattr(aflw_split, "read_face_ids", lambda path=None: [])  # the rule applies
  with pytest.raises(aflw.SplitTooSmall) as err:
    build("aflw", root, tmp_path / "d")
  message = str(err.value)
  assert "has 4 faces in 3 images" in message
  assert ">= 1000 test faces, which leaves 0 images for the train split" in message
  assert "--test_faces=1" in message and "builder_config" in message
  monkeypatch.setattr(aflw_split, "read_face_ids", lambda path=None: [123456789])
  with pytest.raises(aflw.SplitTooSmall, match="none of the test faces listed"):
    build("aflw", root, tmp_path / "d2")
  # The config option: the same rule with a 1-face test split builds both splits (and
  # ignores the repository list, saying so in the metadata).
  config = aflw.AflwConfig.make(test_faces=1)
  assert config.name == "test1" and aflw.AflwConfig.make().name == "default"
  assert inputs.builder_kwargs(dict(name="aflw", builder_config=dict(test_faces=1))) == {
    "config": config
  }
  argv = ["prepare", "aflw", f"--data_dir={tmp_path / 'd3'}", f"--manual_dir={root}"]
  assert prepare.main([*argv, "--test_faces=1"]) == 0
  assert "aflw (test1)" in capsys.readouterr().out
  builder = tfds.builder("aflw", data_dir=str(tmp_path / "d3"), config=config)
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"test": 1, "train": 2}
  assert builder.info.metadata["test_faces_source"].startswith("aflw_split rule")
  assert builder.info.metadata["test_faces_rule_size"] == 1
  with pytest.raises(ValueError, match="test_faces must be >= 1"):
    aflw.AflwConfig.make(test_faces=0)
