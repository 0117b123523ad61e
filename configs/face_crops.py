r"""Multi-task training on per-face crop datasets, one or several mixed.

  python -m hyperface_jax.main --config=configs/face_crops.py:synth --workdir=runs/crops
  python -m hyperface_jax.main --config=configs/face_crops.py:celeba+mtfl \
      --workdir=runs/mix --config.data.data_dir=tfds_data

Crop datasets (docs/design.md section 5: per-face fields without a `faces` sequence)
load as scenes with one face, so the region sampler, the task declarations
(hyperface_jax/tasks.py) and the training loop are the same as HyperFace's; every
region is drawn around the face box (`positive_fraction` 1: no detection task), and a
label that a dataset lacks is masked. Variants (ARG) and their tasks:

  synth        synth_face_crops (built here on the fly): landmarks5, landmarks68, pose, gender
  celeba       celeba (aligned crops): landmarks5, gender, the 40 attributes
  mtfl, mafl   landmarks5 and gender (MTFL), landmarks5 (MAFL; docs/papers.md 5.5, 5.6)
  lfwa         gender and the 40 attributes (docs/papers.md 5.8)
  300w         ibug_300w: landmarks68 (docs/papers.md 5.9)
  celeba+mtfl  both mixed, half of the slots each: landmarks5 + gender from both,
               attributes from CelebA only (masked on MTFL rows)

Real datasets must be built first with `python -m hyperface_jax.data.prepare NAME
--manual_dir=M --data_dir=D`. The network is HyperFace-AlexNet at the demo's CPU scale
(67 px, width 0.25, BatchNorm, Adam: the from-scratch choices of configs/demo.py) with
one head per task; it is a training recipe for these datasets, not a paper's model
(TCDCN's own network arrives with its configs).
"""

from hyperface_jax import config_lib

# variant -> (sources: (dataset, eval split) ..., tasks)
VARIANTS = {
  "synth": ((("synth_face_crops", "validation"),), ("landmarks5", "landmarks68", "pose", "gender")),
  "celeba": ((("celeba", "validation"),), ("landmarks5", "gender", "attributes")),
  "mtfl": ((("mtfl", "test"),), ("landmarks5", "gender")),
  "mafl": ((("mafl", "test"),), ("landmarks5",)),
  "lfwa": ((("lfwa", "validation"),), ("gender", "attributes")),
  "300w": ((("ibug_300w", "test"),), ("landmarks68",)),
  "celeba+mtfl": (
    (("celeba", "validation"), ("mtfl", "test")),
    ("landmarks5", "gender", "attributes"),
  ),
}


def get_config(arg="synth"):
  if arg not in VARIANTS:
    raise ValueError(f"configs/face_crops.py: unknown variant {arg!r}; known: {sorted(VARIANTS)}.")
  srcs, task_names = VARIANTS[arg]
  c = config_lib.hyperface_base()
  config_lib.apply_cpu_recipe(c, warmup_steps=50)
  c.total_steps = 600
  c.batch_size = 64
  c.eval_batch_size = 128
  c.log_every = 50
  c.eval_every = 200
  c.checkpoint_every = 200
  c.input_size = 67  # fused grid 1x1 (input sizes 35 + 32 g)
  c.model.width = 0.25
  c.model.norm = "batch"
  c.model.tasks = task_names
  c.tasks = task_names
  c.weighting.weights = {t: 1.0 for t in task_names}
  c.evaluator.name = "task_metrics"
  c.data.name = srcs[0][0]
  c.data.eval_split = srcs[0][1]
  c.data.test_split = "test"
  c.data.prepare_if_missing = arg == "synth"
  c.data.positive_fraction = 1.0  # crops: every region around the face (no detection)
  c.data.regions_per_scene = 1
  c.data.eval_regions_per_scene = 1
  if len(srcs) > 1:
    c.data.sources = tuple(dict(name=n, weight=1.0, eval_split=s) for n, s in srcs)
  return c
