"""Box utilities on numpy arrays (boxes are [..., 4] = x, y, w, h).

Geometry convention used by the whole data pipeline (sampling, cropping,
flipping, landmark normalization): boxes and landmarks live in ONE continuous
pixel coordinate system in which pixel i has its centre at coordinate i
(0-based, x right, y down; docs/design.md section 6). A box [x, y, w, h] spans
[x, x + w] x [y, y + h]; the image of width W spans [-0.5, W - 0.5]. A
horizontal flip maps a point u -> W - 1 - u (docs/papers.md section 1.13), hence a
box x -> W - 1 - (x + w); see `flip_boxes`.
"""

from __future__ import annotations

import numpy as np


def _check_boxes(boxes, name):
  boxes = np.asarray(boxes, dtype=np.float64)
  if boxes.ndim < 1 or boxes.shape[-1] != 4:
    raise ValueError(f"{name} must have shape [..., 4] (x, y, w, h); got {boxes.shape}.")
  return boxes


def xywh_to_corners(boxes):
  """Converts [..., 4] x, y, w, h boxes to x0, y0, x1, y1 corners.

  Args:
    boxes: array [..., 4] of x, y, w, h.

  Returns:
    float64 array [..., 4] of x0, y0, x1, y1 (x1 = x + w, y1 = y + h).
  """
  b = _check_boxes(boxes, "boxes")
  return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def corners_to_xywh(corners):
  """Converts [..., 4] x0, y0, x1, y1 corners to x, y, w, h boxes.

  Args:
    corners: array [..., 4] of x0, y0, x1, y1.

  Returns:
    float64 array [..., 4] of x, y, w, h.
  """
  c = _check_boxes(corners, "corners")
  return np.concatenate([c[..., :2], c[..., 2:] - c[..., :2]], axis=-1)


def area(boxes):
  """Area w * h of [..., 4] boxes (negative sizes count as 0)."""
  b = _check_boxes(boxes, "boxes")
  return np.clip(b[..., 2], 0, None) * np.clip(b[..., 3], 0, None)


def intersection(a, b):
  """Pairwise intersection areas of a [N, 4] and b [M, 4] -> [N, M]."""
  ca = xywh_to_corners(np.reshape(_check_boxes(a, "a"), (-1, 4)))
  cb = xywh_to_corners(np.reshape(_check_boxes(b, "b"), (-1, 4)))
  lo = np.maximum(ca[:, None, :2], cb[None, :, :2])
  hi = np.minimum(ca[:, None, 2:], cb[None, :, 2:])
  wh = np.clip(hi - lo, 0, None)
  return wh[..., 0] * wh[..., 1]


def iou(a, b):
  """Standard intersection-over-union of every pair (docs/papers.md section 1.4).

  Standard IoU = area(A n B) / area(A u B), NOT TK's sqrt overlap rate
  (docs/papers.md section 1.4 says to use the standard one).

  Args:
    a: [N, 4] boxes x, y, w, h.
    b: [M, 4] boxes x, y, w, h.

  Returns:
    float64 [N, M]; 0 where the union is empty (degenerate boxes).
  """
  a = np.reshape(_check_boxes(a, "a"), (-1, 4))
  b = np.reshape(_check_boxes(b, "b"), (-1, 4))
  inter = intersection(a, b)
  union = area(a)[:, None] + area(b)[None, :] - inter
  with np.errstate(divide="ignore", invalid="ignore"):
    out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
  return out


