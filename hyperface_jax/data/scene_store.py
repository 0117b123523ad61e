"""A split of face scenes held in memory as numpy (scene schema, docs/design.md section 5).

Images keep their own sizes (a list of uint8 arrays); the per-face labels are
padded to the split's maximum face count with validity flags, so that sampling
code indexes plain arrays. The per-face fields kept are those the configured tasks
read (hyperface_jax/tasks.py `face_fields`; by default the core schema fields);
a field the dataset lacks is kept as zeros marked invalid, and a field without a
`valid` flag of its own (e.g. synth_faces' landmarks68) is valid where present.

Face-crop datasets (CelebA, MAFL, MTFL, LFWA, 300-W crops, synth_face_crops: the per-face
fields at the top level, no `faces` sequence, docs/design.md section 5) load as scenes
with one face each, so the same sampling, labelling and training code serves both.
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
VALID_FIELDS = tuple(FACE_FIELDS)


def _crop_as_face(ex, where):
  """A face-crop example (per-face fields at the top level) as a one-face `faces` dict."""
  if "box" not in ex:
    raise ValueError(
      f"{where} has neither 'faces' (a face-scene dataset) nor 'box' (a face-crop dataset); "
      "expected one of the two schemas of docs/design.md section 5."
    )
  skip = ("image", "image/filename", "valid")
  faces = {k: np.asarray(v)[None] for k, v in ex.items() if k not in skip}
  faces["valid"] = {k: np.asarray(v, bool).reshape(1) for k, v in dict(ex.get("valid", {})).items()}
  return faces


def _with_fields(faces, fields, where):
  """`faces` restricted to `fields`: a missing extra field (landmarks68, attributes, ...)
  becomes zeros marked invalid; a field without a valid flag of its own is valid where
  present. A missing core field is an error (docs/design.md section 5)."""
  if not isinstance(faces, dict) or "box" not in faces:
    raise ValueError(f"{where}/faces must be a dict with at least 'box' [F, 4].")
  num = len(np.asarray(faces["box"]))
  valid = dict(faces.get("valid") or {})
  out, out_valid = {}, {}
  for k, (shape, dtype) in fields.items():
    if k not in faces and k in FACE_FIELDS:  # the core schema is always present
      raise ValueError(
        f"{where}/faces is missing field {k!r} (expected shape "
        f"{[num] + list(shape)}; a label a dataset lacks is present and marked invalid)."
      )
    if k in faces:
      out[k] = np.asarray(faces[k])
      out_valid[k] = np.asarray(valid[k], bool) if k in valid else np.ones(num, bool)
    else:
      out[k] = np.zeros((num,) + tuple(shape), dtype)
      out_valid[k] = np.zeros(num, bool)
  out["valid"] = out_valid
  return out


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
    faces: dict of padded arrays [N, F_max, ...] (one per kept field) and
      faces["valid"] dict of bool [N, F_max] (False on padding).
  """

  def __init__(self, images, filenames, num_faces, faces):
    self.images = images
    self.filenames = filenames
    self.num_faces = num_faces
    self.faces = faces

  def __len__(self):
    return len(self.images)

  @property
  def fields(self):
    return tuple(k for k in self.faces if k != "valid")

  def scene_faces(self, index):
    """The unpadded faces dict of scene `index` (arrays with F = num_faces[index])."""
    f = int(self.num_faces[index])
    out = {k: self.faces[k][index, :f] for k in self.fields}
    out["valid"] = {k: self.faces["valid"][k][index, :f] for k in self.fields}
    return out

  @classmethod
  def from_examples(cls, examples, source="examples", fields=None):
    """Builds a store from scene dicts (tfds.as_numpy output or hand-made).

    Args:
      examples: iterable of dicts with "image" uint8 [H, W, 3], optional
        "image/filename", and either "faces" as in the scene schema (F may be 0) or,
        for a face-crop dataset, the per-face fields at the top level (one face).
      source: name used in error messages.
      fields: {field: (per-face shape, dtype)} to keep (default: the core fields).

    Returns:
      SceneStore.
    """
    fields = dict(FACE_FIELDS if fields is None else fields)
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
      faces = ex["faces"] if "faces" in ex else _crop_as_face(ex, where)
      faces = _with_fields(faces, fields, where)
      sampling.check_faces(
        faces, where=f"{where}/faces", fields={k: v[0] for k, v in fields.items()}
      )
      images.append(image)
      filenames.append(_text(ex.get("image/filename")))
      per_scene.append(faces)
    if not images:
      raise ValueError(f"{source} is empty: a SceneStore needs at least one scene.")
    num = np.array([len(f["box"]) for f in per_scene], np.int32)
    fmax = int(num.max())
    faces = {
      k: np.zeros((len(images), fmax) + tuple(shape), dtype) for k, (shape, dtype) in fields.items()
    }
    faces["valid"] = {k: np.zeros((len(images), fmax), bool) for k in fields}
    for i, f in enumerate(per_scene):
      n = num[i]
      for k in fields:
        faces[k][i, :n] = f[k]
        faces["valid"][k][i, :n] = np.asarray(f["valid"][k], bool)
    return cls(images, filenames, num, faces)

  @classmethod
  def from_tfds(cls, name, split, data_dir=None, max_examples=None, fields=None, **builder_kwargs):
    """Loads a TFDS split in the scene schema into memory.

    Importing hyperface_jax.data.builders registers the project's builders.

    Args:
      name: TFDS dataset name (e.g. "synth_faces").
      split: split name or slice ("train", "test[:100]").
      data_dir: TFDS data directory.
      max_examples: optional cap on the number of scenes.
      fields: per-face fields to keep (`from_examples`).
      **builder_kwargs: passed to tfds.builder (e.g. config, version).

    Returns:
      SceneStore.
    """
    import tensorflow_datasets as tfds  # heavy import, only when loading from disk

    from hyperface_jax.data import builders  # noqa: F401  (registers the project's builders)

    builder = tfds.builder(name, data_dir=data_dir, **builder_kwargs)
    available = list(builder.info.splits.keys())
    # A TFDS split expression may join parts ("fold01+fold02[:10]"): check each part.
    missing = [p.split("[")[0].strip() for p in split.split("+")]
    missing = [b for b in missing if b not in available]
    if missing:
      base = missing[0]
      raise ValueError(
        f"Dataset {name!r} in {data_dir!r} has no split {base!r}; available "
        f"splits: {available or 'none (is the dataset prepared?)'}."
      )
    ds = builder.as_dataset(split=split, shuffle_files=False)
    if max_examples is not None:
      ds = ds.take(int(max_examples))
    return cls.from_examples(tfds.as_numpy(ds), source=f"{name}/{split}", fields=fields)
