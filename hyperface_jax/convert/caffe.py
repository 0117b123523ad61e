"""Caffe ImageNet models (BVLC AlexNet / CaffeNet, Kaiming He's ResNets) -> Flax variables.

Layers are matched by their names in the released deploy prototxts:
  AlexNet  conv1..conv5 (weights, bias) -> backbone/conv1..conv5, fc6, fc7, fc8 ->
           classifier/fc6..fc8. conv2/4/5 are grouped in BVLC AlexNet: the group count is
           read from the blob shape (I / groups), the LRN/pool order from the layer order
           (BVLC AlexNet: norm1 before pool1; CaffeNet: after). The geometry (kernels,
           strides, pads) is AlexNet's; only sizes come from the blobs.
  ResNet   conv1 / bn_conv1 / scale_conv1 -> backbone/conv1, bn_conv1;
           res{B}_branch{X} / bn{B}_branch{X} / scale{B}_branch{X} -> backbone/res{B}/
           branch{X}, bn_branch{X} (B e.g. 2a, 4b22); fc1000 -> classifier/fc.
           Caffe's BatchNorm holds (mean * f, var * f, f) with a moving-average factor f,
           and its Scale layer (gamma, beta): mean = blob0 / f, var = blob1 / f go to
           batch_stats, gamma, beta to the Flax BatchNorm scale, bias (epsilon 1e-5 in both).
           The model uses the release's stride in the first 1x1 conv and ceil-mode pool1.
Input: BGR in [0, 255] minus the ImageNet mean (collect.NORMALISATION["caffe"]).
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Tuple

import numpy as np

from hyperface_jax.convert.caffe_proto import CaffeLayer
from hyperface_jax.convert.collect import Collector, conv_kernel, dense_kernel
from hyperface_jax.convert.directory import ConversionError
from hyperface_jax.models.resnet import block_names

ALEXNET_CONVS = ("conv1", "conv2", "conv3", "conv4", "conv5")
ALEXNET_FCS = ("fc6", "fc7", "fc8")
_RESNET_LAYER = re.compile(r"(res|bn|scale)(\d[a-z]\d*)_(branch1|branch2[abc])")


def _by_name(layers: List[CaffeLayer]) -> Dict[str, CaffeLayer]:
  return {layer.name: layer for layer in layers if layer.blobs}


def _blob(layers: Dict[str, CaffeLayer], name: str, index: int) -> np.ndarray:
  if name not in layers:
    raise ConversionError(
      f"caffemodel has no layer {name!r} with weights (needed to size the model)."
    )
  if len(layers[name].blobs) <= index:
    raise ConversionError(
      f"caffemodel layer {name!r} has {len(layers[name].blobs)} blobs, "
      f"expected at least {index + 1}."
    )
  return layers[name].blobs[index]


def _matrix(w: np.ndarray) -> np.ndarray:
  """InnerProduct weights (out, in), from a 2-D or legacy (1, 1, out, in) blob."""
  return w.reshape(w.shape[-2], w.shape[-1]) if w.ndim > 2 else w


def model_for(arch: str, layers: List[CaffeLayer]) -> Tuple[str, Dict[str, Any], int]:
  """Registry name, kwargs and input size of the target model, sized from the blobs."""
  named = _by_name(layers)
  if arch == "alexnet":
    channels = [int(_blob(named, n, 0).shape[0]) for n in ALEXNET_CONVS]
    groups = channels[0] // int(_blob(named, "conv2", 0).shape[1])
    order = [layer.name for layer in layers]
    lrn_first = (
      "norm1" in order and "pool1" in order and order.index("norm1") < order.index("pool1")
    )
    kwargs = dict(
      conv_channels=channels,
      conv_groups=groups,
      lrn=True,
      lrn_before_pool=lrn_first,
      hidden=[int(_matrix(_blob(named, n, 0)).shape[0]) for n in ("fc6", "fc7")],
      num_classes=int(_matrix(_blob(named, "fc8", 0)).shape[0]),
    )
    return "alexnet_caffe", kwargs, 227
  if arch in ("resnet50", "resnet101", "resnet152"):
    kwargs = dict(
      base_width=int(_blob(named, "conv1", 0).shape[0]),
      num_classes=int(_matrix(_blob(named, "fc1000", 0)).shape[0]),
      stride_in_1x1=True,
      caffe_pool=True,
    )
    return arch, kwargs, 224
  raise ValueError(
    f"Unknown Caffe arch {arch!r}; expected alexnet, resnet50, resnet101 or resnet152."
  )


def _convert_alexnet(layers: List[CaffeLayer], out: Collector, unknown: List[str]) -> None:
  named = _by_name(layers)
  fc6_in = _matrix(_blob(named, "fc6", 0)).shape[1]
  spatial = math.isqrt(fc6_in // _blob(named, "conv5", 0).shape[0])
  for layer in named.values():
    if layer.name in ALEXNET_CONVS:
      target, kind = f"backbone/{layer.name}", "conv"
    elif layer.name in ALEXNET_FCS:
      target, kind = f"classifier/{layer.name}", "dense"
    else:
      unknown.append(f"{layer.name} ({layer.type})")
      continue
    if len(layer.blobs) != 2:
      raise ConversionError(
        f"caffemodel layer {layer.name!r} has {len(layer.blobs)} blobs, expected 2 (weights, bias)."
      )
    w, b = layer.blobs
    src = f"{layer.name}/blob0"
    if kind == "conv":
      out.add(src, f"params/{target}/kernel", conv_kernel(w), "OIHW -> HWIO", w.shape)
    else:
      fc_spatial = spatial if layer.name == "fc6" else None
      how = "(out, C*H*W) -> (H*W*C, out)" if fc_spatial else "(out, in) -> (in, out)"
      out.add(src, f"params/{target}/kernel", dense_kernel(_matrix(w), fc_spatial), how, w.shape)
    out.add(f"{layer.name}/blob1", f"params/{target}/bias", b.reshape(-1))


def _bn_targets(kind: str, module: str, layer: CaffeLayer, out: Collector) -> None:
  """BatchNorm (mean, var, factor) -> batch_stats; Scale (gamma, beta) -> params."""
  n = layer.name
  if kind == "bn":
    if len(layer.blobs) != 3:
      raise ConversionError(
        f"caffemodel BatchNorm {n!r} has {len(layer.blobs)} blobs, "
        f"expected 3 (mean, variance, moving-average factor)."
      )
    factor = float(layer.blobs[2].reshape(-1)[0])
    inv = 0.0 if factor == 0 else 1.0 / factor  # Caffe BatchNormLayer::Forward_cpu
    out.add(
      f"{n}/blob0",
      f"batch_stats/{module}/mean",
      layer.blobs[0].reshape(-1) * inv,
      "mean * f / f",
      layer.blobs[0].shape,
    )
    out.add(
      f"{n}/blob1",
      f"batch_stats/{module}/var",
      layer.blobs[1].reshape(-1) * inv,
      "var * f / f",
      layer.blobs[1].shape,
    )
    out.ignore(f"{n}/blob2", "moving-average factor, divided out of mean and var")
  else:
    if len(layer.blobs) != 2:
      raise ConversionError(
        f"caffemodel Scale {n!r} has {len(layer.blobs)} blobs, expected 2 "
        f"(gamma, beta; bias_term: true)."
      )
    out.add(f"{n}/blob0", f"params/{module}/scale", layer.blobs[0].reshape(-1))
    out.add(f"{n}/blob1", f"params/{module}/bias", layer.blobs[1].reshape(-1))


def _convert_resnet(
  layers: List[CaffeLayer], out: Collector, unknown: List[str], depth: int
) -> None:
  blocks = {name[len("res") :] for stage in block_names(depth) for name in stage}
  for layer in _by_name(layers).values():
    n = layer.name
    if n in ("conv1", "bn_conv1", "scale_conv1", "fc1000"):
      kind = {"conv1": "res", "bn_conv1": "bn", "scale_conv1": "scale", "fc1000": "fc"}[n]
      module = "backbone/conv1" if kind == "res" else "backbone/bn_conv1"
    else:
      m = _RESNET_LAYER.fullmatch(n)
      if not m or m.group(2) not in blocks:
        unknown.append(f"{n} ({layer.type})")
        continue
      kind, block, branch = m.groups()
      module = f"backbone/res{block}/{branch if kind == 'res' else 'bn_' + branch}"
    if kind == "fc":
      w = layer.blobs[0]
      out.add(
        f"{n}/blob0",
        "params/classifier/fc/kernel",
        dense_kernel(_matrix(w)),
        "(out, in) -> (in, out)",
        w.shape,
      )
      out.add(f"{n}/blob1", "params/classifier/fc/bias", layer.blobs[1].reshape(-1))
    elif kind == "res":
      if len(layer.blobs) != 1:
        raise ConversionError(
          f"caffemodel conv {n!r} has {len(layer.blobs)} blobs, expected "
          f"1 (ResNet convs have no bias)."
        )
      w = layer.blobs[0]
      out.add(f"{n}/blob0", f"params/{module}/kernel", conv_kernel(w), "OIHW -> HWIO", w.shape)
    else:
      _bn_targets(kind, module, layer, out)


def convert(layers: List[CaffeLayer], arch: str) -> Collector:
  """Maps every weight blob of a caffemodel; layers with unknown names raise, naming them."""
  out = Collector()
  unknown: List[str] = []
  if arch == "alexnet":
    _convert_alexnet(layers, out, unknown)
  else:
    _convert_resnet(layers, out, unknown, int(arch[len("resnet") :]))
  if unknown:
    raise ConversionError(
      f"caffemodel ({arch}) has layers with weights but no place in the "
      f"model: {', '.join(unknown[:12])}" + (" ..." if len(unknown) > 12 else "")
    )
  for layer in layers:
    if not layer.blobs:
      out.ignore(layer.name, f"{layer.type} layer without weights")
  return out
