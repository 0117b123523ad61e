"""Both stages through the one training loop, at toy size (configs/social_*.py).

The attribute run fits its bridging templates and writes the template file; the relation
run (face pairs, config.data.kind = "pairs") starts from it through config.model_init,
reuses its templates, and evaluates the traits with both baselines; a changed HOG
setting is refused on restart.
"""

import json
import os
import sys

import numpy as np
import pytest

from hyperface_jax import bridging, checkpointing, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROPS = dict(train_size=48, validation_size=8, test_size=8, seed=0)
SCENES = dict(train_size=40, validation_size=30, test_size=30, seed=0)
CLUSTERS = (2, 2, 2)


def _configs(data_dir):
  sys.path.insert(0, REPO)
  from configs import social_attributes, social_relation  # pylint: disable=g-import-not-at-top

  a = social_attributes.get_config("cpu")
  r = social_relation.get_config("cpu")
  for c, steps in ((a, 4), (r, 4)):
    c.total_steps = steps
    c.eval_every = c.checkpoint_every = c.log_every = 2
    c.batch_size, c.eval_batch_size = 16, 16
    c.input_size = 32
    c.model.width, c.model.feature_dim = 4, 8
    c.model.bridging.clusters = CLUSTERS
    c.data.data_dir = str(data_dir)
    c.schedule.warmup_steps = 1
  a.data.builder_config = dict(CROPS)
  a.data.sources = tuple(
    dict(src, builder_config=CROPS if src["name"] == "synth_face_crops" else SCENES)
    for src in a.data.sources
  )
  r.data.builder_config = dict(SCENES)
  r.model.relation_width = 16
  return a, r


@pytest.mark.slow
def test_attribute_then_relation_run(tmp_path):
  attr, rel = _configs(tmp_path / "data")
  attr_dir, rel_dir = str(tmp_path / "attr"), str(tmp_path / "rel")
  results = train.train_and_evaluate(attr, attr_dir)
  assert {"expression/accuracy", "gender/accuracy", "pose/mae_deg"} <= set(results)
  assert os.path.isfile(os.path.join(attr_dir, "report", "expression_confusion.md"))
  arrays, meta = bridging.load(bridging.template_path(attr_dir))
  assert arrays["templates"].shape == (bridging.num_templates(CLUSTERS), 324)
  assert meta["settings"]["input_size"] == 32 and meta["version"] == bridging.FORMAT_VERSION
  saved = checkpointing.restore_variables(attr_dir)["bridging"]["branch"]["bridging"]
  # steps.py takes the cross-device mean of all model state: an ulp may move per step
  # (every start reloads the file, bridging.attach)
  np.testing.assert_allclose(saved["templates"], arrays["templates"], rtol=1e-5, atol=1e-7)

  rel.model_init = attr_dir
  results = train.train_and_evaluate(rel, rel_dir)
  for key in ("relations/mean_accuracy", "baseline/relations/mean_accuracy"):
    assert 0.0 <= results[key] <= 1.0
  assert "baseline/cues_only/relations/mean_balanced_accuracy" in results
  assert os.path.isfile(os.path.join(rel_dir, "report", "relations.md"))
  copied, _ = bridging.load(bridging.template_path(rel_dir))  # reused, not refitted
  np.testing.assert_array_equal(copied["templates"], arrays["templates"])
  with open(os.path.join(rel_dir, "results.json")) as f:
    assert json.load(f)["step"] == 4

  rel.model.bridging.pixels_per_cell = 4  # restart with other HOG settings: refused
  rel.total_steps = 6
  with pytest.raises(bridging.TemplateMismatchError, match="pixels_per_cell: file 8, config 4"):
    train.train_and_evaluate(rel, rel_dir)
