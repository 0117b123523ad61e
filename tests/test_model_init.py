"""config.model_init / model_load: a fresh run starts from the given weights; a resumed one not."""

import json
import os
import sys

import jax
import numpy as np
import pytest

from hyperface_jax import checkpointing, sharding, surgery, train
from hyperface_jax import model_init as model_init_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**load):
  sys.path.insert(0, REPO)
  from configs import smoke  # pylint: disable=g-import-not-at-top

  c = smoke.get_config()
  c.model.norm = "batch"  # so batch_stats are loaded too
  for k, v in load.items():
    c.model_load[k] = v
  return c


def _bvlc_configs():
  sys.path.insert(0, REPO)
  from configs import hyperface_alexnet, rcnn_face  # pylint: disable=g-import-not-at-top

  return [hyperface_alexnet.get_config("bvlc"), rcnn_face.get_config("bvlc")]


def _fresh(config, workdir):
  """restore_or_init as the train loop calls it (shape-first init, then model_init)."""
  mesh = sharding.make_mesh()
  _, _, _, _, init = train.build(config, mesh)
  ckpt = checkpointing.Checkpointer(workdir)
  state = train.restore_or_init(config, mesh, init, ckpt)
  ckpt.close()
  return state


def _variables(state):
  return sharding.to_host({"params": state.params, **state.model_state})


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """A plain fresh state (no model_init) and a converted-format directory of other weights."""
  config = _config()
  state = _fresh(config, str(tmp_path_factory.mktemp("plain")))
  init_vars = _variables(state)
  rng = np.random.default_rng(1)
  other = jax.tree.map(lambda x: rng.normal(size=x.shape).astype(x.dtype), init_vars)
  directory = str(tmp_path_factory.mktemp("converted"))
  _write_converted(directory, other)
  return config, state, init_vars, other, directory


def _load(state, model_init, **load):
  """What restore_or_init does after a fresh init (without compiling the init again)."""
  config = _config(**load)
  config.model_init = str(model_init)
  return _variables(
    model_init_lib.initialise_from(state, config, sharding.replicated(sharding.make_mesh()))
  )


def _write_converted(directory, variables, extra=None, normalization=None):
  flat = surgery.flatten(variables)
  flat.update(extra or {})
  np.savez(os.path.join(directory, "variables.npz"), **flat)
  with open(os.path.join(directory, "converted.json"), "w") as f:
    json.dump(
      {
        "format": "test",
        "arch": "alexnet",
        "model_name": "hyperface_alexnet",
        "model": {},
        "source": {"file": "fixture"},
        "normalization": normalization or {},
        "report": {},
      },
      f,
    )


def other_state(variables):
  return {k: v for k, v in variables.items() if k != "params"}


def _assert_trees_equal(a, b):
  fa, fb = surgery.flatten(a), surgery.flatten(b)
  assert sorted(fa) == sorted(fb)
  for name in fa:
    np.testing.assert_array_equal(fa[name], fb[name], err_msg=name)


def test_fresh_run_starts_with_exactly_the_converted_weights(reference, tmp_path):
  config, _, init_vars, other, directory = reference
  config.model_init = directory
  _assert_trees_equal(_variables(_fresh(config, str(tmp_path))), other)
  assert not np.array_equal(
    init_vars["params"]["fusion"]["fc_full"]["kernel"],
    other["params"]["fusion"]["fc_full"]["kernel"],
  )


def test_dont_load_and_batch_stats_switch(reference, tmp_path):
  _, state, init_vars, other, directory = reference
  got = surgery.flatten(
    _load(state, directory, dont_load=("heads/.*", "fusion/conv_all/.*"), batch_stats=False)
  )
  init_flat, other_flat = surgery.flatten(init_vars), surgery.flatten(other)
  for name, value in got.items():
    keep = name.startswith(("params/heads/", "params/fusion/conv_all/", "batch_stats/"))
    np.testing.assert_array_equal(value, (init_flat if keep else other_flat)[name], err_msg=name)


def test_classifier_backbone_transplanted_by_prefix_map(reference, tmp_path):
  _, state, init_vars, other, _ = reference
  classifier = {
    "params": {
      "backbone": other["params"]["backbone"],
      "classifier": {"fc8": {"kernel": np.ones((4, 2), np.float32)}},
    },
    "batch_stats": {"backbone": other["batch_stats"]["backbone"]},
  }
  directory = str(tmp_path / "classifier")
  os.makedirs(directory)
  _write_converted(directory, classifier)
  got = _load(state, directory, prefix_map=(("backbone/", "backbone/"),))
  for coll in ("params", "batch_stats"):
    _assert_trees_equal(got[coll]["backbone"], other[coll]["backbone"])
    _assert_trees_equal(got[coll]["fusion"], init_vars[coll]["fusion"])
  _assert_trees_equal(got["params"]["heads"], init_vars["params"]["heads"])


def test_initialise_from_one_of_our_runs(reference, tmp_path):
  _, state, _, other, directory = reference
  stepped = state.replace(
    params=jax.tree.map(lambda x: x + 1.0, other["params"]), model_state=other_state(other)
  )
  ckpt = checkpointing.Checkpointer(str(tmp_path / "a"))
  ckpt.save(7, stepped)
  ckpt.close()
  for path in (tmp_path / "a", tmp_path / "a" / "checkpoints" / "7"):  # workdir, one step
    got = _load(state, path)
    _assert_trees_equal(got["params"], jax.tree.map(lambda x: x + 1.0, other["params"]))
    _assert_trees_equal(got["batch_stats"], other["batch_stats"])


