r"""HyperFace-AlexNet at paper scale (papers.md section 1.2), for accelerators.

  python -m hyperface_jax.main --config=configs/hyperface_alexnet.py \
      --workdir=runs/hyperface_alexnet

Input 227x227, width 1.0 (about 60 M parameters), batch 64, SGD-momentum
(papers.md 1.7, TK's values), the paper's task weights (1.6). On synth_faces
(the default data) it reaches the demo's accuracy in a fraction of its steps;
for AFLW set --config.data.name=aflw once the aflw builder is prepared.
Variants: `:bvlc` uses grouped convolutions for porting BVLC AlexNet weights.
"""

from hyperface_jax import config_lib


def get_config(arg=None):
  c = config_lib.hyperface_base()
  if arg == "bvlc":
    c.model.conv_groups = 2   # papers.md 1.2 note: BVLC AlexNet groups
  elif arg:
    raise ValueError(f"Unknown variant {arg!r} of hyperface_alexnet; expected 'bvlc'.")
  return c
