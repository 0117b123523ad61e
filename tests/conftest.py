"""Test set-up: 8 fake CPU devices for JAX, TensorFlow kept off accelerators, and one
persistent compilation cache for the whole session.

Must run before jax is imported anywhere (pytest imports conftest first).
"""

import atexit
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Same generator as the configs (config_lib.prng_impl): faster CPU compiles.
os.environ.setdefault("JAX_DEFAULT_PRNG_IMPL", "rbg")

# Many tests compile the same programs (the smoke config's train and eval steps, in-process
# and in the subprocesses of the fault and multi-host tests): JAX's persistent cache lets
# every later test load them instead (the train_e2e, steps, checkpointing, fast_conv,
# weighting and faults files summed to 489 s in `pytest --durations=0` with it against 728 s
# without, from an empty cache, on the 2-core CI machine). The folder is made by the first
# process (pytest, or xdist's controller before it starts the workers, which inherit it)
# and removed when that process exits. A
# size cap turns on JAX's file lock, so that the two xdist workers never read an entry the
# other is still writing. Compiled programs are the same whether loaded or built.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="hyperface_jax_tests_xla_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 * 2**30))