def paired_iou(a, b):
  """IoU of each box of `a` with the box of `b` in the same row: [..., 4] x2 -> [...]."""
  ca = xywh_to_corners(_check_boxes(a, "a"))
  cb = xywh_to_corners(_check_boxes(b, "b"))
  wh = np.clip(np.minimum(ca[..., 2:], cb[..., 2:]) - np.maximum(ca[..., :2], cb[..., :2]), 0, None)
  inter = wh[..., 0] * wh[..., 1]
  union = area(a) + area(b) - inter
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def encode_box_deltas(boxes, regions):
  """Box-regression targets of `boxes` relative to `regions` (R-CNN's parameterisation,
  Girshick et al. 2014, appendix C; documented choice -- MTCNN's P-Net regresses the corner
  offsets / window side instead, which ties position to scale):
  ((cx_b - cx_r) / w_r, (cy_b - cy_r) / h_r, log(w_b / w_r), log(h_b / h_r)).

  Args:
    boxes: [..., 4] x, y, w, h with w, h > 0 (the faces).
    regions: [..., 4] x, y, w, h with w, h > 0 (the windows / crops).

  Returns:
    float64 [..., 4]; `decode_box_deltas(encode_box_deltas(b, r), r) == b`.
  """
  b = _check_boxes(boxes, "boxes")
  r = _check_boxes(regions, "regions")
  if np.any(~(b[..., 2:] > 0)) or np.any(~(r[..., 2:] > 0)):
    raise ValueError("encode_box_deltas needs boxes and regions with w, h > 0.")
  centre = (b[..., :2] + b[..., 2:] / 2 - r[..., :2] - r[..., 2:] / 2) / r[..., 2:]
  return np.concatenate([centre, np.log(b[..., 2:] / r[..., 2:])], axis=-1)


def decode_box_deltas(deltas, regions, max_log_scale: float = 2.0):
  """Inverse of `encode_box_deltas`: the boxes [..., 4] that `deltas` describe relative to
  `regions`. Log-scales are clipped to +-`max_log_scale` (a wild prediction then gives a
  box at most e^2 = 7.4x its window, not an overflow)."""
  d = _check_boxes(deltas, "deltas")
  r = _check_boxes(regions, "regions")
  size = r[..., 2:] * np.exp(np.clip(d[..., 2:], -max_log_scale, max_log_scale))
  centre = r[..., :2] + r[..., 2:] / 2 + d[..., :2] * r[..., 2:]
  return np.concatenate([centre - size / 2, size], axis=-1)


def inside_fraction(boxes, image_hw):
  """Fraction of each box's area that lies inside the image [-0.5, W-0.5] x [-0.5, H-0.5].

  Args:
    boxes: [N, 4] boxes.
    image_hw: (H, W) of the image.

  Returns:
    float64 [N].
  """
  h, w = image_hw
  image_box = np.array([[-0.5, -0.5, float(w), float(h)]])
  inter = intersection(boxes, image_box)[:, 0]
  a = area(np.reshape(boxes, (-1, 4)))
  return np.where(a > 0, inter / np.where(a > 0, a, 1.0), 0.0)


def flip_boxes(boxes, width):
  """Mirrors boxes horizontally in an image `width` pixels wide.

  Points map u -> width - 1 - u (docs/papers.md section 1.13), so the box edge
  x + w becomes the new left edge: x' = width - 1 - x - w.

  Args:
    boxes: [..., 4] boxes.
    width: image width in pixels.

  Returns:
    float64 [..., 4] mirrored boxes.
  """
  b = _check_boxes(boxes, "boxes").copy()
  b[..., 0] = width - 1 - b[..., 0] - b[..., 2]
  return b


def box_from_points(points, mask=None):
  """Tight axis-aligned box around the points selected by `mask`.

  Args:
    points: [..., K, 2] x, y points.
    mask: optional [..., K] (bool or 0/1); None means all points.

  Returns:
    float64 [..., 4] x, y, w, h; all zeros where no point is selected.
  """
  p = np.asarray(points, dtype=np.float64)
  if p.ndim < 2 or p.shape[-1] != 2:
    raise ValueError(f"points must have shape [..., K, 2]; got {p.shape}.")
  m = np.ones(p.shape[:-1], bool) if mask is None else np.asarray(mask).astype(bool)
  if m.shape != p.shape[:-1]:
    raise ValueError(
      f"mask must have shape {p.shape[:-1]} (points without the last axis); got {m.shape}."
    )
  lo = np.where(m[..., None], p, np.inf).min(axis=-2)
  hi = np.where(m[..., None], p, -np.inf).max(axis=-2)
  any_point = m.any(axis=-1)[..., None]
  corners = np.where(any_point, np.concatenate([lo, hi], axis=-1), 0.0)
  return corners_to_xywh(corners)


