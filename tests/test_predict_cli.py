"""The predict CLI in-process: folders with good and bad files, videos, usage errors,
and one run of the real analyzer on a tiny smoke-config model."""

import io
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from hyperface_jax import predict
from hyperface_jax.inference.analyzer import Face

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NET_BOX = (10.0, 20.0, 30.0, 30.0)  # what the fake analyzer finds, in network pixels


class FakeAnalyzer:
  """One face per image at NET_BOX; landmarks x = 20 + mean intensity / 10 (known values).

  Records the batch sizes it is called with.
  """

  def __init__(self):
    self.calls = []

  def __call__(self, images):
    self.calls.append(len(images))
    out = []
    for img in images:
      shift = float(img.mean()) / 10.0
      landmarks = np.stack([np.full(21, 20.0 + shift), np.linspace(25, 45, 21)], axis=1)
      out.append(
        [
          Face(
            box=np.array(NET_BOX, np.float32),
            score=0.9,
            landmarks=landmarks.astype(np.float32),
            visibility=np.where(np.arange(21) < 19, 0.9, 0.2).astype(np.float32),
            pose=np.radians([10.0, -20.0, 30.0]).astype(np.float32),
            p_female=0.25,
          )
        ]
      )
    return out


def _main(args, **kwargs):
  """predict.main as absl calls it: argv[0] is the program name."""
  return predict.main(["predict", *args], **kwargs)


def _fake_factory(record):
  def factory(workdir, step, overrides):
    record.update(workdir=workdir, step=step, overrides=overrides)
    record["analyzer"] = FakeAnalyzer()
    return record["analyzer"]

  return factory


def _jpeg_bytes(image, **kw):
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, "JPEG", **kw)
  return buf.getvalue()


def _no_partial_files(folder):
  return not [f for _, _, fs in os.walk(folder) for f in fs if ".partial" in f]


def test_folder_good_files_processed_bad_ones_listed(tmp_path, capsys):
  src, out = tmp_path / "in", tmp_path / "out"
  (src / "sub").mkdir(parents=True)
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(src / "a.png")
  Image.fromarray(np.full((50, 60), 90, np.uint8), "L").save(src / "sub" / "b.png")
  Image.fromarray(np.zeros((1000, 2048, 3), np.uint8)).save(src / "big.png")
  Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(src / "c.png")
  (src / "c.jpg").write_bytes(_jpeg_bytes(np.zeros((40, 40, 3), np.uint8)))
  (src / "notes.txt").write_text("an annotation: skipped, not an input")
  (src / "fake.png").write_text("not an image")
  (src / "cut.jpg").write_bytes(
    _jpeg_bytes(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))[:300]
  )
  Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(src / "tiny.png")
  (src / ".hidden.png").write_bytes(b"skipped")
  record = {}
  status = _main(
    [
      f"--workdir={tmp_path}/wd",
      f"--input={src}",
      f"--output={out}",
      "--batch_size=2",
      "--min_side=0",
      "--max_side=1024",
    ],
    analyzer_factory=_fake_factory(record),
  )
  captured = capsys.readouterr()
  err = captured.err
  assert status == 1
  assert "FAILED: 3 of 8 input(s)" in err
  assert f"{src}/fake.png: not an image file" in err and "notes.txt" not in err
  assert (
    "skipped 1 file(s) that are neither images nor videos by their extension: "
    "notes.txt" in captured.out
  )
  assert f"{src}/cut.jpg: truncated" in err
  assert f"{src}/tiny.png: image of 5x5 px is too small" in err
  assert record["analyzer"].calls == [2, 2, 1]  # 5 good images, 2 per call
  for name in ("a", "sub/b", "big", "c_jpg", "c_png"):
    assert (out / f"{name}.json").is_file() and (out / f"{name}.png").is_file(), name
  assert not (out / "c.json").exists() and _no_partial_files(out)
  # big.png was fitted to 1024 x 500 (scale 0.5): coordinates map back to the original.
  text = (out / "big.json").read_text()
  assert '"box": [20.5, 40.5, 60.0, 60.0]' in text  # number lists on one line
  big = json.loads(text)
  assert (big["width"], big["height"], big["network_scale"]) == (2048, 1000, [0.5, 0.5])
  face = big["faces"][0]
  np.testing.assert_allclose(face["box"], [20.5, 40.5, 60.0, 60.0])  # (v + .5) / .5 - .5
  np.testing.assert_allclose(face["landmarks"][0], [40.5, 50.5])  # (20|25 + .5) / .5 - .5
  assert face["pose"] == pytest.approx({"roll": 10.0, "pitch": -20.0, "yaw": 30.0}, abs=1e-4)
  assert face["gender"] == {"label": "male", "p_female": 0.25}
  assert face["score"] == pytest.approx(0.9) and len(face["visibility"]) == 21
  # The grayscale image: converted, native size, landmark x = 20 + 90 / 10.
  b = json.loads((out / "sub" / "b.json").read_text())
  assert b["conversions"] == ["grayscale (L) -> RGB"] and b["network_scale"] == [1.0, 1.0]
  assert b["faces"][0]["landmarks"][3] == pytest.approx([29.0, 28.0])
  # The PNG is the original size with the face box drawn in the first face colour.
  drawn = cv2.imread(str(out / "big.png"))[:, :, ::-1]
  assert drawn.shape == (1000, 2048, 3)
  assert tuple(drawn[70, 20]) == (0, 255, 0) or tuple(drawn[70, 21]) == (0, 255, 0)
  assert drawn[500:, 500:].max() == 0


