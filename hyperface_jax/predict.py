r"""Predict CLI: every face of an image, a folder of images, or a video (docs/predict.md).

  python -m hyperface_jax.predict --workdir=runs/demo --input=PATH --output=OUT \
      [--batch_size=8] [--smooth=0.5] [--config.proposals.name=haar ...]
  python -m hyperface_jax.predict --task=relations --workdir=runs/social_relation_cpu \
      --detector_workdir=runs/demo --input=PATH --output=OUT   # face-pair traits

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

Flags are absl flags, as in hyperface_jax.main, but on this module's own `FLAGS`
(an `absl.flags.FlagValues`), not absl's global set: `main(argv)` is called in-process by
tests and notebooks, any number of times, and parses `argv` afresh each time. The
`--config.KEY=VALUE` analyzer settings are taken out of argv before the flags are parsed.
"""

from __future__ import annotations

import functools
import os
import sys
import types
from typing import Callable, List, Optional, Sequence, Tuple

from absl import flags

from hyperface_jax import cli, viz
from hyperface_jax.inference import config as config_lib
from hyperface_jax.inference import image_io, outputs, video

BATCH_SIZE = 8  # documented default: images per analyzer call
DEFAULT_CACHE_DIR = "~/.cache/hyperface_jax/jax_cache"  # --compilation_cache_dir of the program
_HELP_ARGS = cli.HELP_ARGS

FLAGS = flags.FlagValues()  # this tool's own flags (see the module doc)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Training workdir (config.json, checkpoints/).", flag_values=FLAGS
)
_INPUT = flags.DEFINE_string("input", None, "An image, a folder or a video.", flag_values=FLAGS)
_OUTPUT = flags.DEFINE_string("output", None, "Output folder (created).", flag_values=FLAGS)
_STEP = flags.DEFINE_integer(
  "step", None, "Checkpoint step (default: the latest).", flag_values=FLAGS
)
_BATCH_SIZE = flags.DEFINE_integer(
  "batch_size", BATCH_SIZE, "Images (or video frames) per analyzer call.", flag_values=FLAGS
)
_MIN_SIDE = flags.DEFINE_integer(
  "min_side",
  None,
  "Upscale images whose shorter side is below this (default: the model's input size).",
  flag_values=FLAGS,
)
_MAX_SIDE = flags.DEFINE_integer(
  "max_side",
  image_io.DEFAULT_MAX_SIDE,
  "Downscale images whose longer side is above this.",
  flag_values=FLAGS,
)
_SMOOTH = flags.DEFINE_float(
  "smooth",
  0.0,
  "Videos: weight of the past in the landmark moving average over tracked faces, in "
  "[0, 1) (0: off).",
  flag_values=FLAGS,
)
_RECURSIVE = flags.DEFINE_bool(
  "recursive",
  True,
  "Walk sub-folders of a folder input; --norecursive (or --no-recursive): the top level only.",
  flag_values=FLAGS,
)
_TASK = flags.DEFINE_enum(
  "task",
  "faces",
  ["faces", "relations"],
  "faces: HyperFace per face (--workdir a HyperFace run); relations: the traits of every "
  "face pair (--workdir a social_relation run, inference/relations.py).",
  flag_values=FLAGS,
)
_DETECTOR = flags.DEFINE_string(
  "detector_workdir",
  None,
  "--task=relations: the HyperFace run that finds the faces (--config.KEY=VALUE set its analyzer).",
  flag_values=FLAGS,
)
_BOXES = flags.DEFINE_string(
  "boxes",
  None,
  "--task=relations: a JSON file {image file name: [[x, y, w, h], ...]} of given face "
  "boxes, instead of a detector.",
  flag_values=FLAGS,
)
_CACHE_DIR = flags.DEFINE_string(
  "compilation_cache_dir",
  None,
  "JAX's persistent compilation cache: the compiled programs are stored there and the next "
  f"run loads them instead of compiling (bench/cold_start.py). Default: {DEFAULT_CACHE_DIR} "
  "when run as `python -m hyperface_jax.predict`, none when main() is called in-process; "
  "'' disables it.",
  flag_values=FLAGS,
)
flags.mark_flags_as_required(["workdir", "input", "output"], flag_values=FLAGS)


class UsageError(ValueError):
  """A bad command line; the message is printed as `error: ...` (exit status 2)."""


def usage() -> str:
  """The help text: the module doc, this tool's flags and the --config.KEY=VALUE note."""
  return (
    f"{__doc__}\n{FLAGS.get_help()}\n\nAnalyzer settings (inference/config.py) as "
    "--config.KEY=VALUE, e.g. --config.proposals.name=haar --config.nms.top_k=3."
  )


