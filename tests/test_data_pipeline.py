"""Tests of cropping, flipping, normalization and the pure-function batch pipeline."""

import numpy as np
import pytest
from scene_fixtures import KEYS, make_faces  # noqa: F401

from hyperface_jax.data import boxes, pipeline, preprocess, sampling, schemes

CONTRACT = (
  "image",
  "detection",
  "detection_mask",
  "landmarks",
  "visibility",
  "landmarks_mask",
  "visibility_mask",
  "pose",
  "pose_mask",
  "gender",
  "gender_mask",
  "example_mask",
  "region",
  "face_box",
  "iou",
)


def make_scene(seed, hw, face_boxes):
  rng = np.random.default_rng(seed)
  return {
    "image": rng.integers(0, 256, hw + (3,), dtype=np.uint8),
    "image/filename": f"s{seed}.png".encode(),
    "faces": make_faces(face_boxes, gender=[seed % 2] * len(face_boxes), seed=seed),
  }


@pytest.fixture(scope="module")
def store():
  return pipeline.SceneStore.from_examples(
    [
      make_scene(0, (120, 160), [[30, 20, 50, 50], [100, 40, 40, 40]]),
      make_scene(1, (100, 90), [[20, 30, 40, 40]]),
      make_scene(2, (80, 80), []),
    ]
  )


def gradient_image(h=64, w=64):
  y, x = np.mgrid[:h, :w]
  return np.stack([2 * x, 3 * y, np.full_like(x, 50)], axis=-1).astype(np.uint8)


def test_crop_and_resize_gradient():
  img = gradient_image()
  # Output pixel j samples the scene at x + (j + 0.5) * w / S: 11 + 2j, 21 + 2i.
  crop = preprocess.crop_and_resize(img, [[10, 20, 16, 16]], 8)[0].astype(int)
  j = np.arange(8)
  np.testing.assert_array_equal(crop[0, :, 0], 2 * (11 + 2 * j))
  np.testing.assert_array_equal(crop[:, 0, 1], 3 * (21 + 2 * j))
  assert np.all(crop[..., 2] == 50)
  # Sub-pixel position: bilinear on a linear ramp gives 2 * (10.75 + j), +-1 for rounding.
  crop = preprocess.crop_and_resize(img, [[10.25, 20, 8, 8]], 8)[0].astype(float)
  np.testing.assert_allclose(crop[3, :, 0], 2 * (10.75 + j), atol=1)
  # Partly outside: x = -7.5 + j is padded with the fill for j <= 6.
  crop = preprocess.crop_and_resize(img, [[-8, 0, 16, 16]], 16, fill=(7, 8, 9))[0].astype(int)
  assert np.all(crop[:, :7] == [7, 8, 9])
  np.testing.assert_allclose(crop[4, 8:, 0], 2 * (np.arange(8, 16) - 7.5), atol=1)


def test_flip_consistency_with_mirrored_scene():
  scene = make_scene(3, (60, 80), [[20, 10, 32, 32]])
  img, faces = scene["image"], scene["faces"]
  w_img = img.shape[1]
  # Regions whose sampling positions are exact in OpenCV's 1/32 px fixed point.
  regions = np.array([[20, 10, 32, 32], [12.5, 4, 48, 48], [-8, 0, 32, 32]], np.float32)
  crops = preprocess.crop_and_resize(img, regions, 16)
  labels = sampling.label_regions(regions, faces)
  fc, flab = preprocess.flip_batch(crops, labels)
  # The mirrored scene: image, boxes, landmarks (x -> W - 1 - x + permutation), pose.
  mfaces = dict(
    faces,
    box=boxes.flip_boxes(faces["box"], w_img).astype(np.float32),
    landmarks=schemes.flip_landmarks(faces["landmarks"], w_img).astype(np.float32),
    visibility=faces["visibility"][:, schemes.AFLW21_FLIP],
    pose=faces["pose"] * np.array([-1, 1, -1], np.float32),
  )
  mregions = boxes.flip_boxes(regions, w_img)
  mcrops = preprocess.crop_and_resize(np.ascontiguousarray(img[:, ::-1]), mregions, 16)
  mlab = sampling.label_regions(mregions, mfaces)
  np.testing.assert_array_equal(fc, mcrops)
  for k in ("landmarks", "visibility", "pose", "landmarks_mask", "detection", "iou"):
    np.testing.assert_allclose(flab[k], mlab[k], atol=1e-5, err_msg=k)
  # Mirroring inside crop_and_resize gives the same pixels; double flip = identity.
  np.testing.assert_array_equal(
    preprocess.crop_and_resize(img, regions, 16, flip=[True, True, True]), fc
  )
  c2, l2 = preprocess.flip_batch(fc, flab)
  np.testing.assert_array_equal(c2, crops)
  for k in labels:
    np.testing.assert_array_equal(l2[k], labels[k])
  # Pose: roll and yaw negated, pitch kept (docs/papers.md section 1.13).
  np.testing.assert_allclose(flab["pose"][0], labels["pose"][0] * [-1, 1, -1])


