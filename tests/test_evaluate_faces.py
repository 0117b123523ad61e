"""Face-level benchmarks end to end: AFLW, 300-W, MAFL, MTFL, CelebA and LFWA fixtures in
their ORIGINAL formats, built with data/prepare.py, scored by `python -m
hyperface_jax.evaluate` in-process on a tiny initialised HyperFace run; and the face runner
(evaluation/face_runner.py) checked for an exact crop + denormalize round trip."""

import importlib.util
import json
import os

import jax
import numpy as np
import pytest
from fixtures_aflw import standard_images, write_aflw
from fixtures_celeba import write_celeba, write_lfwa, write_mafl_lists
from fixtures_mtfl import write_mtfl
from fixtures_w300_helen import write_300w

from hyperface_jax import checkpointing, evaluate, registry, sharding, tasks, train
from hyperface_jax.data import prepare
from hyperface_jax.data.builders import aflw_split
from hyperface_jax.data.scene_store import SceneStore
from hyperface_jax.evaluation import face_runner

AFLW_TEST_FACES = [39341, 39342, 40001]  # images 0/image00002 (2 faces), 2/image13457
W300_FOLDERS = {"lfpw/trainset": 1, "afw": 1, "helen/trainset": 1}
W300_FOLDERS.update({"lfpw/testset": 2, "helen/testset": 1, "ibug": 2})
CELEBA_N = 6  # partition i % 3: 2 test images; MAFL test = the last 3 names
EXTRA_HEADS = (("landmarks68", (68, 2)), ("landmarks5", (5, 2)), ("attributes", (40,)))
_SMOKE = os.path.join(os.path.dirname(__file__), "..", "configs", "smoke.py")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """Every face dataset written in its original format and built with `prepare`."""
  root = tmp_path_factory.mktemp("face_benchmarks")
  write_aflw(str(root / "aflw"), standard_images())
  write_300w(str(root / "w300"), W300_FOLDERS)
  write_mtfl(str(root / "mtfl"))
  values = write_celeba(str(root / "celeba"), n=CELEBA_N)
  write_mafl_lists(str(root / "celeba"), values["names"][:3], values["names"][3:])
  write_lfwa(str(root / "lfwa"))
  data = str(root / "data")
  with pytest.MonkeyPatch.context() as mp:  # the AFLW test faces of this fixture
    mp.setattr(aflw_split, "read_face_ids", lambda path=None: list(AFLW_TEST_FACES))
    for name, manual in (
      ("aflw", "aflw"),
      ("ibug_300w", "w300"),
      ("mtfl", "mtfl"),
      ("mafl", "celeba"),
      ("celeba", "celeba"),
      ("lfwa", "lfwa"),
    ):
      prepare.prepare(name, data, str(root / manual))
  return data


def _normalized_truth(rows, key, vis_key):
  """What a perfect model outputs: the truth region-normalized by the crop box."""
  encode = tasks.points_encode(key, vis_key)
  return encode({key: rows[key], vis_key: rows[vis_key]}, rows["crop_box"])[key]


class _Oracle:
  """A fake `model_apply` returning the region-normalized truth of each row, in order."""

  def __init__(self, rows, batch_size, outputs):
    self.rows, self.batch_size, self.outputs, self.calls = rows, batch_size, outputs, 0

  def __call__(self, images):
    assert images.dtype == np.float32 and images.shape[0] == self.batch_size
    lo = self.calls * self.batch_size
    self.calls += 1
    out = {}
    for name, values in self.outputs.items():
      part = values[lo : lo + self.batch_size]
      out[name] = np.concatenate([part, np.zeros((self.batch_size - len(part),) + part.shape[1:])])
    return out


def test_face_pairs_round_trip_is_exact_on_aflw(data_dir):
  fields = face_runner.face_fields(("landmarks", "pose"))
  store = SceneStore.from_tfds("aflw", "test", data_dir, fields=fields)
  rows = face_runner.face_rows(store)
  assert len(rows["crop_box"]) == 3  # every test face has a FaceRect
  np.testing.assert_array_equal(rows["crop_box"], rows["box"])
  norm = _normalized_truth(rows, "landmarks", "visibility")
  oracle = _Oracle(rows, 2, {"landmarks": norm, "pose": rows["pose"]})
  ev = registry.EVALUATORS.get("aflw_landmarks")()
  seen = []
  for batch, outputs in face_runner.face_pairs(
    oracle, store, input_size=31, normalize="minus_half", batch_size=2, task_names=("landmarks",)
  ):
    assert batch["example_mask"].tolist() in ([1, 1], [1, 0])
    keep = batch["example_mask"] > 0
    # pixels again, to float64 round-off, including the box that leaves the image
    np.testing.assert_allclose(
      outputs["landmarks"][keep] * batch["visibility"][keep][..., None],
      batch["landmarks"][keep] * batch["visibility"][keep][..., None],
      atol=1e-9,
    )
    assert outputs["landmarks5"].shape == (2, 5, 2) and "derived/landmarks5" in outputs
    seen.extend(batch["face_index"][keep].tolist())
    ev.update(batch, outputs)
  assert oracle.calls == 2 and len(seen) == 3
  r = ev.result()
  assert r["count/faces"] == 3 and r["landmarks/nme"] == pytest.approx(0.0, abs=1e-9)
  assert r["pose/mae_yaw_deg"] == pytest.approx(0.0, abs=1e-9)


