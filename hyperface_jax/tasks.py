"""Task declarations: the one place where a label-bearing task is defined.

A `Task` says everything the rest of the code needs to know about one prediction
target, so that nothing else keeps a list of task names:

  * `labels`: the label keys it puts in a batch, with per-example shapes and dtypes,
    plus its mask `<name>_mask` ([B] float, 1 where the example carries the label);
  * `output_shape`: the per-example shape of its head output (`outputs[name]`);
  * `loss(pred, labels, weight) -> (sum, count)`: a masked sum over this device's
    examples and the number of examples it covers (exact cross-device means,
    docs/design.md habit 6); `weight` is `<name>_mask * example_mask`;
  * `metrics(pred, labels, weight) -> {metric: (sum, count)}` in numpy, exact sums that
    the generic evaluator adds over batches (result = sum / count);
  * how it is labelled from a face of a scene (`fields` read from the face-scene schema,
    `valid_fields` whose valid flags gate it, `min_iou`, `encode`, `valid`): the region
    sampler matches each region to the face of highest IoU (docs/papers.md section 1.4);
  * `flip`: how its labels (and outputs, which use the same names) change under a
    horizontal mirror of the crop (docs/papers.md section 1.13 for AFLW-21).

Readers: models' heads (`output_shape`), the loss (`compute_losses`), region labelling
(data/sampling.py `label_regions`), the scene store (`face_fields`), the input pipeline
(`batch_keys`: what goes to the devices), flips in training and flip-test
(`flip_labels`), and evaluators (`metrics`, `mask_key`). Adding a task is one
`register(Task(...))` (for a new kind of label, plus its loss function); see
CONTRIBUTING.md and tests/test_tasks.py, which adds a toy task in the test file alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from hyperface_jax import registry
from hyperface_jax.data import boxes as box_lib
from hyperface_jax.data import schemes

Spec = Tuple[Tuple[int, ...], Any]  # (per-example shape, numpy dtype)
SumCount = Tuple[Any, Any]


@dataclasses.dataclass(frozen=True)
class Task:
  """One prediction target (module docstring).

  Attributes:
    name: the task name: head output key, loss/metric prefix, `<name>_mask` batch key.
    labels: batch label keys -> (per-example shape, dtype); two tasks may share a key
      (landmarks and visibility both carry "visibility") if they agree on its spec.
    output_shape: per-example head output shape.
    loss: the name of a loss in registry.LOSSES (hyperface_jax/losses.py), or a function
      `loss(pred, labels, weight) -> (sum, count)` on jax arrays. Names keep this module
      free of JAX, so that configs and data code can read the declarations.
    metrics: `metrics(pred, labels, weight) -> {name: (sum, count)}` (numpy).
    min_iou: a region carries the label if its IoU with the matched face is above this
      (documented default; overridden by `config.data.thresholds[name]`).
    fields: per-face fields of the face-scene schema the labels come from (default:
      `labels`, same shapes, float32/int64 as stored).
    valid_fields: fields whose `valid` flags must all be set (default: the first field).
    encode: `encode(fields, regions) -> labels` (default: fields copied by name).
    valid: optional `valid(fields) -> [N] bool`, e.g. gender >= 0 (unknown is -1).
    flip: optional `flip(arrays) -> arrays` for a horizontal mirror; acts on the label
      keys and the output key present in `arrays`, returns a new dict.
    label_fn: optional replacement of the IoU rule, `label_fn(task, ctx) -> (labels,
      mask)` (detection: labelled from the IoU itself).
  """

  name: str
  labels: Mapping[str, Spec]
  output_shape: Tuple[int, ...]
  loss: Any  # str (registry.LOSSES name) or callable
  metrics: Callable[..., Dict[str, SumCount]]
  min_iou: float = 0.5
  fields: Optional[Mapping[str, Spec]] = None
  valid_fields: Optional[Tuple[str, ...]] = None
  encode: Optional[Callable[..., Dict[str, np.ndarray]]] = None
  valid: Optional[Callable[..., np.ndarray]] = None
  flip: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None
  label_fn: Optional[Callable[..., Tuple[Dict[str, np.ndarray], np.ndarray]]] = None

  @property
  def mask_key(self) -> str:
    return f"{self.name}_mask"

  @property
  def face_fields(self) -> Mapping[str, Spec]:
    return dict(self.fields if self.fields is not None else self.labels)

  @property
  def gating_fields(self) -> Tuple[str, ...]:
    return self.valid_fields or (next(iter(self.face_fields)),)


def register(task: Task) -> Task:
  """Adds `task` to registry.TASKS (a name registered twice is an error)."""
  return registry.TASKS.register(task.name)(task)


def get(name: str) -> Task:
  return registry.TASKS.get(name)


def resolve(names: Sequence[str]) -> Tuple[Task, ...]:
  """The declarations of `names` (errors name unknown tasks and the known ones)."""
  if isinstance(names, str):
    raise TypeError(f"tasks must be a sequence of task names, got the string {names!r}.")
  out = tuple(get(n) for n in names)
  shared: Dict[str, Tuple[str, Spec]] = {}
  for t in out:
    for key, spec in t.labels.items():
      if key in shared and _norm(shared[key][1]) != _norm(spec):
        raise ValueError(
          f"Tasks {shared[key][0]!r} and {t.name!r} both declare label {key!r} with "
          f"different specs {shared[key][1]} vs {spec}."
        )
      shared.setdefault(key, (t.name, spec))
  return out


def _norm(spec: Spec):
  return tuple(spec[0]), np.dtype(spec[1])


def batch_keys(task_list: Sequence[Task]) -> Tuple[str, ...]:
  """Device-batch keys of `task_list`: image, example_mask, labels and masks (ordered)."""
  keys = ["image", "example_mask"]
  for t in task_list:
    for k in (*t.labels, t.mask_key):
      if k not in keys:
        keys.append(k)
  return tuple(keys)


def face_fields(task_list: Sequence[Task]) -> Dict[str, Spec]:
  """Per-face fields the tasks read (with "box", which region labelling always needs)."""
  out: Dict[str, Spec] = {"box": ((4,), np.float32)}
  for t in task_list:
    for k, spec in t.face_fields.items():
      out.setdefault(k, spec)
  return out


def output_shapes(task_list: Sequence[Task]) -> Dict[str, Tuple[int, ...]]:
  return {t.name: tuple(t.output_shape) for t in task_list}


# --------------------------------------------------------------------------- labelling


@dataclasses.dataclass
class LabelContext:
  """What region labelling knows about N regions (data/sampling.py `label_regions`).

  matched: per-face field -> [N, ...] values of the matched face (zeros if no face).
  valid: field -> [N] bool valid flags of the matched face (False if no face).
  regions: [N, 4] x, y, w, h pixels. iou: [N] IoU with the matched face (0 if none).
  thresholds: {task name or rule name: IoU threshold} overrides.
  """

  matched: Dict[str, np.ndarray]
  valid: Dict[str, np.ndarray]
  regions: np.ndarray
  iou: np.ndarray
  thresholds: Mapping[str, float]


def label(task: Task, ctx: LabelContext) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
  """Labels and [N] bool mask of `task` for the regions of `ctx` (the IoU rule)."""
  if task.label_fn is not None:
    return task.label_fn(task, ctx)
  ok = ctx.iou > float(ctx.thresholds.get(task.name, task.min_iou))
  for f in task.gating_fields:
    ok = ok & ctx.valid[f]
  if task.valid is not None:
    ok = ok & np.asarray(task.valid(ctx.matched), bool)
  values = (
    task.encode(ctx.matched, ctx.regions)
    if task.encode is not None
    else {k: ctx.matched[k] for k in task.labels}
  )
  return {k: zero_unmasked(values[k], ok, spec[1]) for k, spec in task.labels.items()}, ok


def zero_unmasked(values, mask, dtype) -> np.ndarray:
  """`values` where `mask`, else 0 (no garbage under a zero mask; docs/design.md 6)."""
  values = np.asarray(values)
  m = np.asarray(mask, bool).reshape((-1,) + (1,) * (values.ndim - 1))
  return np.where(m, values, 0).astype(dtype)


def merge_labels(out: Dict[str, np.ndarray], labels, mask) -> None:
  """Adds one task's labels to `out`; a key shared with an earlier task keeps the earlier
  value where this task's mask is 0 (both come from the same face field)."""
  for k, v in labels.items():
    if k in out:
      m = np.asarray(mask, bool).reshape((-1,) + (1,) * (v.ndim - 1))
      out[k] = np.where(m, v, out[k]).astype(v.dtype)
    else:
      out[k] = v


