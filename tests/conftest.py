"""Test set-up: 8 fake CPU devices for JAX, and TensorFlow kept off accelerators.

Must run before jax is imported anywhere (pytest imports conftest first).
"""

import os

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Same generator as the configs (config_lib.prng_impl): faster CPU compiles.
os.environ.setdefault("JAX_DEFAULT_PRNG_IMPL", "rbg")