def test_face_pairs_skips_boxless_faces_unless_a_default_box(data_dir):
  store = SceneStore.from_tfds("lfwa", "test", data_dir, fields=face_runner.face_fields(["gender"]))
  assert len(face_runner.face_rows(store)["crop_box"]) == 0  # LFWA has no boxes
  rows = face_runner.face_rows(store, face_runner.relative_box((0.25, 0.25, 0.5, 0.5)))
  h, w = store.images[0].shape[:2]
  np.testing.assert_allclose(rows["crop_box"], [[w / 4, h / 4, w / 2, h / 2]])


def test_face_pairs_derives_five_points_for_mafl(data_dir):
  """A model with AFLW-21 landmarks only: landmarks5 = its points 7, 10, 14, 17, 19."""
  fields = face_runner.face_fields(("landmarks5",))
  store = SceneStore.from_tfds("mafl", "test", data_dir, fields=fields)
  rows = face_runner.face_rows(store)
  n = len(rows["crop_box"])
  five = _normalized_truth(rows, "landmarks5", "visibility5")
  aflw = np.zeros((n, 21, 2))
  aflw[:, [7, 10, 14, 17, 19]] = five
  oracle = _Oracle(rows, 4, {"landmarks": aflw})
  ev = registry.EVALUATORS.get("landmarks5_interocular")(dataset="mafl")
  for batch, outputs in face_runner.face_pairs(
    oracle, store, input_size=27, normalize="imagenet", batch_size=4, task_names=("landmarks",)
  ):
    ev.update(batch, outputs)
  r = ev.result()
  assert r["count/landmarks5"] == n == 3
  assert r["landmarks5/nme"] == pytest.approx(0.0, abs=1e-9)
  assert "aflw21_to_five" in ev.protocol()["landmarks5/derived"]


def _tiny_run(path, extra_heads):
  """A tiny HyperFace-AlexNet run (configs/smoke.py: width 1/8, 67 px) with `extra_heads`
  beside HyperFace's five: config.json + one checkpoint (step 2) of the initialised state."""
  spec = importlib.util.spec_from_file_location("smoke_config", _SMOKE)
  smoke = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(smoke)
  config = smoke.get_config()
  config.model.extra_tasks = extra_heads
  config.tasks = tuple(config.tasks) + tuple(name for name, _ in extra_heads)
  config.weighting.weights.update({name: 1.0 for name, _ in extra_heads})
  _, _, _, _, init = train.build(config, sharding.make_mesh())
  ckpt = checkpointing.Checkpointer(path)
  ckpt.save(2, jax.jit(init)(jax.random.PRNGKey(0)))
  ckpt.close()
  train._write_config(config, path)
  return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """The tiny run with the 68-point, 5-point and 40-attribute heads."""
  return _tiny_run(str(tmp_path_factory.mktemp("tiny_run")), EXTRA_HEADS)


def _evaluate(run_dir, data_dir, name, capsys):
  """`python -m hyperface_jax.evaluate` in-process; returns (results.json, printed table)."""
  argv = ["evaluate", f"--workdir={run_dir}", f"--benchmark={name}", f"--data_dir={data_dir}"]
  assert evaluate.main(argv) == 0, capsys.readouterr().err
  printed = capsys.readouterr().out
  out = os.path.join(run_dir, "eval", name)
  with open(os.path.join(out, "results.json")) as f:
    results = json.load(f)
  with open(os.path.join(out, "table.md")) as f:
    assert f.read() == printed
  assert results["step"] == 2 and "protocol/data" in results and "protocol/pipeline" in results
  return results, printed


def _published(table, method, cells):
  """The table has the row `| method | cells... |` (published numbers beside ours)."""
  assert f"| {method} | " + " | ".join(cells) + " |" in table, table


