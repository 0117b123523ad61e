"""Bridging-layer templates: fitted once per run, stored next to the checkpoints.

docs/papers.md section 3.3: faces aligned with landmarks are clustered by their landmark
layout with hierarchical K-means (10 top-level clusters; inside each, 10 clusters of the
upper-face points and 10 of the lower-face points); a cluster's template is the mean HOG
of its faces; a face's descriptor h is its L2 distances to all 10 + 10 x 20 = 210
templates (models/social.py `Bridging`, models/hog.py).

Here a face is aligned by its box (the AFLW face rectangle, which synth_faces and AFLW
derive from the landmarks, docs/papers.md 1.9): the crop the network sees, at
`config.input_size`, normalised as `config.data.normalize`; its layout is its 21 AFLW
landmarks in box units, (p - box_xy) / box_side. Upper face: brows and eyes (points 0-11);
lower face: nose, mouth and chin (13-15, 17-20); the ears count in the top-level layout
only. Which faces build the clusters is [?] in the papers: here every training face of
the run's sources with valid landmarks (at most `max_faces`, drawn with the seed).

The step runs in `train.train_and_evaluate` at every start of a run with
`config.model.bridging.enabled` (`prepare`, before the checkpoint is restored): it
reuses `WORKDIR/bridging_templates.npz` if present, else copies the file of the
`config.model_init` run (the relation network reuses its attribute run's templates), else
fits. The file is versioned (FORMAT_VERSION, the settings in its "meta" entry), written
atomically, restored with the run (`attach` loads it into the model's "bridging"
collection at every start, checkpoint or not) and refused, with every differing setting
named, when it does not match the config.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Dict, Optional, Tuple

import numpy as np
from absl import logging

FILENAME = "bridging_templates.npz"
FORMAT = "hyperface_jax bridging templates"
FORMAT_VERSION = 1
UPPER_POINTS = tuple(range(12))  # AFLW-21 brows and eyes (data/schemes.py)
LOWER_POINTS = (13, 14, 15, 17, 18, 19, 20)  # nose, mouth, chin
# Keys of config.model.bridging that the templates depend on (checked against the file).
SETTING_KEYS = ("orientations", "pixels_per_cell", "cells_per_block", "clusters")


class TemplateMismatchError(ValueError):
  """A template file that does not match the run's config."""


def settings(config) -> Optional[dict]:
  """What the templates depend on, from the config (None: bridging disabled)."""
  b = config.model.get("bridging")
  if not b or not b.get("enabled", False):
    return None
  out = {k: b[k] for k in SETTING_KEYS}
  out["clusters"] = [int(k) for k in out["clusters"]]
  out.update(input_size=int(config.input_size), normalize=str(config.data.normalize))
  return out


def num_templates(clusters) -> int:
  """10 + 10 x (10 + 10) = 210 for the paper's (10, 10, 10)."""
  return int(clusters[0]) * (1 + int(clusters[1]) + int(clusters[2]))


def layouts(landmarks, visibility, boxes) -> np.ndarray:
  """Landmark layouts [N, 21, 2] in box units; missing points (invisible and stored as
  (0, 0), e.g. AFLW's unannotated points) take the mean position of the others."""
  boxes = np.asarray(boxes, np.float64)
  pts = (np.asarray(landmarks, np.float64) - boxes[:, None, :2]) / boxes[:, None, 2:]
  missing = (np.asarray(visibility) < 0.5) & np.all(np.asarray(landmarks) == 0, axis=-1)
  if missing.any():
    present = np.where(missing[..., None], np.nan, pts)
    mean = np.nan_to_num(np.nanmean(present, axis=0))
    pts = np.where(missing[..., None], mean[None], pts)
  return pts


def _kmeans(x, k, seed, what):
  from sklearn.cluster import KMeans  # pylint: disable=g-import-not-at-top

  if len(x) < k:
    raise ValueError(
      f"bridging: {what} has {len(x)} faces, fewer than its {k} clusters (more training "
      "faces with landmarks, or smaller config.model.bridging.clusters)."
    )
  return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)