def flip_labels(task_list: Sequence[Task], arrays: Mapping[str, Any]) -> Dict[str, Any]:
  """Applies every task's horizontal-flip rule to `arrays` (labels or outputs)."""
  out, done = dict(arrays), set()
  for t in task_list:  # a key shared by two tasks (visibility) is flipped once
    keys = [k for k in (*t.labels, t.name) if k in out and k not in done]
    if t.flip is not None and keys:
      out.update(t.flip({k: out[k] for k in keys}))
      done.update(keys)
  return out


def compute_losses(task_list: Sequence[Task], outputs, batch) -> Dict[str, SumCount]:
  """{task: (sum, count)} of every task's declared loss on this device's batch."""
  result = {}
  for t in task_list:
    if t.name not in outputs:
      raise ValueError(
        f"Task {t.name!r} has no model output; the model returns {sorted(outputs)}. "
        "Set config.tasks to the model's heads."
      )
    pred = outputs[t.name]
    if tuple(pred.shape[1:]) != tuple(t.output_shape):
      raise ValueError(
        f"Task {t.name!r}: the model's output has per-example shape {tuple(pred.shape[1:])}"
        f" but the task declares {tuple(t.output_shape)} (hyperface_jax/tasks.py)."
      )
    loss = registry.LOSSES.get(t.loss) if isinstance(t.loss, str) else t.loss
    weight = batch[t.mask_key] * batch["example_mask"]
    result[t.name] = loss(pred, {k: batch[k] for k in t.labels}, weight)
  return result


