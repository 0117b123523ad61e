"""Crop, resize, flip and normalize region crops (numpy + OpenCV).

Pixel convention (see boxes.py): pixel i has its centre at coordinate i and a
region [x, y, w, h] spans [x, x + w] x [y, y + h]. A crop of size S maps that
span onto the S output pixels' extent [-0.5, S - 0.5], i.e. output pixel j
samples the scene at x + (j + 0.5) * w / S. Consequently the region centre maps
to the crop centre (S - 1) / 2 and a horizontal flip of the crop (j -> S - 1 - j)
is exactly the flip of the normalized landmarks ((x - cx) / w -> -(x - cx) / w),
and equals cropping the mirrored scene with the mirrored region
(boxes.flip_boxes).
"""

from __future__ import annotations

import cv2
import numpy as np

from hyperface_jax import registry
from hyperface_jax.colour import BT601_LUMA  # re-exported: export/spec.py reads it here

# ImageNet RGB statistics (torchvision convention, torchvision.models docs) for the
# "imagenet" mode: RGB in [0, 1], then (x - mean) / std.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# BVLC reference models (bvlc_alexnet, bvlc_reference_caffenet) for the "caffe_bgr" mode:
# BGR in [0, 255] minus the per-channel means (B, G, R) of Caffe's ILSVRC-2012 mean image
# (caffe/python/caffe/imagenet/ilsvrc_2012_mean.npy, as in Caffe's classification example).
CAFFE_BGR_MEAN = (104.00698793, 116.66876762, 122.67891434)
_IMAGENET_MEAN = np.array(IMAGENET_MEAN, np.float32)
_IMAGENET_STD = np.array(IMAGENET_STD, np.float32)
_CAFFE_BGR_MEAN = np.array(CAFFE_BGR_MEAN, np.float32)
# BT601_LUMA (hyperface_jax/colour.py) weights the "grey" mode (TCDCN's grey input,
# docs/papers.md section 2.1); they sum to 1, so grey keeps the "minus_half" scale.
_BT601_LUMA = np.array(BT601_LUMA, np.float32)

# Every mode `normalize` accepts (config.data.normalize; converted weights record theirs in
# converted.json "normalization.preprocess_mode", which model_init.py checks).
NORMALIZE_MODES = ("minus_half", "imagenet", "caffe_bgr", "grey")


def crop_and_resize(image, regions, size, fill=0, flip=None):
  """Crops square-resized regions with bilinear interpolation.

  Regions partly outside the image are padded with `fill`. With `flip`, the
  selected crops are mirrored by sampling at mirrored positions (x + w - (j + 0.5)
  * w / S), which equals flipping the crop but costs nothing extra.

  Args:
    image: uint8 [H, W, 3] scene.
    regions: [N, 4] regions x, y, w, h in scene pixels (w, h > 0).
    size: output side S in pixels.
    fill: border value, a number or an RGB triple (0 = documented default).
    flip: optional bool [N], crops to mirror horizontally.

  Returns:
    uint8 [N, S, S, 3] crops.
  """
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"image must be uint8 [H, W, 3]; got {image.dtype} {image.shape}.")
  regions = np.asarray(regions, np.float64).reshape(-1, 4)
  if np.any(regions[:, 2:] <= 0):
    raise ValueError(
      "regions must have positive width and height; got "
      f"{regions[np.any(regions[:, 2:] <= 0, axis=1)][:3].tolist()}."
    )
  size = int(size)
  border = tuple(float(v) for v in np.broadcast_to(np.asarray(fill, np.float64), (3,)))
  flip = np.zeros(len(regions), bool) if flip is None else np.asarray(flip, bool)
  out = np.empty((len(regions), size, size, 3), np.uint8)
  for i, (x, y, w, h) in enumerate(regions):
    sx, sy = w / size, h / size
    # Inverse map: output pixel (j, i) -> scene (x + (j + 0.5) sx, y + (i + 0.5) sy),
    # or x + w - (j + 0.5) sx when mirrored.
    if flip[i]:
      m = np.array([[-sx, 0.0, x + w - 0.5 * sx], [0.0, sy, y + 0.5 * sy]])
    else:
      m = np.array([[sx, 0.0, x + 0.5 * sx], [0.0, sy, y + 0.5 * sy]])
    cv2.warpAffine(
      image,
      m,
      (size, size),
      dst=out[i],
      flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
      borderMode=cv2.BORDER_CONSTANT,
      borderValue=border,
    )
  return out


