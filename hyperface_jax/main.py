"""Entry point: parses flags, nothing else (docs/design.md habit 2).

  python -m hyperface_jax.main --config=configs/demo.py --workdir=runs/demo \
      [--config.total_steps=100 ...]

Re-running the same command resumes from the checkpoints in --workdir.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from hyperface_jax import host_memory  # ctypes only: no JAX, no TensorFlow

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Config file, optionally with an argument: configs/x.py:arg.", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Directory for checkpoints, metrics, results and the report."
)
_MULTIHOST = flags.DEFINE_bool(
  "multihost",
  False,
  "Call jax.distributed.initialize() "
  "(coordinator from the environment: SLURM, TPU VM, or "
  "JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / "
  "JAX_PROCESS_ID, as launch/multihost_local.sh sets them).",
)
_HOST_MALLOC = flags.DEFINE_enum(
  "host_malloc",
  "retain",
  list(host_memory.MODES),
  "retain: glibc keeps freed memory mapped for reuse (hyperface_jax/host_memory.py; "
  "measured 1.18-1.22x faster CPU train steps, at a higher peak RSS); system: glibc's "
  "defaults.",
)
flags.mark_flags_as_required(["config", "workdir"])


def _hide_accelerators_from_tensorflow() -> None:
  """TF is only the input pipeline here; it must not grab GPU/TPU memory."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  tf.config.set_visible_devices([], "GPU")
  tf.config.set_visible_devices([], "TPU")


def parse_flags(argv):
  """absl flag parsing, with a one-line error for a bad --config override."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError, TypeError, ValueError, flags.Error) as e:
    # ml_collections wraps its KeyError text in repr quotes and escapes.
    message = str(e).strip("'\"").replace("\\'", "'").replace("\\n", " ")
    print(
      f"error: bad command line ({type(e).__name__}): {message}\n"
      f"Config keys are those of the --config file; see "
      f"`python -m hyperface_jax.main --helpfull`.",
      file=sys.stderr,
    )
    sys.exit(2)


def initialize_distributed() -> None:
  """`jax.distributed.initialize()` with the process count and id of the environment.

  jax reads JAX_COORDINATOR_ADDRESS itself but not the count and the id (it detects them
  on SLURM and TPU VMs only), so JAX_NUM_PROCESSES / JAX_PROCESS_ID are passed here.
  """
  import jax  # pylint: disable=g-import-not-at-top

  kwargs = {}
  for env, arg in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
    if os.environ.get(env):
      kwargs[arg] = int(os.environ[env])
  jax.distributed.initialize(**kwargs)


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # First, before TensorFlow and XLA start the threads that allocate (host_memory.py).
  host_memory.configure(_HOST_MALLOC.value)
  _hide_accelerators_from_tensorflow()
  import jax  # pylint: disable=g-import-not-at-top

  if _MULTIHOST.value:
    initialize_distributed()
  from hyperface_jax import train  # pylint: disable=g-import-not-at-top

  logging.info(
    "JAX %s, %d process(es), devices: %s", jax.__version__, jax.process_count(), jax.devices()
  )
  from hyperface_jax import (  # pylint: disable=g-import-not-at-top
    atomic_io,
    checkpointing,
    config_checks,
    model_init,
    preemption,
    surgery,
  )

  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except preemption.Preempted as e:  # SIGTERM: the checkpoint is saved, a normal stop
    logging.warning("%s", e)
    print(e, flush=True)
    sys.exit(0)
  except (
    train.NonFiniteLossError,
    checkpointing.CheckpointDamagedError,
    atomic_io.WriteError,
  ) as e:
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  except (config_checks.ConfigError, NotADirectoryError) as e:  # bad config, workdir a file
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except (surgery.ParamMismatchError, model_init.NormalizeMismatchError, FileNotFoundError) as e:
    # config.model_init problems (wrong shapes, unknown names, a missing directory) are
    # the user's input: one message listing the names, no traceback.
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main, flags_parser=parse_flags)
