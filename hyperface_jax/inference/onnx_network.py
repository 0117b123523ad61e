"""The batched network pass on an exported ONNX model, with onnxruntime and without JAX.

`OnnxNetwork` has the interface FaceAnalyzer uses of inference/batched.py's BatchedNetwork
(`input_size`, `normalize`, `batch_size`, `flip_test`, `crops`, `run_crops`, `__call__`)
and computes the same things: training-identical OpenCV crops, `data.preprocess.normalize`
with the mode of the export's preprocessing.json, the network, then softmax of the
detection and gender logits (and the face score's log-odds) and visibility clipped to [0, 1], landmarks de-normalized to
image pixels. Nothing here imports JAX, Flax or TensorFlow:

  analyzer = FaceAnalyzer.from_export("exports/demo_onnx", **overrides)

The folder is a `python -m hyperface_jax.export --format=onnx --model=network` export of a
HyperFace run. A fixed-batch export runs in batches of its size (the last one padded); a
dynamic one in batches of `batch_size` (inference/config.py) without padding.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Sequence

import numpy as np

from hyperface_jax.data import preprocess
from hyperface_jax.data.boxes import denormalize_landmarks
from hyperface_jax.inference.crop_network import CropNetwork

# What the analyzer reads of the network (inference/batched.py forward).
REQUIRED_OUTPUTS = ("detection", "landmarks", "visibility", "pose", "gender")

_EMPTY_OUTPUTS = {
  "score": np.zeros(0, np.float32),
  "score_logit": np.zeros(0, np.float32),
  "p_female": np.zeros(0, np.float32),
  "landmarks": np.zeros((0, 21, 2), np.float32),
  "visibility": np.zeros((0, 21), np.float32),
  "pose": np.zeros((0, 3), np.float32),
}


def _softmax_last(logits: np.ndarray) -> np.ndarray:
  z = logits - logits.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


class OnnxNetwork(CropNetwork):
  """Runs an exported ONNX per-crop network on regions of many images (module docstring).

  Attributes:
    spec: the export's preprocessing.json.
    fixed_batch: the model's batch size, or None when it is dynamic.
  """

  def __init__(self, directory: str, *, batch_size: int = 256, flip_test: bool = False):
    path = os.path.join(directory, "preprocessing.json")
    if not os.path.isfile(path):
      raise FileNotFoundError(
        f"{path} not found: expected a folder written by python -m hyperface_jax.export."
      )
    with open(path) as f:
      self.spec = json.load(f)
    if self.spec.get("format") != "onnx" or self.spec.get("model") != "network":
      raise ValueError(
        f"{directory} holds a {self.spec.get('format')!r} export of the "
        f"{self.spec.get('model')!r} model; FaceAnalyzer.from_export needs --format=onnx "
        "--model=network."
      )
    names = [o["name"] for o in self.spec["outputs"]]
    missing = [k for k in REQUIRED_OUTPUTS if k not in names]
    if missing:
      raise ValueError(
        f"{directory}: the exported model lacks the outputs {missing} that the face "
        f"analyzer reads (it has {names}); export a HyperFace run."
      )
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    try:
      import onnxruntime as ort
    except ImportError as e:
      raise ImportError(
        f"FaceAnalyzer.from_export needs onnxruntime ({e}): pip install onnxruntime "
        "(pinned in requirements-export.lock)."
      ) from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    self._session = ort.InferenceSession(
      os.path.join(directory, self.spec.get("model_file", "model.onnx")),
      options,
      providers=["CPUExecutionProvider"],
    )
    self._input = self.spec["input"]["name"]
    self._names = list(REQUIRED_OUTPUTS)
    self.input_size = int(self.spec["crop"]["size"])
    self.normalize = self.spec["normalize"]["mode"]
    self.fixed_batch = self.spec["input"]["shape"][0]
    self.batch_size = int(batch_size)
    self.flip_test = bool(flip_test)

  def _run_crops(self, crops: np.ndarray) -> Dict[str, np.ndarray]:
    n = len(crops)
    b = self.fixed_batch or self.batch_size
    outs = []
    for start in range(0, n, b):
      chunk = preprocess.normalize(crops[start : start + b], self.normalize)
      if self.fixed_batch and len(chunk) < b:
        pad = np.zeros((b - len(chunk),) + chunk.shape[1:], np.float32)
        chunk = np.concatenate([chunk, pad], 0)
      raw = dict(
        zip(self._names, self._session.run(self._names, {self._input: chunk}), strict=True)
      )
      outs.append(
        {
          "score": _softmax_last(raw["detection"])[:, 1],
          "score_logit": raw["detection"][:, 1] - raw["detection"][:, 0],
          "p_female": _softmax_last(raw["gender"])[:, 1],
          "visibility": np.clip(raw["visibility"], 0.0, 1.0),  # MSE-trained (1.6)
          "landmarks": raw["landmarks"],
          "pose": raw["pose"],
        }
      )
    if not outs:
      return {}
    return {k: np.concatenate([o[k] for o in outs], 0)[:n] for k in outs[0]}

  def __call__(
    self, images: Sequence[np.ndarray], regions: Sequence[np.ndarray]
  ) -> list[Dict[str, np.ndarray]]:
    """Per image: score [N], landmarks [N, 21, 2] px, visibility [N, 21], pose [N, 3],
    p_female [N], box [N, 4] for its regions [N, 4] (as BatchedNetwork.__call__)."""
    regions = [np.asarray(r, np.float64).reshape(-1, 4) for r in regions]
    out = self.run_crops(self.crops(images, regions)) or _EMPTY_OUTPUTS
    result, start = [], 0
    for reg in regions:
      stop = start + len(reg)
      part = {k: v[start:stop] for k, v in out.items()}
      part["landmarks"] = denormalize_landmarks(part["landmarks"], reg)
      part["box"] = reg
      result.append(part)
      start = stop
    return result
