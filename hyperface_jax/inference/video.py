"""Faces in a video: frames through the analyzer in batches, an annotated video and JSONL.

`process_video` reads the video with `cv2.VideoCapture` (OpenCV's FFMPEG backend), sends
frames to the analyzer `batch_size` at a time, and writes
  * OUT/NAME.mp4: the frames with the faces drawn (`viz.draw_faces`), MPEG-4 Part 2
    (fourcc "mp4v", which every FFMPEG build of OpenCV can encode), at the input frame
    rate (25 fps when the container does not say, documented default);
  * OUT/NAME.jsonl: one JSON object per frame, {"frame": i (0-based), "time_s": i / fps,
    "faces": [...]} with the faces of docs/design.md section 4 in frame pixels, each with its
    "track" id when smoothing is on (inference/smoothing.py).
Both are written under temporary names and renamed at the end, so a failed video leaves
neither. A video that cannot be opened, or of which not one frame decodes, raises
`VideoError` naming the file.
"""

from __future__ import annotations

import json
import math
import os
from typing import Dict, Iterator, List

import cv2
import numpy as np

from hyperface_jax import viz
from hyperface_jax.inference import image_io, outputs, smoothing

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
DEFAULT_FPS = 25.0  # documented default when the container has no frame rate
FOURCC = "mp4v"


class VideoError(RuntimeError):
  """A video that cannot be read or written; the message names the file."""


def is_video(path: str) -> bool:
  return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _frames(capture, batch_size: int) -> Iterator[List[np.ndarray]]:
  """Batches of RGB frames until the stream ends."""
  batch = []
  while True:
    ok, bgr = capture.read()
    if not ok:
      break
    batch.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    if len(batch) == batch_size:
      yield batch
      batch = []
  if batch:
    yield batch


def process_video(
  analyzer,
  path: str,
  out_dir: str,
  name: str,
  *,
  batch_size: int = 8,
  min_side: int = 0,
  max_side: int = image_io.DEFAULT_MAX_SIDE,
  smoothing_alpha: float = 0.0,
) -> Dict[str, int]:
  """Runs the analyzer on every frame of a video (outputs in the module doc).

  Args:
    analyzer: callable, list of RGB uint8 images -> list of lists of faces.
    path: the video file.
    out_dir: output folder; NAME.mp4 and NAME.jsonl are written there.
    name: output name (may contain sub-folders).
    batch_size: frames per analyzer call.
    min_side, max_side: the network size range (image_io.fit_to_network).
    smoothing_alpha: weight of the past in the landmark EMA (0: off).

  Returns:
    {"frames": number of frames, "faces": number of faces over all frames}.

  Raises:
    VideoError: the video cannot be opened, has no decodable frame, or cannot be written.
  """
  capture = cv2.VideoCapture(os.fspath(path))
  if not capture.isOpened():
    raise VideoError(
      f"{path}: cannot open the video (OpenCV's FFMPEG backend could not read "
      "it: a missing or corrupt file, an unsupported codec, or not a video)"
    )
  fps = capture.get(cv2.CAP_PROP_FPS)
  fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
  smoother = smoothing.LandmarkSmoother(smoothing_alpha) if smoothing_alpha > 0 else None
  video_path = os.path.join(out_dir, name + ".mp4")
  jsonl_path = os.path.join(out_dir, name + ".jsonl")
  frame_index, num_faces, writer = 0, 0, None
  try:
    with (
      outputs.atomic_path(video_path) as tmp_video,
      outputs.atomic_path(jsonl_path) as tmp_jsonl,
      open(tmp_jsonl, "w") as lines,
    ):
      for batch in _frames(capture, batch_size):
        fitted = [
          image_io.fit_to_network(f, min_side, max_side, name=f"{path} frame {frame_index}")
          for f in batch
        ]
        results = analyzer([f.pixels for f in fitted])
        for frame, fit, faces in zip(batch, fitted, results, strict=True):
          faces = [outputs.face_to_original(f, fit.scale_xy) for f in faces]
          tracks = None
          if smoother is not None:
            tracked = smoother.update(faces)
            tracks, faces = [t for t, _ in tracked], [f for _, f in tracked]
          if writer is None:
            writer = cv2.VideoWriter(
              tmp_video, cv2.VideoWriter_fourcc(*FOURCC), fps, (frame.shape[1], frame.shape[0])
            )
            if not writer.isOpened():
              raise VideoError(f"{video_path}: OpenCV cannot write an {FOURCC!r} video here")
          drawn = viz.draw_faces(frame, faces)
          writer.write(np.ascontiguousarray(drawn[:, :, ::-1]))
          record = {
            "frame": frame_index,
            "time_s": round(frame_index / fps, 6),
            "faces": [
              outputs.face_json(f, None if tracks is None else tracks[i])
              for i, f in enumerate(faces)
            ],
          }
          lines.write(json.dumps(record) + "\n")
          frame_index += 1
          num_faces += len(faces)
      if frame_index == 0:
        raise VideoError(f"{path}: the video opened but not one frame could be decoded")
      writer.release()
  finally:
    capture.release()
    if writer is not None:
      writer.release()
  return {"frames": frame_index, "faces": num_faces}
