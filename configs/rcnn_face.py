r"""R-CNN_Face (docs/papers.md section 1.3): AlexNet trained as a face / non-face region classifier.

  python -m hyperface_jax.main --config=configs/rcnn_face.py --workdir=runs/rcnn_face

Stage 1 of HyperFace-AlexNet: its conv1-conv5 initialise HyperFace (stage 2:
configs/hyperface_alexnet.py with --config.model_init=runs/rcnn_face). The paper starts
this network from ImageNet AlexNet; do the same with a converted BVLC AlexNet
(`python -m hyperface_jax.convert --format=caffe --arch=alexnet ...`, then
--config=configs/rcnn_face.py:bvlc --config.model_init=DIR, which loads its convs and
keeps fc6-fc8 freshly initialised: the classifier has 2 classes, not 1000).

Variants:
  :bvlc  grouped convolutions (conv_groups=2) and BVLC's input normalization
         (data.normalize="caffe_bgr": BGR, 0-255, minus the ILSVRC-2012 mean) to load
         BVLC AlexNet weights.
  :cpu   a few minutes on a 2-core CPU on synth_faces, the settings of configs/demo.py
         (99 px, width 0.5, BatchNorm, Adam), 300 steps; docs/surgery.md lists its
         numbers and the stage-2 command (configs/hyperface_alexnet.py:cpu).

Regions: the same IoU-labelled region pipeline as HyperFace, detection labels only
(docs/papers.md 1.3: IoU > 0.5 face, < 0.35 non-face, as HyperFace's detection task, 1.4),
balanced faces / non-faces (positive_fraction 0.5).
"""

import ml_collections

from hyperface_jax import config_lib


def get_config(arg=None):
  c = config_lib.hyperface_base()
  c.model_name = "rcnn_face_alexnet"
  # docs/papers.md 1.3: TK's head fc6 4096 -> fc7 512 -> fc8 2 (the paper's sizes unknown).
  c.model = ml_collections.ConfigDict(
    dict(
      width=1.0,
      dropout=0.5,
      lrn=True,
      conv_groups=1,
      norm="none",
      norm_axis_name="data",
      fc6=4096,
      fc7=512,
    )
  )
  c.tasks = ("detection",)
  c.weighting.weights = ml_collections.ConfigDict(dict(detection=1.0))
  c.evaluator.name = "detection_regions"
  c.data.positive_fraction = 0.5
  if arg == "bvlc":
    c.model.conv_groups = 2  # docs/papers.md 1.2 note: BVLC AlexNet groups
    # What converted BVLC weights expect (BGR, 0-255, minus the ILSVRC-2012 mean;
    # docs/pretrained.md); model_init refuses a converted directory recording another mode.
    c.data.normalize = "caffe_bgr"
    c.model_load.dont_load = ("classifier/.*",)  # 1000-class fc layers are not used
  elif arg == "cpu":
    c.total_steps = 300
    c.eval_every = 300
    c.checkpoint_every = 300
    c.log_every = 50
    c.input_size = 99  # the demo's size (fused grid 2x2 in stage 2)
    c.model.width = 0.5
    c.model.dropout = 0.0
    c.model.norm = "batch"  # training from scratch on CPU, as configs/demo.py
    config_lib.apply_cpu_recipe(c, warmup_steps=30)
  elif arg:
    raise ValueError(f"Unknown variant {arg!r} of rcnn_face; expected 'bvlc' or 'cpu'.")
  return c
