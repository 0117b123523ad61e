"""Face-pair input of the Siamese relation network (docs/papers.md 3.2; docs/social.md).

`config.data.kind = "pairs"` makes data/inputs.py call `load(config)`: every source's
splits become `PairSet`s (images, face boxes, the labelled pairs of the face-scene schema's
`relations`: synth_faces, social_relation), and a training batch is a pure function of
(seed, step, host), as the region pipeline's (docs/design.md traps): row r of step s draws
its pair, flip and jitter from np.random.default_rng([seed, 2, s, r]).

A row holds the two faces cropped by their boxes (jittered in training by up to
`config.data.pair_jitter` of the side in scale and position) and the pair's spatial cues
(`spatial_cues`, docs/papers.md 3.2 [M]: both positions, their offset, the scale ratio,
normalised by the image size). The device batch is
  {"image": {"faces": float32 [B, 2, S, S, 3], "cues": float32 [B, 9]},
   "relations": int32 [B, 8], "relations_mask": [B], "example_mask": [B]}.

Flips (`config.data.flip_prob`): the whole image is mirrored, so both crops are mirrored,
every x position becomes 1 - x and the offset dx changes sign (`flip_cues`); the pair keeps
its order (face a stays first), so the traits are unchanged: they are properties of the
ordered pair, which a mirror does not alter (synth_faces' rule is exactly mirror-invariant:
"looks towards" multiplies the yaw sign by the offset sign, both of which flip). Swapping
the order would be wrong for the directed trait "dominant" (a over b).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List

import numpy as np

from hyperface_jax.data import preprocess
from hyperface_jax.data import sources as source_lib

NUM_CUES = 9
CUE_NAMES = ("xa", "ya", "sa", "xb", "yb", "sb", "dx", "dy", "log_scale_ratio")
_TRAIN = 2  # stream tag (the region pipeline uses 0 and 1)


@dataclasses.dataclass
class PairSet:
  """The labelled face pairs of one split.

  Attributes:
    images: list of uint8 [H, W, 3].
    boxes: list of float32 [F_i, 4] face boxes per image.
    pairs: int64 [P, 3] (image index, face a, face b).
    traits: int32 [P, 8] 0/1 in docs/papers.md 3.1 order.
    name: dataset/split, for messages.
  """

  images: List[np.ndarray]
  boxes: List[np.ndarray]
  pairs: np.ndarray
  traits: np.ndarray
  name: str = ""

  def __len__(self):
    return len(self.pairs)

  @classmethod
  def from_examples(cls, examples, name: str = "examples") -> "PairSet":
    """From face-scene examples with `faces/box` (+ `faces/valid/box`) and `relations`."""
    images, boxes, pairs, traits = [], [], [], []
    for ex in examples:
      faces, rel = ex["faces"], ex.get("relations") or {}
      box = np.asarray(faces["box"], np.float32).reshape(-1, 4)
      valid = np.asarray(faces.get("valid", {}).get("box", np.ones(len(box), bool)), bool)
      valid &= np.all(box[:, 2:] > 0, axis=1)
      idx = np.asarray(rel.get("faces", np.zeros((0, 2))), np.int64).reshape(-1, 2)
      tr = np.asarray(rel.get("traits", np.zeros((0, 8))), np.int32).reshape(-1, 8)
      ok = np.array([valid[a] and valid[b] for a, b in idx], bool).reshape(-1)
      if ok.any():
        pairs.append(np.concatenate([np.full((ok.sum(), 1), len(images)), idx[ok]], 1))
        traits.append(tr[ok])
        images.append(np.asarray(ex["image"]))
        boxes.append(box)
    if not pairs:
      raise ValueError(f"{name} holds no labelled face pair (`relations` with two boxes).")
    return cls(images, boxes, np.concatenate(pairs), np.concatenate(traits), name)


def spatial_cues(box_a, box_b, width, height) -> np.ndarray:
  """Spatial cues [..., 9] of ordered pairs (CUE_NAMES order).

  x = (centre x + 0.5) / W and y = (centre y + 0.5) / H (the image's extent
  [-0.5, W - 0.5] mapped onto [0, 1], so a mirror maps x to 1 - x exactly),
  s = sqrt(w h / (W H)), dx = xb - xa, dy = yb - ya, log_scale_ratio = log(sa / sb).
  """
  a, b = np.asarray(box_a, np.float64), np.asarray(box_b, np.float64)
  width, height = np.asarray(width, np.float64), np.asarray(height, np.float64)

  def pos(box):
    x = (box[..., 0] + box[..., 2] / 2 + 0.5) / width
    y = (box[..., 1] + box[..., 3] / 2 + 0.5) / height
    return x, y, np.sqrt(box[..., 2] * box[..., 3] / (width * height))

  (xa, ya, sa), (xb, yb, sb) = pos(a), pos(b)
  cues = [xa, ya, sa, xb, yb, sb, xb - xa, yb - ya, np.log(sa / sb)]
  return np.stack(cues, axis=-1).astype(np.float32)


def flip_cues(cues) -> np.ndarray:
  """The cues of the mirrored image, pair order kept (module docstring)."""
  out = np.array(cues, np.float32, copy=True)
  out[..., [0, 3]] = 1.0 - out[..., [0, 3]]
  out[..., 6] = -out[..., 6]
  return out


def _rows(pairset, picks, rng_of, image_size, jitter, flip_prob):
  """Crops (uint8 [N, 2, S, S, 3]), cues, traits of the pairs `picks`; rng_of(i) gives
  the generator of row i (jitter and flip), or None for neither."""
  crops = np.zeros((len(picks), 2, image_size, image_size, 3), np.uint8)
  cues = np.zeros((len(picks), NUM_CUES), np.float32)
  flipped = np.zeros(len(picks), np.int32)
  for i, p in enumerate(picks):
    scene, a, b = pairset.pairs[p]
    image = pairset.images[scene]
    h, w = image.shape[:2]
    box = pairset.boxes[scene][[a, b]].astype(np.float64)
    region = box.copy()
    rng = rng_of(i)
    flip = False
    if rng is not None:
      side = box[:, 2:].mean(1, keepdims=True)
      scale = 1 + rng.uniform(-jitter, jitter, (2, 1))
      shift = rng.uniform(-jitter, jitter, (2, 2)) * side
      centre = box[:, :2] + box[:, 2:] / 2 + shift
      region[:, 2:] = box[:, 2:] * scale
      region[:, :2] = centre - region[:, 2:] / 2
      flip = bool(rng.random() < flip_prob)
    crops[i] = preprocess.crop_and_resize(image, region, image_size, flip=[flip, flip])
    cues[i] = spatial_cues(box[0], box[1], w, h)
    if flip:
      cues[i] = flip_cues(cues[i])
      flipped[i] = 1
  return crops, cues, pairset.traits[picks], flipped


def train_batch(
  sets,
  *,
  seed: int,
  step: int,
  batch_size: int,
  image_size: int,
  flip_prob: float = 0.5,
  jitter: float = 0.05,
  normalize: str = "minus_half",
  weights=None,
  process_index: int = 0,
  process_count: int = 1,
) -> Dict[str, np.ndarray]:
  """This host's rows of the global pair batch of `step` (module docstring).

  Args:
    sets: list of PairSet (several datasets: each row draws one by `weights`).
    seed, step: the run's data seed and the step (>= 0).
    batch_size: GLOBAL batch size (divisible by process_count).
    image_size: crop side S.
    flip_prob: probability of mirroring a row's image.
    jitter: largest relative scale / shift jitter of each crop.
    normalize: preprocess.normalize mode of the faces.
    weights: relative source weights (default equal).
    process_index, process_count: this host and the number of hosts.

  Returns:
    dict: "image" {"faces", "cues"}, relations, relations_mask, example_mask, and the
    metadata cues, pair_index, source_index, flipped.
  """
  if batch_size % process_count or seed < 0 or step < 0:
    raise ValueError(
      f"Need batch_size ({batch_size}) divisible by process_count ({process_count}), "
      f"seed >= 0, step >= 0; got seed {seed}, step {step}."
    )
  local = batch_size // process_count
  rows = range(process_index * local, (process_index + 1) * local)
  w = np.ones(len(sets)) if weights is None else np.asarray(weights, np.float64)
  rngs = [np.random.default_rng([seed, _TRAIN, step, r]) for r in rows]
  srcs = [0 if len(sets) == 1 else int(g.choice(len(sets), p=w / w.sum())) for g in rngs]
  picks = [int(g.integers(0, len(sets[s]))) for g, s in zip(rngs, srcs, strict=True)]
  parts = [
    _rows(sets[s], [p], lambda _, g=g: g, image_size, jitter, flip_prob)
    for g, s, p in zip(rngs, srcs, picks, strict=True)
  ]
  crops, cues, traits, flipped = (np.concatenate(x) for x in zip(*parts, strict=True))
  ones = np.ones(local, np.float32)
  return {
    "image": {"faces": preprocess.normalize(crops, normalize), "cues": cues},
    "relations": traits.astype(np.int32),
    "relations_mask": ones,
    "example_mask": ones.copy(),
    "cues": cues,
    "pair_index": np.asarray(picks, np.int32),
    "source_index": np.asarray(srcs, np.int32),
    "flipped": flipped,
  }


def eval_arrays(sets, image_size: int) -> Dict[str, np.ndarray]:
  """Every pair of `sets` once, unflipped and unjittered: faces_uint8 [P, 2, S, S, 3],
  cues, relations, relations_mask, pair_index, source_index."""
  parts = []
  for s, pairset in enumerate(sets):
    crops, cues, traits, _ = _rows(
      pairset, range(len(pairset)), lambda _: None, image_size, 0.0, 0.0
    )
    parts.append(
      {
        "faces_uint8": crops,
        "cues": cues,
        "relations": traits.astype(np.int32),
        "relations_mask": np.ones(len(pairset), np.float32),
        "pair_index": np.arange(len(pairset), dtype=np.int32),
        "source_index": np.full(len(pairset), s, np.int32),
      }
    )
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def device_batch(batch, normalize: str) -> Dict[str, object]:
  """The model keys of a padded eval batch of `eval_arrays` rows (pipeline.iterate_batches)."""
  return {
    "image": {
      "faces": preprocess.normalize(batch["faces_uint8"], normalize),
      "cues": batch["cues"],
    },
    "relations": batch["relations"],
    "relations_mask": batch["relations_mask"],
    "example_mask": batch["example_mask"],
  }


def load_split(src: dict, split: str, max_scenes=None) -> PairSet:
  """A PairSet of one split of a source dict (data/sources.py `sources`)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  from hyperface_jax.data import builders  # noqa: F401  (registers the TFDS builders)

  builder = tfds.builder(src["name"], data_dir=src["data_dir"], **source_lib.builder_kwargs(src))
  ds = builder.as_dataset(split=split, shuffle_files=False)
  if max_scenes is not None:
    ds = ds.take(int(max_scenes))
  return PairSet.from_examples(tfds.as_numpy(ds), name=f"{src['name']}/{split}")


