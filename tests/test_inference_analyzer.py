"""FaceAnalyzer (inference/analyzer.py) on a tiny smoke-config model initialised here."""

import importlib.util
import json
import math
import os

import jax
import numpy as np
import pytest

from hyperface_jax import checkpointing, sharding, train
from hyperface_jax.data import preprocess
from hyperface_jax.inference import analyzer, batched, box_refine
from hyperface_jax.inference import config as config_lib

_SMOKE = os.path.join(os.path.dirname(__file__), "..", "configs", "smoke.py")
_spec = importlib.util.spec_from_file_location("smoke_config", _SMOKE)
smoke_config = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smoke_config)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A training workdir (config.json + one orbax checkpoint) of the smoke model."""
  config = smoke_config.get_config()
  path = str(tmp_path_factory.mktemp("smoke_workdir"))
  mesh = sharding.make_mesh()
  _, _, _, _, init = train.build(config, mesh)
  state = jax.jit(init)(jax.random.PRNGKey(0))
  ckpt = checkpointing.Checkpointer(path)
  ckpt.save(3, state)
  ckpt.close()
  train._write_config(config, path)
  return path


@pytest.fixture(scope="module")
def face_analyzer(workdir):
  return analyzer.FaceAnalyzer.from_workdir(
    workdir,
    **{
      "batch_size": 16,
      "min_bucket": 8,
      "proposals.sliding_window.min_side": 24,
      "proposals.sliding_window.scale_step": 2.0,
      "proposals.sliding_window.stride_fraction": 0.5,
      # A random model scores ~0.5: low thresholds so that faces come out.
      "irp.score_threshold": 0.0,
      "nms.score_threshold": 0.0,
      "detection_threshold": 0.0,
    },
  )


def _images():
  rng = np.random.default_rng(0)
  return [
    rng.integers(0, 255, (60, 80, 3), np.uint8),
    rng.integers(0, 255, (90, 50, 3), np.uint8),
    rng.integers(0, 255, (48, 48, 3), np.uint8),
  ]


class _HalvesModel:
  """A fake model whose outputs depend on the mean of the crop's left half, L: the
  mirrored crop sees the right half, R, so flip averaging is checkable by hand."""

  def apply(self, variables, images, train):
    del variables, train
    left = images[:, :, : images.shape[2] // 2].mean(axis=(1, 2, 3))
    n = images.shape[0]
    landmarks = jax.numpy.zeros((n, 21, 2)).at[:, :, 0].set(left[:, None])
    landmarks = landmarks.at[:, 0, 1].set(1.0)  # marks point 0 (it moves under the flip)
    return {
      "detection": jax.numpy.stack([jax.numpy.zeros(n), left], 1),
      "gender": jax.numpy.stack([jax.numpy.zeros(n), -left], 1),
      "visibility": jax.numpy.zeros((n, 21)).at[:, 0].set(1.0),
      "landmarks": landmarks,
      "pose": jax.numpy.stack([left, left, left], 1),
    }


def test_flip_test_averages_with_the_mirrored_crop():
  from hyperface_jax.data import schemes

  image = np.zeros((40, 40, 3), np.uint8)
  image[:, 20:] = 255  # dark left half, bright right half
  net = batched.BatchedNetwork(
    _HalvesModel(), {}, input_size=20, normalize="minus_half", batch_size=4, flip_test=True
  )
  region = np.array([[-0.5, -0.5, 40, 40]])
  got = net([image], [region])[0]
  lo, hi = -0.5, 0.5  # normalized means of the left / right half ("minus_half")
  sig = lambda x: 1 / (1 + math.exp(-x))
  np.testing.assert_allclose(got["score"], 0.5 * (sig(lo) + sig(hi)), rtol=1e-5)
  np.testing.assert_allclose(got["p_female"], 0.5 * (sig(-lo) + sig(-hi)), rtol=1e-5)
  # pose (roll, pitch, yaw): roll and yaw negated in the mirror -> (L - R) / 2, (L + R) / 2.
  np.testing.assert_allclose(
    got["pose"][0], [(lo - hi) / 2, (lo + hi) / 2, (lo - hi) / 2], atol=1e-6
  )
  # Landmarks: x = (L - R) / 2 normalized -> px (x side 40, about the centre 19.5); point 0
  # keeps half of its y = 1 marker, its mirror partner gets the other half.
  partner = int(schemes.AFLW21_FLIP[0])
  np.testing.assert_allclose(got["landmarks"][0, :, 0], 19.5 + 40 * (lo - hi) / 2, atol=1e-4)
  assert got["landmarks"][0, 0, 1] == pytest.approx(19.5 + 40 * 0.5, abs=1e-4)
  assert got["landmarks"][0, partner, 1] == pytest.approx(19.5 + 40 * 0.5, abs=1e-4)
  np.testing.assert_allclose(got["visibility"][0, [0, partner]], [0.5, 0.5])
  net.flip_test = False
  np.testing.assert_allclose(net([image], [region])[0]["score"], sig(lo), rtol=1e-5)


def test_batched_network_equals_direct_model_apply(workdir):
  config = batched.load_workdir_config(workdir)
  model, variables, step = batched.load_variables(config, workdir)
  assert step == 3
  image = _images()[0]
  regions = np.array([[0, 0, 40, 40], [10.5, 5, 30, 30], [-5, -5, 70, 70]])
  want = model.apply(
    variables,
    preprocess.normalize(preprocess.crop_and_resize(image, regions, config.input_size)),
    train=False,
  )
  for bs in (2, 8):  # padding of the last batch must not change anything
    net = batched.BatchedNetwork(model, variables, input_size=config.input_size, batch_size=bs)
    got = net([image], [regions])[0]
    p_face = jax.nn.softmax(want["detection"], -1)[:, 1]
    np.testing.assert_allclose(got["score"], p_face, rtol=1e-5, atol=1e-6)
    margin = want["detection"][:, 1] - want["detection"][:, 0]  # the score's log-odds
    np.testing.assert_allclose(got["score_logit"], margin, rtol=1e-5, atol=1e-5)
    centre = regions[:, None, :2] + regions[:, None, 2:] / 2
    np.testing.assert_allclose(
      got["landmarks"],
      np.asarray(want["landmarks"]) * regions[:, None, 2:] + centre,
      rtol=1e-4,
      atol=1e-3,
    )
    np.testing.assert_allclose(got["pose"], want["pose"], rtol=1e-5, atol=1e-6)


def test_no_recompilation_across_image_sizes(face_analyzer):
  # batch_size 16, min_bucket 8: at most the two buckets 8 and 16 ever compile.
  assert batched.bucket_sizes(16, 8) == [8, 16]
  images = _images()
  net = face_analyzer.network
  for n in (5, 16):  # compiles both buckets (if no earlier test did)
    net(images[:1], [np.tile([[0.0, 0.0, 40.0, 40.0]], (n, 1))])
  assert net.traces == 2
  for call in (images, images[:1], images[1:], images[::-1]):  # all stages, all sizes
    face_analyzer(call)
  assert net.traces == 2
  assert set(analyzer.STAGES) <= set(face_analyzer.timings)
  assert face_analyzer.timings["total_cpu"] > 0
  assert face_analyzer.timings["total_cpu"] == pytest.approx(
    sum(face_analyzer.timings[f"{s}_cpu"] for s in analyzer.STAGES)
  )


def test_bucket_sizes_and_batch_plan_hand_worked():
  assert batched.bucket_sizes(256) == [8, 16, 24, 32, 64, 128, 256]
  assert batched.bucket_sizes(100, 8) == [8, 16, 24, 32, 64, 100]
  assert batched.bucket_sizes(32, 8) == [8, 16, 24, 32]
  assert batched.bucket_sizes(20, 4) == [4, 8, 12, 16, 20]
  assert batched.bucket_sizes(6, 8) == [6]
  assert batched.bucket_sizes(4, 8) == [4]
  assert batched.bucket_sizes(256, 256) == [256]  # the old single fixed batch
  assert batched.batch_plan(0, 256) == []
  assert batched.batch_plan(20, 256) == [(0, 20, 24)]
  assert batched.batch_plan(50, 32) == [(0, 32, 32), (32, 50, 24)]
  assert batched.batch_plan(5, 256) == [(0, 5, 8)]
  assert batched.batch_plan(300, 256) == [(0, 256, 256), (256, 300, 64)]
  assert batched.batch_plan(17, 16, 4) == [(0, 16, 16), (16, 17, 4)]
  assert batched.batch_plan(40, 256) == [(0, 40, 64)]
  with pytest.raises(ValueError, match="min_bucket"):
    batched.bucket_sizes(16, 0)


def test_bucket_padding_equals_the_unpadded_computation(workdir):
  config = batched.load_workdir_config(workdir)
  model, variables, _ = batched.load_variables(config, workdir)
  image = _images()[1]
  rng = np.random.default_rng(3)
  xy = rng.uniform(-10, 40, (11, 2))
  regions = np.concatenate([xy, np.repeat(rng.uniform(20, 50, (11, 1)), 2, 1)], 1)
  crops = preprocess.crop_and_resize(image, regions, config.input_size)
  net = batched.BatchedNetwork(model, variables, input_size=config.input_size, batch_size=256)
  for n, bucket in ((5, 8), (11, 16)):  # 5 crops run as a batch of 8, 11 as one of 16
    assert batched.batch_plan(n, 256) == [(0, n, bucket)]
    want = model.apply(variables, preprocess.normalize(crops[:n]), train=False)  # no padding
    got = net([image], [regions[:n]])[0]
    np.testing.assert_allclose(
      got["score"], jax.nn.softmax(want["detection"], -1)[:, 1], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(got["pose"], want["pose"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["visibility"], np.clip(want["visibility"], 0, 1), atol=1e-6)
  assert net.traces == 2  # buckets 8 and 16
  net([image], [regions[:7]])  # bucket 8 again: no new compilation
  assert net.traces == 2


def test_auto_proposals_use_the_runs_own_proposal_net(workdir, tmp_path):
  base = analyzer.config_lib.inference_config()
  assert base.proposals.name == "auto"
  # No proposal net anywhere: the sliding window, which needs only the HyperFace run.
  got = analyzer.resolve_proposals(base, workdir)
  assert got.proposals.name == "sliding_window" and got.proposals.learned.workdir == ""
  # A run with <workdir>/proposals/config.json (what `make demo` leaves): learned proposals.
  run = tmp_path / "run"
  (run / analyzer.PROPOSAL_SUBDIR).mkdir(parents=True)
  (run / analyzer.PROPOSAL_SUBDIR / "config.json").write_text("{}")
  got = analyzer.resolve_proposals(base, str(run))
  assert got.proposals.name == "learned"
  assert got.proposals.learned.workdir == str(run / analyzer.PROPOSAL_SUBDIR)
  # An explicit generator is kept, and an explicit proposal workdir is not replaced.
  explicit = analyzer.config_lib.with_overrides(
    base, {"proposals.name": "haar", "proposals.learned.workdir": "/elsewhere"}
  )
  got = analyzer.resolve_proposals(explicit, str(run))
  assert got.proposals.name == "haar" and got.proposals.learned.workdir == "/elsewhere"
  assert analyzer.resolve_proposals(base).proposals.name == "sliding_window"


def test_padded_equals_unpadded(face_analyzer):
  images = _images()
  faces = face_analyzer(images)
  padded = face_analyzer.padded(images)
  f = face_analyzer.config.max_faces
  assert padded["landmarks"].shape == (3, f, 21, 2) and padded["mask"].shape == (3, f)
  assert any(len(x) for x in faces)
  for i, per_image in enumerate(faces):
    assert padded["mask"][i].sum() == len(per_image)
    assert not padded["mask"][i, len(per_image) :].any()
    for j, face in enumerate(per_image):
      np.testing.assert_allclose(padded["box"][i, j], face.box, rtol=1e-6)
      np.testing.assert_allclose(padded["landmarks"][i, j], face.landmarks, rtol=1e-6)
      np.testing.assert_allclose(padded["pose"][i, j], face.pose, rtol=1e-6)
      assert padded["score"][i, j] == pytest.approx(face.score, rel=1e-6)
      assert padded["p_female"][i, j] == pytest.approx(face.p_female, rel=1e-6)
    assert np.all(padded["landmarks"][i, len(per_image) :] == 0)


def test_face_to_json_degrees_and_label():
  face = analyzer.Face(
    box=np.array([1, 2, 3, 4.0]),
    score=0.9,
    landmarks=np.arange(42.0).reshape(21, 2),
    visibility=np.linspace(0, 1, 21),
    pose=np.array([math.pi / 2, -math.pi / 6, 0.0]),
    p_female=0.25,
  )
  j = face.to_json()
  json.dumps(j)  # plain JSON types
  assert j["box"] == [1, 2, 3, 4] and j["landmarks"][1] == [2, 3]
  assert j["pose"]["roll"] == pytest.approx(90) and j["pose"]["pitch"] == pytest.approx(-30)
  assert j["gender"] == {"label": "male", "p_female": 0.25}
  assert len(j["visibility"]) == 21


def test_bad_inputs_and_settings(face_analyzer, workdir, tmp_path):
  with pytest.raises(ValueError, match="SEQUENCE"):
    face_analyzer(np.zeros((10, 10, 3), np.uint8))
  with pytest.raises(ValueError, match=r"images\[0\] must be uint8 RGB"):
    face_analyzer([np.zeros((10, 10), np.uint8)])
  with pytest.raises(KeyError, match="top_kk"):
    analyzer.FaceAnalyzer(face_analyzer.network, **{"nms.top_kk": 3})
  with pytest.raises(FileNotFoundError, match="config.json"):
    analyzer.FaceAnalyzer.from_workdir(str(tmp_path))
  assert os.path.isfile(os.path.join(workdir, "config.json"))


def test_bad_box_refine_setting_fails_when_the_analyzer_is_built(face_analyzer):
  with pytest.raises(ValueError, match="box_refine.windows"):
    analyzer.FaceAnalyzer(face_analyzer.network, **{"box_refine.windows": 4})
  # Off, its settings are not used and not checked.
  off = {"box_refine.enabled": False, "box_refine.windows": 4, "batch_size": 16, "min_bucket": 8}
  assert not analyzer.FaceAnalyzer(face_analyzer.network, **off).config.box_refine.enabled


def test_auto_group_score_is_the_best_member_for_one_box_per_face_proposals(face_analyzer):
  # One candidate per face, as OpenCV's cascade returns: its group has 1 of K = 5 members.
  image = _images()[0]
  lm = np.stack([np.linspace(20, 40, 21), np.linspace(15, 35, 21)], 1)
  det = {
    "box": np.array([[15.0, 10.0, 30.0, 30.0]]),
    "score": np.array([0.9]),
    "landmarks": lm[None],
    "visibility": np.ones((1, 21)),
    "pose": np.zeros((1, 3)),
    "p_female": np.array([0.3]),
  }
  scores = {}
  for name in ("haar", "sliding_window"):
    cfg = analyzer.config_lib.with_overrides(
      face_analyzer.config, {"proposals.name": name, "irp.enabled": False}
    )
    assert analyzer.group_score_mode(cfg) == ("max" if name == "haar" else "top_k_mean")
    out = face_analyzer.refine([image], [{k: v.copy() for k, v in det.items()}], cfg)
    scores[name] = float(out[0]["score"][0])
  assert scores["haar"] == pytest.approx(0.9)
  assert scores["sliding_window"] == pytest.approx(0.9 / 5)  # top-K mean, 4 absent members
  explicit = analyzer.config_lib.with_overrides(
    face_analyzer.config, {"proposals.name": "haar", "nms.score_mode": "top_k_mean"}
  )
  assert analyzer.group_score_mode(explicit) == "top_k_mean"


def test_parse_overrides_values_and_errors():
  got = analyzer.config_lib.parse_overrides(
    [
      "nms.top_k=3",
      "flip_test=TRUE",
      "nms.iou_threshold=0.25",
      "proposals.name=haar",
      "proposals.haar.cascade='a=b.xml'",
      "max_faces=(1, 2)",
    ]
  )
  assert got == {
    "nms.top_k": 3,
    "flip_test": True,
    "nms.iou_threshold": 0.25,
    "proposals.name": "haar",
    "proposals.haar.cascade": "a=b.xml",
    "max_faces": (1, 2),
  }
  for bad in ("nms.top_k", "=3"):
    with pytest.raises(ValueError, match="KEY=VALUE"):
      analyzer.config_lib.parse_overrides([bad])


def test_detection_threshold_drops_low_final_scores(face_analyzer):
  image = _images()[0]
  lm = np.stack([np.linspace(20, 40, 21), np.linspace(15, 35, 21)], 1)
  det = {
    "box": np.array([[15.0, 10.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]]),
    "score": np.array([0.9, 0.6]),
    "landmarks": np.stack([lm, lm / 4]),
    "visibility": np.ones((2, 21)),
    "pose": np.zeros((2, 3)),
    "p_female": np.array([0.3, 0.4]),
  }
  kept = {}
  for t in (0.0, 0.15, 0.2):
    cfg = analyzer.config_lib.with_overrides(
      face_analyzer.config,
      {
        "proposals.name": "sliding_window",
        "irp.enabled": False,
        "nms.score_threshold": 0.5,
        "detection_threshold": t,
      },
    )
    out = face_analyzer.refine([image], [{k: v.copy() for k, v in det.items()}], cfg)
    kept[t] = np.round(out[0]["score"], 6).tolist()
  # Two separate one-member groups, top-K mean scores 0.9 / 5 and 0.6 / 5.
  assert kept == {0.0: [0.18, 0.12], 0.15: [0.18], 0.2: []}


def test_box_refinement_is_the_last_stage(face_analyzer):
  # The pipeline with box refinement = the pipeline without it, then box_refine.refine_boxes
  # on its final detections with the configured settings (one more network pass).
  images = _images()
  low = {"irp.score_threshold": 0.0, "nms.score_threshold": 0.0, "detection_threshold": 0.0}
  cfg = config_lib.with_overrides(face_analyzer.config, low)
  off = config_lib.with_overrides(cfg, {"box_refine.enabled": False})
  raw = face_analyzer.score_proposals(images)
  plain = face_analyzer.refine(images, [dict(d) for d in raw], off)
  assert face_analyzer.timings["box_refine"] < 1e-3  # skipped
  got = face_analyzer.refine(images, [dict(d) for d in raw], cfg)
  want = box_refine.refine_boxes(
    face_analyzer.network, images, plain, **box_refine.settings(cfg.box_refine)
  )
  assert sum(len(d["score"]) for d in got) > 0
  for g, w, p in zip(got, want, plain, strict=True):
    np.testing.assert_allclose(g["box"], w["box"], rtol=1e-6)
    np.testing.assert_array_equal(g["score"], p["score"])
    np.testing.assert_array_equal(g["landmarks"], p["landmarks"])
  moved = np.concatenate([g["box"] - p["box"] for g, p in zip(got, plain, strict=True)])
  assert np.abs(moved).max() > 1e-3  # the refinement did move boxes