def flip_labels(labels):
  """Mirrors region labels (or model outputs, which use the same names) horizontally.

  Every declared task's flip rule (hyperface_jax/tasks.py) applies to its keys present in
  `labels`: AFLW-21 landmarks and visibility are permuted with schemes.AFLW21_FLIP and the
  normalized x negated (exact: the region is mirrored about its centre, docs/papers.md
  section 1.13), 5- and 68-point schemes likewise; roll and yaw are negated, pitch
  unchanged. Other keys (masks, detection, gender, and the scene-pixel metadata
  region/face_box, which keep describing the original scene) are returned unchanged.

  Args:
    labels: dict of [N, ...] arrays.

  Returns:
    A new dict; the input is not modified.
  """
  from hyperface_jax import tasks  # pylint: disable=g-import-not-at-top

  return tasks.flip_labels(tasks.resolve(registry.TASKS.names()), labels)


def flip_batch(crops, labels):
  """Mirrors crops horizontally together with their labels (see `flip_labels`).

  Args:
    crops: [N, S, S, C] images (any dtype).
    labels: dict of [N, ...] label arrays.

  Returns:
    (flipped crops, flipped labels); the inputs are not modified.
  """
  return np.ascontiguousarray(np.asarray(crops)[:, :, ::-1]), flip_labels(labels)


def normalize(images, mode="minus_half"):
  """uint8 RGB images -> float32 model input.

  Modes:
    "minus_half": x / 255 - 0.5, RGB (documented default for from-scratch training,
      docs/papers.md section 1.2 note).
    "imagenet": (x / 255 - IMAGENET_MEAN) / IMAGENET_STD, RGB: what torchvision's
      ImageNet weights expect (converted torchvision weights record this mode).
    "caffe_bgr": channels reversed to BGR, 0-255 range, minus CAFFE_BGR_MEAN (B, G, R)
      = 104.00698793, 116.66876762, 122.67891434: what BVLC Caffe AlexNet / CaffeNet
      weights expect (converted Caffe weights record this mode; the :bvlc configs use it).
    "grey": luma Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, BT601_LUMA) of the uint8
      values, then Y / 255 - 0.5 (the "minus_half" scale), written into all 3 channels:
      every caller keeps its 3-channel contract (training init, pipeline, inference,
      report crops) and a grey model (models/tcdcn.py, 1 input channel) reads one luma
      channel. TCDCN's 40x40 grey input, docs/papers.md section 2.1.

  Args:
    images: uint8 [..., 3] RGB.
    mode: one of NORMALIZE_MODES.

  Returns:
    float32 array of the same shape.
  """
  x = np.asarray(images)
  if x.shape[-1:] != (3,):
    raise ValueError(f"images must have 3 channels last; got shape {x.shape}.")
  if mode not in NORMALIZE_MODES:
    raise ValueError(f"Unknown normalize mode {mode!r}; expected one of {NORMALIZE_MODES}.")
  if mode == "caffe_bgr":
    return x[..., ::-1].astype(np.float32) - _CAFFE_BGR_MEAN
  x = x.astype(np.float32)  # a fresh array, so the in-place ops below are safe
  x *= np.float32(1 / 255)
  if mode == "minus_half":
    x -= np.float32(0.5)
    return x
  if mode == "grey":
    y = x @ _BT601_LUMA  # float32 luma in [0, 1]
    y -= np.float32(0.5)
    return np.repeat(y[..., None], 3, axis=-1)
  if mode == "imagenet":
    x -= _IMAGENET_MEAN
    x /= _IMAGENET_STD
    return x
  raise AssertionError(mode)  # unreachable, checked above
