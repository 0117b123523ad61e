"""`python -m hyperface_jax.evaluate` on AFW, PASCAL faces and FDDB fixtures in their
original formats, built with data/prepare.py: exactly known AP / TPR from hand-made
detections, the written files, the paper tables, the FDDB output format, and the errors."""

import json
import os
import subprocess
import sys

import fixtures_afw_fddb as fx
import fixtures_pascal_faces as fxp
import numpy as np
import pytest

from hyperface_jax import evaluate
from hyperface_jax.data import prepare, scene_store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# AFW, 1-based [[x1 y1], [x2 y2]]: counted faces [0, 0, 40, 40], [100, 0, 40, 40] and
# [10, 10, 40, 50]; the 10 x 10 face is below the toolbox's 30 px and ignored.
AFW_ROWS = [
  ("a1.jpg", [[[1, 1], [41, 41]], [[101, 1], [141, 41]]], [np.ones((6, 2))] * 2, [[0, 0, 0]] * 2),
  ("b2.jpg", [[[11, 11], [51, 61]], [[1, 1], [11, 11]]], [np.ones((6, 2))] * 2, [[0, 0, 0]] * 2),
]
AFW_DETS = {  # ranked 0.9 TP, 0.8 FP, 0.7 TP over 3 faces -> AP = 1/3 + 1/3 * 2/3 = 5/9
  "a1.jpg": ([[0, 0, 40, 40], [200, 200, 40, 40]], [0.9, 0.8]),
  "b2.jpg": ([[10, 10, 40, 50], [0, 0, 10, 10]], [0.7, 0.95]),  # 2nd: <= 21 px, dropped
}
PASCAL_ROWS = [  # 1-based [l t r b (x ignore)]: the 2nd face of the 1st image is flagged
  ("2008_000001.jpg", [[1, 1, 41, 41, 0, 0], [61, 1, 101, 41, 0, 1]]),
  ("2008_000002.jpg", [[11, 11, 51, 51, 0, 0]]),
]
PASCAL_DETS = {  # 0.99 on the ignored face is removed; ranked 0.9 FP, 0.8 TP, 0.6 TP -> 2/3
  "2008_000001.jpg": ([[0, 0, 40, 40], [60, 0, 40, 40]], [0.6, 0.99]),
  "2008_000002.jpg": ([[10, 10, 40, 40], [100, 100, 30, 30]], [0.8, 0.9]),
}
# FDDB: fold01 lists its images out of alphabetical order; 12 faces, 11 found, 1 FP.
FDDB_FOLDS = {
  1: [
    ("2003/01/01/big/img_9", [[20, 15, 0, 40, 35], [10, 8, 0, 70, 20]]),
    ("2002/07/19/big/img_423", [[12, 10, 0, 45, 40]]),
  ],
  **{k: [(f"2002/08/{k:02d}/big/img_{k}", [[15, 12, 0, 40, 40]])] for k in range(2, 11)},
}
FDDB_DETS = {
  "2003/01/01/big/img_9": ([[20, 20, 40, 30], [0, 60, 10, 10]], [0.8, 0.99]),
  "2002/07/19/big/img_423": ([[33, 30, 24, 20]], [0.7]),
  **{f"2002/08/{k:02d}/big/img_{k}": ([[25, 28, 30, 24]], [0.5 + k / 100]) for k in range(2, 11)},
}
FDDB_FOLD01_EXPECTED = """\
2003/01/01/big/img_9
2
0.000 60.000 10.000 10.000 0.990000
20.000 20.000 40.000 30.000 0.800000
2002/07/19/big/img_423
1
33.000 30.000 24.000 20.000 0.700000
"""


class FakeAnalyzer:
  """`detect` returns the hand-made detections of each image (looked up by its pixels)."""

  def __init__(self, name, data_dir, split, dets_by_file):
    store = scene_store.SceneStore.from_tfds(name, split, data_dir)
    self.by_pixels = {}
    for image, filename in zip(store.images, store.filenames, strict=True):
      boxes, scores = dets_by_file[filename]
      self.by_pixels[image.tobytes()] = {
        "box": np.asarray(boxes, np.float32).reshape(-1, 4),
        "score": np.asarray(scores, np.float32),
      }

  def detect(self, images):
    return [self.by_pixels[img.tobytes()] for img in images]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  """AFW, PASCAL faces and FDDB fixtures built with `prepare` into one data_dir."""
  root = tmp_path_factory.mktemp("bench_data")
  fx.write_afw(str(root / "afw"), AFW_ROWS)
  fxp.write_pascal_faces(str(root / "pascal"), PASCAL_ROWS)
  fx.write_fddb(str(root / "fddb"), FDDB_FOLDS)
  d = str(root / "tfds")
  for name, manual in (("afw", "afw"), ("pascal_faces", "pascal"), ("fddb", "fddb")):
    prepare.prepare(name, d, str(root / manual))
  return d


@pytest.fixture(scope="module")
def smoke_workdir(tmp_path_factory):
  """A run of the smoke config (config.json + the initialised state at step 0)."""
  sys.path.insert(0, REPO)
  from configs import smoke  # pylint: disable=g-import-not-at-top
  from hyperface_jax import train  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path_factory.mktemp("smoke_wd"))
  config = smoke.get_config()
  return train.write_initial_workdir(config, workdir)


def _run_fake(tmp_path, data_dir, name, dets):
  bench = evaluate.get_benchmark(name)
  analyzer = FakeAnalyzer(bench.dataset, data_dir, bench.split, dets)
  payload = evaluate.run(str(tmp_path), name, data_dir, analyzer=analyzer)
  out = tmp_path / "eval" / name
  on_disk = json.loads((out / "results.json").read_text())
  assert on_disk == pytest.approx(payload)
  assert not [p for p in os.listdir(out) if p.startswith(".tmp")]
  return on_disk, (out / "table.md").read_text(), out


