"""Image-level evaluation pairs: one row per whole image through the test-time pipeline.

The runner of the evaluators whose `inputs` is "images" (evaluation/contract.py):

  store = SceneStore.from_tfds("fddb", "fold01", data_dir, fields={..., "ellipse": ...})
  for batch, outputs in image_pairs(analyzer, store, batch_images=8):
    evaluator.update(batch, outputs)

Images are sent to the analyzer `batch_images` at a time (its network pass batches the
proposals of all of them together, inference/batched.py), then yielded ONE image at a time,
in the store's order (for FDDB: the order of the fold file, which the detection-output file
must keep, docs/papers.md section 5.4):

  batch    {"image": uint8 [H, W, 3], "image/filename": str, "faces": the image's faces
            (SceneStore.scene_faces: every kept per-face field [F, ...] plus
            valid {field: [F]}, e.g. FDDB's `ellipse` [F, 5]), "scene_index": int}
  outputs  the pipeline's detections of that image (inference/analyzer.py
            FaceAnalyzer.detect: box [N, 4] x, y, w, h px, score [N], landmarks
            [N, 21, 2] px, visibility [N, 21], pose [N, 3] radians, p_female [N]),
            in descending score.

`analyzer` is anything with `detect(images) -> list of dicts` (the FaceAnalyzer, or a
stand-in in tests); its per-call `timings` (seconds per stage) are summed into `timings`
when given.
"""

from __future__ import annotations

import logging
import time
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np


def image_pairs(
  analyzer,
  store,
  batch_images: int = 8,
  indices: Optional[Sequence[int]] = None,
  timings: Optional[Dict[str, float]] = None,
  log_every: int = 100,
) -> Iterator[Tuple[Dict, Dict[str, np.ndarray]]]:
  """Yields (batch, outputs) per image of `store` (module docstring).

  Args:
    analyzer: an object with `detect(list of uint8 [H, W, 3]) -> list of detection dicts`.
    store: data/scene_store.SceneStore of the evaluated split.
    batch_images: images per `detect` call (memory: all their proposals at once).
    indices: scenes to run, in this order (default: all, in the store's order).
    timings: optional dict that receives summed "seconds" (wall clock of `detect`),
      "images" and the analyzer's per-stage seconds ("proposals", "network", ...).
    log_every: log progress every this many images (0 = never).

  Yields:
    (batch, outputs) for one image.
  """
  if batch_images < 1:
    raise ValueError(f"batch_images must be >= 1; got {batch_images}.")
  order = list(range(len(store))) if indices is None else [int(i) for i in indices]
  done = 0
  for lo in range(0, len(order), batch_images):
    chunk = order[lo : lo + batch_images]
    images = [store.images[i] for i in chunk]
    start = time.perf_counter()
    dets = analyzer.detect(images)
    if len(dets) != len(images):
      raise ValueError(f"analyzer.detect returned {len(dets)} results for {len(images)} images.")
    if timings is not None:
      timings["seconds"] = timings.get("seconds", 0.0) + time.perf_counter() - start
      timings["images"] = timings.get("images", 0.0) + len(images)
      for stage, sec in dict(getattr(analyzer, "timings", {}) or {}).items():
        timings[stage] = timings.get(stage, 0.0) + float(sec)
    for i, image, out in zip(chunk, images, dets, strict=True):
      batch = {
        "image": image,
        "image/filename": store.filenames[i],
        "faces": store.scene_faces(i),
        "scene_index": i,
      }
      yield batch, {k: np.asarray(v) for k, v in out.items()}
    done += len(chunk)
    if log_every and (done // log_every) != ((done - len(chunk)) // log_every):
      logging.info("image_runner: %d / %d images", done, len(order))