def test_resumed_run_ignores_model_init(reference, tmp_path):
  config, state, init_vars, other, directory = reference
  workdir = str(tmp_path / "run")
  ckpt = checkpointing.Checkpointer(workdir)
  ckpt.save(
    3, state.replace(step=state.step + 3, params=jax.tree.map(lambda x: x * 2.0, state.params))
  )
  ckpt.close()
  config.model_init = directory  # valid, but a resumed run must not read it
  resumed = _fresh(config, workdir)
  assert int(resumed.step) == 3
  _assert_trees_equal(
    _variables(resumed)["params"], jax.tree.map(lambda x: x * 2.0, init_vars["params"])
  )


def test_wrong_shape_and_unknown_key_fail_listing_the_names(reference, tmp_path):
  _, state, _, other, _ = reference
  bad = jax.tree.map(lambda x: x, other)
  bad["params"]["heads"]["fc_pose2"]["kernel"] = np.zeros((512, 4), np.float32)
  directory = str(tmp_path / "bad")
  os.makedirs(directory)
  _write_converted(directory, bad, extra={"params/heads/fc_age2/kernel": np.zeros(3)})
  with pytest.raises(surgery.ParamMismatchError) as info:
    _load(state, directory)
  message = str(info.value)
  assert "unexpected (loaded, not in the model), 1: heads/fc_age2/kernel" in message
  assert "heads/fc_pose2/kernel (loaded (512, 4), model (512, 3))" in message
  assert "fixture" in message and directory in message  # which file was loaded
  with pytest.raises(FileNotFoundError, match="model_init: .*nowhere.* does not exist"):
    _load(state, tmp_path / "nowhere")
  np.savez(os.path.join(directory, "variables.npz"), kernel=np.zeros(3))
  with pytest.raises(ValueError, match=r"variables.npz: names must be '<collection>/"):
    _load(state, directory)
  with pytest.raises(FileNotFoundError, match="No checkpoint under"):
    _load(state, tmp_path)


def test_converted_weights_with_another_normalization_are_refused(reference, tmp_path):
  _, state, _, other, _ = reference
  directory = str(tmp_path / "bgr")
  os.makedirs(directory)
  _write_converted(directory, other, normalization={"preprocess_mode": "caffe_bgr"})
  config = _config()
  config.model_init = directory
  assert config.data.normalize == "minus_half"
  replicated = sharding.replicated(sharding.make_mesh())
  with pytest.raises(model_init_lib.NormalizeMismatchError) as info:
    model_init_lib.initialise_from(state, config, replicated)
  message = str(info.value)
  assert "'caffe_bgr'" in message and "'minus_half'" in message and directory in message
  assert "--config.data.normalize=caffe_bgr" in message
  # The recorded mode in config.data.normalize: loaded as usual.
  config.data.normalize = "caffe_bgr"
  got = _variables(model_init_lib.initialise_from(state, config, replicated))
  _assert_trees_equal(got, other)


def test_caffe_converted_alexnet_transplants_into_hyperface(tmp_path):
  """Helper C's real converter output (a narrow BVLC-layout caffemodel) -> HyperFace backbone."""
  import caffe_fixture  # pylint: disable=g-import-not-at-top  (tests/ is on sys.path)

  from hyperface_jax import registry  # pylint: disable=g-import-not-at-top
  from hyperface_jax.convert import convert_file, load_converted  # pylint: disable=g-import-not-at-top

  payload, _ = caffe_fixture.alexnet(np.random.default_rng(0), channels=(12, 32, 48, 48, 32))
  (tmp_path / "bvlc.caffemodel").write_bytes(payload)
  directory = str(tmp_path / "converted")
  convert_file("caffe", "alexnet", str(tmp_path / "bvlc.caffemodel"), directory)
  _, converted = load_converted(directory)
  # HyperFace-AlexNet at width 1/8 with BVLC groups has exactly these backbone shapes.
  model = registry.MODELS.get("hyperface_alexnet")(width=0.125, conv_groups=2)
  abstract = jax.eval_shape(
    lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, 67, 67, 3), np.float32))
  )
  # The :bvlc configs normalize as the converter recorded; the default does not.
  with pytest.raises(ValueError, match="expect input normalized with 'caffe_bgr'"):
    model_init_lib.read_variables(directory, normalize="minus_half")
  bvlc = _bvlc_configs()
  assert {c.data.normalize for c in bvlc} == {"caffe_bgr"}
  loaded, description = model_init_lib.read_variables(directory, normalize=bvlc[0].data.normalize)
  params, _, reports = model_init_lib.merge_variables(
    loaded,
    abstract["params"],
    {},
    _config(prefix_map=(("backbone/", "backbone/"),)).model_load,
    description,
  )
  _assert_trees_equal(params["backbone"], jax.tree.map(np.asarray, converted["params"]["backbone"]))
  assert sorted({n.split("/")[1] for n in reports["params"].dropped}) == ["fc6", "fc7", "fc8"]
  assert "converted alexnet (caffe, source bvlc.caffemodel)" in description
