"""surgery.py: names, loud merges, head replacement, re-initialisation, groups, overview."""

import re

import jax
import numpy as np
import pytest

from hyperface_jax import models, registry, surgery  # noqa: F401  (registers models)


def _tree():
  rng = np.random.default_rng(0)
  return {
    "backbone": {
      "conv1": {
        "kernel": rng.normal(size=(3, 3, 3, 4)).astype(np.float32),
        "bias": np.zeros(4, np.float32),
      },
      "conv2": {"kernel": rng.normal(size=(3, 3, 4, 8)).astype(np.float32)},
    },
    "heads": {
      "fc_landmarks2": {
        "kernel": rng.normal(size=(16, 42)).astype(np.float32),
        "bias": np.zeros(42, np.float32),
      },
      "fc_pose2": {"kernel": rng.normal(size=(16, 3)).astype(np.float32)},
    },
  }


def test_flatten_unflatten_round_trip_and_names():
  tree = _tree()
  flat = surgery.flatten(tree)
  assert list(flat) == [
    "backbone/conv1/kernel",
    "backbone/conv1/bias",
    "backbone/conv2/kernel",
    "heads/fc_landmarks2/kernel",
    "heads/fc_landmarks2/bias",
    "heads/fc_pose2/kernel",
  ]
  back = surgery.unflatten(flat)
  assert jax.tree.structure(back) == jax.tree.structure(tree)
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(tree), strict=True):
    assert a is b
  assert surgery.flatten({"a": {"b": 1}}, sep=".") == {"a.b": 1}
  with pytest.raises(ValueError, match="contains the separator"):
    surgery.flatten({"a/b": 1})
  with pytest.raises(ValueError, match="needs 'a/b' to be a subtree, but it is also a leaf"):
    surgery.unflatten({"a/b": 1, "a/b/c": 2})


def test_merge_loads_casts_and_keeps_dont_load():
  inited = _tree()
  loaded = jax.tree.map(lambda x: (x + 1.0).astype(np.float64), inited)
  merged, report = surgery.merge_params(loaded, inited, dont_load=["heads/.*"], return_report=True)
  flat, init_flat, load_flat = map(surgery.flatten, (merged, inited, loaded))
  for name in flat:
    expected = init_flat[name] if name.startswith("heads/") else load_flat[name]
    np.testing.assert_array_equal(flat[name], expected)
    assert flat[name].dtype == np.float32, name  # cast to the model's dtype
  assert sorted(report.kept_init) == [
    "heads/fc_landmarks2/bias",
    "heads/fc_landmarks2/kernel",
    "heads/fc_pose2/kernel",
  ]
  assert sorted(report.dropped) == sorted(report.kept_init)
  assert len(report.loaded) == 3


def test_merge_error_lists_every_offending_name_with_shapes():
  inited = _tree()
  loaded = _tree()
  del loaded["backbone"]["conv2"]  # missing
  loaded["backbone"]["conv9"] = {"kernel": np.zeros((1,), np.float32)}  # unexpected
  loaded["heads"]["fc_pose2"]["kernel"] = np.zeros((16, 5), np.float32)  # mis-shaped
  with pytest.raises(surgery.ParamMismatchError) as info:
    surgery.merge_params(loaded, inited, context="test.npz")
  e = info.value
  assert e.missing == ["backbone/conv2/kernel"]
  assert e.unexpected == ["backbone/conv9/kernel"]
  assert e.mismatched == [("heads/fc_pose2/kernel", (16, 5), (16, 3))]
  message = str(e)
  assert "(test.npz)" in message
  assert "missing (in the model, not in the loaded tree), 1: backbone/conv2/kernel" in message
  assert "unexpected (loaded, not in the model), 1: backbone/conv9/kernel" in message
  assert "heads/fc_pose2/kernel (loaded (16, 5), model (16, 3))" in message
  # dont_load silences exactly those names (both sides) and nothing else.
  surgery.merge_params(
    loaded, inited, dont_load=["backbone/conv2/.*", "backbone/conv9/.*", "heads/fc_pose2/.*"]
  )
  with pytest.raises(surgery.ParamMismatchError, match="mis-shaped, 1"):
    surgery.merge_params(loaded, inited, dont_load=["backbone/conv[29]/.*"])
  with pytest.raises(ValueError, match=re.escape("Invalid dont_load regex '(('")):
    surgery.merge_params(loaded, inited, dont_load=["(("])


def test_prefix_map_transplants_a_classifier_backbone():
  inited = _tree()
  classifier = {
    "backbone": jax.tree.map(lambda x: x * 0 + 7.0, inited["backbone"]),
    "classifier": {"fc8": {"kernel": np.ones((4, 2), np.float32)}},
  }
  merged, report = surgery.merge_params(
    classifier, inited, prefix_map={"backbone/": "backbone/"}, return_report=True
  )
  flat = surgery.flatten(merged)
  assert all(np.all(flat[n] == 7.0) for n in flat if n.startswith("backbone/"))
  np.testing.assert_array_equal(
    merged["heads"]["fc_pose2"]["kernel"], inited["heads"]["fc_pose2"]["kernel"]
  )
  assert report.dropped == ["classifier/fc8/kernel"]
  # Renaming: a tree whose backbone lives under "features/".
  renamed = {"features": classifier["backbone"]}
  merged2 = surgery.merge_params(renamed, inited, prefix_map=[("features/", "backbone/")])
  np.testing.assert_array_equal(merged2["backbone"]["conv2"]["kernel"], 7.0)


