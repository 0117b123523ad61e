"""In-memory scene store and pure-function region batches.

Design (lead's decision, docs/design.md section 2 and docs/design.md "same data order after
resume"): the scenes of a split are loaded once into numpy; every training batch
is a PURE function of (seed, step, process_index, process_count), so a resumed
run sees exactly the data of an uninterrupted one and no iterator state needs
checkpointing.

Randomness is drawn per *slot* (a group of `regions_per_scene` consecutive rows
of the global batch) from np.random.default_rng([seed, TRAIN, step, slot]); a
host generates only the slots overlapping its rows. Hence the global batch is
the same whatever the number of hosts (a slot split between two hosts is
generated identically on both), which also makes a restart on a different host
count reproduce the data. Scenes are drawn uniformly with replacement.

Evaluation uses a fixed labelled region set (rng per scene from (seed, EVAL,
scene)), no flips, padded to whole batches with example_mask (never dropped;
docs/design.md "drop_remainder").
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Optional

import numpy as np

from hyperface_jax.data import preprocess, sampling
from hyperface_jax.data.scene_store import SceneStore

_TRAIN, _EVAL = 0, 1  # stream tags so train and eval draws never coincide


def _labelled_crops(
  store,
  index,
  rng,
  num,
  *,
  image_size,
  thresholds,
  positive_fraction,
  sampling_config,
  fill,
  flip_prob=None,
  task_names=sampling.DEFAULT_TASK_NAMES,
):
  """Samples, labels, (flips) and crops `num` regions of scene `index`."""
  image = store.images[index]
  faces = store.scene_faces(index)
  regions = sampling.sample_regions(
    rng,
    image.shape[:2],
    faces["box"],
    faces["valid"]["box"],
    num,
    positive_fraction,
    sampling_config,
  )
  labels = sampling.label_regions(regions, faces, thresholds, task_names)
  labels["scene_index"] = np.full(num, index, np.int32)
  flip = None
  if flip_prob is not None:
    # Random horizontal flip (docs/papers.md section 1.4, TK): the crop is sampled
    # mirrored (same pixels as preprocess.flip_batch, no extra copy).
    flip = rng.random(num) < flip_prob
    flipped = preprocess.flip_labels({k: v[flip] for k, v in labels.items()})
    for k, v in flipped.items():
      labels[k][flip] = v
    labels["flipped"] = flip.astype(np.int32)
  if image_size is None:  # labels only (e.g. baseline statistics): no pixels
    return None, labels
  crops = preprocess.crop_and_resize(image, regions, image_size, fill, flip=flip)
  return crops, labels


def _finish(crops, labels, normalize, return_uint8):
  out = dict(labels)
  if crops is None:
    # any label's length (a run without the detection task has no "detection" key)
    out["example_mask"] = np.ones(len(labels["scene_index"]), np.float32)
    return out
  if normalize is not None:
    out["image"] = preprocess.normalize(crops, normalize)
  if return_uint8 or normalize is None:
    out["image_uint8"] = crops
  out["example_mask"] = np.ones(len(crops), np.float32)
  return out


def _concat(parts):
  return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}


@dataclasses.dataclass
class Source:
  """A training dataset of a (possibly mixed) run: its scenes, its share of the slots
  (`weight`, relative) and optional per-dataset sampling settings (None: the run's)."""

  store: SceneStore
  weight: float = 1.0
  positive_fraction: Optional[float] = None
  sampling_config: Optional[dict] = None
  name: str = ""


def _as_sources(store) -> List[Source]:
  if isinstance(store, SceneStore):
    return [Source(store)]
  srcs = list(store)
  if not srcs or not all(isinstance(s, Source) for s in srcs):
    raise TypeError("train_batch needs a SceneStore or a non-empty list of pipeline.Source.")
  return srcs


def train_batch(
  store,
  *,
  seed,
  step,
  batch_size,
  image_size,
  regions_per_scene,
  flip_prob=0.5,
  normalize="minus_half",
  thresholds=None,
  process_index=0,
  process_count=1,
  positive_fraction=0.5,
  sampling_config=None,
  fill=0,
  return_uint8=False,
  task_names=sampling.DEFAULT_TASK_NAMES,
):
  """This host's part of the global training batch of `step`.

  Args:
    store: SceneStore of the training split, or a list of `Source` (several datasets
      mixed: each slot of `regions_per_scene` rows draws its source by weight, then a
      scene of it).
    seed: int >= 0, the run's data seed.
    step: int >= 0, the training step.
    batch_size: GLOBAL batch size (divisible by process_count).
    image_size: crop side S.
    regions_per_scene: regions drawn from each sampled scene.
    flip_prob: probability of a horizontal flip per region (docs/papers.md section 1.4).
    normalize: preprocess.normalize mode for "image".
    thresholds: IoU thresholds overriding sampling.DEFAULT_THRESHOLDS.
    process_index, process_count: this host and the number of hosts.
    positive_fraction: target share of face regions per scene (sampling.py).
    sampling_config: overrides of sampling.DEFAULT_SAMPLING.
    fill: crop border value.
    return_uint8: also return the uint8 crops as "image_uint8" (visualisation).
    task_names: the tasks labelled (hyperface_jax/tasks.py; default HyperFace's five).

  Returns:
    dict of numpy arrays with batch_size // process_count rows: the region-batch
    contract keys plus scene_index int32 and flipped int32 (metadata).
  """
  if batch_size % process_count:
    raise ValueError(f"batch_size {batch_size} must be divisible by process_count {process_count}.")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} must be in [0, {process_count}).")
  if regions_per_scene < 1 or seed < 0 or step < 0:
    raise ValueError(
      f"Need regions_per_scene >= 1, seed >= 0, step >= 0; got {regions_per_scene}, {seed}, {step}."
    )
  local = batch_size // process_count
  start, stop = process_index * local, (process_index + 1) * local
  first, last = start // regions_per_scene, math.ceil(stop / regions_per_scene)
  crops, parts = [], []
  srcs = _as_sources(store)
  weights = np.array([s.weight for s in srcs], np.float64)
  weights = weights / weights.sum()
  for slot in range(first, last):
    rng = np.random.default_rng([seed, _TRAIN, step, slot])
    # One source: no extra draw, so single-dataset batches keep their streams.
    src = srcs[0] if len(srcs) == 1 else srcs[int(rng.choice(len(srcs), p=weights))]
    index = int(rng.integers(0, len(src.store)))
    c, lab = _labelled_crops(
      src.store,
      index,
      rng,
      regions_per_scene,
      image_size=image_size,
      thresholds=thresholds,
      positive_fraction=(
        positive_fraction if src.positive_fraction is None else src.positive_fraction
      ),
      sampling_config=sampling_config if src.sampling_config is None else src.sampling_config,
      fill=fill,
      flip_prob=flip_prob,
      task_names=task_names,
    )
    crops.append(c)
    parts.append(lab)
  offset = start - first * regions_per_scene
  rows = slice(offset, offset + local)
  labels = {k: v[rows] for k, v in _concat(parts).items()}
  return _finish(np.concatenate(crops)[rows], labels, normalize, return_uint8)


