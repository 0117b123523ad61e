"""Shared config defaults; configs/*.py start from these and override.

Configs never read flags (they must load in Colab): `get_config(arg)` returns
a plain `ml_collections.ConfigDict`; `main.py` locks it and applies
`--config.key=value` overrides, so an unknown key fails naming the key.
"""

from __future__ import annotations

import ml_collections

from hyperface_jax.losses import HYPERFACE_LOSS_WEIGHTS


def hyperface_base() -> ml_collections.ConfigDict:
  """HyperFace-AlexNet defaults (docs/papers.md sections 1.2-1.7)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  # JAX's "rbg" generator: init compiles about 3x faster than threefry on CPU
  # (bench/model_flops.py notes) and it is the faster one on TPU too.
  c.prng_impl = "rbg"
  c.total_steps = 100_000
  c.batch_size = 64  # docs/papers.md 1.7: TK batch 64 (paper value unknown)
  c.eval_batch_size = 256
  c.log_every = 50
  c.eval_every = 2_000
  c.checkpoint_every = 2_000
  c.keep_checkpoints = 3

  c.model_name = "hyperface_alexnet"
  c.model = ml_collections.ConfigDict(
    dict(
      width=1.0,
      dropout=0.5,
      lrn=True,
      conv_groups=1,
      conv1a_input="norm1",
      norm="none",
      norm_axis_name="data",
    )
  )
  c.input_size = 227  # docs/papers.md 1.1: proposals resized to 227x227

  c.loss_name = "hyperface"
  c.tasks = ("detection", "landmarks", "visibility", "pose", "gender")
  c.weighting = ml_collections.ConfigDict(dict(name="static", weights=dict(HYPERFACE_LOSS_WEIGHTS)))

  # docs/papers.md 1.7: SGD; lr/momentum are TK's (the paper's are unknown).
  c.optim = ml_collections.ConfigDict(
    dict(name="sgd", momentum=0.9, nesterov=False, weight_decay=5e-4, grad_clip_norm=0.0, freeze=())
  )  # regexes of frozen params, e.g. ("backbone/.*",) (docs/surgery.md)
  # Partial initialisation of a fresh run (model_init.py, docs/surgery.md): a converted-
  # weights directory or one of our workdirs; ignored when the workdir has a checkpoint.
  c.model_init = ""
  c.model_load = ml_collections.ConfigDict(
    dict(
      dont_load=(),
      prefix_map=(),
      batch_stats=True,
      step=ml_collections.config_dict.placeholder(int),
    )
  )  # None: the latest step
  c.lr = 0.01
  c.schedule = ml_collections.ConfigDict(dict(name="cosine", warmup_steps=500, alpha=0.0))

  c.data = ml_collections.ConfigDict(
    dict(
      name="synth_faces",
      data_dir="tfds_data",
      builder_config={},
      prepare_if_missing=True,
      train_split="train",
      eval_split="validation",
      test_split="test",
      max_train_scenes=None,
      max_eval_scenes=None,
      regions_per_scene=4,
      eval_regions_per_scene=8,
      flip_prob=0.5,
      # docs/papers.md 1.4: face/non-face regions balanced (TK alternates classes).
      positive_fraction=0.5,
      normalize="minus_half",
      # Region sampling around/away from faces (data/sampling.py DEFAULT_SAMPLING;
      # docs/papers.md 1.4 leaves it open: the paper uses selective search regions).
      sampling=dict(
        scale_range=(0.6, 1.6),
        shift_range=0.25,
        near_fraction=0.5,
        near_scale_range=None,
        near_shift_range=None,
        negative_source="random",
        window_min_side=32.0,
        window_max_side_fraction=1.0,
        window_scale_step=1.3,
        window_stride_fraction=0.3,
        window_border_fraction=0.4,
      ),
      # docs/papers.md 1.4: per-task IoU rules.
      thresholds=dict(
        detection_positive=0.5,
        detection_negative=0.35,
        landmarks=0.35,
        visibility=0.35,
        pose=0.5,
        gender=0.5,
      ),
    )
  )
  c.evaluator = ml_collections.ConfigDict(dict(name="hyperface_regions"))
  c.report = ml_collections.ConfigDict(dict(num_crops=16))
  # Horizontal-flip test-time averaging in evaluation (evaluation/runner.py); off by
  # default: the HyperFace papers evaluate single crops.
  c.flip_test = False
  return c


def apply_cpu_recipe(c: ml_collections.ConfigDict, warmup_steps: int) -> None:
  """The from-scratch CPU training choices shared by configs/demo.py and the `:cpu`
  variants (the reasons are documented in configs/demo.py): Adam 2e-3 without weight
  decay (docs/papers.md 1.7 leaves the optimiser open), 2 regions per scene (6 in evaluation),
  positives jittered 0.8-1.3x the face side and shifted by up to 0.15 of it. In place.
  """
  c.optim.name = "adam"
  c.optim.weight_decay = 0.0
  c.lr = 0.002
  c.schedule.warmup_steps = warmup_steps
  c.data.regions_per_scene = 2
  c.data.eval_regions_per_scene = 6
  c.data.sampling.scale_range = (0.8, 1.3)
  c.data.sampling.shift_range = 0.15
