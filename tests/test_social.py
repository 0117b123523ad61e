"""Social-relation system: bridging layer, pair pipeline, evaluators, label filters.

Hand-worked and independent references: a loop-by-loop NumPy HOG, sklearn's balanced
accuracy, crops of the mirrored image (docs/social.md).
"""

import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from hyperface_jax import bridging, tasks
from hyperface_jax.data import boxes as boxes_lib
from hyperface_jax.data import inputs, pairs, preprocess
from hyperface_jax.data.scene_store import SceneStore
from hyperface_jax.evaluation.social import RelationTraitEvaluator
from hyperface_jax.models import hog as hog_lib
from hyperface_jax.models.social import Bridging


def hog_reference(img, n=9, c=8, b=2, eps=1e-5):
  """models/hog.py's five steps, written loop by loop in float64."""
  img = np.asarray(img, np.float64)
  g_row, g_col = np.zeros_like(img), np.zeros_like(img)
  g_row[1:-1] = img[2:] - img[:-2]
  g_col[:, 1:-1] = img[:, 2:] - img[:, :-2]
  mag = np.hypot(g_col, g_row)
  ori = np.rad2deg(np.arctan2(g_row, g_col)) % 180
  rows, cols = img.shape[0] // c, img.shape[1] // c
  hist = np.zeros((rows, cols, n))
  for r in range(rows):
    for q in range(cols):
      m = mag[r * c : (r + 1) * c, q * c : (q + 1) * c]
      o = ori[r * c : (r + 1) * c, q * c : (q + 1) * c]
      for i in range(n):
        hist[r, q, i] = m[(o >= 180 / n * i) & (o < 180 / n * (i + 1))].sum() / (c * c)
  out = []
  for r in range(rows - b + 1):
    for q in range(cols - b + 1):
      v = hist[r : r + b, q : q + b].ravel()
      v = v / np.sqrt(np.sum(v**2) + eps**2)
      v = np.minimum(v, 0.2)
      out.append(v / np.sqrt(np.sum(v**2) + eps**2))
  return np.concatenate(out)


def _hand_image(h=24, w=32):
  """A step edge (column 13), a horizontal bar (rows 5-6) and a gentle diagonal ramp."""
  r, q = np.mgrid[:h, :w]
  img = 0.01 * (r + 2 * q) + (q >= 13) + 0.5 * ((r >= 5) & (r <= 6))
  return img.astype(np.float32)


def test_hog_matches_the_loop_reference():
  img = _hand_image()
  got = np.asarray(hog_lib.hog(jnp.asarray(img)[None]))[0]
  assert got.shape == (hog_lib.hog_dim(24, 32, 9, 8, 2),) == (2 * 3 * 36,)
  np.testing.assert_allclose(got, hog_reference(img), rtol=1e-5, atol=1e-6)


def test_hog_matches_scikit_image_when_installed():
  skimage_feature = pytest.importorskip("skimage.feature")
  img = np.random.default_rng(0).random((40, 48))
  ref = skimage_feature.hog(img, 9, (8, 8), (2, 2), block_norm="L2-Hys", feature_vector=True)
  got = np.asarray(hog_lib.hog(jnp.asarray(img, jnp.float32)[None]))[0]
  np.testing.assert_allclose(got, ref, atol=1e-5)


def test_bridging_h_equals_direct_numpy_distances():
  img = _hand_image()
  feat = hog_reference(img)
  rng = np.random.default_rng(1)
  # hand-made templates: zero, the face's own HOG, twice it, and two random ones
  templates = np.stack([np.zeros_like(feat), feat, 2 * feat, rng.random(feat.size), -feat])
  expected = np.linalg.norm(feat[None] - templates, axis=1)
  norm = np.linalg.norm(feat)
  np.testing.assert_allclose(expected[:3], [norm, 0, norm])
  module = Bridging(num_templates=5)
  variables = {
    "bridging": {
      "templates": jnp.asarray(templates, jnp.float32),
      "h_mean": jnp.zeros(5),
      "h_std": jnp.ones(5),
    }
  }
  images = np.repeat(img[None, :, :, None], 3, axis=-1)  # grey = channel mean
  h = np.asarray(module.apply(variables, jnp.asarray(images)))[0]
  np.testing.assert_allclose(h, expected, rtol=1e-4, atol=2e-3)  # sqrt near 0: abs error


