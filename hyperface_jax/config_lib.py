"""Shared config defaults; configs/*.py start from these and override.

Configs never read flags (they must load in Colab): `get_config(arg)` returns
a plain `ml_collections.ConfigDict`; `main.py` locks it and applies
`--config.key=value` overrides, so an unknown key fails naming the key.
"""

from __future__ import annotations

import ml_collections

from hyperface_jax.data import sampling  # numpy only: configs import no JAX

# docs/papers.md section 1.6: lambda_D = 1, lambda_L = 5, lambda_V = 0.5, lambda_P = 5,
# lambda_G = 2 (CNBLOG; MAH hyperparams.py). A plain dict here so that configs import no
# JAX; hyperface_jax.losses re-exports it.
HYPERFACE_LOSS_WEIGHTS = {
  "detection": 1.0,
  "landmarks": 5.0,
  "visibility": 0.5,
  "pose": 5.0,
  "gender": 2.0,
}


# Task weighting (hyperface_jax/weighting/, docs/weighting.md). `name` picks the scheme and
# `weights` are the configured coefficients (static, tcdcn_*, pcgrad use them); the other
# keys are rules shared by every scheme and one sub-dict per scheme, read only when that
# scheme is named, e.g. --config.weighting.name=tcdcn_early_stop
# --config.weighting.tcdcn_early_stop.k=3. Values the papers leave open are documented
# defaults (docstrings of the schemes).
WEIGHTING_DEFAULTS = dict(
  # A task's head parameters ("/" names, re.fullmatch, {task} = the escaped task name):
  # frozen bit for bit once the task stops (models/heads.py: fc_<task>1, fc_<task>2 under
  # a "heads..." module: heads, heads_local, heads_global).
  head_pattern=r"(.*/)?heads[^/]*/fc_{task}[12]/.*",
  # The shared parameters (per-task gradients of PCGrad): all outside "heads..." modules.
  shared=r"(?!(.*/)?heads[^/]*/).*",
  tcdcn_early_stop=dict(k=5, epsilon=1.0, main_task="landmarks"),
  tcdcn_dynamic=dict(main_task="landmarks", eta=1.0, min_factor=0.0, max_factor=1.0),
  uncertainty=dict(optimizer="adam", lr=0.01, init_log_var=0.0, scale=1.0),
  gradnorm=dict(
    alpha=1.5,
    optimizer="adam",
    lr=0.01,
    layer="fusion/fc_full/.*",
    parametrization="renormalize",
    initial_loss_steps=1,
    min_weight=0.0,
  ),
  dwa=dict(temperature=2.0, interval=100),
  famo=dict(optimizer="adam", lr=0.025, gamma=0.001, min_loss=0.0, epsilon=1e-8, same_batch=True),
)


def weighting_config(weights, name: str = "static") -> ml_collections.ConfigDict:
  """`config.weighting`: the scheme `name`, coefficients `weights`, WEIGHTING_DEFAULTS."""
  return ml_collections.ConfigDict(dict(name=name, weights=dict(weights), **WEIGHTING_DEFAULTS))


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
  # Checkpoint files are written in the background (checkpointing.py; the next save and
  # the exit wait for them): bench/checkpoint_speed.py measures what it saves per step.
  c.async_checkpointing = True

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
      # "xla", "shifted_dw", "winograd" or "auto": how the backbone's convolutions are
      # computed (models/fast_conv.py conv_algorithm; same parameters, same values up to
      # float rounding). "auto" on CPU: convolutions of >= 50 M multiply-adds per image
      # (all five of hyperface_alexnet's) as Winograd convolutions, models/winograd.py
      # (1.20-1.37x PyTorch eager's training speed, README "Against PyTorch"); smaller strided
      # ones (the demo's conv1) with the shifted-matmul weight gradient. Accelerators keep
      # XLA's (not measured there).
      conv_impl="auto",
      # (kernel size, output tile) of the Winograd convolutions: models/alexnet.py's
      # WINOGRAD_TILES, written out because configs import no JAX (bench/winograd_tiles.py).
      winograd_tiles=((3, 5), (5, 4)),
      # "xla", "masked_grad" or "auto" (masked_grad on CPU): how the 3x3 / 2 max-pools
      # compute their gradient (models/fast_pool.py; same values). "auto": with the host
      # allocator of hyperface_jax.main (host_memory.py) masked_grad trained
      # hyperface_alexnet 4-6 % and the demo 0-10 % faster on the 2-core CPU
      # (bench/vs_pytorch.py, README "Against PyTorch").
      pool_impl="auto",
    )
  )
  c.input_size = 227  # docs/papers.md 1.1: proposals resized to 227x227
  # Computation dtype of the model's layers ("float32" or "bfloat16"): the parameters, the
  # optimiser state and the losses stay float32 (train.build_model, steps.py).
  c.compute_dtype = "float32"

  c.tasks = ("detection", "landmarks", "visibility", "pose", "gender")
  c.weighting = weighting_config(HYPERFACE_LOSS_WEIGHTS)

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
      # ((head, rule), ...): after loading, a linear head is set by a rule, "zero" or
      # "mean:<task>" (zero kernel, bias = the task's training mean, e.g. the mean shape of
      # a new 68-point head: model_init.py, docs/surgery.md).
      head_init=(),
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
      # Several datasets mixed in one run (data/inputs.py): a tuple of dicts, each with
      # "name", "weight" and optional overrides of the keys above; () = `name` alone.
      sources=(),
      max_train_scenes=None,
      max_eval_scenes=None,
      regions_per_scene=4,
      eval_regions_per_scene=8,
      flip_prob=0.5,
      # docs/papers.md 1.4: face/non-face regions balanced (TK alternates classes).
      positive_fraction=0.5,
      normalize="minus_half",
      # Region sampling around/away from faces (docs/papers.md 1.4 leaves it open: the
      # paper uses selective search regions); the defaults are data/sampling.py's.
      sampling=dict(sampling.DEFAULT_SAMPLING),
      # docs/papers.md 1.4: per-task IoU rules (data/sampling.py DEFAULT_THRESHOLDS).
      thresholds=dict(sampling.DEFAULT_THRESHOLDS),
      # Training batches built ahead of the step (data/prefetch.py): `workers` threads
      # keep up to `prefetch` batches ready; 0 builds each batch in the training
      # thread, overlapped with one device step (no gain from workers measured on the 2-core
      # CPU machine, where XLA uses both cores; bench/input_pipeline.py). Same batches.
      workers=0,
      prefetch=2,
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