def eval_regions(
  store,
  *,
  seed,
  regions_per_scene,
  image_size,
  thresholds=None,
  normalize="minus_half",
  positive_fraction=0.5,
  sampling_config=None,
  fill=0,
  return_uint8=False,
  task_names=sampling.DEFAULT_TASK_NAMES,
):
  """A fixed labelled region set over all scenes of `store` (no flips).

  Args:
    store: SceneStore of the evaluation split.
    seed: int >= 0; the set depends only on (seed, scene, settings).
    regions_per_scene, image_size, thresholds, positive_fraction, sampling_config,
      fill: as in `train_batch`; image_size None returns the labels only (no crops).
    normalize: mode for "image", or None to keep only "image_uint8" (saves 4x
      memory; `iterate_batches(..., normalize=mode)` then normalizes per batch).
    return_uint8: also keep "image_uint8".
    task_names: the tasks labelled (as in `train_batch`).

  Returns:
    dict of numpy arrays with len(store) * regions_per_scene rows, keys as in
    `train_batch` minus "flipped".
  """
  crops, parts = [], []
  for index in range(len(store)):
    rng = np.random.default_rng([seed, _EVAL, index])
    c, lab = _labelled_crops(
      store,
      index,
      rng,
      regions_per_scene,
      image_size=image_size,
      thresholds=thresholds,
      positive_fraction=positive_fraction,
      sampling_config=sampling_config,
      fill=fill,
      task_names=task_names,
    )
    crops.append(c)
    parts.append(lab)
  crops = None if image_size is None else np.concatenate(crops)
  return _finish(crops, _concat(parts), normalize, return_uint8)


def iterate_batches(regions, batch_size, *, normalize=None, process_index=0, process_count=1):
  """Fixed-size batches over a region set, the last one padded (never dropped).

  Padding rows are all zeros, so example_mask and every task mask are 0 there.

  Args:
    regions: dict of [N, ...] arrays (e.g. from `eval_regions`).
    batch_size: GLOBAL batch size (divisible by process_count).
    normalize: if given and "image" is absent, "image" is built per batch from
      "image_uint8" with this mode.
    process_index, process_count: each host yields its rows of each global batch.

  Yields:
    dicts of numpy arrays with batch_size // process_count rows.
  """
  if batch_size < 1 or batch_size % process_count:
    raise ValueError(
      f"batch_size {batch_size} must be >= 1 and divisible by process_count {process_count}."
    )
  sizes = {k: len(v) for k, v in regions.items()}
  if len(set(sizes.values())) > 1:
    raise ValueError(f"All region arrays need the same length; got {sizes}.")
  n = next(iter(sizes.values()), 0)
  local = batch_size // process_count
  for b in range(math.ceil(n / batch_size)):
    lo = b * batch_size + process_index * local
    hi = min(lo + local, n)
    batch = {}
    for k, v in regions.items():
      part = np.zeros((local,) + v.shape[1:], v.dtype)
      part[: max(hi - lo, 0)] = v[lo:hi]
      batch[k] = part
    if "example_mask" not in regions:
      batch["example_mask"] = (np.arange(local) < hi - lo).astype(np.float32)
    if "image" not in batch and normalize is not None:
      batch["image"] = preprocess.normalize(batch["image_uint8"], normalize)
    yield batch