# ------------------------------------------------------------------ building blocks


def points_encode(points_key: str, vis_key: str):
  """Encodes pixel landmarks relative to the region: ((x - cx) / w, (y - cy) / h)
  (docs/papers.md section 1.5); visibility is copied."""

  def encode(fields, regions):
    regions = np.asarray(regions, np.float64)
    centre = regions[:, :2] + regions[:, 2:] / 2
    size = np.where(regions[:, 2:] > 0, regions[:, 2:], 1.0)
    pts = (np.asarray(fields[points_key], np.float64) - centre[:, None]) / size[:, None]
    return {points_key: pts, vis_key: fields[vis_key]}

  return encode


def points_flip(perm, keys_points: Sequence[str], keys_perm: Sequence[str]):
  """Flip rule of region-normalized points: permute (left <-> right) and negate x."""
  perm = np.asarray(perm)

  def flip(arrays):
    out = dict(arrays)
    for k in keys_points:
      if k in out:
        p = np.asarray(out[k])[:, perm].copy()
        p[..., 0] = -p[..., 0]
        out[k] = p
    for k in keys_perm:
      if k in out:
        out[k] = np.asarray(out[k])[:, perm].copy()
    return out

  return flip


def _pose_flip(arrays):
  """Roll and yaw change sign under a horizontal mirror, pitch does not (docs/design.md 6)."""
  out = dict(arrays)
  if "pose" in out:
    pose = np.asarray(out["pose"])
    out["pose"] = pose * np.array([-1, 1, -1], pose.dtype)
  return out


