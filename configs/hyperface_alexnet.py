r"""HyperFace-AlexNet at paper scale (docs/papers.md section 1.2), for accelerators.

  python -m hyperface_jax.main --config=configs/hyperface_alexnet.py \
      --workdir=runs/hyperface_alexnet [--config.model_init=runs/rcnn_face]

Input 227x227, width 1.0 (33,821,318 parameters; 32,408,198 with the :bvlc grouped
convolutions), batch 64, SGD-momentum (docs/papers.md 1.7, TK's values), the paper's task
weights (1.6). On synth_faces (the default data) it reaches the demo's accuracy in a
fraction of its steps; for AFLW set --config.data.name=aflw once the aflw builder is
prepared.

docs/papers.md 1.3: HyperFace's conv1-conv5 come from R-CNN_Face (configs/rcnn_face.py);
pass its workdir (or a converted AlexNet directory) as --config.model_init: only names
under "backbone/" are loaded (model_load.prefix_map), fusion and heads keep their random
init, and a workdir that already holds a checkpoint resumes from it instead.
Variants:
  :bvlc  grouped convolutions and BVLC's input normalization (data.normalize="caffe_bgr":
         BGR, 0-255, minus the ILSVRC-2012 mean) for porting BVLC AlexNet weights.
  :cpu   the demo's settings (configs/demo.py: 99 px, width 0.5, BatchNorm, Adam) for
         300 steps, to run stage 2 after configs/rcnn_face.py:cpu (docs/surgery.md).
"""

from hyperface_jax import config_lib


def get_config(arg=None):
  c = config_lib.hyperface_base()
  # docs/papers.md 1.3: copy conv1-conv5 (the backbone) only; the classifier's fc layers and
  # any collection entries outside backbone/ are dropped (model_init.py).
  c.model_load.prefix_map = (("backbone/", "backbone/"),)
  if arg == "bvlc":
    c.model.conv_groups = 2  # docs/papers.md 1.2 note: BVLC AlexNet groups
    # What converted BVLC weights expect (BGR, 0-255, minus the ILSVRC-2012 mean;
    # docs/pretrained.md); model_init refuses a converted directory recording another mode.
    c.data.normalize = "caffe_bgr"
  elif arg == "cpu":
    # configs/demo.py's choices (documented there), with 300 steps.
    c.total_steps = 300
    c.eval_every = 300
    c.checkpoint_every = 300
    c.input_size = 99
    c.model.width = 0.5
    c.model.dropout = 0.0
    c.model.norm = "batch"
    config_lib.apply_cpu_recipe(c, warmup_steps=30)
    c.weighting.weights.landmarks = 25.0
    c.weighting.weights.gender = 4.0
    c.data.positive_fraction = 0.75
  elif arg:
    raise ValueError(f"Unknown variant {arg!r} of hyperface_alexnet; expected 'bvlc' or 'cpu'.")
  return c
