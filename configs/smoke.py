r"""Seconds-long HyperFace run used by the tests (tiny model, tiny data).

  python -m hyperface_jax.main --config=configs/smoke.py --workdir=/tmp/smoke \
      --config.data.data_dir=/tmp/smoke_data

It only checks that every piece runs end to end; it learns little.
"""

from hyperface_jax import config_lib


def get_config(arg=None):
  del arg
  c = config_lib.hyperface_base()
  c.total_steps = 6
  c.batch_size = 16
  c.eval_batch_size = 32
  c.log_every = 2
  c.eval_every = 3
  c.checkpoint_every = 3
  c.input_size = 67  # fused grid 1x1 (input sizes 35 + 32 g)
  c.model.width = 0.125
  c.model.dropout = 0.0
  c.lr = 0.01
  c.schedule.warmup_steps = 0
  c.data.data_dir = "tfds_data_smoke"
  c.data.regions_per_scene = 2
  c.data.eval_regions_per_scene = 2
  c.data.builder_config = dict(train_size=24, validation_size=8, test_size=8, seed=0)
  c.report.num_crops = 4
  return c
