"""A split of face scenes held in memory as numpy (scene schema, docs/design.md section 5).

Images keep their own sizes (a list of uint8 arrays); the per-face labels are
padded to the split's maximum face count with validity flags, so that sampling
code indexes plain arrays. Only the core schema fields are kept; dataset extras
(landmarks68, relations, ...) are ignored here.
"""

from __future__ import annotations

import numpy as np

from hyperface_jax.data import sampling

# Core per-face fields: (trailing shape, dtype) (docs/design.md section 5).
FACE_FIELDS = {
  "box": ((4,), np.float32),
  "landmarks": ((21, 2), np.float32),
  "visibility": ((21,), np.float32),
  "pose": ((3,), np.float32),
  "gender": ((), np.int64),
}
VALID_FIELDS = ("box", "landmarks", "visibility", "pose", "gender")


def _text(value):
  if isinstance(value, bytes):
    return value.decode("utf-8", "replace")
  return "" if value is None else str(value)


class SceneStore:
  """Scenes of one split in memory.

  Attributes:
    images: list of uint8 [H_i, W_i, 3] RGB arrays.
    filenames: list of str.
    num_faces: int32 [N] faces per scene.
    faces: dict of padded arrays [N, F_max, ...] (box, landmarks, visibility,
      pose, gender) and faces["valid"] dict of bool [N, F_max] (False on padding).
  """

  def __init__(self, images, filenames, num_faces, faces):
    self.images = images
    self.filenames = filenames
    self.num_faces = num_faces
    self.faces = faces

  def __len__(self):
    return len(self.images)

  def scene_faces(self, index):
    """The unpadded faces dict of scene `index` (arrays with F = num_faces[index])."""
    f = int(self.num_faces[index])
    out = {k: self.faces[k][index, :f] for k in FACE_FIELDS}
    out["valid"] = {k: self.faces["valid"][k][index, :f] for k in VALID_FIELDS}
    return out

  @classmethod
  def from_examples(cls, examples, source="examples"):
    """Builds a store from scene dicts (tfds.as_numpy output or hand-made).

    Args:
      examples: iterable of dicts with "image" uint8 [H, W, 3], optional
        "image/filename", and "faces" as in the scene schema (F may be 0).
      source: name used in error messages.

    Returns:
      SceneStore.
    """
    images, filenames, per_scene = [], [], []
    for i, ex in enumerate(examples):
      where = f"{source}[{i}]"
      if not isinstance(ex, dict) or "image" not in ex:
        raise ValueError(f"{where} is missing field 'image' (expected uint8 [H, W, 3]).")
      image = np.asarray(ex["image"])
      if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(
          f"{where}/image must be uint8 [H, W, 3] with H, W > 0; got {image.dtype} {image.shape}."
        )
      if "faces" not in ex:
        raise ValueError(
          f"{where} is missing field 'faces' (dict of box [F, 4], landmarks "
          "[F, 21, 2], visibility [F, 21], pose [F, 3], gender [F], valid)."
        )
      sampling.check_faces(ex["faces"], where=f"{where}/faces")
      images.append(image)
      filenames.append(_text(ex.get("image/filename")))
      per_scene.append(ex["faces"])
    if not images:
      raise ValueError(f"{source} is empty: a SceneStore needs at least one scene.")
    num = np.array([len(f["box"]) for f in per_scene], np.int32)
    fmax = int(num.max())
    faces = {
      k: np.zeros((len(images), fmax) + shape, dtype) for k, (shape, dtype) in FACE_FIELDS.items()
    }
    faces["valid"] = {k: np.zeros((len(images), fmax), bool) for k in VALID_FIELDS}
    for i, f in enumerate(per_scene):
      n = num[i]
      for k in FACE_FIELDS:
        faces[k][i, :n] = f[k]
      for k in VALID_FIELDS:
        faces["valid"][k][i, :n] = np.asarray(f["valid"][k], bool)
    return cls(images, filenames, num, faces)

  @classmethod
  def from_tfds(cls, name, split, data_dir=None, max_examples=None, **builder_kwargs):
    """Loads a TFDS split in the scene schema into memory.

    Importing hyperface_jax.data registers the project's builders.

    Args:
      name: TFDS dataset name (e.g. "synth_faces").
      split: split name or slice ("train", "test[:100]").
      data_dir: TFDS data directory.
      max_examples: optional cap on the number of scenes.
      **builder_kwargs: passed to tfds.builder (e.g. config, version).

    Returns:
      SceneStore.
    """
    import tensorflow_datasets as tfds  # heavy import, only when loading from disk

    import hyperface_jax.data  # noqa: F401  (registers the project's builders)

    builder = tfds.builder(name, data_dir=data_dir, **builder_kwargs)
    available = list(builder.info.splits.keys())
    base = split.split("[")[0]
    if base not in available:
      raise ValueError(
        f"Dataset {name!r} in {data_dir!r} has no split {base!r}; available "
        f"splits: {available or 'none (is the dataset prepared?)'}."
      )
    ds = builder.as_dataset(split=split, shuffle_files=False)
    if max_examples is not None:
      ds = ds.take(int(max_examples))
    return cls.from_examples(tfds.as_numpy(ds), source=f"{name}/{split}")
