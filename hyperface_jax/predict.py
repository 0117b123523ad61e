r"""Predict CLI: every face of an image, a folder of images, or a video (docs/predict.md).

  python -m hyperface_jax.predict --workdir=runs/demo --input=PATH --output=OUT \
      [--batch_size=8] [--smooth=0.5] [--config.proposals.name=haar ...]

PATH is an image, a video (by extension: .mp4 .avi .mov .mkv .webm .m4v .mpg .mpeg .wmv) or
a folder, walked recursively (--no-recursive: its top level only). In a folder, the files
with a video extension are videos, those with an extension Pillow can open (.jpg, .png,
.ppm, .tif, .webp, ...) images; other files (annotations such as .pts, text, ...), hidden
files and folders, and OUT itself are skipped, and the skipped files are counted in the
summary line. A single file is always tried, whatever its extension. Per image OUT/NAME.json
(docs/design.md section 4, plus the image's size and the conversions applied) and OUT/NAME.png
with the faces drawn (viz.py); per video OUT/NAME.mp4 and OUT/NAME.jsonl
(inference/video.py). NAME is the path relative to the input folder without its extension
(sub-folders mirrored in OUT); when two inputs would share a NAME (a.jpg and a.png), each
keeps its extension as a suffix (a_jpg, a_png). Every file is written atomically.

Images are read by inference/image_io.py (EXIF orientation applied; grayscale, alpha,
16-bit, palette converted as documented there), fitted to the network's size range
(--min_side, default the model's input size; --max_side, default 1024) and sent to the
analyzer --batch_size images per call; coordinates are mapped back to the original pixels.
Unreadable inputs are listed at the end and do not stop the others.

Exit status: 0 all inputs done, 1 some failed (listed on stderr), 2 usage error (bad flag,
missing input, a workdir without a model, an unknown --config key).

argparse, not absl: `main(argv)` is called in-process by tests and notebooks, and absl
keeps one global flag set per process.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from hyperface_jax import viz
from hyperface_jax.inference import config as config_lib
from hyperface_jax.inference import image_io, outputs, video

BATCH_SIZE = 8  # documented default: images per analyzer call


def parse_args(argv: Sequence[str]) -> Tuple[argparse.Namespace, dict]:
  """Flags and the `--config.KEY=VALUE` analyzer overrides; SystemExit(2) on a bad one."""
  parser = argparse.ArgumentParser(
    prog="python -m hyperface_jax.predict",
    description=__doc__.split("\n\n")[0],
    epilog="Analyzer settings (inference/config.py) as --config.KEY=VALUE, e.g. "
    "--config.proposals.name=haar --config.nms.top_k=3.",
  )
  parser.add_argument(
    "--workdir", required=True, help="training workdir (config.json, checkpoints/)"
  )
  parser.add_argument("--input", required=True, help="an image, a folder or a video")
  parser.add_argument("--output", required=True, help="output folder (created)")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (latest)")
  parser.add_argument(
    "--batch_size", type=int, default=BATCH_SIZE, help="images (or video frames) per analyzer call"
  )
  parser.add_argument(
    "--min_side",
    type=int,
    default=None,
    help="upscale images whose shorter side is below this (default: the model's input size)",
  )
  parser.add_argument(
    "--max_side",
    type=int,
    default=image_io.DEFAULT_MAX_SIDE,
    help="downscale images whose longer side is above this",
  )
  parser.add_argument(
    "--smooth",
    type=float,
    default=0.0,
    help="videos: weight of the "
    "past in the landmark moving average over tracked faces, in [0, 1) "
    "(0: off)",
  )
  parser.add_argument(
    "--recursive",
    action=argparse.BooleanOptionalAction,
    default=True,
    help="walk sub-folders of a folder input",
  )
  args, rest = parser.parse_known_args(argv)
  overrides = {}
  for item in rest:
    key, sep, value = item.partition("=")
    if not key.startswith("--config.") or not sep or len(key) <= len("--config."):
      parser.error(
        f"unrecognised argument {item!r}; analyzer settings are written --config.KEY=VALUE"
      )
    overrides[key[len("--config.") :]] = config_lib.parse_value(value)
  if args.batch_size < 1:
    parser.error(f"--batch_size must be >= 1, got {args.batch_size}")
  if not 0.0 <= args.smooth < 1.0:
    parser.error(f"--smooth must be in [0, 1), got {args.smooth}")
  return args, overrides


def discover(
  input_path: str, output_dir: str, recursive: bool = True
) -> Tuple[List[Tuple[str, str]], List[str]]:
  """(path, NAME) of every input, sorted, and the skipped files (rules in the module doc)."""
  if os.path.isfile(input_path):
    return [(input_path, os.path.splitext(os.path.basename(input_path))[0])], []
  out_abs = os.path.abspath(output_dir)
  found, skipped = [], []
  for root, dirs, files in os.walk(input_path):
    dirs[:] = sorted(
      d
      for d in dirs
      if not d.startswith(".") and recursive and os.path.abspath(os.path.join(root, d)) != out_abs
    )
    for f in sorted(files):
      rel = os.path.relpath(os.path.join(root, f), input_path)
      if f.startswith("."):
        continue
      if video.is_video(f) or image_io.is_image_name(f):
        found.append(rel)
      else:
        skipped.append(os.path.join(input_path, rel))
  stems = [os.path.splitext(rel)[0] for rel in found]
  items = []
  for rel, stem in zip(found, stems, strict=True):
    name = stem if stems.count(stem) == 1 else stem + "_" + os.path.splitext(rel)[1][1:]
    items.append((os.path.join(input_path, rel), name))
  return items, skipped


class _Run:
  """One CLI run: the analyzer, the settings, and what succeeded or failed."""

  def __init__(self, analyzer, args, min_side: int):
    self.analyzer, self.args, self.min_side = analyzer, args, min_side
    self.failures: List[Tuple[str, str]] = []
    self.done = 0
    self.num_faces = 0

  def images(self, items: Sequence[Tuple[str, str]]) -> None:
    """Reads, analyses (in batches) and writes the images."""
    pending = []
    for path, name in items:
      try:
        original, notes = image_io.read_image(path)
        fitted = image_io.fit_to_network(original, self.min_side, self.args.max_side, name=path)
      except image_io.ImageReadError as e:
        self.failures.append((path, e.reason))
        continue
      pending.append((path, name, original, notes, fitted))
      if len(pending) == self.args.batch_size:
        self._analyse(pending)
        pending = []
    if pending:
      self._analyse(pending)

  def _analyse(self, batch) -> None:
    try:
      results = self.analyzer([fitted.pixels for *_, fitted in batch])
    except Exception as e:  # pylint: disable=broad-except  (report, go on with the others)
      self.failures.extend(
        (path, f"analysis failed: {type(e).__name__}: {e}") for path, *_ in batch
      )
      return
    for (path, name, original, notes, fitted), faces in zip(batch, results, strict=True):
      faces = [outputs.face_to_original(f, fitted.scale_xy) for f in faces]
      record = outputs.image_record(path, original.shape[:2], notes, fitted.scale_xy, faces)
      try:
        outputs.write_json(os.path.join(self.args.output, name + ".json"), record)
        outputs.write_png(
          os.path.join(self.args.output, name + ".png"), viz.draw_faces(original, faces)
        )
      except OSError as e:
        self.failures.append((path, f"cannot write the outputs: {e}"))
        continue
      self.done += 1
      self.num_faces += len(faces)
      print(f"{path}: {len(faces)} face(s) -> {os.path.join(self.args.output, name)}.json/.png")

  def video(self, path: str, name: str) -> None:
    try:
      summary = video.process_video(
        self.analyzer,
        path,
        self.args.output,
        name,
        batch_size=self.args.batch_size,
        min_side=self.min_side,
        max_side=self.args.max_side,
        smoothing_alpha=self.args.smooth,
      )
    except (video.VideoError, image_io.ImageReadError, OSError) as e:
      self.failures.append((path, str(e)))
      return
    except Exception as e:  # pylint: disable=broad-except  (report, go on with the others)
      self.failures.append((path, f"analysis failed: {type(e).__name__}: {e}"))
      return
    self.done += 1
    self.num_faces += summary["faces"]
    print(
      f"{path}: {summary['frames']} frame(s), {summary['faces']} face(s) -> "
      f"{os.path.join(self.args.output, name)}.mp4/.jsonl"
    )


def _default_factory(workdir: str, step: Optional[int], overrides: dict):
  from hyperface_jax.inference import analyzer  # pylint: disable=g-import-not-at-top

  return analyzer.FaceAnalyzer.from_workdir(workdir, step, **overrides)


def main(
  argv: Optional[Sequence[str]] = None, analyzer_factory: Callable = _default_factory
) -> int:
  """Runs the CLI; returns the exit status (0 fine, 1 some inputs failed, 2 usage error)."""
  argv = sys.argv[1:] if argv is None else list(argv)
  try:
    args, overrides = parse_args(argv)
  except SystemExit as e:  # argparse has printed the usage error
    return int(e.code or 0)
  if not os.path.exists(args.input):
    print(f"error: --input {args.input} does not exist", file=sys.stderr)
    return 2
  try:
    analyzer = analyzer_factory(args.workdir, args.step, overrides)
  except (FileNotFoundError, KeyError, ValueError) as e:
    message = str(e).strip("'\"")
    print(
      f"error: cannot build the analyzer from --workdir {args.workdir}: {message}", file=sys.stderr
    )
    return 2
  network = getattr(analyzer, "network", None)
  min_side = (
    args.min_side if args.min_side is not None else int(getattr(network, "input_size", 0) or 0)
  )
  run = _Run(analyzer, args, min_side)
  items, skipped = discover(args.input, args.output, args.recursive)
  run.images([(p, n) for p, n in items if not video.is_video(p)])
  for path, name in items:
    if video.is_video(path):
      run.video(path, name)
  if skipped:
    shown = ", ".join(os.path.basename(p) for p in skipped[:5])
    print(
      f"skipped {len(skipped)} file(s) that are neither images nor videos by their "
      f"extension: {shown}{', ...' if len(skipped) > 5 else ''}"
    )
  print(f"done: {run.done} of {len(items)} input(s), {run.num_faces} face(s), in {args.output}")
  if run.failures:
    print(f"FAILED: {len(run.failures)} of {len(items)} input(s):", file=sys.stderr)
    for path, reason in run.failures:
      print(f"  {path}: {reason}", file=sys.stderr)
    return 1
  if not items:
    print(f"error: no input file found in {args.input}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.exit(main())