def _png(run_dir, name, file):
  path = os.path.join(run_dir, "eval", name, file)
  assert os.path.getsize(path) > 1000, path


def _fraction(results, key):
  assert 0.0 <= results[key] < np.inf, key
  return results[key]


def test_evaluate_aflw(run_dir, data_dir, capsys):
  r, table = _evaluate(run_dir, data_dir, "aflw", capsys)
  # Test faces 39341 (|yaw| 34 deg), 39342 (69), 40001 (80): bins 30-60 and 60-90 only.
  assert r["count/faces"] == 3 and r["count/pose"] == 3
  assert (r["count/faces_yaw_0_30"], r["count/faces_yaw_30_60"], r["count/faces_yaw_60_90"]) == (
    0,
    1,
    2,
  )
  _fraction(r, "landmarks/nme")
  assert "landmarks/nme_yaw_0_30" not in r and "landmarks/nme_yaw_mean" not in r
  assert {"pose/mae_roll_deg", "pose/mae_pitch_deg", "pose/mae_yaw_deg"} <= set(r)
  assert "sqrt(w*h)" in r["protocol/landmarks/nme"]
  _published(table, "HyperFace (AlexNet)", ["3.93", "4.14", "4.71", "4.26", "3.92", "6.13", "7.61"])
  _published(table, "HyperFace-ResNet", ["2.71", "2.88", "3.19", "2.93", "-", "-", "6.24"])
  ours = f"| hyperface_jax (this run) | - | {100 * r['landmarks/nme_yaw_30_60']:.2f} |"
  assert ours in table
  _png(run_dir, "aflw", "ced.png")


def test_evaluate_300w(run_dir, data_dir, capsys):
  r, table = _evaluate(run_dir, data_dir, "300w", capsys)
  counts = [r[f"count/faces/{s}"] for s in ("common", "challenging", "full")]
  assert counts == [3, 2, 5]  # lfpw/testset 2 + helen/testset 1; ibug 2
  for kind in ("inter_pupil", "inter_ocular"):
    for subset in ("common", "challenging", "full"):
      _fraction(r, f"landmarks/nme_{kind}/{subset}")
  _published(table, "TCDCN (TPAMI)", ["4.80", "8.60", "5.54", "-", "-", "-"])
  _published(table, "HyperFace-ResNet", ["-", "8.18*", "-", "-", "-", "-"])
  _png(run_dir, "300w", "ced.png")


@pytest.mark.parametrize("name,count,published", [("mafl", 3, "7.95"), ("mtfl", 2, "7.65")])
def test_evaluate_five_point_sets(run_dir, data_dir, capsys, name, count, published):
  r, table = _evaluate(run_dir, data_dir, name, capsys)
  assert r["count/landmarks5"] == count
  _fraction(r, "landmarks5/nme")
  assert 0 <= r["landmarks5/failure_rate_0.1"] <= 1
  assert "landmarks5/derived" not in "".join(r)  # the run has a 5-point head
  assert name in r["protocol/landmarks5/nme"]
  _published(table, "TCDCN (TPAMI)", [published, "-", "-"])
  _png(run_dir, name, "ced.png")


@pytest.mark.parametrize("name,count,gender", [("celeba", 2, "97"), ("lfwa", 1, "92")])
def test_evaluate_attribute_sets(run_dir, data_dir, capsys, name, count, gender):
  r, table = _evaluate(run_dir, data_dir, name, capsys)
  assert r["count/gender"] == count and r["count/attributes"] == count
  assert 0 <= r["gender/accuracy"] <= 1 and 0 <= r["attributes/mean_accuracy"] <= 1
  assert len([k for k in r if k.startswith("attributes/accuracy/")]) == 40
  _published(table, "HyperFace (AlexNet)", [gender, "-"])
  assert "no published 40-attribute accuracies" in table
  _png(run_dir, name, "attributes.png")


def test_hyperface_heads_only_derive_five_points_and_explain_a_missing_head(
  tmp_path, data_dir, capsys
):
  """A plain HyperFace run (AFLW-21 landmarks, no 5- or 68-point head): MAFL is scored on
  its derived 5 points (said in the protocol); 300-W fails in one line naming the head."""
  run = _tiny_run(str(tmp_path / "hyperface"), ())
  r, _ = _evaluate(run, data_dir, "mafl", capsys)
  assert r["count/landmarks5"] == 3
  assert "aflw21_to_five" in r["protocol/landmarks5/derived"]
  argv = ["evaluate", f"--workdir={run}", "--benchmark=300w", f"--data_dir={data_dir}"]
  assert evaluate.main(argv) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: w300_landmarks: the model has no 'landmarks68' output"), err