# docs/papers.md section 1.4: a region is a face if IoU > 0.5, a non-face if IoU < 0.35
# (not KRR's 0.30), ignored in between.
DETECTION_THRESHOLDS = {"detection_positive": 0.5, "detection_negative": 0.35}


def default_thresholds(names: Sequence[str]) -> Dict[str, float]:
  """The IoU rules of the tasks `names` (their `min_iou`, and detection's two bounds):
  the defaults that `config.data.thresholds` overrides."""
  out = {}
  for t in resolve(names):
    if t.label_fn is _detection_label:
      out.update(DETECTION_THRESHOLDS)
    else:
      out[t.name] = float(t.min_iou)
  return out


def _detection_label(task, ctx):
  """docs/papers.md section 1.4 (DETECTION_THRESHOLDS): 1 face, 0 non-face, else ignored."""
  pos = float(ctx.thresholds.get("detection_positive", DETECTION_THRESHOLDS["detection_positive"]))
  neg = float(ctx.thresholds.get("detection_negative", DETECTION_THRESHOLDS["detection_negative"]))
  face = ctx.iou > pos
  mask = face | (ctx.iou < neg)
  return {"detection": face.astype(np.int32)}, mask


def class_metrics(pred, labels, weight) -> Dict[str, SumCount]:
  """Accuracy of argmax logits: {"accuracy": (correct, count)} over weighted rows."""
  (key,) = labels
  w = np.asarray(weight) > 0.5
  correct = np.argmax(np.asarray(pred), -1) == np.asarray(labels[key])
  return {"accuracy": (float(np.sum(correct & w)), float(np.sum(w)))}


def binary_metrics(pred, labels, weight) -> Dict[str, SumCount]:
  """Mean accuracy of sigmoid(logit) > 0.5 over all binary outputs of the weighted rows."""
  (key,) = labels
  w = np.asarray(weight) > 0.5
  correct = (np.asarray(pred) > 0) == (np.asarray(labels[key]) > 0)
  per_row = correct.reshape(len(w), -1)
  return {"accuracy": (float(per_row[w].sum()), float(w.sum() * per_row.shape[1]))}


def points_metrics(points_key: str, vis_key: str):
  """Mean visible-point error in region units (fraction of the region side)."""

  def metrics(pred, labels, weight):
    """Mean visible-point error in region units (fraction of the region side)."""
    w = np.asarray(weight) > 0.5
    vis = np.asarray(labels[vis_key]) > 0.5
    err = np.linalg.norm(np.asarray(pred) - np.asarray(labels[points_key]), axis=-1)
    n_vis = vis.sum(-1)
    rows = w & (n_vis > 0)
    per_row = np.where(rows, (err * vis).sum(-1) / np.maximum(n_vis, 1), 0.0)
    return {"error_region": (float(per_row.sum()), float(rows.sum()))}

  return metrics


def _mse_metrics(pred, labels, weight):
  """Mean squared error over the output's elements."""
  (key,) = labels
  w = np.asarray(weight) > 0.5
  sq = ((np.asarray(pred) - np.asarray(labels[key])) ** 2).reshape(len(w), -1).mean(-1)
  return {"mse": (float(sq[w].sum()), float(w.sum()))}


def _abs_deg_metrics(pred, labels, weight):
  """Mean absolute wrapped angle error in degrees over the three angles."""
  w = np.asarray(weight) > 0.5
  d = np.asarray(pred, np.float64) - np.asarray(labels["pose"], np.float64)
  d = np.degrees(np.abs((d + np.pi) % (2 * np.pi) - np.pi)).mean(-1)
  return {"mae_deg": (float(d[w].sum()), float(w.sum()))}


