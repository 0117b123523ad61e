"""What `preprocessing.json` says: input, normalization arithmetic, outputs with units.

numpy only (no JAX): `normalize_from_spec` re-does the input normalization from the JSON
alone, which is how a consumer in another language reads it, and the tests check that it
equals `data.preprocess.normalize` for every mode.

The normalization is written two ways:
  * `steps`: the exact float32 operations of `data.preprocess.normalize`, in order, each
    `{"op": ..., "value": ...}` with op one of reverse_channels (RGB -> BGR), cast_float32,
    multiply, subtract, divide (per-channel lists or scalars, broadcast over the last
    axis), luma (dot product of the 3 channels with `value`) and repeat_channels (the one
    channel copied into `value` channels). Doing them in float32 gives the model's input
    bit for bit (the luma dot product up to the summation order).
  * `affine` (all modes but "grey"): y[..., c] = x[..., channel_source[c]] * scale[c] +
    offset[c] on the uint8 values, the same map as one multiply-add per channel (equal to
    `steps` within float32 rounding, ~1e-7 relative), for runtimes with a fused
    mean/scale preprocessing stage.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from hyperface_jax.data import preprocess

SPEC_VERSION = 1
INPUT_NAME = "images"

_F32_INV_255 = float(np.float32(1 / 255))


def normalize_spec(mode: str) -> Dict[str, Any]:
  """The `normalize` section of preprocessing.json for a `data.normalize` mode."""
  if mode not in preprocess.NORMALIZE_MODES:
    raise ValueError(
      f"Unknown normalize mode {mode!r}; expected one of {preprocess.NORMALIZE_MODES}."
    )
  rgb = [0, 1, 2]
  if mode == "minus_half":
    steps = [_op("cast_float32"), _op("multiply", _F32_INV_255), _op("subtract", 0.5)]
    affine = _affine(rgb, [_F32_INV_255] * 3, [-0.5] * 3)
    extra = {"text": "x / 255 - 0.5 on RGB"}
  elif mode == "imagenet":
    mean = [float(v) for v in np.float32(preprocess.IMAGENET_MEAN)]
    std = [float(v) for v in np.float32(preprocess.IMAGENET_STD)]
    steps = [
      _op("cast_float32"),
      _op("multiply", _F32_INV_255),
      _op("subtract", mean),
      _op("divide", std),
    ]
    affine = _affine(
      rgb, [1 / (255 * s) for s in std], [-m / s for m, s in zip(mean, std, strict=True)]
    )
    extra = {
      "text": "(x / 255 - mean) / std on RGB (torchvision ImageNet)",
      "mean": mean,
      "std": std,
    }
  elif mode == "caffe_bgr":
    mean = [float(v) for v in np.float32(preprocess.CAFFE_BGR_MEAN)]
    steps = [_op("reverse_channels"), _op("cast_float32"), _op("subtract", mean)]
    affine = _affine([2, 1, 0], [1.0] * 3, [-m for m in mean])
    extra = {"text": "BGR in 0-255 minus the BVLC ILSVRC-2012 means (B, G, R)", "mean_bgr": mean}
  else:  # grey
    luma = [float(v) for v in np.float32(preprocess.BT601_LUMA)]
    steps = [
      _op("cast_float32"),
      _op("multiply", _F32_INV_255),
      _op("luma", luma),
      _op("subtract", 0.5),
      _op("repeat_channels", 3),
    ]
    affine = None
    extra = {"text": "BT.601 luma Y / 255 - 0.5 written into all 3 channels", "luma": luma}
  return {
    "mode": mode,
    "input": "uint8 RGB [..., 3]",
    "steps": steps,
    "affine": affine,
    "reference": f"hyperface_jax.data.preprocess.normalize(crops, {mode!r})",
    **extra,
  }


def _op(name: str, value: Any = None) -> Dict[str, Any]:
  return {"op": name} if value is None else {"op": name, "value": value}


def _affine(source, scale, offset) -> Dict[str, Any]:
  return {
    "channel_source": list(source),
    "scale": [float(v) for v in scale],
    "offset": [float(v) for v in offset],
  }


def normalize_from_spec(spec: Mapping[str, Any], images) -> np.ndarray:
  """uint8 RGB [..., 3] -> float32 model input, following `spec["steps"]` only."""
  x = np.asarray(images)
  for step in spec["steps"]:
    op, value = step["op"], step.get("value")
    if op == "reverse_channels":
      x = x[..., ::-1]
    elif op == "cast_float32":
      x = x.astype(np.float32)
    elif op == "multiply":
      x = x * np.float32(value) if np.isscalar(value) else x * np.asarray(value, np.float32)
    elif op == "subtract":
      x = x - (np.float32(value) if np.isscalar(value) else np.asarray(value, np.float32))
    elif op == "divide":
      x = x / (np.float32(value) if np.isscalar(value) else np.asarray(value, np.float32))
    elif op == "luma":
      x = x @ np.asarray(value, np.float32)
    elif op == "repeat_channels":
      x = np.repeat(x[..., None], int(value), axis=-1)
    else:
      raise ValueError(f"Unknown normalization step {op!r} in preprocessing.json.")
  return np.ascontiguousarray(x, np.float32)


# Meaning and units of the outputs the analyzer and the evaluators read (docs/papers.md
# section 1.5 for the landmark form, docs/design.md section 6 for pose and gender).
_KNOWN_OUTPUTS = {
  "detection": (
    "logits",
    "face / non-face logits [non-face, face]; softmax(...)[..., 1] is the face probability",
  ),
  "detection_map": (
    "logits",
    "dense face / non-face logits [non-face, face] of every 24 x 24 window (see crop.stride)",
  ),
  "box_regression": (
    "box deltas",
    "the face box relative to the crop region: ((cx_face - cx) / w, (cy_face - cy) / h, "
    "log(w_face / w), log(h_face / h)) (hyperface_jax/data/boxes.py decode_box_deltas)",
  ),
  "box_regression_map": (
    "box deltas",
    "dense box deltas of every 24 x 24 window (see crop.stride), relative to the window: "
    "((cx_face - cx) / 24, (cy_face - cy) / 24, log(w_face / 24), log(h_face / 24)) in the "
    "level's pixels (hyperface_jax/data/boxes.py decode_box_deltas)",
  ),
  "landmarks": (
    "region-normalized",
    "21 AFLW points ((x - cx) / w, (y - cy) / h), (cx, cy) the crop region's centre and "
    "w, h its size in image pixels; pixels = centre + value * size",
  ),
  "visibility": (
    "probability",
    "per landmark, MSE-trained towards 0/1 (clip to [0, 1]); AFLW-21 order",
  ),
  "pose": ("radians", "roll, pitch, yaw of the head (AFLW signs)"),
  "gender": ("logits", "[male, female] logits; softmax(...)[..., 1] is p_female"),
}
_BY_LOSS = {
  "softmax_cross_entropy": ("logits", "class logits; softmax over the last axis"),
  "sigmoid_cross_entropy": ("logits", "independent binary logits; sigmoid of each"),
  "visibility_weighted_l2": (
    "region-normalized",
    "points ((x - cx) / w, (y - cy) / h), (cx, cy) the crop region's centre and w, h its "
    "size in image pixels; pixels = centre + value * size",
  ),
  "mean_squared_error": ("regression", "regression output (hyperface_jax/tasks.py)"),
}


def describe_output(name: str) -> Dict[str, str]:
  """{"units", "meaning"} of a model output, from its task declaration where one exists."""
  if name in _KNOWN_OUTPUTS:
    units, meaning = _KNOWN_OUTPUTS[name]
    return {"units": units, "meaning": meaning}
  from hyperface_jax import registry

  if name in registry.TASKS:
    task = registry.TASKS.get(name)
    loss = task.loss if isinstance(task.loss, str) else getattr(task.loss, "__name__", "")
    units, meaning = _BY_LOSS.get(loss, ("raw", "head output"))
    return {"units": units, "meaning": f"{meaning} (task {name!r}, loss {loss})"}
  return {"units": "raw", "meaning": "model output without a task declaration"}


def output_spec(name: str, shape, dtype) -> Dict[str, Any]:
  """One entry of `outputs`: shape entries int, or null where symbolic (its expression in
  `shape_expr`)."""
  dims = [int(d) if _is_int(d) else None for d in shape]
  out = {"name": name, "dtype": str(np.dtype(dtype)), "shape": dims, **describe_output(name)}
  if None in dims:
    out["shape_expr"] = [int(d) if _is_int(d) else str(d) for d in shape]
  return out


def _is_int(d) -> bool:
  try:
    int(d)
    return True
  except Exception:  # a symbolic dimension
    return False


def crop_spec(kind: str, input_size: int, config_data: Optional[Mapping[str, Any]] = None):
  """How the model's input images are cut (the `crop` section)."""
  if kind == "proposals":
    return {
      "kind": "image_level",
      "window": 24,
      "stride": 4,
      "text": (
        "a whole image level, H, W >= 24: the image resized so that a face of side s becomes "
        "24 px, padded with black; cell (i, j) of detection_map scores the 24 x 24 window "
        "whose top-left pixel is (4 j, 4 i) of the input "
        "(hyperface_jax/inference/fast_proposals.py)"
      ),
    }
  del config_data
  return {
    "kind": "region",
    "size": int(input_size),
    "interpolation": "bilinear",
    "fill": 0,
    "text": (
      "a region [x, y, w, h] of the image (pixel centres at integer coordinates) resized to "
      "size x size: output pixel (j, i) samples the image at (x + (j + 0.5) w / size, "
      "y + (i + 0.5) h / size), black outside the image "
      "(hyperface_jax.data.preprocess.crop_and_resize: cv2.warpAffine, INTER_LINEAR)"
    ),
  }


def channel_order(mode: str) -> str:
  """Channel order of the model's input tensor (after normalization)."""
  return {"caffe_bgr": "BGR", "grey": "luma x3"}.get(mode, "RGB")


def input_spec(dims: List[Any], mode: str) -> Dict[str, Any]:
  return {
    "name": INPUT_NAME,
    "dtype": "float32",
    "layout": "NHWC",
    "shape": [int(d) if _is_int(d) else None for d in dims],
    "dims": [int(d) if _is_int(d) else str(d) for d in dims],
    "channel_order": channel_order(mode),
  }