def parse_args(argv: Sequence[str]) -> Tuple[types.SimpleNamespace, dict]:
  """Flags and the `--config.KEY=VALUE` analyzer overrides of argv = [program, ...].

  Returns:
    (namespace with workdir, input, output, step, batch_size, min_side, max_side, smooth,
    recursive; {KEY: value} overrides).

  Raises:
    UsageError: a bad, unknown or missing flag, or a positional argument.
  """
  argv = list(argv)
  rest, overrides = argv[:1], {}
  for item in argv[1:]:
    if item.startswith("--config."):
      key, sep, value = item.partition("=")
      if not sep or len(key) <= len("--config."):
        raise UsageError(
          f"unrecognised argument {item!r}; analyzer settings are written --config.KEY=VALUE"
        )
      overrides[key[len("--config.") :]] = config_lib.parse_value(value)
    else:
      rest.append("--norecursive" if item == "--no-recursive" else item)  # argparse spelling
  for name in list(FLAGS):  # every call starts from the defaults (also after an error)
    FLAGS[name].unparse()
  try:
    unparsed = FLAGS(rest, known_only=True)
  except flags.Error as e:
    raise UsageError(str(e)) from None
  if len(unparsed) > 1:
    item = unparsed[1]
    raise UsageError(
      f"unrecognised argument {item!r}; analyzer settings are written --config.KEY=VALUE"
    )
  args = types.SimpleNamespace(
    workdir=_WORKDIR.value,
    input=_INPUT.value,
    output=_OUTPUT.value,
    step=_STEP.value,
    batch_size=_BATCH_SIZE.value,
    min_side=_MIN_SIDE.value,
    max_side=_MAX_SIDE.value,
    smooth=_SMOOTH.value,
    recursive=_RECURSIVE.value,
    task=_TASK.value,
    detector_workdir=_DETECTOR.value,
    boxes=_BOXES.value,
    compilation_cache_dir=_CACHE_DIR.value,
  )
  if args.batch_size < 1:
    raise UsageError(f"--batch_size must be >= 1, got {args.batch_size}")
  if not 0.0 <= args.smooth < 1.0:
    raise UsageError(f"--smooth must be in [0, 1), got {args.smooth}")
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


def enable_compilation_cache(path: str) -> str:
  """Turns on JAX's persistent compilation cache in `path` (created) for this process,
  caching every program however quickly it compiled (the network's program of each batch
  size bucket, most of the CLI's cold start; bench/cold_start.py). A global JAX setting,
  so only the program entry (or an explicit --compilation_cache_dir) calls this, never
  an import. Returns the expanded path."""
  import jax  # pylint: disable=g-import-not-at-top

  path = os.path.abspath(os.path.expanduser(path))
  os.makedirs(path, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return path


def main(
  argv: Optional[Sequence[str]] = None,
  analyzer_factory: Callable = _default_factory,
  *,
  program: bool = False,
) -> int:
  """Runs the CLI; returns the exit status (0 fine, 1 some inputs failed, 2 usage error).

  Args:
    argv: [program, flags...] as absl passes it (None: sys.argv).
    analyzer_factory: (workdir, step, overrides) -> analyzer (tests pass a fake one).
    program: run as `python -m hyperface_jax.predict`: --compilation_cache_dir defaults
      to DEFAULT_CACHE_DIR (in-process calls leave JAX's global settings alone unless
      the flag is given).
  """
  argv = list(sys.argv if argv is None else argv)
  if any(a in _HELP_ARGS for a in argv[1:]):
    print(usage())
    return 0
  try:
    args, overrides = parse_args(argv)
  except UsageError as e:
    print(f"error: {e}\nUsage: python -m hyperface_jax.predict --help", file=sys.stderr)
    return 2
  if not os.path.exists(args.input):
    print(f"error: --input {args.input} does not exist", file=sys.stderr)
    return 2
  cache_dir = args.compilation_cache_dir
  if cache_dir is None and program:
    cache_dir = DEFAULT_CACHE_DIR
  if cache_dir:
    try:
      enable_compilation_cache(cache_dir)
    except OSError as e:  # an unwritable folder costs the speed-up, not the run
      print(f"warning: no compilation cache in {cache_dir}: {e}", file=sys.stderr)
  if args.task == "relations":
    return _relations(args, overrides)
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


def _relations(args, overrides) -> int:
  """--task=relations (inference/relations.py): per image OUT/NAME.json with `faces` and
  `relations` ([{"faces": [i, j], "traits": {name: p}}], empty below two faces) and
  OUT/NAME.png with the pairs drawn. Exit status as for faces."""
  from hyperface_jax.inference import relations  # pylint: disable=g-import-not-at-top

  try:
    boxes = relations.read_boxes(args.boxes)
    if boxes is None and not args.detector_workdir:
      raise ValueError("--task=relations needs --detector_workdir or --boxes to find faces")
    analyzer = relations.RelationAnalyzer.from_workdir(
      args.workdir, args.step, None if boxes is not None else args.detector_workdir, **overrides
    )
  except (FileNotFoundError, KeyError, ValueError) as e:
    print(f"error: --task=relations: {str(e).strip(chr(39))}", file=sys.stderr)
    return 2
  items, _ = discover(args.input, args.output, args.recursive)
  items = [(p, n) for p, n in items if not video.is_video(p)]
  done, failures, num_pairs = relations.predict_images(
    analyzer, items, args.output, args.max_side, boxes
  )
  print(f"done: {done} of {len(items)} image(s), {num_pairs} pair(s), in {args.output}")
  for path, reason in failures:
    print(f"  FAILED {path}: {reason}", file=sys.stderr)
  return 1 if failures or not items else 0


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  cli.run(functools.partial(main, program=True))