# ---------------------------------------------------------------------------- TCDCN
# docs/papers.md section 2.1: the ECCV'14 main task and its four auxiliary tasks.
TCDCN_ECCV14_TASKS = ("landmarks5", "pose_class", "gender", "eyeglasses", "smiling")
# Documented defaults (configs/tcdcn_eccv14.py): with region-normalized coordinates the
# landmark loss 1/(2N) sum v ||d||^2 is ~1e-3 while a cross-entropy is ~0.5, so the
# landmark task gets 100 and each auxiliary task 1 (the paper's lambda_a are [?]).
TCDCN_LANDMARK_WEIGHT = 100.0
TCDCN_AUX_WEIGHT = 1.0


def tcdcn_weights(task_names, landmark_weight=TCDCN_LANDMARK_WEIGHT, aux_weight=TCDCN_AUX_WEIGHT):
  """{task: weight}: landmark tasks `landmark_weight`, the others `aux_weight`."""
  return {t: landmark_weight if t.startswith("landmarks") else aux_weight for t in task_names}


def tcdcn_base(task_names=TCDCN_ECCV14_TASKS, model_name="tcdcn") -> ml_collections.ConfigDict:
  """TCDCN defaults shared by configs/tcdcn_eccv14.py and configs/tcdcn_tpami16.py
  (docs/papers.md section 2; the reasons are in configs/tcdcn_eccv14.py): models/tcdcn.py
  at 40x40 grey, one head per task, Adam with cosine decay, jittered face regions (the
  crop datasets' single face, positive_fraction 1), evaluator `tcdcn_regions`."""
  c = hyperface_base()
  c.model_name = model_name
  c.model = ml_collections.ConfigDict(
    dict(
      tasks=tuple(task_names),
      conv_features=(16, 48, 64, 64),
      conv_kernels=(5, 3, 3, 2),
      pool_after=(True, True, True, False),
      pool_size=2,
      feature_dim=100,
      grey=True,
      dropout=0.0,
    )
  )
  c.input_size = 40  # docs/papers.md 2.1: 40x40 grey crops
  c.tasks = tuple(task_names)
  c.weighting.weights = tcdcn_weights(task_names)
  # models/tcdcn.py names a task's head heads/<task> (one Dense) and the shared feature
  # backbone/fc: the weighting schemes' parameter regexes (WEIGHTING_DEFAULTS) follow.
  c.weighting.head_pattern = r"(.*/)?heads/{task}/.*"
  c.weighting.gradnorm.layer = "backbone/fc/.*"
  main = next((t for t in task_names if t.startswith("landmarks")), task_names[0])
  c.weighting.tcdcn_early_stop.main_task = main
  c.weighting.tcdcn_dynamic.main_task = main
  apply_cpu_recipe(c, warmup_steps=100)  # Adam (docs/papers.md 2.1: optimiser [?])
  c.lr = 0.003
  c.total_steps = 40_000
  c.batch_size = 64
  c.eval_batch_size = 256
  c.log_every = 100
  c.eval_every = 2_000
  c.checkpoint_every = 2_000
  c.data.normalize = "grey"
  c.data.positive_fraction = 1.0  # crops: every region around the face (no detection)
  # Two jittered regions of each sampled face per batch (half the per-face sampling cost
  # of the host pipeline); face-detector-like jitter: 0.9-1.15x the box side, shifted by
  # up to 0.08 of it (documented default: TCDCN trains on detector boxes of MTFL).
  c.data.regions_per_scene = 2
  c.data.eval_regions_per_scene = 1
  c.data.sampling.scale_range = (0.9, 1.15)
  c.data.sampling.shift_range = 0.08
  c.data.prepare_if_missing = False
  c.evaluator = ml_collections.ConfigDict(dict(name="tcdcn_regions", failure_threshold=0.1))
  return c


def use_synth_crops(c: ml_collections.ConfigDict, total_steps: int) -> None:
  """The TCDCN :cpu data: synth_face_crops (default build 4000 / 300 / 300 crops, made on
  the fly), `total_steps` steps. In place."""
  c.data.name = "synth_face_crops"
  c.data.eval_split = "validation"
  c.data.test_split = "test"
  c.data.prepare_if_missing = True
  c.total_steps = total_steps
  c.log_every = 50
  # Frequent validation: TCDCN's early stopping and dynamic coefficients act once per
  # evaluation (hyperface_jax/weighting/tcdcn.py, window k = 5 evaluations); 300 crops
  # take about a second.
  c.eval_every = 200
  c.checkpoint_every = 1000
