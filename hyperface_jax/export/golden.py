"""Golden comparison of an export with JAX on real inputs (tests/test_export.py,
bench/export_check.py).

Real inputs are synth_faces scenes rendered on the fly (data/render.py): for the per-crop
network, crops around the faces (their boxes scaled by 0.7-1.4 and shifted, as the
analyzer's windows and IRP boxes cut them; data/preprocess.crop_and_resize); for the
proposal net, whole scenes resized into a level and padded by 8 px of black as
inference/fast_proposals.py feeds it. Both normalized as the run's config says.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import cv2
import numpy as np

from hyperface_jax.data import preprocess, render
from hyperface_jax.export import runtime
from hyperface_jax.export.target import ExportTarget


def _scenes(n: int, seed: int):
  return [render.render_scene(np.random.default_rng([seed, i])) for i in range(n)]


def synth_crops(size: int, n: int, seed: int = 7) -> np.ndarray:
  """n uint8 [size, size, 3] crops around the faces of synth_faces scenes."""
  scenes = _scenes(3, seed)
  rng = np.random.default_rng(seed)
  crops: List[np.ndarray] = []
  while len(crops) < n:
    for ex in scenes:
      for box in np.asarray(ex["faces"]["box"]).reshape(-1, 4):
        side = box[2] * rng.uniform(0.7, 1.4)
        cx, cy = box[:2] + box[2:] / 2 + rng.normal(0, 0.15 * box[2], 2)
        region = np.array([[cx - side / 2, cy - side / 2, side, side]])
        crops.append(preprocess.crop_and_resize(ex["image"], region, size)[0])
  return np.stack(crops[:n])


def synth_levels(shape: Tuple[int, int, int], seed: int = 7, border: int = 8) -> np.ndarray:
  """uint8 [B, H, W, 3]: synth_faces scenes resized to (H, W) less the black border."""
  b, h, w = shape
  out = np.zeros((b, h, w, 3), np.uint8)
  for i, ex in enumerate(_scenes(b, seed)):
    out[i, border : h - border, border : w - border] = cv2.resize(
      ex["image"], (w - 2 * border, h - 2 * border), interpolation=cv2.INTER_LINEAR
    )
  return out


def inputs(target: ExportTarget, shape: Tuple[int, ...], seed: int = 7) -> np.ndarray:
  """Normalized float32 model input of `shape` ((B,) for crops, (B, H, W) for levels)."""
  if target.kind == "network":
    raw = synth_crops(int(target.dims[1]), shape[0], seed)
  else:
    raw = synth_levels(shape, seed)
  return preprocess.normalize(raw, target.normalize)


def shapes(target: ExportTarget) -> List[Tuple[int, ...]]:
  """The input shapes a golden check feeds: the fixed ones, or two of each symbolic dim."""
  b = target.dims[0]
  batches = [b] if isinstance(b, int) else [3, 7]
  if target.kind == "network":
    return [(n,) for n in batches]
  if isinstance(target.dims[1], int):
    return [(n, int(target.dims[1]), int(target.dims[2])) for n in batches]
  return [(batches[0], 56, 72), (batches[-1] if len(batches) == 1 else 1, 40, 104)]


def compare(folder: str, target: ExportTarget) -> Dict[str, float]:
  """{output: max |exported - JAX|} over `shapes(target)`; raises on a shape mismatch."""
  from hyperface_jax.export.api import max_differences

  exported = runtime.load(folder)
  worst: Dict[str, float] = {}
  for shape in shapes(target):
    x = inputs(target, shape)
    want, got = target.run(x), exported(x)
    if sorted(got) != sorted(want):
      raise AssertionError(f"exported outputs {sorted(got)} != JAX outputs {sorted(want)}")
    for k, d in max_differences(got, want).items():
      worst[k] = max(worst.get(k, 0.0), d)
  return worst