def fit_templates(hogs, layout, clusters=(10, 10, 10), seed=0) -> Tuple[np.ndarray, np.ndarray]:
  """Hierarchical K-means on the layouts, then the mean HOG of every cluster.

  Args:
    hogs: [N, D] HOG features of the aligned faces.
    layout: [N, 21, 2] landmark layouts (`layouts`).
    clusters: (top-level K, upper-face K, lower-face K).
    seed: K-means seed (same seed and data, same templates).

  Returns:
    (templates [K0 * (1 + K1 + K2), D]: the K0 top-level templates, then for top-level
    cluster c its K1 upper and K2 lower templates; top-level labels [N]).
  """
  hogs = np.asarray(hogs, np.float64)
  k0, k1, k2 = (int(k) for k in clusters)
  flat = lambda pts: np.asarray(pts).reshape(len(pts), -1)
  top = _kmeans(flat(layout), k0, seed, "the layout set")
  out = [hogs[top == c].mean(0) for c in range(k0)]
  for c in range(k0):
    members = np.flatnonzero(top == c)
    for points, k in ((UPPER_POINTS, k1), (LOWER_POINTS, k2)):
      sub = _kmeans(flat(layout[members][:, points]), k, seed, f"top-level cluster {c}")
      out += [hogs[members[sub == s]].mean(0) for s in range(k)]
  return np.stack(out).astype(np.float32), top


def save(path: str, arrays: Dict[str, np.ndarray], meta: dict) -> None:
  """Writes the template file atomically (temporary name in the folder, then rename)."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".bridging.", suffix=".partial.npz", dir=folder)
  os.close(fd)
  try:
    np.savez(tmp, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> what open() would give
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def load(path: str) -> Tuple[Dict[str, np.ndarray], dict]:
  """(arrays templates / h_mean / h_std, meta) of a template file, format checked."""
  with np.load(path, allow_pickle=False) as npz:
    if "meta" not in npz.files:
      raise TemplateMismatchError(f"{path}: not a bridging template file (no 'meta' entry).")
    meta = json.loads(str(npz["meta"]))
    arrays = {k: npz[k] for k in ("templates", "h_mean", "h_std")}
  if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
    raise TemplateMismatchError(
      f"{path}: format {meta.get('format')!r} version {meta.get('version')!r}; this code "
      f"reads {FORMAT!r} version {FORMAT_VERSION}. Delete the file to refit the templates."
    )
  return arrays, meta


def check(path: str, meta: dict, expected: dict) -> None:
  """Refuses a file whose settings differ from the config's, naming each difference."""
  found = meta.get("settings", {})
  diffs = [
    f"{k}: file {found.get(k)!r}, config {v!r}" for k, v in expected.items() if found.get(k) != v
  ]
  if diffs:
    raise TemplateMismatchError(
      f"{path} does not match the config ({'; '.join(diffs)}). The templates were fitted "
      "with other settings (config.model.bridging, config.input_size, config.data.normalize)"
      f": run with those settings, or delete {os.path.basename(path)} to refit (a run "
      "trained with the old templates must keep them)."
    )


def template_path(workdir: str) -> str:
  return os.path.join(workdir, FILENAME)


def _fitting_faces(config, max_faces: int, seed: int):
  """Crops (normalised) and layouts of the training faces with landmarks of every source."""
  from hyperface_jax.data import inputs, preprocess  # pylint: disable=g-import-not-at-top
  from hyperface_jax.data.scene_store import FACE_FIELDS, SceneStore  # noqa: I001

  fields = {k: FACE_FIELDS[k] for k in ("box", "landmarks", "visibility")}
  crops, lays = [], []
  for src in inputs.sources(config.data):
    store = SceneStore.from_tfds(
      src["name"],
      src["train_split"],
      src["data_dir"],
      max_examples=src.get("max_train_scenes"),
      fields=fields,
      **inputs.builder_kwargs(src),
    )
    inputs.filter_labels(store, src.get("keep_labels"), src.get("drop_labels"), src["name"])
    for i in range(len(store)):
      f = store.scene_faces(i)
      ok = f["valid"]["box"] & f["valid"]["landmarks"]
      if ok.any():
        crops.append(preprocess.crop_and_resize(store.images[i], f["box"][ok], config.input_size))
        lays.append(layouts(f["landmarks"][ok], f["visibility"][ok], f["box"][ok]))
  if not crops:
    raise ValueError("bridging: no training face with landmarks to fit the templates on.")
  crops, lays = np.concatenate(crops), np.concatenate(lays)
  if len(crops) > max_faces:
    keep = np.sort(np.random.default_rng(seed).choice(len(crops), max_faces, replace=False))
    crops, lays = crops[keep], lays[keep]
  return preprocess.normalize(crops, config.data.normalize), lays