def test_normalize_modes():
  px = np.array([[[0, 128, 255]]], np.uint8)
  np.testing.assert_allclose(preprocess.normalize(px), [[[-0.5, 128 / 255 - 0.5, 0.5]]], atol=1e-6)
  # torchvision: RGB / 255, minus (0.485, 0.456, 0.406), over (0.229, 0.224, 0.225), by hand:
  # R (0 - 0.485) / 0.229, G (0.50196078 - 0.456) / 0.224, B (1 - 0.406) / 0.225.
  np.testing.assert_allclose(
    preprocess.normalize(px, "imagenet"), [[[-2.11790393, 0.20518207, 2.64]]], atol=1e-5
  )
  # BVLC Caffe: channels reversed to B, G, R = 255, 128, 0, kept in 0-255, minus the
  # ILSVRC-2012 per-channel means 104.00698793, 116.66876762, 122.67891434.
  np.testing.assert_allclose(
    preprocess.normalize(px, "caffe_bgr"), [[[150.99301207, 11.33123238, -122.67891434]]], atol=1e-4
  )
  grey = preprocess.normalize(np.full((2, 1, 1, 3), 117, np.uint8), "caffe_bgr")
  np.testing.assert_allclose(grey[0, 0, 0], [12.99301207, 0.33123238, -5.67891434], atol=1e-4)
  for mode in preprocess.NORMALIZE_MODES:
    assert preprocess.normalize(px, mode).dtype == np.float32, mode
  with pytest.raises(ValueError, match="minus_half"):
    preprocess.normalize(px, "bgr")


def test_train_batch_contract_and_determinism(store):
  kw = dict(batch_size=16, image_size=24, regions_per_scene=4, flip_prob=0.5)
  a = pipeline.train_batch(store, seed=3, step=7, return_uint8=True, **kw)
  b = pipeline.train_batch(store, seed=3, step=7, return_uint8=True, **kw)
  c = pipeline.train_batch(store, seed=3, step=8, **kw)
  assert set(CONTRACT) <= set(a)
  assert a["image"].shape == (16, 24, 24, 3) and a["image"].dtype == np.float32
  assert a["detection"].dtype == np.int32 and a["gender"].dtype == np.int32
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  assert not np.array_equal(a["image"], c["image"])
  np.testing.assert_allclose(a["image"], a["image_uint8"] / 255 - 0.5, atol=1e-6)
  np.testing.assert_array_equal(a["example_mask"], 1)
  # Labels agree with a re-labelling of the recorded regions (flipped ones mirrored).
  for i in range(16):
    s = int(a["scene_index"][i])
    lab = sampling.label_regions(a["region"][i : i + 1], store.scene_faces(s))
    if a["flipped"][i]:
      lab = preprocess.flip_labels(lab)
    np.testing.assert_allclose(a["landmarks"][i], lab["landmarks"][0], atol=1e-5)
    np.testing.assert_allclose(a["pose"][i], lab["pose"][0], atol=1e-6)
    crop = preprocess.crop_and_resize(
      store.images[s], a["region"][i : i + 1], 24, flip=a["flipped"][i : i + 1]
    )
    np.testing.assert_array_equal(a["image_uint8"][i], crop[0])


