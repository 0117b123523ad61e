"""`predict --task=relations` and the relation run's files (inference/relations.py).

A relation workdir is written by the training code's own pieces (config.json, the bridging
template file, an orbax checkpoint of the initialised state, templates attached); the
detector is the smoke HyperFace model (random weights, thresholds at 0 so that faces come
out). The outputs' form does not depend on training.
"""

import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from hyperface_jax import bridging, checkpointing, predict, sharding, tasks, train
from hyperface_jax.data import render
from hyperface_jax.inference import relations

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTO = os.path.join(REPO, "docs", "predict_example.png")  # real photographs (astronaut)


def _relation_config():
  sys.path.insert(0, REPO)
  from configs import social_relation  # pylint: disable=g-import-not-at-top

  c = social_relation.get_config("cpu")
  c.model.width, c.model.feature_dim, c.model.relation_width = 4, 8, 16
  c.input_size = 32
  c.model_init = ""
  return c


@pytest.fixture(scope="module")
def relation_workdir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("relation_wd"))
  config = _relation_config()
  settings = bridging.settings(config)
  k = bridging.num_templates(settings["clusters"])
  rng = np.random.default_rng(0)
  arrays = {
    "templates": rng.random((k, 324)).astype(np.float32),  # 32 px: 3 x 3 blocks x 36
    "h_mean": np.full(k, 3.0, np.float32),
    "h_std": np.ones(k, np.float32),
  }
  meta = {"format": bridging.FORMAT, "version": bridging.FORMAT_VERSION, "settings": settings}
  bridging.save(bridging.template_path(workdir), arrays, meta)
  train._write_config(config, workdir)  # pylint: disable=protected-access
  mesh = sharding.make_mesh()
  init = train.build(config, mesh)[-1]
  ckpt = checkpointing.Checkpointer(workdir)
  state = train.restore_or_init(config, mesh, init, ckpt)
  state = bridging.attach(state, bridging.prepare(config, workdir), sharding.replicated(mesh))
  ckpt.save(0, state)
  ckpt.close()
  return workdir


@pytest.fixture(scope="module")
def smoke_workdir(tmp_path_factory):
  from configs import smoke  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path_factory.mktemp("smoke_wd"))
  config = smoke.get_config()
  return train.write_initial_workdir(config, workdir)


def _synth_test_scene(min_faces):
  """The first synth_faces test image (default config: seed 0, split id 2) with at least
  `min_faces` annotated faces, rendered exactly as the builder renders it."""
  for i in range(200):
    ex = render.render_scene(np.random.default_rng([0, 2, i]), render.SceneConfig())
    if len(ex["faces"]["box"]) >= min_faces:
      return i, ex
  raise AssertionError("no such scene")


def _run(args):
  return predict.main(["predict", "--task=relations", *args])


def _check_record(record, num_faces):
  assert len(record["faces"]) == num_faces
  expected = [[i, j] for i in range(num_faces) for j in range(i + 1, num_faces)]
  assert [r["faces"] for r in record["relations"]] == expected
  for rel in record["relations"]:
    assert list(rel["traits"]) == list(tasks.RELATION_TRAITS)
    assert all(0.0 <= p <= 1.0 for p in rel["traits"].values())
  for face in record["faces"]:
    assert len(face["box"]) == 4 and face["expression"]["label"] in relations.EXPRESSIONS
    assert set(face["pose"]) == {"roll", "pitch", "yaw"}


def test_relations_on_a_synth_test_image_with_ground_truth_boxes(relation_workdir, tmp_path):
  index, ex = _synth_test_scene(3)
  Image.fromarray(ex["image"]).save(tmp_path / "scene.png")
  boxes = {"scene.png": ex["faces"]["box"].tolist()}
  (tmp_path / "boxes.json").write_text(json.dumps(boxes))
  out = tmp_path / "out"
  status = _run(
    [
      f"--workdir={relation_workdir}",
      f"--input={tmp_path / 'scene.png'}",
      f"--output={out}",
      f"--boxes={tmp_path / 'boxes.json'}",
    ]
  )
  assert status == 0, index
  record = json.loads((out / "scene.json").read_text())
  _check_record(record, len(boxes["scene.png"]))
  drawing = np.asarray(Image.open(out / "scene.png"))
  assert drawing.shape == ex["image"].shape and not np.array_equal(drawing, ex["image"])
  # the Python API gives the same numbers
  api = relations.RelationAnalyzer.from_workdir(relation_workdir)(
    [ex["image"]], [boxes["scene.png"]]
  )
  for a, b in zip(api[0]["relations"], record["relations"], strict=True):
    assert a["traits"] == pytest.approx(b["traits"], abs=1e-6)


def test_one_face_or_none_gives_an_empty_relation_list(relation_workdir, tmp_path):
  _, ex = _synth_test_scene(1)
  Image.fromarray(ex["image"]).save(tmp_path / "one.png")
  Image.fromarray(ex["image"]).save(tmp_path / "none.png")
  boxes = {"one.png": ex["faces"]["box"][:1].tolist(), "none.png": []}
  (tmp_path / "boxes.json").write_text(json.dumps(boxes))
  args = [f"--workdir={relation_workdir}", f"--input={tmp_path}", f"--output={tmp_path}/out"]
  assert _run(args + [f"--boxes={tmp_path / 'boxes.json'}"]) == 0
  one = json.loads((tmp_path / "out" / "one.json").read_text())
  none = json.loads((tmp_path / "out" / "none.json").read_text())
  assert one["relations"] == [] and len(one["faces"]) == 1
  assert none == dict(none, faces=[], relations=[])
  assert (tmp_path / "out" / "one.png").is_file()


def test_relations_on_a_real_photograph_with_a_detector(relation_workdir, smoke_workdir, tmp_path):
  common = [
    f"--workdir={relation_workdir}",
    f"--input={PHOTO}",
    f"--detector_workdir={smoke_workdir}",
    "--config.irp.score_threshold=0.0",
    "--config.nms.score_threshold=0.0",
    "--config.detection_threshold=0.0",  # a random detector scores ~0.5
  ]
  # several faces: the random detector's best sliding windows (3 at most)
  assert _run(common + [f"--output={tmp_path}/many", "--config.max_faces=3"]) == 0
  record = json.loads((tmp_path / "many" / "predict_example.json").read_text())
  assert record["width"] == 808 and record["height"] == 400
  _check_record(record, len(record["faces"]))
  assert len(record["faces"]) >= 2
  assert (tmp_path / "many" / "predict_example.png").is_file()
  # one face (OpenCV's frontal cascade, the best face kept): no pair, no error
  haar = ["--config.proposals.name=haar", "--config.max_faces=1"]
  assert _run(common + [f"--output={tmp_path}/haar", *haar]) == 0
  record = json.loads((tmp_path / "haar" / "predict_example.json").read_text())
  assert len(record["faces"]) == 1 and record["relations"] == []


def test_usage_errors(relation_workdir, smoke_workdir, tmp_path, capsys):
  assert _run([f"--workdir={relation_workdir}", f"--input={PHOTO}", f"--output={tmp_path}"]) == 2
  assert "needs --detector_workdir or --boxes" in capsys.readouterr().err
  args = [f"--workdir={smoke_workdir}", f"--input={PHOTO}", f"--output={tmp_path}"]
  assert _run(args + [f"--detector_workdir={smoke_workdir}"]) == 2
  assert "social_relation run" in capsys.readouterr().err
