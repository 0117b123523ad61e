"""Layout transforms shared by the converters and the record of what went where."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from hyperface_jax.data import preprocess

# The normalization each source framework's ImageNet weights expect (converted.json
# "normalization"); `preprocess_mode` is the matching data.preprocess.normalize mode, which
# model_init.py requires config.data.normalize to equal when it loads the directory.
NORMALISATION = {
  # torchvision: RGB in [0, 1], then (x - mean) / std (torchvision.models docs).
  "torchvision": dict(
    channel_order="RGB",
    input_range=[0.0, 1.0],
    mean=list(preprocess.IMAGENET_MEAN),
    std=list(preprocess.IMAGENET_STD),
    preprocess_mode="imagenet",
  ),
  # Caffe (BVLC AlexNet / CaffeNet, Kaiming He's ResNets): BGR in [0, 255] minus the mean
  # image (ilsvrc_2012_mean / ResNet_mean.binaryproto); the per-channel means of BVLC's
  # ilsvrc_2012_mean stand in for it.
  "caffe": dict(
    channel_order="BGR",
    input_range=[0.0, 255.0],
    mean=list(preprocess.CAFFE_BGR_MEAN),
    std=[1.0, 1.0, 1.0],
    preprocess_mode="caffe_bgr",
  ),
}


def conv_kernel(w: np.ndarray) -> np.ndarray:
  """OIHW (torch and Caffe, grouped convs too: O x I/groups x H x W) -> Flax HWIO."""
  return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def dense_kernel(w: np.ndarray, spatial: Optional[int] = None) -> np.ndarray:
  """(out, in) -> (in, out); with `spatial` = H (= W), `in` is a C, H, W flatten (torch,
  Caffe) and is permuted to the H, W, C order of a flattened NHWC map."""
  out, inp = w.shape
  if spatial:
    channels = inp // (spatial * spatial)
    if channels * spatial * spatial != inp:
      raise ValueError(f"dense input {inp} is not C x {spatial} x {spatial}.")
    w = w.reshape(out, channels, spatial, spatial).transpose(0, 2, 3, 1).reshape(out, inp)
  return np.ascontiguousarray(w.T)


class Collector:
  """Target variables from source tensors, with the report of converted.json."""

  def __init__(self):
    self.variables: Dict[str, np.ndarray] = {}
    self.origin: Dict[str, str] = {}
    self.mapped: Dict[str, str] = {}
    self.reshaped: List[Dict[str, Any]] = []
    self.ignored: Dict[str, str] = {}

  def add(
    self, source: str, target: str, value: np.ndarray, how: Optional[str] = None, source_shape=None
  ) -> None:
    """Records `source` -> `target`; `how` names a layout change (listed as reshaped)."""
    if target in self.variables:
      raise ValueError(f"{source} and {self.origin[target]} both map to {target}.")
    self.variables[target] = np.asarray(value, np.float32)
    self.origin[target] = source
    self.mapped[source] = target
    if how:
      self.reshaped.append(
        dict(
          source=source,
          target=target,
          how=how,
          source_shape=list(source_shape),
          target_shape=list(np.shape(value)),
        )
      )

  def ignore(self, source: str, why: str) -> None:
    self.ignored[source] = why

  def report(self) -> Dict[str, Any]:
    """The report: everything mapped, and (after a successful check) nothing missing."""
    return dict(
      mapped=self.mapped, missing=[], unexpected=[], reshaped=self.reshaped, ignored=self.ignored
    )
