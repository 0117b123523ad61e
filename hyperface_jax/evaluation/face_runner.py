"""Face-level evaluation pairs: one row per annotated face, cropped by its own box.

The runner of the evaluators whose `inputs` is "faces" (evaluation/contract.py):

  store = SceneStore.from_tfds("mafl", "test", data_dir, fields=face_fields(["landmarks5"]))
  for batch, outputs in face_pairs(apply, store, input_size=227, normalize="minus_half",
                                   batch_size=64, task_names=config.tasks):
    evaluator.update(batch, outputs)

Every face of every scene becomes a row (face-crop datasets load as one-face scenes,
data/scene_store.py). Its crop is the face's own box, cut and resized with the training
crop code (data/preprocess.py `crop_and_resize` + `normalize`, the region convention of
data/pipeline.py: region [x, y, w, h] spans [x, x + w] x [y, y + h]). Faces without a valid
box of positive size are skipped, unless `default_box` supplies one (LFWA has no boxes).

Batch (numpy, `batch_size` rows, the last batch zero-padded with `example_mask` 0 so that a
jitted model compiles once): every kept per-face field as stored (pixels, radians, labels),
`valid/<field>` flags, `crop_box` (the crop region in pixels; not called `region`, which
in region batches marks region-normalized labels), `image/filename`, `scene_index`,
`face_index`, `example_mask`.

Outputs: the model's outputs, with every landmark-type output (a task whose `encode` is
tasks.points_encode: landmarks, landmarks5, landmarks68) mapped back to image pixels by
boxes.denormalize_landmarks (the exact inverse of the region normalisation of
docs/papers.md section 1.5). A scheme the model has no head for is derived where a
conversion exists (DERIVATIONS, data/schemes.py), e.g. a HyperFace model (AFLW-21
`landmarks`) scored on MAFL/MTFL gets `landmarks5` = AFLW-21 points 7, 10, 14, 17, 19;
`derived/<key>` ([B] strings) then holds the text the evaluators put in their protocol
(`derivation_notes`). `valid_rows` and `require_output` are the row mask and output check
the face-level evaluators share.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from hyperface_jax import tasks as tasks_lib
from hyperface_jax.data import boxes, preprocess, schemes

# target output -> ((source output, conversion of pixel points, protocol text), ...), tried
# in order when the model lacks the target head.
DERIVATIONS = {
  "landmarks5": (
    (
      "landmarks",
      schemes.aflw21_to_five,
      "landmarks5 derived from the model's AFLW-21 `landmarks` output (no 5-point head): "
      "points LeftEyeCenter, RightEyeCenter, NoseCenter, MouthLeftCorner, MouthRightCorner "
      "(AFLW-21 indices 7, 10, 14, 17, 19; data/schemes.py aflw21_to_five).",
    ),
    (
      "landmarks68",
      schemes.ibug68_to_five,
      "landmarks5 derived from the model's iBUG-68 `landmarks68` output: eye centres = "
      "means of the eye contours 36-41 / 42-47, nose 30, mouth corners 48 and 54 "
      "(data/schemes.py ibug68_to_five).",
    ),
  ),
}


def landmark_task_names(task_names: Optional[Sequence[str]] = None) -> Tuple[str, ...]:
  """Tasks among `task_names` (default: all registered) whose labels are region-normalized
  points (their `encode` is made by tasks.points_encode); their outputs are denormalized."""
  from hyperface_jax import registry

  names = registry.TASKS.names() if task_names is None else task_names
  out = []
  for name in names:
    if name not in registry.TASKS:
      continue
    encode = tasks_lib.get(name).encode
    if encode is not None and getattr(encode, "__qualname__", "").startswith("points_encode."):
      out.append(name)
  return tuple(out)


def face_fields(task_names: Sequence[str], extra=None) -> Dict[str, Tuple]:
  """{field: (per-face shape, dtype)} a benchmark keeps: box, the per-face fields of
  `task_names` (tasks.face_fields) and `extra` ({field: spec})."""
  out = tasks_lib.face_fields(tasks_lib.resolve(tuple(task_names)))
  out.update(dict(extra or {}))
  return out


def relative_box(fractions: Sequence[float]) -> Callable[[Tuple[int, int]], np.ndarray]:
  """A `default_box` rule: the box (fx * W, fy * H, fw * W, fh * H) of an H x W image."""
  fx, fy, fw, fh = (float(v) for v in fractions)
  return lambda hw: np.array([fx * hw[1], fy * hw[0], fw * hw[1], fh * hw[0]], np.float64)


def face_rows(store, default_box=None) -> Dict[str, np.ndarray]:
  """Flattens a SceneStore to one row per evaluated face (no pixels yet).

  Args:
    store: data/scene_store.SceneStore.
    default_box: region of faces without a valid box: `fn((H, W)) -> [4]` pixels, or 4
      fractions of the image (x, y, w, h; `relative_box`); None skips such faces.

  Returns:
    {field: [N, ...], "valid/<field>": [N] bool, "crop_box": [N, 4] float64,
     "scene_index", "face_index": [N] int32, "image/filename": [N] str}.
  """
  if default_box is not None and not callable(default_box):
    default_box = relative_box(default_box)
  fields = store.fields
  cols = {k: [] for k in ("crop_box", "scene_index", "face_index", "image/filename")}
  keep = []
  for i in range(len(store)):
    for j in range(int(store.num_faces[i])):
      box = np.asarray(store.faces["box"][i, j], np.float64)
      if store.faces["valid"]["box"][i, j] and np.all(box[2:] > 0):
        region = box
      elif default_box is not None:
        region = np.asarray(default_box(store.images[i].shape[:2]), np.float64)
      else:
        continue
      keep.append((i, j))
      cols["crop_box"].append(region)
      cols["scene_index"].append(i)
      cols["face_index"].append(j)
      cols["image/filename"].append(store.filenames[i])
  idx = tuple(np.array(v, np.int64) for v in zip(*keep, strict=True)) if keep else None
  out = {
    "crop_box": np.array(cols["crop_box"], np.float64).reshape(-1, 4),
    "scene_index": np.array(cols["scene_index"], np.int32),
    "face_index": np.array(cols["face_index"], np.int32),
    "image/filename": np.array(cols["image/filename"], dtype=str),
  }
  for k in fields:
    arr, ok = store.faces[k], store.faces["valid"][k]
    out[k] = arr[idx] if idx else np.zeros((0,) + arr.shape[2:], arr.dtype)
    out[f"valid/{k}"] = ok[idx] if idx else np.zeros(0, bool)
  return out


def _pad(value: np.ndarray, size: int) -> np.ndarray:
  out = np.zeros((size,) + value.shape[1:], value.dtype)
  out[: len(value)] = value
  return out


def pixel_outputs(outputs, region) -> Dict[str, np.ndarray]:
  """Model outputs as numpy, landmark-type ones in pixels, derived schemes added.

  Args:
    outputs: {name: [B, ...]} model outputs (jax or numpy); every output named like a
      landmark-type task (`landmark_task_names`, whether or not the run trained it, e.g.
      a head from `extra_tasks`) is region-normalized and mapped to pixels.
    region: [B, 4] crop regions (x, y, w, h pixels) of the rows.

  Returns:
    {name: numpy [B, ...]} plus derived outputs and their `derived/<key>` texts.
  """
  out = {k: np.asarray(v) for k, v in outputs.items()}
  for name in landmark_task_names():
    if name in out:
      out[name] = boxes.denormalize_landmarks(out[name], region)
  for target, rules in DERIVATIONS.items():
    if target in out:
      continue
    for source, convert, text in rules:
      if source in out:
        out[target] = np.asarray(convert(out[source]), np.float64)
        out[f"derived/{target}"] = np.full(len(region), text)
        break
  return out


def face_pairs(
  model_apply,
  store,
  *,
  input_size: int,
  normalize: str,
  batch_size: int,
  task_names: Optional[Sequence[str]] = None,
  default_box=None,
  fill=0,
) -> Iterator[Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]]:
  """Yields (batch, outputs) over every face of `store` (module docstring).

  Args:
    model_apply: `fn(images float32 [batch_size, S, S, 3]) -> {output: [batch_size, ...]}`
      (region-normalized landmarks, radians, logits: the model's own outputs).
    store: SceneStore of the evaluated split, with the per-face fields to score.
    input_size: crop side S (the run's `config.input_size`).
    normalize: preprocess.normalize mode (the run's `config.data.normalize`).
    batch_size: rows per call; the last batch is zero-padded (`example_mask` 0).
    task_names: the run's tasks (`config.tasks`): each must be an output of the model
      (checked on the first batch, a ValueError names the missing ones); None = no check.
    default_box: region of faces without a valid box (`face_rows`; a Benchmark's
      runner_kwargs give it as 4 image fractions).
    fill: crop border value (data/pipeline.py default 0).

  Yields:
    (batch, outputs) numpy dicts of `batch_size` rows.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
  rows = face_rows(store, default_box)
  n = len(rows["crop_box"])
  for lo in range(0, n, batch_size):
    hi = min(lo + batch_size, n)
    batch = {k: _pad(v[lo:hi], batch_size) for k, v in rows.items()}
    crops = np.zeros((batch_size, input_size, input_size, 3), np.uint8)
    for r in range(hi - lo):
      image = store.images[int(batch["scene_index"][r])]
      box = batch["crop_box"][r : r + 1]
      crops[r] = preprocess.crop_and_resize(image, box, input_size, fill)[0]
    batch["example_mask"] = (np.arange(batch_size) < hi - lo).astype(np.float32)
    region = batch["crop_box"].copy()
    region[hi - lo :] = [0.0, 0.0, 1.0, 1.0]  # padding rows: any valid region
    raw = model_apply(preprocess.normalize(crops, normalize))
    missing = [t for t in (task_names or ()) if t not in raw]
    if missing:
      raise ValueError(
        f"face_pairs: the model has no output for the run's tasks {missing}; its outputs: "
        f"{sorted(raw)}."
      )
    yield batch, pixel_outputs(raw, region)


def derivation_notes(outputs: Dict[str, np.ndarray], key: str) -> Dict[str, str]:
  """{"<key>/derived": text} when `outputs[key]` was derived (`pixel_outputs`), else {}."""
  text = outputs.get(f"derived/{key}")
  if text is None or len(np.asarray(text).reshape(-1)) == 0:
    return {}
  return {f"{key}/derived": str(np.asarray(text).reshape(-1)[0])}


def valid_rows(batch, *fields) -> np.ndarray:
  """Rows an evaluator scores: [B] bool, `example_mask` (if present) and every
  `valid/<field>` of `fields` present in the face batch are set."""
  n = len(np.asarray(batch[fields[0]])) if fields[0] in batch else len(batch["example_mask"])
  ok = np.ones(n, bool)
  for key in ("example_mask",) + tuple(f"valid/{f}" for f in fields):
    if key in batch:
      ok &= np.asarray(batch[key]).reshape(-1) > 0.5
  return ok


def require_output(outputs, key, evaluator):
  """outputs[key] as float64, or a ValueError naming `evaluator` and the model's outputs."""
  if key not in outputs:
    raise ValueError(
      f"{evaluator}: the model has no {key!r} output (nor one it can be derived from, "
      f"evaluation/face_runner.py DERIVATIONS); outputs: {sorted(outputs)}."
    )
  return np.asarray(outputs[key], np.float64)