def _hyperface_params(num_landmarks, seed):
  model = registry.MODELS.get("hyperface_alexnet")(
    width=0.125, dropout=0.0, num_landmarks=num_landmarks
  )
  variables = jax.jit(lambda r: model.init(r, np.zeros((1, 67, 67, 3), np.float32)))(
    jax.random.PRNGKey(seed)
  )
  return jax.tree.map(np.asarray, variables["params"])


def test_replace_head_21_to_68_landmarks():
  old = _hyperface_params(21, seed=0)
  fresh = _hyperface_params(68, seed=1)
  heads = ("heads/fc_landmarks2", "heads/fc_visibility2")
  new = surgery.replace_head(old, fresh, heads)
  assert new["heads"]["fc_landmarks2"]["kernel"].shape == (512, 136)
  assert new["heads"]["fc_visibility2"]["bias"].shape == (68,)
  flat_new, flat_old, flat_fresh = map(surgery.flatten, (new, old, fresh))
  for name, value in flat_new.items():
    source = flat_fresh if name.startswith(heads) else flat_old
    np.testing.assert_array_equal(value, source[name], err_msg=name)
  # Without replacing the visibility head, its shape mismatch is reported by name.
  with pytest.raises(
    surgery.ParamMismatchError,
    match=r"heads/fc_visibility2/kernel \(loaded \(512, 21\), model \(512, 68\)\)",
  ):
    surgery.replace_head(old, fresh, "heads/fc_landmarks2")
  with pytest.raises(KeyError, match="'heads/fc_nose'"):
    surgery.replace_head(old, fresh, "heads/fc_nose")


def test_reinit_replaces_exactly_the_matching_names():
  tree, fresh = _tree(), jax.tree.map(lambda x: x + 100.0, _tree())
  new = surgery.reinit(tree, fresh, r"heads/fc_pose2/.*|backbone/conv1/bias")
  for name, value in surgery.flatten(new).items():
    source = fresh if name in ("heads/fc_pose2/kernel", "backbone/conv1/bias") else tree
    np.testing.assert_array_equal(value, surgery.flatten(source)[name])
  with pytest.raises(ValueError, match=r"\['heads/typo/\.\*'\] match no parameter"):
    surgery.reinit(tree, fresh, ["heads/typo/.*"])


def test_label_tree_first_match_wins_and_freeze_mask():
  labels = surgery.label_tree(
    _tree(), {"stem": "backbone/conv1/.*", "body": ["backbone/.*"]}, default="rest"
  )
  assert surgery.flatten(labels) == {
    "backbone/conv1/kernel": "stem",
    "backbone/conv1/bias": "stem",
    "backbone/conv2/kernel": "body",
    "heads/fc_landmarks2/kernel": "rest",
    "heads/fc_landmarks2/bias": "rest",
    "heads/fc_pose2/kernel": "rest",
  }
  mask = surgery.flatten(surgery.freeze_mask(_tree(), ["heads/.*2/bias"]))
  assert [n for n, v in mask.items() if v] == ["heads/fc_landmarks2/bias"]
  with pytest.raises(ValueError, match=r"\['oops'\] match no parameter"):
    surgery.label_tree(_tree(), {"oops": "backbone"})  # fullmatch: needs "backbone/.*"


def test_param_overview_totals_match_hand_counts():
  text = surgery.param_overview(_tree())
  lines = text.splitlines()
  # Hand counts: 108 + 4 + 288 + 672 + 42 + 48 = 1162 scalars, float32 -> 4648 bytes.
  assert lines[-1] == "Total: 6 arrays, 1,162 parameters, 0.00 MiB"
  row = next(line for line in lines if line.startswith("backbone/conv2/kernel"))
  assert [c.strip() for c in row.split("|")] == [
    "backbone/conv2/kernel",
    "(3, 3, 4, 8)",
    "float32",
    "288",
  ]
  assert surgery.count_params(_tree()) == 1162
  short = surgery.param_overview(_tree(), max_rows=2).splitlines()
  assert "... 4 more arrays" in short and short[-1] == lines[-1]
  # Full HyperFace-AlexNet: fc_full alone is 6912 x 3072 weights (docs/papers.md 1.2).
  model = registry.MODELS.get("hyperface_alexnet")()
  shapes = jax.eval_shape(
    lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, 227, 227, 3), np.float32))
  )
  assert surgery.flatten(shapes["params"])["fusion/fc_full/kernel"].shape == (6912, 3072)
  total = surgery.count_params(shapes["params"])
  assert f"{total:,} parameters" in surgery.param_overview(shapes["params"])
