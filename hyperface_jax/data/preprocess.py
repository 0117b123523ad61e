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

from hyperface_jax.data import schemes

# ImageNet RGB statistics (torchvision convention) for the "imagenet" mode.
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# Caffe AlexNet/VGG BGR pixel means (0-255), explicit option only (docs/design.md section 6).
_CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)

NORMALIZE_MODES = ("minus_half", "imagenet", "caffe_bgr")


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
  """Mirrors region labels horizontally (docs/papers.md section 1.13).

  Landmarks and visibility are permuted with schemes.AFLW21_FLIP and the
  normalized x negated (exact: the region is mirrored about its centre); roll
  and yaw are negated, pitch unchanged. Other keys (masks, detection, gender, and
  the scene-pixel metadata region/face_box, which keep describing the original
  scene) are returned unchanged.

  Args:
    labels: dict of [N, ...] arrays; "landmarks" [N, 21, 2], "visibility"
      [N, 21] and "pose" [N, 3] are transformed when present.

  Returns:
    A new dict; the input is not modified.
  """
  out = dict(labels)
  perm = schemes.AFLW21_FLIP
  if "landmarks" in labels:
    lm = np.asarray(labels["landmarks"])[:, perm].copy()
    lm[..., 0] = -lm[..., 0]
    out["landmarks"] = lm
  if "visibility" in labels:
    out["visibility"] = np.asarray(labels["visibility"])[:, perm].copy()
  if "pose" in labels:
    pose = np.asarray(labels["pose"])
    out["pose"] = pose * np.array([-1, 1, -1], pose.dtype)  # roll, pitch, yaw
  return out


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

  Modes: "minus_half" x / 255 - 0.5 (documented default, docs/papers.md section 1.2
  note); "imagenet" (x / 255 - mean) / std with RGB ImageNet statistics;
  "caffe_bgr" channels reversed to BGR and Caffe means subtracted, 0-255 range
  (explicit option only, for imported Caffe weights).

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
    return x[..., ::-1] - _CAFFE_BGR_MEAN
  x = x.astype(np.float32)  # a fresh array, so the in-place ops below are safe
  x *= np.float32(1 / 255)
  if mode == "minus_half":
    x -= np.float32(0.5)
    return x
  if mode == "imagenet":
    x -= _IMAGENET_MEAN
    x /= _IMAGENET_STD
    return x
  raise AssertionError(mode)  # unreachable, checked above
