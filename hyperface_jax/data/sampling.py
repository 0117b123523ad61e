"""Training-time region sampling and per-task IoU labelling (docs/papers.md section 1.4).

HyperFace trains on selective-search proposals of AFLW images (docs/papers.md section
1.4). We replace proposals by random squares (documented default) so that the
input pipeline is a pure function of (seed, step, ...):
  * around faces: the face box scaled by U(0.6, 1.6) and shifted by up to 0.25 of
    the face side per axis, so that IoUs spread over roughly 0.2-1.0;
  * background: squares with sides U(0.15, 0.9) * min(H, W), fully inside the
    image, rejected if IoU >= 0.35 with any face so that negatives are clean.
Regions are kept square because AFLW face boxes are square (docs/papers.md section 1.9)
and the crop is resized to a square input without distortion.

Balancing (docs/papers.md section 1.4: TK retries proposals until it gets the needed
class; the paper's batch composition is unknown). Our scheme, per scene:
  * round(num_regions * positive_fraction) regions with IoU > 0.5 (rejection
    sampling from the around-face distribution);
  * of the rest, `near_fraction` (stochastically rounded) are around-face regions
    with IoU <= 0.5 (hard negatives and landmark-only regions with 0.35 < IoU <= 0.5),
    the others are clean background regions. Near regions are drawn from the same
    jitter as positives unless `near_scale_range` / `near_shift_range` give a wider
    one (documented default None = the same).
With `negative_source="windows"` every non-positive region comes instead from the
test-time sliding-window pyramid (data/boxes.py window_pyramid; `window_*` keys, the
defaults of inference/config.py), moved by up to half a stride and rescaled by up to
half a pyramid step: near regions are windows overlapping a face with 0 < IoU <= 0.5,
background regions windows with IoU < negative_max_iou, both reaching past the image
edge like the test-time windows. The network then sees the windows the full-image
pipeline will show it: face PARTS (a window inside a larger face), windows cutting
through a face, and background half outside the image. The paper trains on the
proposals of its test-time generator (selective search, docs/papers.md 1.4), so its
negatives include these; a detector trained only on jitter around the face box and on
background inside the image scores face parts, and anything padded past the image edge
(where only cut faces were ever padded), as faces (docs/inference.md, the false-positive
study). Documented default "random" (the scheme above).
Scenes without faces give only background regions. If rejection sampling runs
out of rounds: missing positives become the face boxes themselves, missing near
regions become background, missing background regions are the lowest-IoU
candidates seen (their labels still follow `label_regions`, so nothing is wrong,
only less clean).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from hyperface_jax.data import boxes as box_lib

# docs/papers.md section 1.4 (per-task IoU rules; 0.35 not KRR's 0.30).
DEFAULT_THRESHOLDS = {
  "detection_positive": 0.5,  # detection 1 if IoU > 0.5
  "detection_negative": 0.35,  # detection 0 if IoU < 0.35, in between ignored
  "landmarks": 0.35,  # landmarks used if IoU > 0.35
  "visibility": 0.35,  # visibility used if IoU > 0.35
  "pose": 0.5,  # pose used if IoU > 0.5
  "gender": 0.5,  # gender used if IoU > 0.5
}

# Documented defaults (the paper uses selective search, docs/papers.md section 1.4).
DEFAULT_SAMPLING = {
  "scale_range": (0.6, 1.6),  # region side / face side
  "shift_range": 0.25,  # max centre shift per axis, in face sides
  "near_fraction": 0.5,  # share of non-positive regions drawn around faces
  "near_scale_range": None,  # jitter of the near regions; None = scale_range
  "near_shift_range": None,  # None = shift_range
  "negative_source": "random",  # "random" (jitter + background squares) | "windows"
  # Pyramid of the "windows" source: the sliding-window defaults of inference/config.py.
  "window_min_side": 32.0,
  "window_max_side_fraction": 1.0,
  "window_scale_step": 1.3,
  "window_stride_fraction": 0.3,
  "window_border_fraction": 0.4,
  "negative_side_range": (0.15, 0.9),  # background side / min(H, W)
  "negative_max_iou": 0.35,  # background rejected if IoU >= this with a face
  "positive_min_iou": 0.5,  # a positive has IoU > this (docs/papers.md section 1.4)
  "min_inside": 0.5,  # at least half of a region inside the image
  "max_rounds": 8,  # rejection-sampling rounds before the fallbacks
}

_FACE_FIELDS = {"box": (4,), "landmarks": (21, 2), "visibility": (21,), "pose": (3,), "gender": ()}
_VALID_FIELDS = ("box", "landmarks", "visibility", "pose", "gender")


def _merged(defaults, overrides, what):
  out = dict(defaults)
  for k, v in dict(overrides or {}).items():
    if k not in defaults:
      raise ValueError(f"Unknown {what} key {k!r}; expected one of {sorted(defaults)}.")
    out[k] = v
  return out


def _around_faces(rng, faces, k, cfg):
  """k squares jittered around randomly chosen faces (rows of `faces` [F, 4])."""
  idx = rng.integers(0, len(faces), size=k)
  f = faces[idx]
  side_f = np.sqrt(f[:, 2] * f[:, 3])
  centre = f[:, :2] + f[:, 2:] / 2
  lo, hi = cfg["scale_range"]
  side = side_f * rng.uniform(lo, hi, size=k)
  shift = cfg["shift_range"]
  centre = centre + rng.uniform(-shift, shift, size=(k, 2)) * side_f[:, None]
  return np.stack([centre[:, 0] - side / 2, centre[:, 1] - side / 2, side, side], axis=1)


def _background(rng, image_hw, k, cfg):
  """k squares fully inside the image, sides a fraction of min(H, W)."""
  h, w = image_hw
  lo, hi = cfg["negative_side_range"]
  side = rng.uniform(lo, hi, size=k) * min(h, w)
  x = rng.uniform(0, 1, size=k) * (w - side) - 0.5
  y = rng.uniform(0, 1, size=k) * (h - side) - 0.5
  return np.stack([x, y, side, side], axis=1)


def _max_iou(regions, faces):
  if len(faces) == 0:
    return np.zeros(len(regions))
  return box_lib.iou(regions, faces).max(axis=1)


def _stochastic_round(rng, x):
  """floor(x) or floor(x) + 1 with the right odds, so the expected count is x.

  With few regions per scene (e.g. 2 at a 0.75 face share) plain rounding would
  give every scene the same count and a batch the wrong share; the extra draw
  only happens when x is fractional, so integral shares keep their streams.
  """
  base = math.floor(x)
  frac = x - base
  return int(base + (rng.random() < frac)) if frac > 1e-9 else int(base)


def sample_regions(
  rng, image_hw, face_boxes, face_valid, num_regions, positive_fraction=0.5, config=None
):
  """Samples square regions balanced between faces and non-faces.

  Args:
    rng: np.random.Generator.
    image_hw: (H, W) of the scene image.
    face_boxes: [F, 4] face boxes x, y, w, h (F may be 0).
    face_valid: [F] bool, which boxes are valid (invalid ones are ignored).
    num_regions: number of regions to return.
    positive_fraction: target share of regions with IoU > 0.5 with some face (the
      count per scene is stochastically rounded, so the expected share is exact).
    config: optional overrides of DEFAULT_SAMPLING.

  Returns:
    float32 [num_regions, 4] regions x, y, w, h in scene pixels (shuffled).
  """
  cfg = _merged(DEFAULT_SAMPLING, config, "sampling config")
  if not 0.0 <= positive_fraction <= 1.0:
    raise ValueError(f"positive_fraction must be in [0, 1]; got {positive_fraction}.")
  face_boxes = np.asarray(face_boxes, np.float64).reshape(-1, 4)
  face_valid = np.asarray(face_valid, bool).reshape(-1)
  if len(face_valid) != len(face_boxes):
    raise ValueError(
      f"face_valid must have shape [{len(face_boxes)}] like face_boxes; got {face_valid.shape}."
    )
  faces = face_boxes[face_valid & (face_boxes[:, 2] > 0) & (face_boxes[:, 3] > 0)]
  n_pos = _stochastic_round(rng, num_regions * positive_fraction) if len(faces) else 0
  n_near = _stochastic_round(rng, (num_regions - n_pos) * cfg["near_fraction"]) if len(faces) else 0
  n_bg = num_regions - n_pos - n_near
  if cfg["negative_source"] not in ("random", "windows"):
    raise ValueError(
      f"negative_source must be 'random' or 'windows'; got {cfg['negative_source']!r}."
    )
  windows = cfg["negative_source"] == "windows"
  near_cfg = _near_config(cfg)

  pos, near = [], []
  got_pos = got_near = 0
  if windows and n_near:
    near.append(_windows_in_band(rng, image_hw, faces, n_near, cfg, "near"))
    n_bg += n_near - len(near[-1])  # no qualifying window: background instead
    got_near = n_near = len(near[-1])  # the jitter rounds below draw positives only
  for _ in range(cfg["max_rounds"] if len(faces) else 0):
    need = (n_pos - got_pos) + (n_near - got_near)
    if need <= 0:
      break
    if near_cfg is cfg:  # one candidate stream for positives and near regions
      p, q = _split_candidates(rng, image_hw, faces, max(4 * need, 16), cfg)
    else:  # separate streams, each drawn only while still needed
      empty = np.zeros((0, 4))
      p = (
        _split_candidates(rng, image_hw, faces, max(4 * (n_pos - got_pos), 16), cfg)[0]
        if got_pos < n_pos
        else empty
      )
      q = (
        _split_candidates(rng, image_hw, faces, max(4 * (n_near - got_near), 16), near_cfg)[1]
        if got_near < n_near
        else empty
      )
    pos.append(p[: n_pos - got_pos])
    near.append(q[: n_near - got_near])
    got_pos += len(pos[-1])
    got_near += len(near[-1])
  # Fallbacks (documented in the module docstring).
  if got_pos < n_pos:
    pos.append(faces[rng.integers(0, len(faces), size=n_pos - got_pos)])
  n_bg += n_near - got_near
  bg = _windows_in_band(rng, image_hw, faces, n_bg, cfg, "background") if windows else None
  if bg is None or len(bg) < n_bg:  # random squares (also the fallback of "windows")
    have = [] if bg is None else [bg]
    bg = np.concatenate(
      have + [_fill_background(rng, image_hw, faces, n_bg - sum(map(len, have)), cfg)]
    )
  out = np.concatenate(pos + near + [bg], axis=0)
  assert len(out) == num_regions, (len(out), num_regions)
  return out[rng.permutation(num_regions)].astype(np.float32)


def _near_config(cfg):
  """`cfg` itself, or a copy with the near-region jitter when one is configured."""
  if cfg["near_scale_range"] is None and cfg["near_shift_range"] is None:
    return cfg
  near = dict(cfg)
  if cfg["near_scale_range"] is not None:
    near["scale_range"] = tuple(cfg["near_scale_range"])
  if cfg["near_shift_range"] is not None:
    near["shift_range"] = float(cfg["near_shift_range"])
  return near


@functools.lru_cache(maxsize=16)
def _pyramid(image_hw, *settings):
  """The window pyramid of one image size (read-only): every scene of a dataset usually
  shares a size, so it is built once, not for every scene of every step."""
  win = box_lib.window_pyramid(image_hw, *settings)
  win.flags.writeable = False
  return win


def _windows_in_band(rng, image_hw, faces, k, cfg, band):
  """Up to k jittered pyramid windows: "near" 0 < IoU <= positive_min_iou with a face,
  "background" IoU < negative_max_iou with every face.

  Each window is moved by U(-1/2, 1/2) of its stride per axis and rescaled by a factor
  in [step^-1/2, step^1/2] about its centre (so the continuum between pyramid levels
  and grid positions is covered); jittered windows that leave the band are dropped.
  `min_inside` does not apply: like the test-time windows, these reach up to
  `window_border_fraction` (plus the jitter) of their side past the image edge. Fewer
  than k come back only when no window qualifies or rejection sampling runs out.
  """

  def in_band(boxes):
    m = _max_iou(boxes, faces)
    if band == "near":
      return (m > 0) & (m <= cfg["positive_min_iou"])
    return m < cfg["negative_max_iou"]

  if k <= 0:
    return np.zeros((0, 4))
  win = _pyramid(
    tuple(int(v) for v in image_hw),
    cfg["window_min_side"],
    cfg["window_max_side_fraction"],
    cfg["window_scale_step"],
    cfg["window_stride_fraction"],
    cfg["window_border_fraction"],
  )
  win = win[in_band(win)]
  if len(win) == 0:
    return np.zeros((0, 4))
  step = np.log(cfg["window_scale_step"])
  out, got = [], 0
  for _ in range(cfg["max_rounds"]):
    cand = win[rng.integers(0, len(win), size=max(2 * (k - got), 8))]
    side = cand[:, 2] * np.exp(rng.uniform(-0.5, 0.5, len(cand)) * step)
    centre = (
      cand[:, :2]
      + cand[:, 2:] / 2
      + rng.uniform(-0.5, 0.5, (len(cand), 2)) * cand[:, 2:] * cfg["window_stride_fraction"]
    )
    cand = np.stack([centre[:, 0] - side / 2, centre[:, 1] - side / 2, side, side], axis=1)
    out.append(cand[in_band(cand)][: k - got])
    got += len(out[-1])
    if got >= k:
      break
  return np.concatenate(out, axis=0)


def _split_candidates(rng, image_hw, faces, k, cfg):
  """k around-face candidates split into (positives IoU > positive_min_iou, near ones)."""
  cand = _around_faces(rng, faces, k, cfg)
  ok = box_lib.inside_fraction(cand, image_hw) >= cfg["min_inside"]
  m = _max_iou(cand, faces)
  return cand[ok & (m > cfg["positive_min_iou"])], cand[ok & (m <= cfg["positive_min_iou"])]


def _fill_background(rng, image_hw, faces, k, cfg):
  """Exactly k background squares: clean ones (IoU < negative_max_iou) first,
  then, if rejection sampling ran out of rounds, the lowest-IoU candidates."""
  clean, spare_iou, spare = [], [], []
  got = 0
  for _ in range(cfg["max_rounds"]):
    if got >= k:
      break
    cand = _background(rng, image_hw, max(4 * (k - got), 16), cfg)
    m = _max_iou(cand, faces)
    ok = m < cfg["negative_max_iou"]
    clean.append(cand[ok][: k - got])
    got += len(clean[-1])
    spare_iou.append(m[~ok])
    spare.append(cand[~ok])
  if got < k:
    spare_iou = np.concatenate(spare_iou)
    spare = np.concatenate(spare)
    clean.append(spare[np.argsort(spare_iou, kind="stable")[: k - got]])
  return np.concatenate(clean + [np.zeros((0, 4))], axis=0)


def check_faces(faces, where="faces"):
  """Validates a scene's `faces` dict (scene schema, docs/design.md section 5).

  Args:
    faces: dict with box [F, 4], landmarks [F, 21, 2], visibility [F, 21],
      pose [F, 3], gender [F] and valid {box, landmarks, visibility, pose, gender}
      bool [F].
    where: name used in error messages.

  Returns:
    The number of faces F.
  """
  if not isinstance(faces, dict):
    raise ValueError(f"{where} must be a dict of per-face arrays; got {type(faces).__name__}.")
  num = None
  for key, shape in _FACE_FIELDS.items():
    expected = "[" + ", ".join(["F" if num is None else str(num)] + [str(d) for d in shape]) + "]"
    if key not in faces:
      raise ValueError(f"{where} is missing field {key!r} (expected shape {expected}).")
    arr = np.asarray(faces[key])
    if arr.ndim == 0 or arr.shape[1:] != shape or (num is not None and arr.shape[0] != num):
      raise ValueError(f"{where}/{key} has shape {arr.shape}; expected {expected}.")
    num = arr.shape[0]
  valid = faces.get("valid")
  if not isinstance(valid, dict):
    raise ValueError(
      f"{where} is missing field 'valid' (a dict of bool [F] flags for {list(_VALID_FIELDS)})."
    )
  for key in _VALID_FIELDS:
    if key not in valid:
      raise ValueError(f"{where}/valid is missing field {key!r} (expected bool [{num}]).")
    if np.asarray(valid[key]).shape != (num,):
      raise ValueError(
        f"{where}/valid/{key} has shape {np.asarray(valid[key]).shape}; expected [{num}]."
      )
  return num


def label_regions(regions, faces, thresholds=None):
  """Per-task labels and masks of regions from their IoU with the faces.

  IoU rules of docs/papers.md section 1.4 (strict inequalities): detection 1 if
  IoU > 0.5, 0 if IoU < 0.35, ignored in between; landmarks and visibility used
  if IoU > 0.35; pose and gender if IoU > 0.5; each also needs the matched
  face's valid flag (gender -1 also masks). The matched face is the argmax IoU
  over faces with a valid box. Landmarks are normalized to the region,
  ((x - cx) / w, (y - cy) / h) (docs/papers.md section 1.5); a landmark may fall
  outside the region (|value| > 0.5), it keeps its visibility. Values under a
  zero mask are zeroed so no garbage reaches a loss (docs/design.md section 6).

  Args:
    regions: [N, 4] regions x, y, w, h in scene pixels.
    faces: the scene's faces dict (see `check_faces`), F may be 0.
    thresholds: optional overrides of DEFAULT_THRESHOLDS.

  Returns:
    dict with the region-batch contract keys except image and example_mask:
    detection, detection_mask, landmarks, visibility, landmarks_mask,
    visibility_mask, pose, pose_mask, gender, gender_mask, region, face_box, iou.
  """
  t = _merged(DEFAULT_THRESHOLDS, thresholds, "thresholds")
  num_faces = check_faces(faces)
  regions = np.asarray(regions, np.float64).reshape(-1, 4)
  n = len(regions)
  valid = {k: np.asarray(faces["valid"][k], bool) for k in _VALID_FIELDS}
  if num_faces:
    ious = box_lib.iou(regions, np.asarray(faces["box"], np.float64))
    ious = np.where(valid["box"][None, :], ious, -1.0)
    match = ious.argmax(axis=1)
    best = np.clip(ious[np.arange(n), match], 0.0, None)
  else:
    match = np.zeros(n, np.int64)
    best = np.zeros(n)

  def take(key, dtype):
    if not num_faces:
      return np.zeros((n,) + _FACE_FIELDS[key], dtype)
    return np.asarray(faces[key])[match].astype(dtype)

  def flag(key):
    return valid[key][match] if num_faces else np.zeros(n, bool)

  detection = best > t["detection_positive"]
  det_mask = detection | (best < t["detection_negative"])
  lm_mask = (best > t["landmarks"]) & flag("landmarks")
  vis_mask = (best > t["visibility"]) & flag("visibility")
  pose_mask = (best > t["pose"]) & flag("pose")
  gender = take("gender", np.int64)
  gender_mask = (best > t["gender"]) & flag("gender") & (gender >= 0)

  centre = regions[:, :2] + regions[:, 2:] / 2
  size = np.where(regions[:, 2:] > 0, regions[:, 2:], 1.0)
  landmarks = (take("landmarks", np.float64) - centre[:, None, :]) / size[:, None, :]
  visibility = take("visibility", np.float32)
  # Visibility weights the landmark loss (region-batch contract), so keep it
  # wherever either the landmarks or the visibility are used.
  used = lm_mask | vis_mask
  f32 = np.float32
  return {
    "detection": detection.astype(np.int32),
    "detection_mask": det_mask.astype(f32),
    "landmarks": np.where(lm_mask[:, None, None], landmarks, 0.0).astype(f32),
    "visibility": np.where(used[:, None], visibility, 0.0).astype(f32),
    "landmarks_mask": lm_mask.astype(f32),
    "visibility_mask": vis_mask.astype(f32),
    "pose": np.where(pose_mask[:, None], take("pose", f32), 0.0).astype(f32),
    "pose_mask": pose_mask.astype(f32),
    "gender": np.where(gender_mask, gender, 0).astype(np.int32),
    "gender_mask": gender_mask.astype(f32),
    "region": regions.astype(f32),
    "face_box": np.where((best > 0)[:, None], take("box", f32), 0.0).astype(f32),
    "iou": best.astype(f32),
  }
