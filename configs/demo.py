r"""HyperFace-AlexNet, CPU variant on synth_faces (the `make demo` job).

  python -m hyperface_jax.main --config=configs/demo.py --workdir=runs/demo

Input 99x99 (fused grid 2x2, see models/fusion.py), width 0.5, batch 64.
On a 2-core CPU it trains in about 8 minutes and reaches (README table):
landmark NME about a third of the mean-shape baseline, gender accuracy > 0.85,
detection AP > 0.95.
"""

from hyperface_jax import config_lib


def get_config(arg=None):
  del arg
  c = config_lib.hyperface_base()
  c.total_steps = 1500
  c.batch_size = 64
  c.eval_batch_size = 256
  c.log_every = 50
  c.eval_every = 500
  c.checkpoint_every = 500
  c.input_size = 99
  c.model.width = 0.5
  c.model.dropout = 0.2
  c.lr = 0.01
  c.schedule.warmup_steps = 100
  c.data.data_dir = "tfds_data"
  c.data.regions_per_scene = 4
  c.data.eval_regions_per_scene = 6
  return c
