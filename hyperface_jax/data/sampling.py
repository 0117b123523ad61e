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

from hyperface_jax import tasks as task_lib
from hyperface_jax.data import boxes as box_lib

# docs/papers.md section 1.4 (per-task IoU rules; 0.35 not KRR's 0.30).
DEFAULT_TASK_NAMES = ("detection", "landmarks", "visibility", "pose", "gender")  # HyperFace
# docs/papers.md section 1.4 (per-task IoU rules; 0.35 not KRR's 0.30), as declared by the
# tasks (hyperface_jax/tasks.py min_iou and DETECTION_THRESHOLDS): detection 1 if IoU > 0.5,
# 0 if IoU < 0.35, ignored in between; landmarks and visibility used if IoU > 0.35; pose and
# gender if IoU > 0.5.
DEFAULT_THRESHOLDS = task_lib.default_thresholds(DEFAULT_TASK_NAMES)

# Documented defaults (the paper uses selective search, docs/papers.md section 1.4).
DEFAULT_SAMPLING = {
  "scale_range": (0.6, 1.6),  # region side / face side
  "shift_range": 0.25,  # max centre shift per axis, in face sides
  "near_fraction": 0.5,  # share of non-positive regions drawn around faces
  "near_scale_range": None,  # jitter of the near regions; None = scale_range
  "near_shift_range": None,  # None = shift_range
  "negative_source": "random",  # "random" (jitter + background squares) | "windows"
  # Pyramid of the "windows" source: the test-time sliding-window defaults (window_min_side,
  # window_max_side_fraction, window_scale_step, window_stride_fraction,
  # window_border_fraction), defined once in data/boxes.py DEFAULT_WINDOWS.
  **{f"window_{k}": v for k, v in box_lib.DEFAULT_WINDOWS.items()},
  "negative_side_range": (0.15, 0.9),  # background side / min(H, W)
  # background rejected if IoU >= this with a face: clean detection negatives
  "negative_max_iou": DEFAULT_THRESHOLDS["detection_negative"],
  # a positive has IoU > this (docs/papers.md section 1.4)
  "positive_min_iou": DEFAULT_THRESHOLDS["detection_positive"],
  "min_inside": 0.5,  # at least half of a region inside the image
  "max_rounds": 8,  # rejection-sampling rounds before the fallbacks
}

_FACE_FIELDS = {"box": (4,), "landmarks": (21, 2), "visibility": (21,), "pose": (3,), "gender": ()}
_VALID_FIELDS = tuple(_FACE_FIELDS)


def _merged(defaults, overrides, what, extra=()):
  out = dict(defaults)
  for k, v in dict(overrides or {}).items():
    if k not in defaults and k not in extra:
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


def check_faces(faces, where="faces", fields=None):
  """Validates a scene's `faces` dict (scene schema, docs/design.md section 5).

  Args:
    faces: dict of per-face arrays [F, ...] and `valid`, a dict of bool [F] flags.
    where: name used in error messages.
    fields: {field: per-face shape} to check (default: the core schema fields box,
      landmarks, visibility, pose, gender); each needs a `valid` flag too.

  Returns:
    The number of faces F.
  """
  fields = _FACE_FIELDS if fields is None else fields
  if not isinstance(faces, dict):
    raise ValueError(f"{where} must be a dict of per-face arrays; got {type(faces).__name__}.")
  num = None
  for key, shape in fields.items():
    expected = "[" + ", ".join(["F" if num is None else str(num)] + [str(d) for d in shape]) + "]"
    if key not in faces:
      raise ValueError(f"{where} is missing field {key!r} (expected shape {expected}).")
    arr = np.asarray(faces[key])
    if arr.ndim == 0 or arr.shape[1:] != tuple(shape) or (num is not None and arr.shape[0] != num):
      raise ValueError(f"{where}/{key} has shape {arr.shape}; expected {expected}.")
    num = arr.shape[0]
  valid = faces.get("valid")
  if not isinstance(valid, dict):
    raise ValueError(
      f"{where} is missing field 'valid' (a dict of bool [F] flags for {list(fields)})."
    )
  for key in fields:
    if key not in valid:
      raise ValueError(f"{where}/valid is missing field {key!r} (expected bool [{num}]).")
    if np.asarray(valid[key]).shape != (num,):
      raise ValueError(
        f"{where}/valid/{key} has shape {np.asarray(valid[key]).shape}; expected [{num}]."
      )
  return num


def label_regions(regions, faces, thresholds=None, task_names=DEFAULT_TASK_NAMES):
  """Per-task labels and masks of regions from their IoU with the faces.

  Each region is matched to the face with a valid box of highest IoU; every task then
  applies its own rule (hyperface_jax/tasks.py `label`): the IoU rules of
  docs/papers.md section 1.4 (strict inequalities: detection 1 if IoU > 0.5, 0 if
  IoU < 0.35, ignored in between; landmarks and visibility used if IoU > 0.35; pose and
  gender if IoU > 0.5), each also needing the matched face's valid flag (gender -1
  also masks). Landmarks are normalized to the region, ((x - cx) / w, (y - cy) / h)
  (docs/papers.md section 1.5); a landmark may fall outside the region (|value| > 0.5),
  it keeps its visibility. Values under a zero mask are zeroed so no garbage reaches a
  loss (docs/design.md section 6).

  Args:
    regions: [N, 4] regions x, y, w, h in scene pixels.
    faces: the scene's faces dict (see `check_faces`) with the fields of the tasks, F
      may be 0.
    thresholds: {task name: IoU threshold, "detection_positive", "detection_negative"}
      overriding the tasks' documented defaults (DEFAULT_THRESHOLDS).
    task_names: the tasks to label (default: HyperFace's five).

  Returns:
    dict with every task's label keys and `<task>_mask` (float32 [N]), and the metadata
    region, face_box (scene pixels of the matched face) and iou.
  """
  task_list = task_lib.resolve(task_names)
  t = _merged(DEFAULT_THRESHOLDS, thresholds, "thresholds", extra=[x.name for x in task_list])
  fields = task_lib.face_fields(task_list)
  num_faces = check_faces(faces, fields={k: spec[0] for k, spec in fields.items()})
  regions = np.asarray(regions, np.float64).reshape(-1, 4)
  n = len(regions)
  if num_faces:
    box_ok = np.asarray(faces["valid"]["box"], bool)
    ious = box_lib.iou(regions, np.asarray(faces["box"], np.float64))
    ious = np.where(box_ok[None, :], ious, -1.0)
    match = ious.argmax(axis=1)
    best = np.clip(ious[np.arange(n), match], 0.0, None)
    matched = {k: np.asarray(faces[k])[match] for k in fields}
    valid = {k: np.asarray(faces["valid"][k], bool)[match] for k in fields}
  else:
    best = np.zeros(n)
    matched = {k: np.zeros((n,) + tuple(spec[0]), spec[1]) for k, spec in fields.items()}
    valid = {k: np.zeros(n, bool) for k in fields}
  ctx = task_lib.LabelContext(matched, valid, regions, best, t)
  out = {}
  for task in task_list:
    labels, mask = task_lib.label(task, ctx)
    task_lib.merge_labels(out, labels, mask)
    out[task.mask_key] = np.asarray(mask, np.float32)
  out["region"] = regions.astype(np.float32)
  out["face_box"] = np.where((best > 0)[:, None], matched["box"], 0.0).astype(np.float32)
  out["iou"] = best.astype(np.float32)
  return out
