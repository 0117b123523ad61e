r"""HyperFace-ResNet at paper scale (docs/papers.md section 1.10), for accelerators.

  python -m hyperface_jax.convert --format=torchvision --arch=resnet101 \
      --input=resnet101-63fe2227.pth --output=weights/resnet101_tv
  python -m hyperface_jax.main --config=configs/hyperface_resnet101.py \
      --workdir=runs/hyperface_resnet101 --config.model_init=weights/resnet101_tv

ResNet-101 (torchvision v1.5 strides) on 224x224 ImageNet-normalized crops; res3a and
res4a max-pooled to the res5 grid, 1x1-reduced and fused with res5c for landmarks and
visibility; pooled res5c for detection, pose and gender (models/hyperface_resnet.py: every
choice the paper leaves open is a `model.*` field with its documented default). 57.96 M
parameters (docs/papers.md 1.10 quotes about 60 M); 15.7 forward and 46.9 train-step GFLOPs
per image (bench/model_flops.py). The paper initialises from ImageNet ResNet-101 [M]:
`model_init` names a converted directory (docs/pretrained.md) whose classifier backbone
transplants by name (`model_load.prefix_map` keeps only backbone/*, the ImageNet fc is
dropped); with `--config.model_init=` it trains from scratch. No accuracy on AFLW is
claimed here: it has only been run on CPU at tiny batch (tests/test_models_resnet.py).
BatchNorm statistics are synchronised over the 'data' mesh axis by default
(`--config.model.norm_axis_name=None` for per-device statistics).

Variants:
  `:caffe`  the Caffe ResNet-101 release's geometry (stride in the first 1x1 conv,
            ceil-mode pool1) and BGR mean-subtracted input, for converted Caffe weights.
  `:cpu`    ResNet-26 (2 bottlenecks per stage) at base width 16 on 64x64 crops, trained
            from scratch on synth_faces with the demo's choices (configs/demo.py):
              python -m hyperface_jax.main --config=configs/hyperface_resnet101.py:cpu \
                  --workdir=runs/resnet_cpu
            About 12 minutes on the shared 2-core CPU (1000 steps at 60-130 images/s).
            Its results.json against the mean baselines printed beside it: landmark NME
            0.106 (mean shape 0.150), pose MAE 11.4 deg (mean pose 18.4; yaw 17.2 vs
            37.9, pitch and roll only at the baseline), gender accuracy 0.70 (majority
            0.54), visibility accuracy 0.84 (0.69), detection AP 0.995 (0.75).
"""

import ml_collections

from hyperface_jax import config_lib


def paper_model() -> ml_collections.ConfigDict:
  """HyperFaceResNet fields with their documented defaults (models/hyperface_resnet.py)."""
  return ml_collections.ConfigDict(
    dict(
      depth=101,
      base_width=64,
      stride_in_1x1=False,
      caffe_pool=False,
      fuse_layers=("res3a", "res4a"),
      fuse_pool="max",
      fuse_channels=256,
      fuse_deep=True,
      fusion_channels=192,
      fc_local=1024,
      fc_global=1024,
      head_width=512,
      dropout=0.5,
      local_tasks=("landmarks", "visibility"),
      norm_axis_name="data",
    )
  )


def get_config(arg=None):
  c = config_lib.hyperface_base()
  c.model_name = "hyperface_resnet"
  c.model = paper_model()
  c.input_size = 224  # ImageNet ResNet input (the AlexNet variant uses 227)
  c.data.normalize = "imagenet"  # what torchvision's ImageNet weights expect
  c.batch_size = 64  # docs/papers.md 1.7: TK batch 64 (paper value unknown)
  c.lr = 0.001  # documented default for fine-tuning from ImageNet
  # Transplant only the backbone of a converted ImageNet classifier (docs/pretrained.md).
  c.model_load.prefix_map = (("backbone/", "backbone/"),)
  if arg == "caffe":
    c.model.stride_in_1x1 = True
    c.model.caffe_pool = True
    c.data.normalize = "caffe_bgr"
  elif arg == "cpu":
    _cpu_variant(c)
  elif arg:
    raise ValueError(f"Unknown variant {arg!r} of hyperface_resnet101; expected 'caffe' or 'cpu'.")
  return c


def _cpu_variant(c: ml_collections.ConfigDict) -> None:
  """From scratch on synth_faces in minutes; the training choices are demo.py's."""
  c.model.update(
    depth=26,
    base_width=16,
    fuse_channels=64,
    fusion_channels=128,
    fc_local=256,
    fc_global=256,
    head_width=64,
    dropout=0.0,
  )
  c.input_size = 64
  c.data.normalize = "minus_half"
  c.total_steps = 1000
  c.batch_size = 64
  c.eval_batch_size = 256
  c.log_every = 50
  c.eval_every = 500
  c.checkpoint_every = 500
  config_lib.apply_cpu_recipe(c, warmup_steps=50)
  c.weighting.weights.landmarks = 25.0
  c.weighting.weights.gender = 4.0
  c.data.positive_fraction = 0.75