def test_afw_exact_ap_files_and_table(tmp_path, data):
  res, table, out = _run_fake(tmp_path, data, "afw", AFW_DETS)
  assert res["detection/ap"] == pytest.approx(5 / 9)
  assert res["detection/ap_calibrated"] == pytest.approx(5 / 9)  # TPs exact: no shift
  assert res["count/faces"] == 3 and res["count/detections"] == 3
  assert "ECCV'14 toolbox rules" in res["protocol/detection/ap"]
  assert "afw 1.0.0, split test" in res["protocol/data"] and "2 images" in res["protocol/data"]
  assert (out / "pr_curve.png").stat().st_size > 0
  assert "| HyperFace (AlexNet) | 97.9 | - | docs/papers.md sections 1.14, 6 [M] |" in table
  assert "| HyperFace-ResNet | 99.4 | - |" in table
  assert "| hyperface_jax (this run) | 55.56 | 55.56 | this run |" in table
  assert "Protocol:" in table and "re-annotated boxes of Mathias" in table


def test_pascal_faces_ignored_faces_and_table(tmp_path, data):
  res, table, out = _run_fake(tmp_path, data, "pascal_faces", PASCAL_DETS)
  assert res["detection/ap"] == pytest.approx(2 / 3)
  assert res["count/faces"] == 2 and res["count/detections"] == 3
  assert (out / "pr_curve.png").is_file()
  assert "| HyperFace (AlexNet) | 92.46 | - |" in table and "| HyperFace-ResNet | 96.2 |" in table
  assert "| hyperface_jax (this run) | 66.67 | 66.67 |" in table


def test_fddb_roc_output_file_and_table(tmp_path, data):
  res, table, out = _run_fake(tmp_path, data, "fddb", FDDB_DETS)
  for k in (100, 500, 1000, 2000):
    assert res[f"detection/fddb_tpr_at_{k}_fp"] == pytest.approx(11 / 12)
  assert res["count/images"] == 11 and res["count/faces"] == 12
  assert "file order" in res["protocol/data"]
  text = (out / "fddb_detections.txt").read_text()
  assert text.startswith(FDDB_FOLD01_EXPECTED)  # hand-written: fold01 in its file order
  paths = [line for line in text.splitlines() if "/" in line]
  assert paths == [p for k in range(1, 11) for p, _ in FDDB_FOLDS[k]]  # folds, then files
  roc = (out / "fddb_DiscROC.txt").read_text().splitlines()
  assert roc[-1] == "0.000000 1 0.990000" and roc[0] == f"{11 / 12:.6f} 1 0.520000"
  assert (out / "discrete_roc.png").stat().st_size > 0
  assert "| HyperFace (AlexNet) | - | 90.1* | - |" in table
  assert "| hyperface_jax (this run) | 91.67 | 91.67 | 91.67 |" in table
  assert "not stated" in table


def test_format_fddb_detections_hand_written():
  from hyperface_jax.evaluation import protocols_detection

  text = protocols_detection.format_fddb_detections(
    [("2002/08/11/big/img_591", [[1, 2.5, 30, 40], [5, 6, 7, 8]], [0.25, 0.75]), ("x/y", [], [])]
  )
  assert text == (
    "2002/08/11/big/img_591\n2\n5.000 6.000 7.000 8.000 0.750000\n"
    "1.000 2.500 30.000 40.000 0.250000\nx/y\n0\n"
  )


def test_cli_real_model_prints_the_table(smoke_workdir, data, capsys):
  argv = [
    "evaluate",
    f"--workdir={smoke_workdir}",
    "--benchmark=afw",
    f"--data_dir={data}",
    "--set=proposals.sliding_window.min_side=30",
    "--set=batch_size=32",
    "--set=nms.score_threshold=0.0",
  ]
  assert evaluate.main(argv) == 0
  printed = capsys.readouterr().out
  assert "| hyperface_jax (this run) |" in printed and "this run, step 0 |" in printed
  res = json.loads(open(os.path.join(smoke_workdir, "eval", "afw", "results.json")).read())
  assert res["step"] == 0 and res["count/images"] == 2 and 0 <= res["detection/ap"] <= 1
  assert "proposals.sliding_window.min_side=30" in res["protocol/pipeline"]


def _error(argv, capsys):
  assert evaluate.main(["evaluate", *argv]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1
  return err


def test_cli_errors(smoke_workdir, tmp_path, capsys):
  err = _error(["--workdir=W", "--benchmark=nope"], capsys)
  assert "unknown benchmark 'nope'; known: " in err
  assert all(f" {name}," in err or f" {name}." in err for name in ("afw", "fddb", "pascal_faces"))
  err = _error([f"--workdir={smoke_workdir}", "--benchmark=fddb", f"--data_dir={tmp_path}"], capsys)
  assert f"dataset 'fddb' is not prepared in {tmp_path}" in err
  assert f"python -m hyperface_jax.data.prepare fddb --manual_dir=M --data_dir={tmp_path}" in err
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "config.json").write_text("{}")
  err = _error([f"--workdir={tmp_path}/run", "--benchmark=afw"], capsys)
  assert "is not a trained run" in err and "checkpoint" in err.lower()
  assert "--benchmark is required" in _error([f"--workdir={tmp_path}"], capsys)


def test_module_entry_point_unknown_benchmark():
  proc = subprocess.run(
    [sys.executable, "-m", "hyperface_jax.evaluate", "--workdir=W", "--benchmark=nope"],
    capture_output=True,
    text=True,
    cwd=REPO,
    timeout=120,
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown benchmark 'nope'")
