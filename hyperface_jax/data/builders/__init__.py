"""TFDS builders of hyperface_jax; importing this package registers every one with TFDS.

Not imported by `hyperface_jax.data` itself, so that the light data modules (schemes,
boxes, preprocess, sampling, face_model, face_rect, ...) load no TensorFlow Datasets: the
code that looks datasets up by name (data/prepare.py, data/inputs.py,
data/scene_store.py) imports this package first. `register_all` imports every module of
the package (no hand-kept list: a new builder module registers by being here).
"""

from __future__ import annotations

import importlib
import pkgutil


def register_all() -> None:
  """Imports every module of this package, registering its builders with TFDS (idempotent)."""
  for info in pkgutil.iter_modules(__path__):
    if not info.name.startswith("_"):
      importlib.import_module(f"{__name__}.{info.name}")


register_all()
