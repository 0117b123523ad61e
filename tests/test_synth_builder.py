"""Tests of the synth_faces / synth_face_crops TFDS builders and the prepare entry point."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from hyperface_jax.data import prepare, render
from hyperface_jax.data.builders import synth_faces as sf


def _build(name, data_dir, seed, size=64):
  builder, _ = prepare.prepare(
    name, str(data_dir), train_size=3, validation_size=1, test_size=2, seed=seed, image_size=size
  )
  return builder


def _load(builder, split):
  return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))


def _flat(tree, prefix=""):
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flat(v, f"{prefix}/{k}"))
    return out
  return {prefix: np.asarray(tree)}


def _by_name(examples):
  return {ex["image/filename"]: ex for ex in examples}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  d1, d2, d3 = (tmp_path_factory.mktemp(n) for n in ("a", "b", "c"))
  return _build("synth_faces", d1, 5), _build("synth_faces", d2, 5), _build("synth_faces", d3, 6)


def test_same_seed_byte_identical_different_seed_differs(built):
  b1, b2, b3 = built
  assert {k: v.num_examples for k, v in b1.info.splits.items()} == {
    "train": 3,
    "validation": 1,
    "test": 2,
  }
  for split in ("train", "test"):
    e1, e2, e3 = (_by_name(_load(b, split)) for b in built)
    assert set(e1) == set(e2) == set(e3)
    for name in e1:
      f1, f2 = _flat(e1[name]), _flat(e2[name])
      assert f1.keys() == f2.keys()
      for k in f1:
        assert f1[k].tobytes() == f2[k].tobytes(), k
      assert e1[name]["image"].tobytes() != e3[name]["image"].tobytes()


def test_examples_are_pure_function_of_seed_split_index(built):
  ex = _by_name(_load(built[0], "test"))[b"test/000001.png"]
  ref = render.render_scene(
    np.random.default_rng([5, sf.SPLIT_IDS["test"], 1]), render.SceneConfig(image_size=64)
  )
  np.testing.assert_array_equal(ex["image"], ref["image"])
  np.testing.assert_array_equal(ex["faces"]["landmarks"], ref["faces"]["landmarks"])
  np.testing.assert_array_equal(ex["faces"]["valid"]["pose"], ref["faces"]["valid"]["pose"])
  np.testing.assert_array_equal(ex["relations"]["traits"], ref["relations"]["traits"])
  assert ex["faces"]["gender"].dtype == np.int64 and ex["faces"]["box"].dtype == np.float32


def test_parallel_rendering_equals_serial():
  keys = list(sf._face_features().keys())
  jobs = [(3, "train", i, 48, keys) for i in range(6)]
  serial = list(map(sf._render_scene_example, jobs))
  parallel = list(sf._parallel(sf._render_scene_example, jobs, min_jobs=0))
  assert [i for i, _ in parallel] == list(range(6))
  for (_, a), (_, b) in zip(serial, parallel, strict=False):
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
      assert fa[k].tobytes() == fb[k].tobytes(), k


def test_crop_builder(tmp_path):
  b = _build("synth_face_crops", tmp_path, 2, size=40)
  ex = _load(b, "train")
  assert len(ex) == 3 and ex[0]["image"].shape == (40, 40, 3)
  ref = render.render_face_crop(np.random.default_rng([2, 0, 0]), render.CropConfig(40))
  first = [e for e in ex if e["image"].tobytes() == ref["image"].tobytes()]
  assert len(first) == 1
  np.testing.assert_array_equal(first[0]["landmarks5"], ref["landmarks5"])
  assert first[0]["landmarks68"].shape == (68, 2)


def test_prepare_unknown_name_lists_registered(tmp_path, capsys):
  assert prepare.main(["prepare", "no_such_set", f"--data_dir={tmp_path}"]) == 2
  err = capsys.readouterr().err
  assert "synth_faces" in err and "synth_face_crops" in err
  with pytest.raises(ValueError, match="train_size"):
    sf.SynthFacesConfig.make(train_size=-1)


def test_prepare_cli_flags_and_already_prepared(tmp_path, capsys):
  """absl flags, NAME positional; a second run says the dataset exists instead of skipping
  silently; flag combinations that cannot apply are errors naming the flag."""
  sizes = ["--train_size=2", "--validation_size=1", "--test_size=1", "--image_size=64"]
  argv = ["prepare", "synth_faces", f"--data_dir={tmp_path}", *sizes]
  assert prepare.main(argv) == 0
  out = capsys.readouterr().out
  assert "\nbuilt synth_faces (t2_v1_te1_s0_i64)" in out and "'train': 2" in out  # after TFDS's
  assert prepare.main(argv) == 0
  out = capsys.readouterr().out
  assert out.startswith("already prepared, nothing built: synth_faces") and "Delete" in out
  # Each call starts from the flag defaults: ["mtfl"] right after ["mtfl", "--train_size=3"]
  # fails on its manual directory, not on a leftover --train_size.
  cases = [
    (["synth_faces", f"--manual_dir={tmp_path}"], "drop --manual_dir"),
    (["mtfl", "--train_size=3"], "--train_size: not a config flag of 'mtfl'"),
    (["celeba/in_the_wild", "--test_faces=3"], "give either 'celeba/in_the_wild' or"),
    (["celeba/no_such_config"], "has no config 'no_such_config'"),
    (["mtfl"], "downloads/manual (no --manual_dir was given"),
    (["mtfl", f"--manual_dir={tmp_path / 'nowhere'}"], "nowhere does not exist"),
    ([], "expected exactly one dataset NAME"),
    (["synth_faces", "aflw"], "got ['synth_faces', 'aflw']"),
    (["synth_faces", "--no_such_flag=1"], "no_such_flag"),
  ]
  for args, words in cases:
    data_dir = [] if any(a.startswith("--data_dir") for a in args) else [f"--data_dir={tmp_path}"]
    assert prepare.main(["prepare", *args, *data_dir]) == 2, args
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err, (args, err)
  assert prepare.main(["prepare", "synth_faces"]) == 2  # --data_dir is required
  assert "--data_dir" in capsys.readouterr().err