def _layouts(n=240, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(0, 1, (4, 21, 2))
  labels = rng.integers(0, 4, n)
  return centres[labels] + rng.normal(0, 0.05, (n, 21, 2)), rng.random((n, 12))


def test_kmeans_templates_reproducible_for_a_seed():
  layout, hogs = _layouts()
  t1, top1 = bridging.fit_templates(hogs, layout, (4, 3, 2), seed=7)
  t2, top2 = bridging.fit_templates(hogs, layout, (4, 3, 2), seed=7)
  assert t1.shape == (bridging.num_templates((4, 3, 2)), 12) == (24, 12)
  np.testing.assert_array_equal(t1, t2)
  np.testing.assert_array_equal(top1, top2)
  for c in range(4):  # a top-level template is the mean HOG of its cluster
    np.testing.assert_allclose(t1[c], hogs[top1 == c].mean(0), rtol=1e-6)
  with pytest.raises(ValueError, match="fewer than its 5 clusters"):
    bridging.fit_templates(hogs[:20], layout[:20], (4, 5, 2), seed=0)


def _config(**bridging_overrides):
  c = ml_collections.ConfigDict()
  c.input_size = 48
  c.model = dict(
    bridging=dict(
      enabled=True, clusters=(10, 10, 10), orientations=9, pixels_per_cell=8, cells_per_block=2
    )
  )
  c.model.bridging.update(bridging_overrides)
  c.data = dict(normalize="minus_half")
  c.model_init = ""
  return c


def test_template_file_not_matching_the_config_is_refused(tmp_path):
  config = _config()
  arrays = {
    "templates": np.zeros((210, 900), np.float32),
    "h_mean": np.zeros(210, np.float32),
    "h_std": np.ones(210, np.float32),
  }
  meta = {"format": bridging.FORMAT, "version": 1, "settings": bridging.settings(config)}
  bridging.save(bridging.template_path(str(tmp_path)), arrays, meta)
  assert bridging.prepare(config, str(tmp_path))["templates"].shape == (210, 900)
  with pytest.raises(bridging.TemplateMismatchError, match="pixels_per_cell: file 8, config 4"):
    bridging.prepare(_config(pixels_per_cell=4), str(tmp_path))
  with pytest.raises(bridging.TemplateMismatchError, match="clusters: file"):
    bridging.prepare(_config(clusters=(5, 5, 5)), str(tmp_path))
  bridging.save(bridging.template_path(str(tmp_path)), arrays, dict(meta, version=99))
  with pytest.raises(bridging.TemplateMismatchError, match="version 99"):
    bridging.prepare(config, str(tmp_path))
  assert bridging.settings(_config(enabled=False)) is None


def _pair_set():
  """A 60 x 100 image: face a (left, reddish gradient), face b (right, bluish)."""
  image = np.full((60, 100, 3), 40, np.uint8)
  r, q = np.mgrid[:60, :100]
  image[10:34, 8:32, 0] = (100 + 4 * q[10:34, 8:32]).clip(0, 255)
  image[20:50, 60:90, 2] = (80 + 3 * r[20:50, 60:90]).clip(0, 255)
  boxes = np.array([[8, 10, 24, 24], [60, 20, 30, 30]], np.float32)
  traits = np.array([[1, 0, 1, 0, 0, 1, 0, 1]], np.int32)
  return pairs.PairSet([image], [boxes], np.array([[0, 0, 1]]), traits, "hand")


def test_flip_swaps_pair_sides_and_spatial_cues_consistently():
  ps = _pair_set()
  image, (box_a, box_b) = ps.images[0], ps.boxes[0]
  kw = dict(seed=0, step=3, batch_size=1, image_size=16, jitter=0.0, normalize="minus_half")
  plain = pairs.train_batch([ps], flip_prob=0.0, **kw)
  flipped = pairs.train_batch([ps], flip_prob=1.0, **kw)
  cues = pairs.spatial_cues(box_a, box_b, 100, 60)
  np.testing.assert_allclose(plain["cues"][0], cues)
  assert cues[0] < cues[3] and cues[6] > 0  # a left of b
  mirrored_boxes = boxes_lib.flip_boxes(ps.boxes[0], 100)
  mirrored_cues = pairs.spatial_cues(*mirrored_boxes, 100, 60)
  np.testing.assert_allclose(flipped["cues"][0], mirrored_cues, atol=1e-6)
  np.testing.assert_allclose(flipped["cues"][0], pairs.flip_cues(cues), atol=1e-6)
  assert mirrored_cues[0] > mirrored_cues[3] and mirrored_cues[6] < 0  # a now right of b
  np.testing.assert_allclose(mirrored_cues[[1, 2, 4, 5, 7, 8]], cues[[1, 2, 4, 5, 7, 8]])
  # the pair order is kept: row face 0 is still face a, cropped from the mirrored image
  mirrored = np.ascontiguousarray(image[:, ::-1])
  expected = preprocess.normalize(preprocess.crop_and_resize(mirrored, mirrored_boxes, 16))
  np.testing.assert_allclose(flipped["image"]["faces"][0], expected, atol=1.5 / 255)
  np.testing.assert_allclose(
    flipped["image"]["faces"][0], plain["image"]["faces"][0][:, :, ::-1], atol=1.5 / 255
  )
  np.testing.assert_array_equal(flipped["relations"], plain["relations"])
  assert flipped["flipped"][0] == 1 and plain["flipped"][0] == 0


def test_pair_batches_are_a_pure_function_of_seed_and_step():
  ps = _pair_set()
  kw = dict(seed=5, step=11, batch_size=8, image_size=16)
  a, b = pairs.train_batch([ps], **kw), pairs.train_batch([ps], **kw)
  np.testing.assert_array_equal(a["image"]["faces"], b["image"]["faces"])
  np.testing.assert_array_equal(a["flipped"], b["flipped"])
  halves = [pairs.train_batch([ps], process_index=i, process_count=2, **kw) for i in (0, 1)]
  np.testing.assert_array_equal(np.concatenate([h["cues"] for h in halves]), a["cues"])
  other = pairs.train_batch([ps], **dict(kw, step=12))
  assert not np.array_equal(other["image"]["faces"], a["image"]["faces"])


def test_relation_evaluator_balanced_accuracy_matches_sklearn():
  rng = np.random.default_rng(0)
  n = 53
  truth = (rng.random((n, 8)) < np.linspace(0.1, 0.6, 8)).astype(np.int32)
  truth[:, 7] = 0  # a trait with one class only among the labels
  logits = rng.normal(0, 1, (n, 8)) + 1.5 * (2 * truth - 1) * (rng.random((n, 8)) < 0.6)
  cues = rng.random((n, 9)).astype(np.float32)
  results = []
  for size in (16, 7):
    ev = RelationTraitEvaluator()
    for lo in range(0, n, size):
      rows = slice(lo, lo + size)
      k = len(truth[rows])
      pad = 3  # padding rows carry garbage and example_mask 0
      batch = {
        "relations": np.concatenate([truth[rows], np.ones((pad, 8), np.int32)]),
        "relations_mask": np.ones(k + pad, np.float32),
        "example_mask": np.r_[np.ones(k), np.zeros(pad)].astype(np.float32),
        "cues": np.concatenate([cues[rows], np.zeros((pad, 9), np.float32)]),
      }
      ev.update(batch, {"relations": np.concatenate([logits[rows], np.ones((pad, 8))])})
    results.append(ev.result())
  assert results[0] == results[1]
  r = results[0]
  pred = (logits > 0).astype(int)
  for t, name in enumerate(tasks.RELATION_TRAITS):
    with warnings.catch_warnings():  # sklearn warns on the one-class trait
      warnings.simplefilter("ignore")
      expected = balanced_accuracy_score(truth[:, t], pred[:, t])
    assert r[f"relations/{name}/balanced_accuracy"] == pytest.approx(expected, abs=1e-12)
    assert r[f"relations/{name}/accuracy"] == pytest.approx(accuracy_score(truth[:, t], pred[:, t]))
  assert r["relations/mean_accuracy"] == pytest.approx((pred == truth).mean())
  assert r["count/relations"] == n


def test_relation_evaluator_baselines_from_the_training_pairs():
  rng = np.random.default_rng(1)
  train_cues = rng.random((400, 9)).astype(np.float32)
  train = np.zeros((400, 8), np.int32)
  train[:, 0] = train_cues[:, 8] < 0.3  # trait 0 follows a cue exactly (30 % positive)
  train[:, 1] = 1  # trait 1 always present: majority 1
  ev = RelationTraitEvaluator()
  ev.set_baselines(train_cues=train_cues, train_traits=train)
  test_cues = rng.random((50, 9)).astype(np.float32)
  truth = np.zeros((50, 8), np.int32)
  truth[:, 0] = test_cues[:, 8] < 0.3
  truth[:25, 1] = 1
  batch = {
    "relations": truth,
    "relations_mask": np.ones(50),
    "example_mask": np.ones(50),
    "cues": test_cues,
  }
  ev.update(batch, {"relations": np.zeros((50, 8))})
  r = ev.result()
  assert r["baseline/relations/dominant/accuracy"] == pytest.approx(1 - truth[:, 0].mean())
  assert r["baseline/relations/competitive/accuracy"] == pytest.approx(0.5)
  assert r["baseline/cues_only/relations/dominant/accuracy"] >= 0.95
  assert r["baseline/relations/dominant/balanced_accuracy"] == pytest.approx(0.5)


def test_keep_and_drop_labels_mask_fields():
  faces = {
    "box": np.array([[1, 1, 10, 10]], np.float32),
    "landmarks": np.zeros((1, 21, 2), np.float32),
    "visibility": np.zeros((1, 21), np.float32),
    "pose": np.zeros((1, 3), np.float32),
    "gender": np.array([1]),
    "valid": {k: np.ones(1, bool) for k in ("box", "landmarks", "visibility", "pose", "gender")},
  }
  ex = {"image": np.zeros((16, 16, 3), np.uint8), "faces": faces}
  store = inputs.filter_labels(SceneStore.from_examples([ex]), keep=("pose",))
  assert store.faces["valid"]["pose"].all() and not store.faces["valid"]["gender"].any()
  assert store.faces["valid"]["box"].all()
  store = inputs.filter_labels(SceneStore.from_examples([ex]), drop=("pose",))
  assert not store.faces["valid"]["pose"].any() and store.faces["valid"]["gender"].all()
  for kw, match in (
    (dict(drop=("box",)), "box is never dropped"),
    (dict(keep=("pose",), drop=("gender",)), "set one of"),
    (dict(keep=("no_such_field",)), "unknown: \\['no_such_field'\\]"),
  ):
    with pytest.raises(ValueError, match=match):
      inputs.filter_labels(SceneStore.from_examples([ex]), where="src", **kw)


def test_relation_model_outputs_and_cue_switch():
  from hyperface_jax import registry

  faces = jnp.zeros((3, 2, 32, 32, 3))
  cues = jnp.ones((3, pairs.NUM_CUES))
  for use_cues in (True, False):
    model = registry.MODELS.get("social_relation")(width=4, feature_dim=8, use_cues=use_cues)
    v = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    out = model.apply(v, {"faces": faces, "cues": cues})
    assert out["relations"].shape == (3, 8) and out["faces/expression"].shape == (3, 2, 7)
    width = v["params"]["relation"]["fc1"]["kernel"].shape[0]
    attributes = 7 + 2 + 3 + 4  # expression, gender, pose, age_group predictions per face
    assert width == 2 * (8 + attributes) + (pairs.NUM_CUES if use_cues else 0)
  model = registry.MODELS.get("social_relation")(width=4, relation_input="attributes")
  v = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
  assert v["params"]["relation"]["fc1"]["kernel"].shape[0] == 2 * attributes + pairs.NUM_CUES


def test_class_balanced_expression_loss_offsets_training_logits_by_log_prior():
  """Logit adjustment (models/social.py AttributeHeads, configs/social_attributes.py):
  training logits = plain logits + tau log(prior); evaluation reads the plain ones. Hand-
  worked: with zero weights and labels drawn from the prior, the expected adjusted cross-
  entropy has zero gradient in the biases (p = prior, E[onehot] = prior), i.e. a
  featureless model predicts every class equally (the balanced error's optimum), whereas
  the plain loss's gradient, 1/C - prior, pushes it towards the frequent classes."""
  from hyperface_jax.models.social import AttributeHeads, logit_offsets

  prior7 = np.array([0.1, 0.08, 0.08, 0.3, 0.1, 0.1, 0.24])  # render_params.EXPRESSION_PROBS
  np.testing.assert_allclose(
    np.asarray(logit_offsets({"expression": prior7})["expression"]),
    [-2.302585, -2.525729, -2.525729, -1.203973, -2.302585, -2.302585, -1.427116],
    rtol=1e-6,
  )
  np.testing.assert_allclose(  # normalised; tau scales
    np.asarray(logit_offsets({"e": [2.0, 1.0, 1.0]}, tau=0.5)["e"]),
    0.5 * np.log([0.5, 0.25, 0.25]),
    rtol=1e-6,
  )
  heads = AttributeHeads(("expression",), {"expression": tuple(prior7)}, 1.0)
  x = jnp.ones((2, 5))
  v = heads.init(jax.random.key(0), x)
  plain = np.asarray(heads.apply(v, x)["expression"])
  trained = np.asarray(heads.apply(v, x, train=True)["expression"])
  np.testing.assert_allclose(trained - plain, np.log(prior7)[None].repeat(2, 0), atol=1e-5)

  zero = jax.tree.map(jnp.zeros_like, v)
  labels = jnp.arange(7)
  weights = jnp.asarray(prior7, jnp.float32)  # expectation over labels drawn from the prior

  def expected_ce(params, model):
    logits = model.apply(params, jnp.zeros((7, 5)), train=True)["expression"]
    ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1)[:, 0]
    return jnp.sum(weights * ce)

  grad = jax.grad(expected_ce)(zero, heads)["params"]["expression"]["bias"]
  np.testing.assert_allclose(np.asarray(grad), np.zeros(7), atol=1e-6)
  flat = AttributeHeads(("expression",), {"expression": tuple(prior7)}, 0.0)  # tau 0: plain
  grad = jax.grad(expected_ce)(zero, flat)["params"]["expression"]["bias"]
  np.testing.assert_allclose(np.asarray(grad), 1 / 7 - prior7, atol=1e-6)

  with pytest.raises(ValueError, match="classes"):
    AttributeHeads(("expression",), {"expression": (0.5, 0.5)}).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="positive"):
    logit_offsets({"expression": (0.5, 0.0, 0.5)})


def test_frozen_branch_also_freezes_the_attribute_heads():
  """train_branch=False (configs/social_relation.py :cpu): the relation loss reaches the
  relation head only; the branch and the attribute heads keep the attribute run's weights
  (they once drifted: models/social.py embed). train_branch=True trains all of them."""
  from hyperface_jax import registry

  x = {"faces": jax.random.uniform(jax.random.key(1), (4, 2, 32, 32, 3)) - 0.5}
  x["cues"] = jnp.ones((4, pairs.NUM_CUES))
  for train_branch in (False, True):
    model = registry.MODELS.get("social_relation")(
      width=4, feature_dim=8, relation_input="attributes", train_branch=train_branch
    )
    v = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))

    def loss(params, model=model, v=v):
      out, _ = model.apply(
        {**v, "params": params},
        x,
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": jax.random.key(2)},
      )
      return jnp.sum(out["relations"] ** 2)

    g = jax.grad(loss)(v["params"])
    norm = lambda t: float(sum(jnp.sum(a**2) for a in jax.tree.leaves(t)))
    assert norm(g["relation"]) > 0
    for part in ("heads", "branch"):
      assert (norm(g[part]) > 0) == train_branch, (part, train_branch, norm(g[part]))