def classification_task(name: str, num_classes: int, min_iou: float = 0.5, **kw) -> Task:
  """A softmax classification task on an int64 per-face field `name` (-1 = unknown)."""
  return Task(
    name=name,
    labels={name: ((), np.int32)},
    fields={name: ((), np.int64)},
    output_shape=(num_classes,),
    loss="softmax_cross_entropy",
    metrics=class_metrics,
    min_iou=min_iou,
    valid=lambda f: (np.asarray(f[name]) >= 0) & (np.asarray(f[name]) < num_classes),
    **kw,
  )


def landmark_task(name, points_key, vis_key, num_points, perm, min_iou=0.35, **kw) -> Task:
  """A region-normalized landmark regression task with its visibility (loss_L of
  docs/papers.md section 1.6: visibility-weighted squared error)."""
  return Task(
    name=name,
    labels={points_key: ((num_points, 2), np.float32), vis_key: ((num_points,), np.float32)},
    output_shape=(num_points, 2),
    loss="visibility_weighted_l2",
    metrics=points_metrics(points_key, vis_key),
    min_iou=min_iou,
    valid_fields=(points_key,),
    encode=points_encode(points_key, vis_key),
    flip=points_flip(perm, (points_key,) + ((name,) if name != points_key else ()), (vis_key,)),
    **kw,
  )


# -------------------------------------------------------------- the built-in tasks
# HyperFace's five tasks: docs/papers.md sections 1.2 (head sizes), 1.4 (IoU rules),
# 1.5 (targets), 1.6 (losses); 1.13 (AFLW-21 flip permutation).

register(
  Task(
    name="detection",
    labels={"detection": ((), np.int32)},
    fields={"box": ((4,), np.float32)},
    output_shape=(2,),  # face / non-face logits, index 1 = face
    loss="softmax_cross_entropy",
    metrics=class_metrics,
    label_fn=_detection_label,
  )
)
register(landmark_task("landmarks", "landmarks", "visibility", 21, schemes.AFLW21_FLIP))
register(
  Task(
    name="visibility",
    labels={"visibility": ((21,), np.float32)},
    output_shape=(21,),
    loss="mean_squared_error",  # loss_V, docs/papers.md section 1.6
    metrics=_mse_metrics,
    min_iou=0.35,
    flip=points_flip(schemes.AFLW21_FLIP, (), ("visibility",)),
  )
)
register(
  Task(
    name="pose",
    labels={"pose": ((3,), np.float32)},  # roll, pitch, yaw radians
    output_shape=(3,),
    loss="mean_squared_error",  # loss_P, docs/papers.md section 1.6
    metrics=_abs_deg_metrics,
    min_iou=0.5,
    flip=_pose_flip,
  )
)
register(classification_task("gender", 2))  # 0 male, 1 female; loss_G (section 1.6)


# Fast-HyperFace's proposal net (docs/papers.md section 1.11 leaves the detector open; the
# documented choice, models/fast_proposal_net.py, is MTCNN-P-Net-like): besides face /
# non-face it regresses the face box from its window, so that one window per face suffices
# after NMS. Targets: data/boxes.py `encode_box_deltas` (R-CNN's parameterisation).
# Documented default after MTCNN (Zhang et al. 2016, section III.A): regions with IoU > 0.4
# ("part faces" and positives) carry the box target.
BOX_REGRESSION_MIN_IOU = 0.4


def _box_deltas_encode(fields, regions):
  """The matched face's box relative to the region; rows without a face (w = 0) get the
  region itself (deltas 0), which the task's mask then zeroes anyway."""
  regions = np.asarray(regions, np.float64)
  face = np.asarray(fields["box"], np.float64)
  ok = (face[:, 2] > 0) & (face[:, 3] > 0) & (regions[:, 2] > 0) & (regions[:, 3] > 0)
  safe_regions = np.where(ok[:, None], regions, 1.0)
  face = np.where(ok[:, None], face, safe_regions)
  return {"box_regression": box_lib.encode_box_deltas(face, safe_regions)}