def denormalize_landmarks(points, region):
  """Region-normalized points -> scene pixels (inverse of docs/papers.md section 1.5).

  The labels of a region hold its landmarks as ((x - cx) / w, (y - cy) / h), (cx, cy) the
  region centre (data/sampling.py label_regions); the network predicts the same form.

  Args:
    points: [N, K, 2] ((x - cx) / w, (y - cy) / h) with (cx, cy) the region centre.
    region: [N, 4] region x, y, w, h in pixels.

  Returns:
    float64 [N, K, 2] pixels.
  """
  points = np.asarray(points, np.float64)
  region = np.asarray(region, np.float64)
  size = region[:, None, 2:4]
  centre = region[:, None, 0:2] + 0.5 * size
  return points * size + centre


# The sliding-window pyramid of the test-time pipeline (inference/config.py
# proposals.sliding_window) and of the training-time window negatives (data/sampling.py
# DEFAULT_SAMPLING window_*), defined here only. Documented defaults, measured on 300
# synth_faces test scenes (docs/inference.md): the demo model accepts regions of 0.8-1.3x
# the face side shifted by 0.15 of it (configs/demo.py), so a 1.3 pyramid step and a 0.3
# stride suffice, and windows reaching 0.4 of their side past the image edge put a window
# with IoU > 0.6 on every face (760 windows per 160 px scene); kept inside the image they
# reach only 84 % of the faces at IoU > 0.5, because 60 % of the faces are cut by the image
# border (a face box partly outside the image, as in AFLW).
DEFAULT_WINDOWS = {
  "min_side": 32.0,  # smallest window side in pixels
  "max_side_fraction": 1.0,  # largest side as a fraction of min(H, W)
  "scale_step": 1.3,  # ratio between pyramid levels
  "stride_fraction": 0.3,  # step between windows as a fraction of the side
  "border_fraction": 0.4,  # how far windows reach past the image edge (x side)
}


def window_sides(image_hw, min_side=24.0, max_side_fraction=1.0, scale_step=1.25):
  """Pyramid of window sides min_side * scale_step^k up to max_side_fraction * min(H, W)."""
  if scale_step <= 1.0 or min_side <= 0:
    raise ValueError(f"need scale_step > 1 and min_side > 0; got {scale_step}, {min_side}.")
  top = max_side_fraction * min(image_hw)
  if top < min_side:
    return np.array([float(top)])
  n = int(np.floor(np.log(top / min_side) / np.log(scale_step) + 1e-9)) + 1
  return min_side * scale_step ** np.arange(n)


def _window_origins(extent, side, stride, border):
  """Origins of windows of `side` covering [-0.5 - border, extent - 0.5 + border], evenly
  spread (one centred window when the side exceeds the span)."""
  span = extent + 2 * border - side
  if span <= 0:
    return np.array([-0.5 + (extent - side) / 2])  # one window, centred on the image
  n = int(np.ceil(span / stride)) + 1
  return -0.5 - border + np.linspace(0.0, span, n)


def window_pyramid(
  image_hw,
  min_side=24.0,
  max_side_fraction=1.0,
  scale_step=1.25,
  stride_fraction=0.25,
  border_fraction=0.0,
):
  """Square sliding windows of every pyramid side, stepped by `stride_fraction` of the side.

  The geometry of the `sliding_window` proposals (inference/proposals.py) and of the
  training-time hard negatives drawn from them (data/sampling.py, negative_source="windows").
  Windows of each side are spread evenly so the first touches the left/top edge and the
  last the right/bottom edge of the image grown by `border_fraction` of the side on every
  edge: faces cut by the image border have boxes partly outside the image (AFLW boxes
  do, and 60 % of synth_faces faces do), which windows kept inside the image cannot
  overlap with IoU > 0.5. Crops pad the outside (data/preprocess.py, as in training).

  Returns:
    float64 [N, 4] windows, ordered from the largest side to the smallest.
  """
  if not 0 < stride_fraction <= 1:
    raise ValueError(f"stride_fraction must be in (0, 1]; got {stride_fraction}.")
  if not 0 <= border_fraction < 1:
    raise ValueError(f"border_fraction must be in [0, 1); got {border_fraction}.")
  h, w = image_hw
  out = []
  for side in window_sides((h, w), min_side, max_side_fraction, scale_step)[::-1]:
    step, border = side * stride_fraction, side * border_fraction
    gx, gy = np.meshgrid(
      _window_origins(w, side, step, border), _window_origins(h, side, step, border)
    )
    n = gx.size
    out.append(np.stack([gx.ravel(), gy.ravel(), np.full(n, side), np.full(n, side)], 1))
  return np.concatenate(out, 0)