def test_single_image_exit_0_and_config_overrides(tmp_path):
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "one.png")
  record = {}
  status = _main(
    [
      "--workdir",
      "W",
      "--input",
      str(tmp_path / "one.png"),
      "--output",
      str(tmp_path / "o"),
      "--step=7",
      "--min_side=99",
      "--config.nms.top_k=3",
      "--config.proposals.name=haar",
      "--config.irp.enabled=false",
    ],
    analyzer_factory=_fake_factory(record),
  )
  assert status == 0
  assert record["overrides"] == {"nms.top_k": 3, "proposals.name": "haar", "irp.enabled": False}
  assert record["step"] == 7 and record["workdir"] == "W"
  one = json.loads((tmp_path / "o" / "one.json").read_text())
  assert one["network_scale"] == [132 / 40, 99 / 30]  # upscaled to a 99 px shorter side


def test_usage_errors_exit_2(tmp_path, capsys):
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "one.png")
  base = ["--workdir=W", f"--input={tmp_path}/one.png", f"--output={tmp_path}/o"]
  factory = _fake_factory({})
  assert _main(base[1:], analyzer_factory=factory) == 2
  assert "--workdir" in capsys.readouterr().err
  assert _main(base + ["--bogus=1"], analyzer_factory=factory) == 2
  assert "unrecognised argument '--bogus=1'" in capsys.readouterr().err
  assert _main(base + ["--smooth=1.5"], analyzer_factory=factory) == 2
  assert "--smooth must be in [0, 1), got 1.5" in capsys.readouterr().err
  assert (
    _main(["--workdir=W", f"--input={tmp_path}/nope", "--output=o"], analyzer_factory=factory) == 2
  )
  assert f"error: --input {tmp_path}/nope does not exist" in capsys.readouterr().err

  def missing(workdir, step, overrides):
    raise FileNotFoundError(f"{workdir}/config.json not found")

  assert _main(base, analyzer_factory=missing) == 2
  assert (
    "cannot build the analyzer from --workdir W: W/config.json not found" in capsys.readouterr().err
  )
  assert not os.path.exists(tmp_path / "o")


def _write_video(path, values, size=(64, 48)):
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
  assert writer.isOpened()
  for v in values:
    writer.write(np.full((size[1], size[0], 3), v, np.uint8))
  writer.release()


def test_video_annotated_and_jsonl_with_smoothing(tmp_path, capsys):
  values = [0, 100, 200, 100, 0]  # landmark x = 20 + value / 10 in the fake analyzer
  _write_video(tmp_path / "clip.avi", values)
  out = tmp_path / "out"
  status = _main(
    [
      "--workdir=W",
      f"--input={tmp_path}/clip.avi",
      f"--output={out}",
      "--batch_size=2",
      "--smooth=0.5",
      "--min_side=0",
    ],
    analyzer_factory=_fake_factory({}),
  )
  assert status == 0, capsys.readouterr().err
  lines = [json.loads(x) for x in (out / "clip.jsonl").read_text().splitlines()]
  assert [r["frame"] for r in lines] == [0, 1, 2, 3, 4]
  assert [r["time_s"] for r in lines] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
  assert [r["faces"][0]["track"] for r in lines] == [0] * 5  # the same face throughout
  raw = [20.0 + v / 10.0 for v in values]  # MJPG keeps uniform frames within ~1 level
  ema = [raw[0]]
  for x in raw[1:]:
    ema.append(0.5 * ema[-1] + 0.5 * x)  # 20, 25, 32.5, 31.25, 25.625
  got = [r["faces"][0]["landmarks"][0][0] for r in lines]
  np.testing.assert_allclose(got, ema, atol=0.3)
  capture = cv2.VideoCapture(str(out / "clip.mp4"))
  frames = []
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    frames.append(frame)
  assert len(frames) == 5 and frames[0].shape == (48, 64, 3)
  assert frames[0][20:50, 10].max() > 100  # the box's left edge (x = 10) is drawn
  assert _no_partial_files(out)


