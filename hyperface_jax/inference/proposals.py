"""Region proposal generators, chosen by name (docs/papers.md sections 1.8 step 1 and 1.11).

Every generator is registered in `registry.PROPOSALS` as a factory
`make(**settings) -> fn(image uint8 [H, W, 3] RGB) -> float64 [N, 4] boxes x, y, w, h`
in pixels (the continuous frame of data/boxes.py), ranked best-first where the method
ranks them. Settings come from `inference.config` (`proposals.<name>`).

  sliding_window    multi-scale square windows (vectorised numpy pyramid);
  selective_search  OpenCV contrib's ximgproc selective search, the paper's proposals
                    (docs/papers.md 1.4 and 1.8; ~2 s per image in the paper);
  haar              OpenCV's bundled Viola-Jones frontal-face cascade: a fast detector
                    for REAL photographs of near-frontal faces (it knows nothing of
                    profile faces and was not trained on synthetic ones);
  learned           Fast-HyperFace's proposal network (docs/papers.md 1.11), inference/fast_proposals.py.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from hyperface_jax.data import boxes as box_lib
from hyperface_jax.data.boxes import window_sides  # noqa: F401  (re-exported)
from hyperface_jax.registry import PROPOSALS


def check_image(image) -> np.ndarray:
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
    raise ValueError(
      f"proposals need a uint8 RGB image [H, W, 3]; got {image.dtype} {image.shape}."
    )
  return image


def square_about_centre(boxes) -> np.ndarray:
  """Squares [N, 4] boxes about their centres, side sqrt(w * h) (AFLW boxes are square)."""
  b = np.asarray(boxes, np.float64).reshape(-1, 4)
  side = np.sqrt(b[:, 2] * b[:, 3])
  cx, cy = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
  return np.stack([cx - side / 2, cy - side / 2, side, side], axis=1)


@PROPOSALS.register("sliding_window")
def sliding_window(
  min_side=24.0, max_side_fraction=1.0, scale_step=1.25, stride_fraction=0.25, border_fraction=0.0
):
  """Square windows of every pyramid side, stepped by `stride_fraction` of the side.

  Windows of each side are spread evenly over the image grown by `border_fraction` of
  the side on every edge (data/boxes.py window_pyramid). Largest side first.
  """
  box_lib.window_pyramid(
    (1, 1), min_side, max_side_fraction, scale_step, stride_fraction, border_fraction
  )  # validates the settings now

  def propose(image):
    return box_lib.window_pyramid(
      check_image(image).shape[:2],
      min_side,
      max_side_fraction,
      scale_step,
      stride_fraction,
      border_fraction,
    )

  return propose


@PROPOSALS.register("selective_search")
def selective_search(
  mode="fast", max_image_side=500, max_proposals=2000, min_side=16.0, square=True
):
  """OpenCV contrib selective search (Uijlings et al.; docs/papers.md 1.4 / 1.8 step 1).

  The image is downscaled so its longer side is at most `max_image_side` (TK: <= 500 px,
  docs/papers.md 1.4), proposals are mapped back, squared about their centre when `square`
  (the network was trained on square AFLW-style boxes), small ones dropped, and the first
  `max_proposals` kept in OpenCV's ranking order.
  """
  if mode not in ("fast", "quality", "single"):
    raise ValueError(f"selective_search mode must be 'fast', 'quality' or 'single'; got {mode!r}.")
  try:
    segmentation = cv2.ximgproc.segmentation
  except AttributeError:
    raise ImportError(
      "selective_search needs OpenCV's contrib build (pip install opencv-contrib-python-headless)."
    ) from None

  def propose(image):
    image = check_image(image)
    h, w = image.shape[:2]
    scale = min(1.0, max_image_side / max(h, w))
    small = (
      image
      if scale == 1.0
      else cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
      )
    )
    ss = segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(np.ascontiguousarray(small[..., ::-1]))  # OpenCV wants BGR
    {
      "fast": ss.switchToSelectiveSearchFast,
      "quality": ss.switchToSelectiveSearchQuality,
      "single": ss.switchToSingleStrategy,
    }[mode]()
    rects = np.asarray(ss.process(), np.float64).reshape(-1, 4)
    # Integer pixel rects (inclusive pixels) -> continuous frame, then original scale.
    sx, sy = w / small.shape[1], h / small.shape[0]
    boxes = np.stack(
      [(rects[:, 0] - 0.5) * sx, (rects[:, 1] - 0.5) * sy, rects[:, 2] * sx, rects[:, 3] * sy], 1
    )
    if square:
      boxes = square_about_centre(boxes)
    boxes = boxes[np.minimum(boxes[:, 2], boxes[:, 3]) >= min_side]
    return boxes[:max_proposals]

  return propose


# Generators that merge their own detections and return about one box per face (OpenCV's
# cascade groups its windows, `min_neighbors`). A face then never gathers the K members
# of L-NMS's top-K mean score, which would report a sure face as 1/K; the analyzer's
# `nms.score_mode="auto"` scores their groups by the best member instead.
ONE_BOX_PER_FACE = frozenset({"haar"})


@PROPOSALS.register("haar")
def haar(
  cascade="haarcascade_frontalface_default.xml",
  scale_factor=1.1,
  min_neighbors=3,
  min_side=20,
  enlarge=1.3,
):
  """OpenCV's bundled frontal-face Haar cascade, for real photographs.

  Boxes are enlarged by `enlarge` about their centre (the cascade's boxes are tighter
  than AFLW-style face boxes, documented default 1.3).
  """
  path = cascade if os.path.isabs(cascade) else os.path.join(cv2.data.haarcascades, cascade)
  classifier = cv2.CascadeClassifier(path)
  if classifier.empty():
    raise FileNotFoundError(
      f"Haar cascade {path!r} could not be loaded (needs an OpenCV "
      "4.x wheel, which bundles the cascades)."
    )

  def propose(image):
    gray = cv2.cvtColor(check_image(image), cv2.COLOR_RGB2GRAY)
    rects = classifier.detectMultiScale(
      gray,
      scaleFactor=scale_factor,
      minNeighbors=min_neighbors,
      minSize=(int(min_side), int(min_side)),
    )
    rects = np.asarray(rects, np.float64).reshape(-1, 4)
    boxes = np.stack([rects[:, 0] - 0.5, rects[:, 1] - 0.5, rects[:, 2], rects[:, 3]], 1)
    c = boxes[:, :2] + boxes[:, 2:] / 2
    side = boxes[:, 2:] * enlarge
    return np.concatenate([c - side / 2, side], 1)

  return propose


def make_proposer(config):
  """The generator named by `config.name`, built with `config[config.name]` settings
  ("auto": "learned" when `config.learned.workdir` is set, else "sliding_window";
  inference/analyzer.py resolve_proposals also looks for the run's own proposal net)."""
  name = config["name"]
  if name == "auto":
    name = "learned" if config["learned"]["workdir"] else "sliding_window"
  factory = PROPOSALS.get(name)
  settings = dict(config[name]) if name in config else {}
  return factory(**settings)
