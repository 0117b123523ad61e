"""torchvision ImageNet state_dicts (AlexNet, ResNet-50/101/152) -> Flax variables.

Key mapping (torchvision -> ours, models/classifiers.py and models/resnet.py):
  ResNet   conv1 -> backbone/conv1, bn1 -> backbone/bn_conv1,
           layer{k}.{i}.conv{1,2,3} -> backbone/res{k+1}<b>/branch2{a,b,c} (b: the Caffe
           block letter of block i, models/resnet.block_names), bn{1,2,3} -> bn_branch2*,
           layer{k}.0.downsample.{0,1} -> branch1, bn_branch1; fc -> classifier/fc
  AlexNet  features.{0,3,6,8,10} -> backbone/conv1..conv5,
           classifier.{1,4,6} -> classifier/fc6, fc7, fc8
BatchNorm weight/bias -> params scale/bias, running_mean/var -> batch_stats mean/var;
num_batches_tracked is ignored (recorded in the report). Convs OIHW -> HWIO, linear
(out, in) -> (in, out), fc6's input permuted from torch's C, H, W flatten to NHWC's H, W, C.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Tuple

import numpy as np

from hyperface_jax.convert.collect import Collector, conv_kernel, dense_kernel
from hyperface_jax.convert.directory import ConversionError
from hyperface_jax.models.resnet import block_names

ALEXNET_CONVS = {
  "features.0": "conv1",
  "features.3": "conv2",
  "features.6": "conv3",
  "features.8": "conv4",
  "features.10": "conv5",
}
ALEXNET_FCS = {"classifier.1": "fc6", "classifier.4": "fc7", "classifier.6": "fc8"}
BN_PARAMS = {
  "weight": ("params", "scale"),
  "bias": ("params", "bias"),
  "running_mean": ("batch_stats", "mean"),
  "running_var": ("batch_stats", "var"),
}
RESNET_CONVS = {
  "conv1": "branch2a",
  "conv2": "branch2b",
  "conv3": "branch2c",
  "downsample.0": "branch1",
}
RESNET_BNS = {
  "bn1": "bn_branch2a",
  "bn2": "bn_branch2b",
  "bn3": "bn_branch2c",
  "downsample.1": "bn_branch1",
}


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
  """Reads a torchvision `.pth` safely (`weights_only=True`) into float32 NumPy arrays."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
      "Converting torchvision weights needs PyTorch: "
      "pip install 'hyperface_jax[torch]' (torch==2.13.0)."
    ) from e
  obj = torch.load(path, map_location="cpu", weights_only=True)
  if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
    obj = obj["state_dict"]
  if not isinstance(obj, Mapping):
    raise ConversionError(f"{path} holds a {type(obj).__name__}, not a state_dict.")
  out = {}
  for k, v in obj.items():
    if not hasattr(v, "detach"):
      raise ConversionError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor.")
    v = v.detach().cpu()
    out[k] = v.numpy() if k.endswith("num_batches_tracked") else v.float().numpy()
  return out


def _need(sd: Mapping[str, np.ndarray], key: str) -> np.ndarray:
  if key not in sd:
    raise ConversionError(f"torchvision state_dict lacks {key!r} (needed to size the model).")
  return sd[key]


def model_for(arch: str, sd: Mapping[str, np.ndarray]) -> Tuple[str, Dict[str, Any]]:
  """Registry name and kwargs of the target model, sized from the state_dict."""
  if arch == "alexnet":
    kwargs = dict(
      conv_channels=[int(_need(sd, f"{k}.weight").shape[0]) for k in ALEXNET_CONVS],
      hidden=[int(_need(sd, f"classifier.{i}.weight").shape[0]) for i in (1, 4)],
      num_classes=int(_need(sd, "classifier.6.weight").shape[0]),
    )
    return "alexnet_torchvision", kwargs
  if arch in ("resnet50", "resnet101", "resnet152"):
    return arch, dict(
      base_width=int(_need(sd, "conv1.weight").shape[0]),
      num_classes=int(_need(sd, "fc.weight").shape[0]),
    )
  raise ValueError(
    f"Unknown torchvision arch {arch!r}; expected alexnet, resnet50, resnet101 or resnet152."
  )


def _resnet_target(key: str, depth: int) -> Tuple[str, str] | None:
  """(module path, kind) of a ResNet key without its last part; None if unknown."""
  if key in ("conv1", "bn1", "fc"):
    return {
      "conv1": ("backbone/conv1", "conv"),
      "bn1": ("backbone/bn_conv1", "bn"),
      "fc": ("classifier/fc", "dense"),
    }[key]
  m = re.fullmatch(r"layer([1-4])\.(\d+)\.(.+)", key)
  if not m:
    return None
  stage, block, layer = int(m.group(1)), int(m.group(2)), m.group(3)
  names = block_names(depth)[stage - 1]
  if block >= len(names):
    return None
  if layer in RESNET_CONVS:
    return f"backbone/{names[block]}/{RESNET_CONVS[layer]}", "conv"
  if layer in RESNET_BNS:
    return f"backbone/{names[block]}/{RESNET_BNS[layer]}", "bn"
  return None


def convert(sd: Mapping[str, np.ndarray], arch: str, fc6_spatial: int = 6) -> Collector:
  """Maps every tensor of a torchvision state_dict; unknown keys raise, naming them."""
  out = Collector()
  unknown = []
  depth = int(arch[len("resnet") :]) if arch.startswith("resnet") else 0
  for key, value in sd.items():
    module, _, leaf = key.rpartition(".")
    if leaf == "num_batches_tracked":
      out.ignore(key, "BatchNorm step counter, unused by Flax BatchNorm")
      continue
    if arch == "alexnet":
      if module in ALEXNET_CONVS and leaf in ("weight", "bias"):
        target, kind = f"backbone/{ALEXNET_CONVS[module]}", "conv"
      elif module in ALEXNET_FCS and leaf in ("weight", "bias"):
        target, kind = f"classifier/{ALEXNET_FCS[module]}", "dense"
      else:
        unknown.append(key)
        continue
    else:
      found = _resnet_target(module, depth)
      if found is None:
        unknown.append(key)
        continue
      target, kind = found
    if kind == "bn":
      if leaf not in BN_PARAMS:
        unknown.append(key)
        continue
      collection, name = BN_PARAMS[leaf]
      out.add(key, f"{collection}/{target}/{name}", value)
    elif leaf == "bias":
      out.add(key, f"params/{target}/bias", value)
    elif leaf != "weight":
      unknown.append(key)
    elif kind == "conv":
      out.add(key, f"params/{target}/kernel", conv_kernel(value), "OIHW -> HWIO", value.shape)
    else:
      spatial = fc6_spatial if target.endswith("fc6") else None
      how = "(out, C*H*W) -> (H*W*C, out)" if spatial else "(out, in) -> (in, out)"
      out.add(key, f"params/{target}/kernel", dense_kernel(value, spatial), how, value.shape)
  if unknown:
    raise ConversionError(
      f"torchvision {arch} state_dict has keys with no place in the model: "
      f"{', '.join(unknown[:12])}" + (" ..." if len(unknown) > 12 else "")
    )
  return out