def test_unopenable_video_is_reported_and_leaves_nothing(tmp_path, capsys):
  (tmp_path / "broken.mp4").write_bytes(b"\x00\x01 this is no video " * 50)
  out = tmp_path / "out"
  status = _main(
    ["--workdir=W", f"--input={tmp_path}/broken.mp4", f"--output={out}"],
    analyzer_factory=_fake_factory({}),
  )
  err = capsys.readouterr().err
  assert status == 1
  assert f"{tmp_path}/broken.mp4: cannot open the video" in err
  assert not os.path.exists(out / "broken.mp4") and not os.path.exists(out / "broken.jsonl")


@pytest.fixture(scope="module")
def smoke_workdir(tmp_path_factory):
  """A workdir of the smoke config written by the training code (config.json + an orbax
  checkpoint at step 0 of the initialised state): the real model format, without the
  minute of training and evaluation, which the predict outputs do not depend on."""
  sys.path.insert(0, REPO)
  from configs import smoke  # pylint: disable=g-import-not-at-top
  from hyperface_jax import train  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path_factory.mktemp("smoke_wd"))
  config = smoke.get_config()
  return train.write_initial_workdir(config, workdir)


def test_real_analyzer_on_a_smoke_model(smoke_workdir, tmp_path, capsys):
  src = tmp_path / "in"
  src.mkdir()
  rng = np.random.default_rng(3)
  Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(src / "x.png")
  status = _main(
    [
      f"--workdir={smoke_workdir}",
      f"--input={src}",
      f"--output={tmp_path}/out",
      "--config.nms.score_threshold=0.0",
      "--config.detection_threshold=0.0",  # a random model scores ~0.5
      "--config.max_faces=2",
      "--config.batch_size=32",
      "--config.proposals.sliding_window.min_side=40",
    ]
  )
  assert status == 0
  record = json.loads((tmp_path / "out" / "x.json").read_text())
  assert record["network_scale"] == [84 / 50, 67 / 40]  # shorter side to the input size 67
  assert 1 <= len(record["faces"]) <= 2
  for face in record["faces"]:
    assert len(face["box"]) == 4 and len(face["landmarks"]) == 21
    assert all(0.0 <= v <= 1.0 for v in face["visibility"])
    assert set(face["pose"]) == {"roll", "pitch", "yaw"}
    assert face["gender"]["label"] == ("female" if face["gender"]["p_female"] >= 0.5 else "male")
    x, y, w, h = face["box"]
    assert -w < x < 50 and -h < y < 40  # in original (50 x 40) pixels, not network ones
  assert (tmp_path / "out" / "x.png").is_file()
  status = _main(
    [
      f"--workdir={smoke_workdir}",
      f"--input={src}",
      f"--output={tmp_path}/out2",
      "--config.nms.topk=3",
    ]
  )
  assert status == 2 and not os.path.exists(tmp_path / "out2")
  assert "Unknown inference setting 'nms.topk'" in capsys.readouterr().err


def test_program_fills_the_persistent_compilation_cache(smoke_workdir, tmp_path):
  """`python -m hyperface_jax.predict` caches its compiled programs, by default under
  ~/.cache/hyperface_jax/jax_cache (HOME is a temporary folder here); in-process calls
  leave JAX's settings alone unless --compilation_cache_dir is given."""
  src, home = tmp_path / "in", tmp_path / "home"
  src.mkdir()
  home.mkdir()
  rng = np.random.default_rng(3)
  Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(src / "x.png")
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "hyperface_jax.predict",
      f"--workdir={smoke_workdir}",
      f"--input={src / 'x.png'}",
      f"--output={tmp_path / 'out'}",
      "--config.nms.score_threshold=0.0",
      "--config.detection_threshold=0.0",  # a random model scores ~0.5
      "--config.max_faces=2",
      "--config.batch_size=32",
      "--config.proposals.sliding_window.min_side=40",
    ],
    cwd=REPO,
    env={**os.environ, "HOME": str(home)},
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (tmp_path / "out" / "x.json").is_file()
  cache = home / ".cache" / "hyperface_jax" / "jax_cache"
  assert os.listdir(cache)  # the network's program (the other stages are numpy)
  base = ["predict", "--workdir=W", "--input=I", "--output=O"]
  assert predict.parse_args(base)[0].compilation_cache_dir is None
  args, _ = predict.parse_args(base + ["--compilation_cache_dir="])
  assert args.compilation_cache_dir == ""  # off, even for the program