def test_process_shards(store):
  kw = dict(seed=0, step=5, batch_size=12, image_size=16, regions_per_scene=4)
  full = pipeline.train_batch(store, **kw)
  parts = [pipeline.train_batch(store, process_index=p, process_count=2, **kw) for p in (0, 1)]
  assert parts[0]["image"].shape[0] == parts[1]["image"].shape[0] == 6
  assert not np.array_equal(parts[0]["image"], parts[1]["image"])
  # The global batch does not depend on the host count (slot 1 straddles both hosts).
  for k in full:
    np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), full[k], err_msg=k)
  with pytest.raises(ValueError, match="divisible by process_count"):
    pipeline.train_batch(store, process_count=5, **kw)


def test_positive_fraction(store):
  ious, scene = [], []
  for step in range(20):
    b = pipeline.train_batch(
      store,
      seed=1,
      step=step,
      batch_size=16,
      image_size=8,
      regions_per_scene=8,
      positive_fraction=0.5,
    )
    ious.append(b["iou"])
    scene.append(b["scene_index"])
  ious, scene = np.concatenate(ious), np.concatenate(scene)
  with_faces = scene < 2
  assert abs(np.mean(ious[with_faces] > 0.5) - 0.5) < 0.02
  assert np.all(ious[~with_faces] == 0)


def test_fractional_positive_share_is_exact_on_average(store):
  """2 regions per scene at a 0.75 face share: 1 or 2 faces per scene, 3/4 overall."""
  ious, scene = [], []
  for step in range(40):
    b = pipeline.train_batch(
      store,
      seed=2,
      step=step,
      batch_size=16,
      image_size=8,
      regions_per_scene=2,
      positive_fraction=0.75,
    )
    ious.append(b["iou"])
    scene.append(b["scene_index"])
  ious, scene = np.concatenate(ious), np.concatenate(scene)
  with_faces = scene < 2
  per_scene = (ious[with_faces] > 0.5).reshape(-1, 2).sum(1)
  assert set(per_scene.tolist()) == {1, 2}
  assert abs(np.mean(ious[with_faces] > 0.5) - 0.75) < 0.06


def test_eval_regions_and_padding(store):
  ev = pipeline.eval_regions(store, seed=0, regions_per_scene=5, image_size=16, return_uint8=True)
  again = pipeline.eval_regions(store, seed=0, regions_per_scene=5, image_size=16, normalize=None)
  assert ev["image"].shape == (15, 16, 16, 3)
  assert "image" not in again and "flipped" not in ev
  np.testing.assert_array_equal(ev["image_uint8"], again["image_uint8"])
  np.testing.assert_array_equal(ev["scene_index"], np.repeat([0, 1, 2], 5))
  batches = list(pipeline.iterate_batches(ev, 4))
  assert len(batches) == 4 and all(b["image"].shape[0] == 4 for b in batches)
  assert sum(b["example_mask"].sum() for b in batches) == 15
  last = batches[-1]
  np.testing.assert_array_equal(last["example_mask"], [1, 1, 1, 0])
  for k in ("detection_mask", "landmarks_mask", "visibility_mask", "pose_mask", "gender_mask"):
    assert last[k][3] == 0
  np.testing.assert_array_equal(np.concatenate([b["iou"] for b in batches])[:15], ev["iou"])
  # Normalizing per batch from uint8 equals the precomputed images.
  lazy = list(pipeline.iterate_batches(again, 4, normalize="minus_half"))
  np.testing.assert_allclose(lazy[1]["image"], batches[1]["image"], atol=1e-6)
  # Two hosts: each gets 2 rows of every global batch of 4.
  host1 = list(pipeline.iterate_batches(ev, 4, process_index=1, process_count=2))
  np.testing.assert_array_equal(host1[0]["iou"], ev["iou"][2:4])
  np.testing.assert_array_equal(host1[-1]["example_mask"], [1, 0])  # rows 14 and 15


