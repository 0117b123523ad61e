"""What every per-crop network backend shares (the JAX `BatchedNetwork` and the JAX-free
`OnnxNetwork`): cutting the crops and the flip-test average. No JAX import here, so the
ONNX runtime path stays free of it (tests/test_export.py blocks the import)."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from hyperface_jax.data import preprocess


class CropNetwork:
  """Base of the crop networks: subclasses set `input_size` and `flip_test` and implement
  `_run_crops(crops) -> {name: [N, ...]}` on uint8 crops."""

  input_size: int
  flip_test: bool

  def _run_crops(self, crops: np.ndarray) -> Dict[str, np.ndarray]:
    raise NotImplementedError

  def crops(self, images: Sequence[np.ndarray], regions: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 [sum N_i, S, S, 3] training-identical crops of regions [N_i, 4] per image."""
    parts = [
      preprocess.crop_and_resize(img, reg, self.input_size)
      for img, reg in zip(images, regions, strict=True)
      if len(reg)
    ]
    if not parts:
      return np.zeros((0, self.input_size, self.input_size, 3), np.uint8)
    return np.concatenate(parts, 0)

  def run_crops(self, crops: np.ndarray) -> Dict[str, np.ndarray]:
    """Outputs of uint8 crops [N, S, S, 3] (with `flip_test`, averaged with those of the
    mirrored crops, their labels flipped back)."""
    out = self._run_crops(crops)
    if self.flip_test and out:
      mirrored = preprocess.flip_labels(self._run_crops(np.ascontiguousarray(crops[:, :, ::-1])))
      out = {k: 0.5 * (out[k] + mirrored[k]) for k in out}
    return out