def load(config):
  """sources.Data of face pairs for `config` (config.data.kind == "pairs")."""

  dc = config.data
  srcs = source_lib.sources(dc)
  train, validation, test = [], [], []
  for src in srcs:
    source_lib.ensure_prepared(src)
    train.append(load_split(src, src["train_split"], src.get("max_train_scenes")))
    validation.append(load_split(src, src["eval_split"], src.get("max_eval_scenes")))
    test.append(load_split(src, src["test_split"], src.get("max_eval_scenes")))
  weights = [float(s["weight"]) for s in srcs]

  def batch(step: int, local_rows: int):
    import jax  # pylint: disable=g-import-not-at-top

    out = train_batch(
      train,
      seed=config.seed,
      step=step,
      batch_size=config.batch_size,
      image_size=config.input_size,
      flip_prob=dc.flip_prob,
      jitter=float(dc.get("pair_jitter", 0.05)),
      normalize=dc.normalize,
      weights=weights,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
    )
    assert len(out["relations"]) == local_rows, (len(out["relations"]), local_rows)
    return {k: out[k] for k in ("image", "relations", "relations_mask", "example_mask")}

  return source_lib.Data(
    train_batch=batch,
    train=train,
    validation=validation,
    test=test,
    names=[s["name"] for s in srcs],
  )