def hog_features(images, b: dict, batch: int = 256) -> np.ndarray:
  """HOG of normalised crops [N, S, S, 3] (channel mean, as models/social.py Bridging)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp

  from hyperface_jax.models import hog as hog_lib  # pylint: disable=g-import-not-at-top

  fn = jax.jit(
    lambda x: hog_lib.hog(
      jnp.mean(x, -1), b["orientations"], b["pixels_per_cell"], b["cells_per_block"]
    )
  )
  return np.concatenate(
    [np.asarray(fn(images[i : i + batch])) for i in range(0, len(images), batch)]
  )


def fit_for_config(config) -> Tuple[Dict[str, np.ndarray], dict]:
  """Fits the templates of `config` on its training faces (module docstring)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from hyperface_jax.models import hog as hog_lib  # pylint: disable=g-import-not-at-top

  expected = settings(config)
  b = config.model.bridging
  seed, max_faces = int(b.get("seed", 0)), int(b.get("max_faces", 20000))
  images, lays = _fitting_faces(config, max_faces, seed)
  hogs = hog_features(images, expected)
  templates, _ = fit_templates(hogs, lays, expected["clusters"], seed)
  h = np.asarray(hog_lib.template_distances(jnp.asarray(hogs), jnp.asarray(templates)))
  arrays = {"templates": templates, "h_mean": h.mean(0), "h_std": h.std(0) + 1e-6}
  meta = {
    "format": FORMAT,
    "version": FORMAT_VERSION,
    "settings": expected,
    "fit": {"faces": int(len(images)), "seed": seed, "hog_dim": int(hogs.shape[1])},
  }
  logging.info("bridging: fitted %d templates on %d faces.", len(templates), len(images))
  return {k: v.astype(np.float32) for k, v in arrays.items()}, meta


def prepare(config, workdir: str) -> Optional[Dict[str, np.ndarray]]:
  """The run's templates: its file, else the model_init run's (copied), else fitted."""
  expected = settings(config)
  if expected is None:
    return None
  path = template_path(workdir)
  if not os.path.exists(path):
    source = config.get("model_init") or ""
    source = source if os.path.exists(template_path(source)) else ""
    if source:
      arrays, meta = load(template_path(source))
      check(template_path(source), meta, expected)
      logging.info("bridging: templates of %s reused.", source)
    else:
      arrays, meta = fit_for_config(config)
    save(path, arrays, meta)
  arrays, meta = load(path)
  check(path, meta, expected)
  return arrays


def attach(state, arrays: Optional[Dict[str, np.ndarray]], sharding):
  """`state` with the templates `arrays` (from `prepare`) in its model's "bridging"
  collection; `state` itself when bridging is off (arrays None). Called by train.py after
  restore-or-init, at every start."""
  if arrays is None:
    return state
  import jax  # pylint: disable=g-import-not-at-top

  from hyperface_jax import surgery  # pylint: disable=g-import-not-at-top

  tree = surgery.flatten(jax.tree.map(np.asarray, state.model_state.get("bridging", {})))
  new = {}
  for name, leaf in tree.items():
    value = arrays[name.rsplit("/", 1)[-1]]
    if value.shape != leaf.shape:
      raise TemplateMismatchError(
        f"bridging templates: {name} has shape {value.shape}, the model {leaf.shape}."
      )
    new[name] = value
  if not new:
    raise ValueError("config.model.bridging is enabled but the model has no bridging layer.")
  model_state = dict(state.model_state, bridging=surgery.unflatten(new))
  return state.replace(model_state=jax.device_put(model_state, sharding))