def _box_deltas_flip(arrays):
  """A horizontal mirror of the crop negates the centre's x offset; sizes are kept."""
  out = dict(arrays)
  if "box_regression" in out:
    d = np.asarray(out["box_regression"]).copy()
    d[..., 0] = -d[..., 0]
    out["box_regression"] = d
  return out


def _box_deltas_metrics(pred, labels, weight):
  """Mean IoU of the regressed box with the face box (both decoded in the region's unit
  square), and the mean squared error of the four deltas."""
  w = np.asarray(weight) > 0.5
  unit = np.broadcast_to(np.array([0.0, 0.0, 1.0, 1.0]), np.shape(pred))
  target = np.asarray(labels["box_regression"], np.float64)
  iou = box_lib.paired_iou(
    box_lib.decode_box_deltas(np.asarray(pred, np.float64), unit),
    box_lib.decode_box_deltas(target, unit),
  )
  return {"iou": (float(iou[w].sum()), float(w.sum())), **_mse_metrics(pred, labels, weight)}


register(
  Task(
    name="box_regression",
    labels={"box_regression": ((4,), np.float32)},
    fields={"box": ((4,), np.float32)},
    output_shape=(4,),
    loss="mean_squared_error",  # MTCNN's Euclidean box loss (Zhang et al. 2016, II.C eq. 2)
    metrics=_box_deltas_metrics,
    min_iou=BOX_REGRESSION_MIN_IOU,
    encode=_box_deltas_encode,
    flip=_box_deltas_flip,
  )
)

# Landmark schemes of the other datasets (docs/papers.md sections 2.1, 5.5-5.9).
register(landmark_task("landmarks5", "landmarks5", "visibility5", 5, schemes.FIVE_FLIP))
register(landmark_task("landmarks68", "landmarks68", "visibility68", 68, schemes.IBUG68_FLIP))
# CelebA's 40 binary attributes (docs/papers.md section 5.7), one sigmoid each. A flip
# keeps them: none of the 40 is left/right specific.
register(
  Task(
    name="attributes",
    labels={"attributes": ((40,), np.int32)},
    fields={"attributes": ((40,), np.int64)},
    output_shape=(40,),
    loss="sigmoid_cross_entropy",
    metrics=binary_metrics,
  )
)

# ---------------------------------------------------------------------- TCDCN tasks
# docs/papers.md section 2.1 (ECCV'14): the auxiliary tasks of the 5-point main task
# (landmarks5 above), all softmax classifications: head pose in 5 classes, gender (above),
# glasses, smile. Per-face fields of the same name (int64, -1 unknown): synth_face_crops
# (data/render.py) and MTFL (data/builders/mtfl.py, docs/papers.md 5.5) share the codes.
POSE_CLASSES = ("left_profile", "left", "frontal", "right", "right_profile")


def _pose_class_flip(arrays):
  """A mirror negates yaw (docs/synth_faces.md; MTFL codes by yaw direction), so class c
  becomes 4 - c (left profile <-> right profile, left <-> right, frontal kept). Labels
  are [N] ints; outputs [N, 5] logits, whose class axis is reversed."""
  out = dict(arrays)
  for k, v in arrays.items():
    v = np.asarray(v)
    out[k] = v[..., ::-1].copy() if v.ndim == 2 else (len(POSE_CLASSES) - 1 - v).astype(v.dtype)
  return out


# pose_class: 0..4 = POSE_CLASSES (synth: yaw edges -54, -18, 18, 54 deg,
# data/face_model.pose_class; MTFL: its codes 1..5 minus 1).
register(classification_task("pose_class", len(POSE_CLASSES), flip=_pose_class_flip))
# Binary attributes, 0 no / 1 yes; none is left/right specific, so a mirror keeps them.
register(classification_task("smiling", 2))  # ECCV'14 "smile"
register(classification_task("eyeglasses", 2))  # ECCV'14 "wearing glasses"
register(classification_task("mouth_open", 2))  # CelebA Mouth_Slightly_Open; synth_face_crops
# TPAMI'16's heterogeneous attributes also include expression (section 2.2): 7 classes
# angry, disgust, fear, happy, sad, surprise, neutral (synth_face_crops and ExpW codes),
# and synth_face_crops' age group: child, young, adult, senior.
register(classification_task("expression", 7))
register(classification_task("age_group", 4))

