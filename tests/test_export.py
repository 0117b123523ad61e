"""hyperface_jax.export: golden outputs of every format against JAX, preprocessing.json,
atomic writes, the CLI, and FaceAnalyzer on an ONNX export with JAX blocked."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from hyperface_jax import checkpointing, sharding, train
from hyperface_jax.data import preprocess, render
from hyperface_jax.export import __main__ as cli
from hyperface_jax.export import api, golden, runtime, spec, target

pytest.importorskip("onnxruntime")
pytest.importorskip("jax2onnx")
pytest.importorskip("ai_edge_litert")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4  # every format's outputs equal the JAX model's within this; measured values:
# bench/export_check.py, docs/export.md


def _config(name, arg=None):
  path = os.path.join(REPO, "configs", name)
  module_spec = importlib.util.spec_from_file_location(name[:-3] + "_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg)


def _workdir(config, path, seed):
  _, _, _, _, init = train.build(config, sharding.make_mesh())
  state = jax.jit(init)(jax.random.PRNGKey(seed))
  ckpt = checkpointing.Checkpointer(path)
  ckpt.save(2, state)
  ckpt.close()
  train._write_config(config, path)
  return path


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
  """{"hyperface": smoke HyperFace run (width 1/8, 67 px), "fast": Fast-HyperFace proposal
  net run (width 0.5, 24 px)}, randomly initialised checkpoints."""
  fast = _config("fast_hyperface.py", "cpu")
  fast.model.width = 0.5
  return {
    "hyperface": _workdir(_config("smoke.py"), str(tmp_path_factory.mktemp("hf")), 0),
    "fast": _workdir(fast, str(tmp_path_factory.mktemp("fast")), 1),
  }


@pytest.fixture(scope="module")
def exports(workdirs, tmp_path_factory):
  """exports(run, model, fmt, batch) -> export folder, each written once per module."""
  root, cache = tmp_path_factory.mktemp("exports"), {}

  def get(run, model, fmt, batch):
    key = (run, model, fmt, batch)
    if key not in cache:
      out = str(root / "_".join(str(k) for k in key))
      api.export(workdirs[run], fmt, out, batch=batch, model=model, check=False)
      cache[key] = out
    return cache[key]

  return get


# (run, model) of each golden case
CASES = {
  "hyperface": ("hyperface", "network"),
  "fast_crops": ("fast", "network"),
  "fast_proposals": ("fast", "proposals"),
}


@pytest.mark.parametrize("fmt", runtime.FORMATS)
@pytest.mark.parametrize("batch", [4, "dynamic"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_format_equals_jax_on_real_inputs(case, batch, fmt, workdirs, exports):
  """synth_faces crops (levels for the dense proposal map) through the export and JAX:
  batch 3 and 7 for a dynamic batch, H x W 56 x 72 and 40 x 104 for the proposal map."""
  run, model = CASES[case]
  if model == "proposals" and batch == 4:
    batch = 2  # dense maps: a smaller fixed batch; H and W stay symbolic
  ref = target.build_target(workdirs[run], model=model, batch=batch)
  shapes = golden.shapes(ref)
  assert len(shapes) == (1 if batch != "dynamic" and model == "network" else 2)
  # golden.compare: same output names and shapes (else it raises), max |exported - JAX|.
  diffs = golden.compare(exports(run, model, fmt, batch), ref)
  assert sorted(diffs) == sorted(ref.output_names())
  assert all(d <= TOL for d in diffs.values()), diffs


def test_fixed_batch_onnx_rejects_another_batch(workdirs, exports):
  exported = runtime.load(exports("hyperface", "network", "onnx", 4))
  x = golden.inputs(target.build_target(workdirs["hyperface"], batch=4), (3,))
  with pytest.raises(Exception, match="(?i)dimension|shape"):
    exported(x)


def test_preprocessing_json_describes_input_normalization_and_outputs(workdirs, exports):
  hf = runtime.read_spec(exports("hyperface", "network", "onnx", "dynamic"))
  assert hf["format"] == "onnx" and hf["model"] == "network" and hf["model_file"] == "model.onnx"
  assert hf["input"] == {
    "name": "images",
    "dtype": "float32",
    "layout": "NHWC",
    "shape": [None, 67, 67, 3],
    "dims": ["b", 67, 67, 3],
    "channel_order": "RGB",
  }
  assert hf["crop"]["kind"] == "region" and hf["crop"]["size"] == 67 and hf["crop"]["fill"] == 0
  assert hf["normalize"]["mode"] == "minus_half"
  assert hf["normalize"]["affine"]["offset"] == [-0.5] * 3
  assert hf["normalize"]["affine"]["scale"] == [float(np.float32(1 / 255))] * 3
  outputs = {o["name"]: o for o in hf["outputs"]}
  assert {k: o["shape"] for k, o in outputs.items()} == {
    "detection": [None, 2],
    "gender": [None, 2],
    "landmarks": [None, 21, 2],
    "pose": [None, 3],
    "visibility": [None, 21],
  }
  assert outputs["landmarks"]["shape_expr"] == ["b", 21, 2]
  assert outputs["pose"]["units"] == "radians" and "roll, pitch, yaw" in outputs["pose"]["meaning"]
  assert outputs["landmarks"]["units"] == "region-normalized"
  assert "(x - cx) / w" in outputs["landmarks"]["meaning"]
  assert outputs["detection"]["units"] == "logits" and outputs["gender"]["units"] == "logits"
  assert hf["source"]["step"] == 2 and hf["source"]["model_name"] == "hyperface_alexnet"
  fixed = runtime.read_spec(exports("hyperface", "network", "onnx", 4))
  assert fixed["input"]["shape"] == [4, 67, 67, 3] and fixed["outputs"][0]["shape"] == [4, 2]
  dense = runtime.read_spec(exports("fast", "proposals", "stablehlo", "dynamic"))
  assert dense["input"]["dims"] == ["b", "h", "w", 3] and dense["crop"]["stride"] == 4
  outs = {o["name"]: o for o in dense["outputs"]}
  assert sorted(outs) == ["box_regression_map", "detection_map"]
  out = outs["detection_map"]
  assert out["shape"] == [None, None, None, 2]
  assert out["shape_expr"][1] == "floordiv(floordiv(h - 4, 2) - 5, 2) - 1"
  assert outs["box_regression_map"]["shape"] == [None, None, None, 4]
  assert outs["box_regression_map"]["units"] == "box deltas"
  assert "log(w_face / 24)" in outs["box_regression_map"]["meaning"]


@pytest.mark.parametrize("mode", preprocess.NORMALIZE_MODES)
def test_normalization_from_the_json_alone_equals_preprocess(mode):
  crops = np.random.default_rng(1).integers(0, 256, (4, 9, 9, 3), dtype=np.uint8)
  want = preprocess.normalize(crops, mode)
  payload = json.loads(json.dumps(spec.normalize_spec(mode)))  # through JSON text
  np.testing.assert_array_equal(spec.normalize_from_spec(payload, crops), want)
  affine = payload["affine"]
  if affine is not None:  # the one-multiply-add form, within float32 rounding
    x = crops[..., affine["channel_source"]].astype(np.float64)
    np.testing.assert_allclose(x * affine["scale"] + affine["offset"], want, atol=2e-5, rtol=1e-6)


def test_export_checks_itself_and_records_the_difference(workdirs, tmp_path):
  payload = api.export(workdirs["fast"], "stablehlo", str(tmp_path / "x"), batch=2)
  assert payload["check"]["max_abs_diff"] == {"box_regression": 0.0, "detection": 0.0}
  assert runtime.read_spec(str(tmp_path / "x"))["check"] == payload["check"]
  assert sorted(os.listdir(tmp_path)) == ["x"]
  assert sorted(os.listdir(tmp_path / "x")) == ["model.stablehlo", "preprocessing.json"]


def test_failed_export_leaves_nothing_and_overwrite_replaces(workdirs, tmp_path, monkeypatch):
  out = tmp_path / "exp"

  def half_written(fmt, tgt, path, scratch, platforms):
    with open(path, "wb") as f:
      f.write(b"half")
    raise RuntimeError("disk full")

  monkeypatch.setattr(api, "_write_model", half_written)
  with pytest.raises(RuntimeError, match="disk full"):
    api.export(workdirs["fast"], "onnx", str(out), batch=2)
  assert os.listdir(tmp_path) == []  # no output, no temporary folder
  monkeypatch.undo()
  api.export(workdirs["fast"], "stablehlo", str(out), batch=2, check=False)
  with pytest.raises(api.ExportError, match="exists; pass --overwrite"):
    api.export(workdirs["fast"], "onnx", str(out), batch=2)
  monkeypatch.setattr(api, "_write_model", half_written)
  with pytest.raises(RuntimeError):
    api.export(workdirs["fast"], "onnx", str(out), batch=2, overwrite=True)
  assert sorted(os.listdir(tmp_path)) == ["exp"]  # the previous export is untouched
  assert runtime.read_spec(str(out))["format"] == "stablehlo"
  monkeypatch.undo()
  api.export(workdirs["fast"], "onnx", str(out), batch=2, overwrite=True, check=False)
  assert sorted(os.listdir(tmp_path)) == ["exp"]
  assert sorted(os.listdir(out)) == ["model.onnx", "preprocessing.json"]


def test_cli(workdirs, tmp_path, capsys):
  out = str(tmp_path / "cli")
  args = ["export", f"--workdir={workdirs['fast']}", "--format=tflite", f"--output={out}"]
  assert cli.main(args + ["--batch=3"]) == 0
  printed = capsys.readouterr().out
  assert "box_regression [3, 4], detection [3, 2]" in printed
  assert "max |exported - JAX|: box_regression" in printed and ", detection " in printed
  assert runtime.read_spec(out)["input"]["shape"] == [3, 24, 24, 3]
  for extra, message in [
    (["--batch=0"], "--batch must be a positive integer or 'dynamic'"),
    (["--batch=3"], "exists; pass --overwrite"),
    (["--overwrite", "--image_size=40"], "--image_size must be H,W"),
    (["--overwrite", "--image_size=40,40"], "--image_size applies to --model=proposals"),
  ]:
    assert cli.main(args + extra) == 2, extra
    assert message in capsys.readouterr().err
  bad = ["export", f"--workdir={workdirs['hyperface']}", "--model=proposals"]
  assert cli.main(bad + ["--format=onnx", f"--output={tmp_path / 'p'}"]) == 2
  assert "needs a Fast-HyperFace proposal run" in capsys.readouterr().err
  assert cli.main(["export", "--format=onnx", f"--output={out}"]) == 2
  assert "--workdir is required" in capsys.readouterr().err
  assert cli.main(["export", f"--workdir={tmp_path}", "--format=onnx", "--output=o"]) == 2
  assert "is not a trained run" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "p")


# FaceAnalyzer.from_export in a process where importing jax, jaxlib or flax fails.
_NO_JAX_ANALYZER = """
import importlib.abc, json, sys
class _NoJax(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in ("jax", "jaxlib", "flax"):
      raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, _NoJax())
