"""Relation traits between the faces of images (docs/papers.md 3; docs/social.md).

  analyzer = RelationAnalyzer.from_workdir("runs/social_relation_cpu",
                                           detector_workdir="runs/demo")
  records = analyzer([image])             # per image: {"faces": [...], "relations": [...]}
  records = analyzer([image], boxes=[gt])  # given face boxes (e.g. synth ground truth)

The faces of an image come from the HyperFace analyzer of a detection run
(inference/analyzer.py, on the image fitted to its size range, boxes mapped back) or are
given. Each face is cropped by its box at the relation model's input size and run once
through the face branch (models/social.py `embed`: its attribute heads give expression,
gender, pose, ...); every pair i < j of faces (face i is the first of the ordered pair,
as `a` in training) goes through the relation head with its spatial cues
(data/pairs.py). An image with fewer than two faces gets an empty relation list.

Per image (`record`):
  faces: [{box, score?, expression {label, p}, gender {label, p_female}, pose {roll, pitch,
         yaw} degrees, age_group {label, p}, smiling / eyeglasses / mouth_open {p}}, ...]
  relations: [{"faces": [i, j], "traits": {dominant: p, ..., assured: p}}, ...]
`draw(image, record)` draws the boxes, numbered, and a line per pair labelled with its two
strongest traits.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import cv2
import jax
import numpy as np

from hyperface_jax import bridging, tasks
from hyperface_jax.data import pairs, preprocess
from hyperface_jax.data.render_params import AGE_GROUPS
from hyperface_jax.evaluation.social import EXPRESSIONS
from hyperface_jax.inference import batched

LABELS = {"expression": EXPRESSIONS, "age_group": AGE_GROUPS, "gender": ("male", "female")}
_PAD = 8  # faces and pairs are padded to multiples of this: few compilations


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def face_attributes(outputs, index: int) -> dict:
  """The JSON attributes of face `index` from the branch's head outputs (numpy)."""
  out = {}
  for name, value in outputs.items():
    v = np.asarray(value[index], np.float64)
    task = tasks.get(name)
    if name == "pose":
      out["pose"] = dict(zip(("roll", "pitch", "yaw"), np.degrees(v).tolist(), strict=True))
    elif name == "gender":
      out["gender"] = {"label": LABELS["gender"][int(v.argmax())], "p_female": _softmax(v)[1]}
    elif task.loss == "softmax_cross_entropy" and v.shape == (2,):
      out[name] = {"p": float(_softmax(v)[1])}
    elif task.loss == "softmax_cross_entropy":
      p = _softmax(v)
      names = LABELS.get(name, tuple(str(i) for i in range(len(p))))
      out[name] = {"label": names[int(p.argmax())], "p": float(p.max())}
    elif task.loss == "sigmoid_cross_entropy":
      out[name] = {"p": (1 / (1 + np.exp(-v))).tolist()}
  return out


