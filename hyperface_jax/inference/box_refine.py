"""Box refinement by the face score's log-odds: the pipeline's last stage (after L-NMS).

Not in the paper (a documented default of this project; docs/inference.md "Box
refinement"). HyperFace's detection head labels regions at IoU > 0.5 with a face as faces
and those at IoU < 0.35 as non-faces, the regions in between are ignored (docs/papers.md
1.4), and its softmax score saturates: on the synth_faces validation scenes 27 % of the
windows at IoU 0.35-0.5 with a face have a score >= 0.99, as do 65 % of those at 0.5-0.6
and 97 % of those above 0.8. L-NMS's box vote over the few windows a face has can then land at IoU
0.4-0.5 with it. The log-odds of the score (`score_logit`, the difference of the two
detection logits) do not saturate and keep growing with the IoU (medians 2.4 at IoU
0.35-0.5, 5.9 at 0.5-0.6, 8.6 at 0.6-0.7, 11.6 above 0.8; bench/box_refine_study.py). So
every output box is scaled about its centre by the factors scale_step**k, the network
scores those windows, and the box becomes their mean weighted by softmax(log-odds /
temperature): the windows that fit the face best outweigh the others. Only the box
changes; landmarks, pose and gender stay L-NMS's medians.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from hyperface_jax.inference.lnms import Detections

# Network: (images, list of regions [N_i, 4]) -> list of detection dicts (batched.py).
NetworkFn = Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], list]


def scaled_boxes(boxes, scales: Sequence[float]) -> np.ndarray:
  """[N * S, 4] boxes: each of `boxes` [N, 4] (x, y, w, h) scaled about its centre by
  every factor of `scales`, box-major (rows i * S .. i * S + S - 1 belong to box i)."""
  boxes = np.asarray(boxes, np.float64).reshape(-1, 1, 4)
  s = np.asarray(scales, np.float64).reshape(1, -1, 1)
  centre = boxes[..., :2] + boxes[..., 2:] / 2
  size = boxes[..., 2:] * s
  return np.concatenate([centre - size / 2, size], -1).reshape(-1, 4)


def weighted_box(boxes, logits, temperature: float) -> np.ndarray:
  """The mean of `boxes` [S, 4] weighted by softmax(`logits` [S] / temperature)."""
  z = np.asarray(logits, np.float64) / temperature
  w = np.exp(z - z.max())
  return (w[:, None] * np.asarray(boxes, np.float64)).sum(0) / w.sum()


def window_scales(scale_step: float, windows: int) -> tuple:
  """The factors scale_step**k, k = -(windows // 2) .. windows // 2: `windows` (odd)
  windows about the box, the box itself in the middle."""
  m = windows // 2
  return tuple(float(scale_step) ** k for k in range(-m, m + 1))


def settings(section) -> dict:
  """`refine_boxes` keyword arguments of an inference config's `box_refine` section
  (inference/config.py), checked (check_settings)."""
  kwargs = {k: section[k] for k in ("scale_step", "windows", "temperature")}
  check_settings(**kwargs)
  return kwargs


def check_settings(scale_step: float, windows: int, temperature: float) -> None:
  """Raises ValueError naming the setting when the refinement settings are unusable."""
  if not (np.isfinite(scale_step) and scale_step > 1.0):
    raise ValueError(f"box_refine.scale_step must be a factor > 1; got {scale_step}.")
  if int(windows) != windows or windows < 3 or windows % 2 == 0:
    raise ValueError(
      f"box_refine.windows must be an odd number >= 3 (the box and as many smaller as "
      f"larger windows); got {windows}."
    )
  if not (np.isfinite(temperature) and temperature > 0):
    raise ValueError(f"box_refine.temperature must be > 0; got {temperature}.")


def refine_boxes(
  network: NetworkFn,
  images: Sequence[np.ndarray],
  detections: Sequence[Detections],
  *,
  scale_step: float = 1.15,
  windows: int = 5,
  temperature: float = 4.0,
) -> list[Detections]:
  """Moves every detection's box to the log-odds-weighted mean of its scaled windows.

  Args:
    network: batched network (images, regions per image) -> per image a dict with
      "score_logit" [N] (inference/batched.py, onnx_network.py).
    images: the uint8 RGB images.
    detections: per image, the final detections ("box" [N, 4], ...).
    scale_step, windows: each box is scaled about its centre by the `windows` factors
      scale_step**k (window_scales); documented defaults chosen on synth_faces validation
      scenes (inference/config.py).
    temperature: softmax temperature on the log-odds (> 0; smaller trusts the best
      window more).

  Returns:
    Per image, a copy of its detections with the refined "box"; the other keys unchanged.
  """
  check_settings(scale_step, windows, temperature)
  windows = int(windows)
  scales = window_scales(scale_step, windows)
  regions = [scaled_boxes(np.asarray(d["box"]), scales) for d in detections]
  scored = network(images, regions)
  out = []
  for d, w, s in zip(detections, regions, scored, strict=True):
    if "score_logit" not in s:
      raise ValueError(
        "Box refinement needs the network's 'score_logit' output (the face score's "
        f"log-odds); the network returned {sorted(s)}. Set box_refine.enabled=False."
      )
    logits = np.asarray(s["score_logit"], np.float64).reshape(-1, windows)
    boxes = w.reshape(-1, windows, 4)
    refined = {k: np.array(v, copy=True) for k, v in d.items()}
    refined["box"] = np.array(
      [weighted_box(b, lg, temperature) for b, lg in zip(boxes, logits, strict=True)],
      np.float64,
    ).reshape(-1, 4)
    out.append(refined)
  return out