# TPAMI'16 (docs/papers.md section 2.2): 22 of CelebA's 40 attributes (section 5.7). Which
# 22 is open (section 7 item 7); documented rule: keep the attributes of the face itself
# and drop (a) the 9 hair attributes (Bald, Bangs, Black/Blond/Brown/Gray_Hair,
# Receding_Hairline, Straight/Wavy_Hair), (b) the 4 things worn off the inner face
# (Wearing_Earrings, _Hat, _Necklace, _Necktie), (c) the 2 image-level or subjective ones
# (Blurry, Attractive) and (d) the 3 face-outline shapes the 5 points do not see (Chubby,
# Double_Chin, Oval_Face): 40 - 18 = 22, in CelebA's order.
ATTRIBUTES22 = (
  "5_o_Clock_Shadow",
  "Arched_Eyebrows",
  "Bags_Under_Eyes",
  "Big_Lips",
  "Big_Nose",
  "Bushy_Eyebrows",
  "Eyeglasses",
  "Goatee",
  "Heavy_Makeup",
  "High_Cheekbones",
  "Male",
  "Mouth_Slightly_Open",
  "Mustache",
  "Narrow_Eyes",
  "No_Beard",
  "Pale_Skin",
  "Pointy_Nose",
  "Rosy_Cheeks",
  "Sideburns",
  "Smiling",
  "Wearing_Lipstick",
  "Young",
)
# Their indices among CelebA's 40 (celeba_lists.CELEBA_ATTRIBUTES order; a test checks).
ATTRIBUTES22_INDEX = (
  0,
  1,
  3,
  6,
  7,
  12,
  15,
  16,
  18,
  19,
  20,
  21,
  22,
  23,
  24,
  26,
  27,
  29,
  30,
  31,
  36,
  39,
)

register(
  Task(
    name="attributes22",
    labels={"attributes22": ((len(ATTRIBUTES22),), np.int32)},
    fields={"attributes": ((40,), np.int64)},  # read from the 40, gated by its valid flag
    output_shape=(len(ATTRIBUTES22),),
    loss="sigmoid_cross_entropy",
    metrics=binary_metrics,
    encode=lambda f, r: {"attributes22": np.asarray(f["attributes"])[:, list(ATTRIBUTES22_INDEX)]},
  )
)

# ------------------------------------------------- social relation traits (section 3)
# The face branch of the social-relation system (docs/papers.md sections 3.1, 3.4;
# docs/social.md) trains on tasks declared above: expression, age_group, gender, pose and
# the CelebA attributes smiling / eyeglasses / mouth_open (or the 40 `attributes`).
# docs/papers.md sections 3.1-3.2: 8 binary traits of an ordered face pair, one sigmoid and
# one binary cross-entropy each (summed). Labelled by the pair pipeline (data/pairs.py),
# never from a face region, so the region rule always masks it; a horizontal mirror keeps
# the pair order and so the traits (docs/social.md "Flips").
RELATION_TRAITS = (
  "dominant",
  "competitive",
  "trusting",
  "warm",
  "friendly",
  "attached",
  "demonstrative",
  "assured",
)


def _no_region_label(task, ctx):
  """Relations belong to face pairs (data/pairs.py): a face region carries none."""
  n = len(ctx.iou)
  return {"relations": np.zeros((n, len(RELATION_TRAITS)), np.int32)}, np.zeros(n, bool)


register(
  Task(
    name="relations",
    labels={"relations": ((len(RELATION_TRAITS),), np.int32)},
    output_shape=(len(RELATION_TRAITS),),
    loss="sigmoid_cross_entropy",
    metrics=binary_metrics,
    label_fn=_no_region_label,
  )
)