class RelationAnalyzer:
  """Faces -> attributes and pair traits with a trained `social_relation` run."""

  def __init__(self, config, variables, detector=None):
    """Args: the run's config, its variables (params + collections), an optional
    FaceAnalyzer that finds the faces when no boxes are given."""
    self.config, self.detector = config, detector
    self.model = batched.inference_model(config)
    self.input_size = int(config.input_size)
    self.normalize = config.data.normalize
    self.traits = tasks.RELATION_TRAITS
    model = self.model
    self._embed = jax.jit(lambda v, x: model.apply(v, x, method=type(model).embed))
    self._relate = jax.jit(lambda v, a, b, c: model.apply(v, a, b, c, method=type(model).relate))
    self.variables = variables

  @classmethod
  def from_workdir(cls, workdir, step=None, detector_workdir=None, **detector_overrides):
    """Loads a relation run (and its template file, checked against its config) and,
    with `detector_workdir`, the HyperFace analyzer that finds faces."""
    config = batched.load_workdir_config(workdir)
    if config.model_name != "social_relation":
      raise ValueError(
        f"{workdir} holds a {config.model_name!r} run; --task=relations needs a "
        "social_relation run (configs/social_relation.py)."
      )
    expected = bridging.settings(config)
    if expected is not None:  # the templates the run was trained with (also in the checkpoint)
      _, meta = bridging.load(bridging.template_path(workdir))
      bridging.check(bridging.template_path(workdir), meta, expected)
    _, variables, _ = batched.load_variables(config, workdir, step)
    detector = None
    if detector_workdir:
      from hyperface_jax.inference import analyzer  # pylint: disable=g-import-not-at-top

      detector = analyzer.FaceAnalyzer.from_workdir(detector_workdir, **detector_overrides)
    return cls(config, variables, detector)

  def _padded(self, fn, arrays):
    n = len(arrays[0])
    size = _PAD * math.ceil(max(n, 1) / _PAD)
    padded = [np.concatenate([a, np.zeros((size - n,) + a.shape[1:], a.dtype)]) for a in arrays]
    return jax.tree.map(lambda x: np.asarray(x)[:n], fn(self.variables, *padded))

  def analyze(self, image: np.ndarray, boxes=None, scores=None) -> dict:
    """One image (uint8 RGB [H, W, 3]) with face boxes [F, 4] -> record (module doc)."""
    boxes = np.asarray(boxes if boxes is not None else np.zeros((0, 4)), np.float64).reshape(-1, 4)
    record = {"faces": [], "relations": []}
    if not len(boxes):
      return record
    crops = preprocess.crop_and_resize(image, boxes, self.input_size)
    feats, attrs = self._padded(self._embed, [preprocess.normalize(crops, self.normalize)])
    for i, box in enumerate(boxes):
      face = {"box": [float(v) for v in box]}
      if scores is not None:
        face["score"] = float(scores[i])
      face.update(face_attributes(attrs, i))
      record["faces"].append(face)
    index = [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes))]
    if not index:
      return record
    a, b = (np.array(k) for k in zip(*index, strict=True))
    h, w = image.shape[:2]
    cues = pairs.spatial_cues(boxes[a], boxes[b], w, h)
    logits = self._padded(self._relate, [feats[a], feats[b], cues])
    probs = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
    for (i, j), p in zip(index, probs, strict=True):
      traits = {t: float(v) for t, v in zip(self.traits, p, strict=True)}
      record["relations"].append({"faces": [i, j], "traits": traits})
    return record

  def find_faces(self, image: np.ndarray, max_side: int = 1024):
    """(boxes [F, 4], scores [F]) of the detector on `image` (original pixels)."""
    from hyperface_jax.inference import image_io  # pylint: disable=g-import-not-at-top

    if self.detector is None:
      raise ValueError("no face boxes given and no detector (--detector_workdir) to find them.")
    min_side = int(getattr(getattr(self.detector, "network", None), "input_size", 0) or 0)
    fitted = image_io.fit_to_network(image, min_side, max_side)
    faces = self.detector([fitted.pixels])[0]
    boxes = [image_io.box_to_original(f.box, fitted.scale_xy) for f in faces]
    return np.asarray(boxes, np.float64).reshape(-1, 4), np.array([f.score for f in faces])

  def __call__(self, images: Sequence[np.ndarray], boxes: Optional[Sequence] = None) -> List[dict]:
    """Records of `images`, with the given per-image boxes or the detector's faces."""
    out = []
    for k, image in enumerate(images):
      if boxes is not None:
        out.append(self.analyze(image, boxes[k]))
      else:
        out.append(self.analyze(image, *self.find_faces(image)))
    return out


COLOURS = ((255, 64, 64), (64, 160, 255), (255, 200, 0), (0, 220, 120), (220, 80, 255))


