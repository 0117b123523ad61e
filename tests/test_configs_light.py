"""Every config file loads without JAX, Flax, TensorFlow or torch (a notebook reads a config
instantly; configs/*.py and hyperface_jax/config_lib.py import ml_collections and numpy only).

Each file is loaded by path (as `ml_collections.config_flags` does) in a fresh interpreter,
and `get_config(arg)` is called for every variant the file documents.
"""

import glob
import json
import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("jax", "flax", "optax", "tensorflow", "tensorflow_datasets", "torch")

# configs/<file> -> the `get_config(arg)` arguments its docstring documents (None = no arg).
VARIANTS = {
  "demo.py": (None,),
  "smoke.py": (None,),
  "hyperface_alexnet.py": (None, "bvlc", "cpu"),
  "rcnn_face.py": (None, "bvlc", "cpu"),
  "hyperface_resnet101.py": (None, "caffe", "cpu"),
  "fast_hyperface.py": (None, "cpu"),
  "face_crops.py": ("synth", "celeba", "mtfl", "mafl", "lfwa", "300w", "celeba+mtfl"),
  "social_attributes.py": (None, "cpu", "single", "real"),
  "social_relation.py": (None, "cpu", "real"),
  "tcdcn_eccv14.py": (None, "cpu"),
  "tcdcn_tpami16.py": (None, "cpu", "finetune68", "finetune68_cpu"),
}


def _load_all_in_a_fresh_interpreter():
  code = textwrap.dedent(
    f"""
    import importlib.util, json, sys
    variants = {VARIANTS!r}
    out = {{"configs": {{}}}}
    for name, args in sorted(variants.items()):
      spec = importlib.util.spec_from_file_location("cfg_" + name[:-3], "configs/" + name)
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      got = out["configs"][name] = {{"doc": module.__doc__ or ""}}
      for arg in args:
        config = module.get_config() if arg is None else module.get_config(arg)
        got[str(arg)] = config.model_name
      try:
        module.get_config("no_such_variant")
        got["unknown"] = "accepted"
      except ValueError as e:
        got["unknown"] = str(e)
    out["heavy"] = sorted(m for m in {HEAVY!r} if m in sys.modules)
    print(json.dumps(out))
    """
  )
  proc = subprocess.run(
    [sys.executable, "-c", code],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    env=dict(os.environ, PYTHONPATH=REPO),
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.splitlines()[-1])


def test_every_config_and_variant_loads_without_jax_tensorflow_or_torch():
  files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "configs", "*.py")))
  files = [f for f in files if f != "__init__.py"]
  assert sorted(VARIANTS) == files, "list every config file and its variants in VARIANTS"
  out = _load_all_in_a_fresh_interpreter()
  assert out["heavy"] == [], f"configs imported {out['heavy']}"
  for name, args in VARIANTS.items():
    got = out["configs"][name]
    for arg in args:
      assert got[str(arg)], (name, arg)
      if arg is not None:
        assert arg in got["doc"], f"configs/{name}: variant {arg!r} is not documented"
    if args != (None,):  # files with variants refuse an unknown one, naming it
      assert "no_such_variant" in got["unknown"], (name, got["unknown"])
