r"""TCDCN, TPAMI 2016 (docs/papers.md section 2.2): 5 points + attributes, then 68 points.

  python -m hyperface_jax.main --config=configs/tcdcn_tpami16.py:cpu --workdir=runs/tcdcn_tpami16_cpu
  python -m hyperface_jax.main --config=configs/tcdcn_tpami16.py:finetune68_cpu \
      --workdir=runs/tcdcn_tpami16_ft68_cpu --config.model_init=runs/tcdcn_tpami16_cpu

Measured on a 2-core CPU shared with other jobs (synth_face_crops already built; test
set 300 crops; model vs trivial baseline fitted on the training regions):
  :cpu (2000 steps of 64, 6 min 42 s): landmarks5 NME / inter-ocular 0.244 (mean shape
    0.755; frontal class 0.100 vs 0.213), failure rate 0.711 (1.000), NME / box 0.043
    (0.113); accuracies pose_class 0.887 (0.403), gender 0.803 (0.497), eyeglasses 0.987
    (0.743), mouth_open 0.937 (0.680), smiling 0.763 (0.720), expression 0.460 (0.280),
    age_group 0.460 (0.390).
  :finetune68_cpu (1500 steps from the :cpu run, 3 min 45 s): landmarks68 NME /
    inter-pupil 0.167 (mean shape 0.676), failure rate 0.410 (1.000), NME / box 0.027
    (0.104).

  python -m hyperface_jax.main --config=configs/tcdcn_tpami16.py --workdir=runs/tcdcn_tpami16
  python -m hyperface_jax.main --config=configs/tcdcn_tpami16.py:finetune68 \
      --workdir=runs/tcdcn_tpami16_ft68 --config.model_init=runs/tcdcn_tpami16

Two stages (docs/papers.md 2.2 [V: NOTES19]):
  (none)          pre-training on MAFL (19,000 / 1,000 CelebA faces, docs/papers.md 5.6):
                  model `tcdcn_tpami16` (models/tcdcn.py), landmarks5 + attributes22 (the 22
                  of CelebA's 40 chosen by the documented rule in hyperface_jax/tasks.py,
                  ATTRIBUTES22: the face's own attributes; hair, worn-off-face, image-level
                  and face-outline attributes dropped).
  finetune68      fine-tuning for 68 points on the 300-W training set (ibug_300w "train",
                  evaluated on "full"): the same backbone, loaded from the pre-training run
                  (`config.model_init`), the heads replaced by one 68-point head initialised
                  by `model_load.head_init` = zero kernel, bias = the training mean shape in
                  the model's coordinates (region-normalized; model_init.training_mean);
                  docs/papers.md 2.2 leaves the 68-point initialisation open [?].
  cpu             pre-training on synth_face_crops (4000 / 300 / 300, built on the fly):
                  synth_face_crops has no CelebA attributes, so the auxiliary tasks are its
                  seven heterogeneous labels (gender, smiling, mouth_open, eyeglasses,
                  expression 7 classes, age_group 4, pose_class 5), the synthetic stand-in
                  for the 22.
  finetune68_cpu  fine-tuning for 68 points on synth_face_crops from the :cpu run
                  (default `model_init` runs/tcdcn_tpami16_cpu).

Documented defaults ([?] in docs/papers.md 2.2, section 7 item 7): the ECCV network and
sizes (40x40 grey, 16/48/64/64, 100-d; all config fields under `model`), the optimiser and
task weights of configs/tcdcn_eccv14.py, task weighting `static`. TPAMI's dynamic task
coefficients are `--config.weighting.name=tcdcn_dynamic` (hyperface_jax/weighting/);
the task covariance is not modelled (its formulation is unknown).
"""

from hyperface_jax import config_lib

PRETRAIN_TASKS = ("landmarks5", "attributes22")
SYNTH_PRETRAIN_TASKS = (
  "landmarks5",
  "gender",
  "smiling",
  "mouth_open",
  "eyeglasses",
  "expression",
  "age_group",
  "pose_class",
)
FINETUNE_TASKS = ("landmarks68",)
VARIANTS = ("", "cpu", "finetune68", "finetune68_cpu")


def finetune68(c, pretrained: str):
  """The 68-point stage: one landmarks68 head on the pre-trained backbone (module doc)."""
  c.model_init = pretrained
  c.model_load.dont_load = ("heads/.*",)  # the pre-training heads are dropped
  c.model_load.head_init = (("heads/landmarks68", "mean:landmarks68"),)


def get_config(arg=None):
  arg = arg or ""
  if arg not in VARIANTS:
    raise ValueError(f"configs/tcdcn_tpami16.py: unknown variant {arg!r}; known: {VARIANTS}.")
  cpu = arg.endswith("cpu")
  if arg.startswith("finetune68"):
    task_names = FINETUNE_TASKS
  else:
    task_names = SYNTH_PRETRAIN_TASKS if cpu else PRETRAIN_TASKS
  c = config_lib.tcdcn_base(task_names, model_name="tcdcn_tpami16")
  if cpu:
    config_lib.use_synth_crops(c, total_steps=2000 if arg == "cpu" else 1500)
  elif arg.startswith("finetune68"):
    c.data.name = "ibug_300w"
    c.data.eval_split = "full"
    c.data.test_split = "full"
  else:
    c.data.name = "mafl"
    c.data.eval_split = "test"  # MAFL has train and test only (docs/papers.md 5.6)
    c.data.test_split = "test"
  if arg == "finetune68":
    finetune68(c, "runs/tcdcn_tpami16")
  elif arg == "finetune68_cpu":
    finetune68(c, "runs/tcdcn_tpami16_cpu")
    c.lr = 0.001  # documented default: a fine-tune starts at a third of the pre-training lr
  return c