def _text(canvas, text, org, colour, scale):
  for c, t in (((0, 0, 0), 3), (colour, 1)):
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, c, t, cv2.LINE_AA)


def draw(image: np.ndarray, record: dict, top: int = 2) -> np.ndarray:
  """The image with numbered face boxes and, per pair, a line between the box centres
  labelled with its `top` strongest traits ("warm 0.91 friendly 0.88")."""
  canvas = np.ascontiguousarray(image.copy())
  scale = max(0.35, min(canvas.shape[:2]) / 600)
  centres = []
  for i, face in enumerate(record["faces"]):
    x, y, w, h = face["box"]
    colour = COLOURS[i % len(COLOURS)]
    cv2.rectangle(canvas, (int(x), int(y)), (int(x + w), int(y + h)), colour, 2)
    label = str(i)
    if "expression" in face:
      label += f" {face['expression']['label']}"
    _text(canvas, label, (int(x), max(12, int(y) - 4)), colour, scale)
    centres.append((int(x + w / 2), int(y + h / 2)))
  for k, rel in enumerate(record["relations"]):
    i, j = rel["faces"]
    colour = COLOURS[(k + 2) % len(COLOURS)]
    cv2.line(canvas, centres[i], centres[j], colour, 2, cv2.LINE_AA)
    best = sorted(rel["traits"].items(), key=lambda kv: -kv[1])[:top]
    text = " ".join(f"{t} {p:.2f}" for t, p in best)
    mid = ((centres[i][0] + centres[j][0]) // 2, (centres[i][1] + centres[j][1]) // 2 + 12 * k)
    _text(canvas, text, mid, colour, scale)
  return canvas


def read_boxes(path: Optional[str]) -> Optional[dict]:
  """The --boxes file: {image file name (or NAME): [[x, y, w, h], ...]} in original pixels."""
  if not path:
    return None
  import json  # pylint: disable=g-import-not-at-top

  with open(path) as f:
    table = json.load(f)
  if not isinstance(table, dict):
    raise ValueError(f"{path}: expected {{image name: [[x, y, w, h], ...]}}, got {type(table)}.")
  return table


def predict_images(analyzer, items, output: str, max_side: int = 1024, boxes=None):
  """The CLI loop of `predict --task=relations`: per image OUT/NAME.json and OUT/NAME.png.

  Args:
    analyzer: a RelationAnalyzer.
    items: [(path, NAME)] (predict.discover).
    output: the output folder.
    max_side: the detector's --max_side.
    boxes: optional read_boxes table; an image it does not list is an error.

  Returns:
    (images done, [(path, reason)] failures, pairs written).
  """
  import os  # pylint: disable=g-import-not-at-top

  from hyperface_jax.inference import image_io, outputs  # pylint: disable=g-import-not-at-top

  done, failures, num_pairs = 0, [], 0
  for path, name in items:
    try:
      image, notes = image_io.read_image(path)
      if boxes is not None:
        given = boxes.get(os.path.basename(path), boxes.get(name))
        if given is None:
          raise ValueError(f"--boxes lists no entry for {os.path.basename(path)!r}")
        record = analyzer.analyze(image, given)
      else:
        record = analyzer.analyze(image, *analyzer.find_faces(image, max_side))
      record = {"image": path, "width": image.shape[1], "height": image.shape[0], **record}
      record["conversions"] = list(notes)
      outputs.write_json(os.path.join(output, name + ".json"), record)
      outputs.write_png(os.path.join(output, name + ".png"), draw(image, record))
    except Exception as e:  # pylint: disable=broad-except  (report, go on with the others)
      failures.append((path, getattr(e, "reason", None) or f"{type(e).__name__}: {e}"))
      continue
    done += 1
    num_pairs += len(record["relations"])
    n = len(record["faces"])
    print(f"{path}: {n} face(s), {len(record['relations'])} pair(s) -> {output}/{name}.json/.png")
  return done, failures, num_pairs