import numpy as np
from hyperface_jax.inference.analyzer import FaceAnalyzer
image = np.load(sys.argv[2])
analyzer = FaceAnalyzer.from_export(sys.argv[1], **json.loads(sys.argv[3]))
dets = analyzer.detect([image])[0]
np.savez(sys.argv[4], **dets)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "flax", "tensorflow"))
print(json.dumps(loaded))
"""


def test_face_analyzer_runs_an_onnx_export_without_jax(workdirs, exports, tmp_path):
  from hyperface_jax.inference import analyzer

  overrides = {
    "batch_size": 16,
    "proposals.sliding_window.min_side": 40,
    "proposals.sliding_window.scale_step": 1.5,
    # A random model scores ~0.5: low thresholds so that faces come out.
    "irp.score_threshold": 0.0,
    "nms.score_threshold": 0.0,
    "detection_threshold": 0.0,
  }
  image = render.render_scene(np.random.default_rng([9, 1]))["image"]
  np.save(tmp_path / "image.npy", image)
  folder = exports("hyperface", "network", "onnx", "dynamic")
  proc = subprocess.run(
    [
      sys.executable,
      "-c",
      textwrap.dedent(_NO_JAX_ANALYZER),
      folder,
      str(tmp_path / "image.npy"),
      json.dumps(overrides),
      str(tmp_path / "dets.npz"),
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    env=dict(os.environ, PYTHONPATH=REPO),
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout.splitlines()[-1]) == []  # neither JAX nor TensorFlow loaded
  got = dict(np.load(tmp_path / "dets.npz"))
  want = analyzer.FaceAnalyzer.from_workdir(workdirs["hyperface"], **overrides).detect([image])[0]
  assert len(want["score"]) > 0 and sorted(got) == sorted(want)
  np.testing.assert_allclose(got["score"], want["score"], atol=1e-5)
  for k in ("box", "landmarks"):  # pixels
    np.testing.assert_allclose(got[k], want[k], atol=1e-3)
  for k in ("visibility", "pose", "p_female"):
    np.testing.assert_allclose(got[k], want[k], atol=1e-4)
  # A fixed-batch export pads its last batch (batch 4, 16 per analyzer call).
  fixed = analyzer.FaceAnalyzer.from_export(
    exports("hyperface", "network", "onnx", 4), **overrides
  ).detect([image])[0]
  np.testing.assert_allclose(fixed["landmarks"], want["landmarks"], atol=1e-3)


def test_from_export_rejects_exports_it_cannot_run(exports):
  from hyperface_jax.inference import analyzer

  with pytest.raises(ValueError, match="--format=onnx --model=network"):
    analyzer.FaceAnalyzer.from_export(exports("fast", "proposals", "stablehlo", "dynamic"))
  with pytest.raises(ValueError, match=r"lacks the outputs \['landmarks'"):
    analyzer.FaceAnalyzer.from_export(exports("fast", "network", "onnx", "dynamic"))