def test_smoother_follows_faces_that_swap_order_and_restarts_lost_ones():
  from hyperface_jax.inference import smoothing  # pylint: disable=g-import-not-at-top

  def face(x, lm):
    return Face(
      box=np.array([x, 0, 20, 20], np.float32),
      score=1.0,
      landmarks=np.full((21, 2), lm, np.float32),
      visibility=np.ones(21),
      pose=np.zeros(3),
      p_female=0.5,
    )

  smoother = smoothing.LandmarkSmoother(alpha=0.75)
  first = smoother.update([face(0, 0.0), face(100, 10.0)])
  assert [t for t, _ in first] == [0, 1]
  # Listed in the other order and moved by 2 px: matched by IoU, not by position in the list.
  second = smoother.update([face(102, 14.0), face(2, 4.0), face(300, 8.0)])
  assert [t for t, _ in second] == [1, 0, 2]
  np.testing.assert_allclose(second[0][1].landmarks[0], [11.0, 11.0])  # .75*10 + .25*14
  np.testing.assert_allclose(second[1][1].landmarks[0], [1.0, 1.0])  # .75*0 + .25*4
  np.testing.assert_allclose(second[1][1].box, [0.5, 0, 20, 20])
  np.testing.assert_allclose(second[2][1].landmarks[0], [8.0, 8.0])  # new track: raw
  third = smoother.update([face(2, 4.0)])  # tracks 1 and 2 lost
  assert [t for t, _ in third] == [0]
  fourth = smoother.update([face(100, 10.0)])  # track 1's place again: a new track
  assert [t for t, _ in fourth] == [3]
  with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\)"):
    smoothing.LandmarkSmoother(alpha=1.0)


def test_an_analyzer_error_fails_its_batch_only(tmp_path, capsys):
  for i, value in enumerate((0, 255, 0)):  # the white image makes the analyzer raise
    Image.fromarray(np.full((30, 40, 3), value, np.uint8)).save(tmp_path / f"{i}.png")

  class Picky(FakeAnalyzer):
    def __call__(self, images):
      if any(img.mean() > 250 for img in images):
        raise RuntimeError("boom")
      return super().__call__(images)

  status = _main(
    [
      "--workdir=W",
      f"--input={tmp_path}",
      f"--output={tmp_path}/o",
      "--batch_size=1",
      "--min_side=0",
    ],
    analyzer_factory=lambda *a: Picky(),
  )
  assert status == 1
  assert f"{tmp_path}/1.png: analysis failed: RuntimeError: boom" in capsys.readouterr().err
  assert sorted(os.listdir(tmp_path / "o")) == ["0.json", "0.png", "2.json", "2.png"]


def test_absl_flags_parsed_afresh_on_every_call(capsys):
  base = ["predict", "--workdir=W", "--input=I", "--output=O"]
  args, overrides = predict.parse_args(base + ["--batch_size=3", "--norecursive", "--step=4"])
  assert (args.batch_size, args.recursive, args.step, overrides) == (3, False, 4, {})
  args, _ = predict.parse_args(base)  # defaults again, nothing left from the last call
  assert (args.batch_size, args.recursive, args.step, args.min_side) == (8, True, None, None)
  for spelling in ("--no-recursive", "--recursive=false"):  # argparse's spelling still works
    assert predict.parse_args(base + [spelling])[0].recursive is False
  args, _ = predict.parse_args(["predict", "--workdir", "W", "--input", "I", "--output", "O"])
  assert (args.workdir, args.input, args.output) == ("W", "I", "O")
  for bad, words in (
    (["--batch_size=0"], "--batch_size must be >= 1, got 0"),
    (["extra"], "unrecognised argument 'extra'"),
    (["--config.=3"], "analyzer settings are written --config.KEY=VALUE"),
    (["--batch_size=two"], "batch_size"),
  ):
    with pytest.raises(predict.UsageError, match=words):
      predict.parse_args(base + bad)
  assert _main(["--help"]) == 0
  out = capsys.readouterr().out
  assert "--workdir" in out and "--[no]recursive" in out and "--config.KEY=VALUE" in out
