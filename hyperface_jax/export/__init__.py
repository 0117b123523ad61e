"""Export of trained models: ONNX, TensorFlow SavedModel, TFLite, serialized StableHLO.

  python -m hyperface_jax.export --workdir=RUN --format=onnx --output=DIR [--batch=dynamic]
  from hyperface_jax.export import export; export("runs/demo", "onnx", "exports/demo")

api.py (the `export` function, atomic folder), target.py (the exported function), spec.py
(preprocessing.json), onnx_format.py / tf_format.py (format writers), runtime.py (running
an export), __main__.py (the CLI). docs/export.md has the commands, the JSON and the
measured differences to JAX.
"""

from hyperface_jax.export.api import FORMATS, export  # noqa: F401
from hyperface_jax.export.target import ExportError  # noqa: F401