def test_store_layout_and_bad_inputs(store):
  assert len(store) == 3 and store.filenames[1] == "s1.png"
  np.testing.assert_array_equal(store.num_faces, [2, 1, 0])
  assert store.faces["landmarks"].shape == (3, 2, 21, 2)
  np.testing.assert_array_equal(store.faces["valid"]["pose"], [[1, 1], [1, 0], [0, 0]])
  assert store.scene_faces(2)["box"].shape == (0, 4)
  with pytest.raises(ValueError, match="empty"):
    pipeline.SceneStore.from_examples([])
  bad = make_scene(0, (10, 10), [[0, 0, 5, 5]])
  del bad["faces"]["visibility"]
  with pytest.raises(ValueError, match=r"examples\[0\]/faces.*'visibility'.*\[1, 21\]"):
    pipeline.SceneStore.from_examples([bad])
  bad = make_scene(0, (10, 10), [])
  bad["image"] = bad["image"].astype(np.float32)
  with pytest.raises(ValueError, match=r"image must be uint8 \[H, W, 3\]"):
    pipeline.SceneStore.from_examples([bad])
  with pytest.raises(ValueError, match="'faces'"):
    pipeline.SceneStore.from_examples([{"image": np.zeros((4, 4, 3), np.uint8)}])


def test_from_tfds_roundtrip_and_missing_split(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (heavy; here only)

  scenes = [make_scene(0, (20, 30), [[2, 3, 10, 10]]), make_scene(1, (16, 16), [])]

  class TinyScenes(tfds.core.GeneratorBasedBuilder):
    """Two hand-made scenes in the scene schema (core fields only)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      f = tfds.features
      faces = f.Sequence(
        {
          "box": f.Tensor(shape=(4,), dtype=np.float32),
          "landmarks": f.Tensor(shape=(21, 2), dtype=np.float32),
          "visibility": f.Tensor(shape=(21,), dtype=np.float32),
          "pose": f.Tensor(shape=(3,), dtype=np.float32),
          "gender": f.Tensor(shape=(), dtype=np.int64),
          "valid": {k: f.Tensor(shape=(), dtype=np.bool_) for k in KEYS},
        }
      )
      return tfds.core.DatasetInfo(
        builder=self,
        features=f.FeaturesDict(
          {"image": f.Image(shape=(None, None, 3)), "image/filename": f.Text(), "faces": faces}
        ),
      )

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      for i, s in enumerate(scenes):
        faces = {k: v for k, v in s["faces"].items() if k != "valid"}
        n = len(faces["box"])
        yield (
          i,
          {
            "image": s["image"],
            "image/filename": s["image/filename"].decode(),
            "faces": [
              dict(
                {k: v[j] for k, v in faces.items()},
                valid={k: bool(s["faces"]["valid"][k][j]) for k in KEYS},
              )
              for j in range(n)
            ],
          },
        )

  TinyScenes(data_dir=str(tmp_path)).download_and_prepare()
  store = pipeline.SceneStore.from_tfds("tiny_scenes", "train", str(tmp_path))
  assert len(store) == 2
  order = np.argsort(store.filenames)  # TFDS may reorder examples
  for i, s in zip(order, scenes, strict=True):
    np.testing.assert_array_equal(store.images[i], s["image"])
    np.testing.assert_allclose(store.scene_faces(i)["landmarks"], s["faces"]["landmarks"])
  assert len(pipeline.SceneStore.from_tfds("tiny_scenes", "train", str(tmp_path), 1)) == 1
  with pytest.raises(ValueError, match=r"no split 'test'.*train"):
    pipeline.SceneStore.from_tfds("tiny_scenes", "test", str(tmp_path))
