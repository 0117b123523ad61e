r"""Builds a registered TFDS dataset of hyperface_jax (generic entry point for all datasets).

  python -m hyperface_jax.data.prepare synth_faces --data_dir=D \
      [--train_size=N --validation_size=N --test_size=N --seed=S --image_size=N]
  python -m hyperface_jax.data.prepare aflw --data_dir=D --manual_dir=M [--test_faces=N]
  python -m hyperface_jax.data.prepare celeba/in_the_wild --data_dir=D --manual_dir=M

NAME is positional (a registered builder, optionally NAME/CONFIG as TFDS spells it); the
rest are absl flags (`--helpfull` lists them). Builder-config flags select the builder's
`<Config>.make(...)` config: sizes / seed / image size for the synthetic builders
(`SynthFacesConfig`), `--test_faces` for aflw (`AflwConfig`); without them the builder's
default config is built. Real-data builders read --manual_dir (default: TFDS's
`<data_dir>/downloads/manual`).

Nothing is skipped silently: a dataset that is already prepared is reported and left as it
is (delete its directory to rebuild); a flag that does not apply to NAME, a config name
combined with config flags, --manual_dir for a builder that reads no files, and a missing or
empty manual directory are errors naming what to change.

Atomicity: TFDS (4.9) already writes a dataset into a temporary "incomplete.*_<version>"
directory next to the final one and renames it into place only after every split and the
dataset_info.json are written (tfds.core.utils.incomplete_dir, used by
DatasetBuilder.download_and_prepare), so a crash never leaves a half-built dataset that
`tfds.load` would accept. We rely on that instead of a second temp-dir layer.
"""

from __future__ import annotations

import inspect
import os
import sys
import time

import tensorflow_datasets as tfds
from absl import flags, logging

from hyperface_jax import cli
from hyperface_jax.data import builders as _builders  # noqa: F401  (registers the builders)
from hyperface_jax.data.builders import manual

SYNTH_BUILDERS = ("synth_faces", "synth_face_crops")
# Flags that select a builder config through its config class's `make(...)`.
_SIZE_FLAGS = ("train_size", "validation_size", "test_size", "seed", "image_size")
CONFIG_FLAGS = _SIZE_FLAGS + ("test_faces",)
_HELP_ARGS = cli.HELP_ARGS

# This tool's flags live in their own FlagValues, so importing the module (tests, bench,
# library use of `prepare()`) defines no global flag; `main(argv)` parses them.
FLAGS = flags.FlagValues()
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.", flag_values=FLAGS)
_MANUAL_DIR = flags.DEFINE_string(
  "manual_dir",
  None,
  "Folder with the original files of a real dataset (default: TFDS's <data_dir>/downloads/manual).",
  flag_values=FLAGS,
)
_CONFIG_HELP = {
  "train_size": "Synthetic builders: number of train scenes.",
  "validation_size": "Synthetic builders: number of validation scenes.",
  "test_size": "Synthetic builders: number of test scenes.",
  "seed": "Synthetic builders: render seed.",
  "image_size": "Synthetic builders: image side in pixels (0 = the renderer default).",
  "test_faces": "aflw: faces in the test split by the aflw_split rule (default 1000).",
}
_CONFIG_VALUES = {
  name: flags.DEFINE_integer(name, None, _CONFIG_HELP[name], flag_values=FLAGS)
  for name in CONFIG_FLAGS
}
flags.mark_flags_as_required(["data_dir"], flag_values=FLAGS)


def registered_names():
  """Names of the TFDS builders defined by hyperface_jax (module prefix match)."""
  names, unloadable = [], []
  for name in tfds.list_builders(with_community_datasets=False):
    try:
      cls = tfds.builder_cls(name)
    except Exception as e:  # pylint: disable=broad-except  (a broken foreign builder)
      unloadable.append(f"{name} ({type(e).__name__})")
      continue
    if cls.__module__.startswith("hyperface_jax."):
      names.append(name)
  if unloadable:
    logging.info(
      "Not listed (TFDS builders that do not import here, none of hyperface_jax's): %s",
      ", ".join(unloadable),
    )
  return sorted(names)


def _builder_cls(base):
  """The hyperface_jax builder class called `base`, or ValueError listing the known ones."""
  try:
    cls = tfds.builder_cls(base)
  except Exception:  # pylint: disable=broad-except  (unknown or unloadable: listed below)
    cls = None
  if cls is None or not cls.__module__.startswith("hyperface_jax."):
    raise ValueError(f"unknown dataset {base!r}; registered: {', '.join(registered_names())}")
  return cls


def make_builder(name, data_dir, manual_dir=None, **config_values):
  """The TFDS builder of `name` in `data_dir`, every flag combination checked.

  Args:
    name: a registered hyperface_jax builder name, optionally with a builder config
      as TFDS spells it ("celeba/in_the_wild").
    data_dir: TFDS data directory.
    manual_dir: directory with manually downloaded raw data (real datasets only).
    **config_values: CONFIG_FLAGS values (None values are ignored), passed to the
      builder's config class `make(...)`.

  Returns:
    The tfds builder (nothing built yet).

  Raises:
    ValueError: an unknown name or config, config values the builder does not take, a
      config name together with config values, or manual_dir for a builder that reads
      no original files.
  """
  base, _, config_name = name.partition("/")
  cls = _builder_cls(base)
  if config_name:
    known = [c.name for c in cls.BUILDER_CONFIGS]
    if config_name not in known:
      raise ValueError(
        f"dataset {base!r} has no config {config_name!r}; known: {', '.join(known) or 'none'}"
      )
  if manual_dir is not None and not getattr(cls, "MANUAL_DOWNLOAD_INSTRUCTIONS", None):
    raise ValueError(
      f"--manual_dir is for datasets built from original files; {base!r} reads none "
      f"(it is generated), so drop --manual_dir."
    )
  values = {k: v for k, v in config_values.items() if v is not None}
  kwargs = {}
  if values:
    flag_list = ", ".join(f"--{k}" for k in sorted(values))
    if config_name:
      raise ValueError(
        f"{flag_list} and the config name in {name!r} both select a config of {base!r}; "
        f"give either {name!r} or {flag_list}, not both."
      )
    config_cls = type(cls.BUILDER_CONFIGS[0]) if cls.BUILDER_CONFIGS else None
    accepted = (
      set(inspect.signature(config_cls.make).parameters)
      if config_cls is not None and hasattr(config_cls, "make")
      else set()
    )
    unknown = sorted(set(values) - accepted)
    if unknown:
      takes = ", ".join(f"--{k}" for k in CONFIG_FLAGS if k in accepted) or "none"
      raise ValueError(
        f"{', '.join(f'--{k}' for k in unknown)}: not a config flag of {base!r} (its "
        f"config flags: {takes}; the synthetic builders take --{', --'.join(_SIZE_FLAGS)}, "
        "aflw takes --test_faces)."
      )
    kwargs["config"] = config_cls.make(**values)
  return tfds.builder(name, data_dir=data_dir, **kwargs)


def check_manual_dir(builder, data_dir, manual_dir) -> None:
  """Raises ValueError when a real-data builder's manual directory is missing or empty."""
  instructions = getattr(type(builder), "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
  if not instructions:
    return
  where = manual_dir
  note = ""
  if where is None:
    where = os.path.join(os.fspath(data_dir), "downloads", "manual")
    note = " (no --manual_dir was given, so TFDS's default <data_dir>/downloads/manual)"
  if not os.path.isdir(where) or not os.listdir(where):
    state = "is empty" if os.path.isdir(where) else "does not exist"
    raise ValueError(
      f"{builder.name} is built from its original files, but the manual directory "
      f"{where}{note} {state}. Pass --manual_dir=<folder with the original files>. "
      f"{instructions.strip()}"
    )


def prepare(name, data_dir, manual_dir=None, **config_values):
  """Builds dataset `name` under data_dir and returns (builder, seconds).

  A dataset that is already prepared is logged and left as it is (seconds 0.0).

  Args:
    name: a registered hyperface_jax builder name, optionally with a builder config
      as TFDS spells it ("celeba/in_the_wild").
    data_dir: TFDS data directory.
    manual_dir: directory with manually downloaded raw data (real datasets).
    **config_values: train_size, validation_size, test_size, seed, image_size (synthetic
      builders), test_faces (aflw); None values are ignored.
  Returns:
    (tfds builder, build seconds).
  """
  builder = make_builder(name, data_dir, manual_dir, **config_values)
  if builder.is_prepared():
    logging.warning(
      "%s is already prepared at %s; nothing was built (delete that directory to rebuild).",
      name,
      builder.data_dir,
    )
    return builder, 0.0
  return builder, build(builder, data_dir, manual_dir)


def build(builder, data_dir, manual_dir=None) -> float:
  """Builds an unprepared `builder` (manual directory checked first); returns seconds."""
  check_manual_dir(builder, data_dir, manual_dir)
  start = time.time()
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return time.time() - start


def _describe(name, builder):
  config = builder.builder_config.name if builder.builder_config else "no config"
  counts = {k: v.num_examples for k, v in builder.info.splits.items()}
  return f"{name} ({config}) at {builder.data_dir}: {counts}"


def main(argv) -> int:
  """In-process entry point: argv = [program, NAME, --flag=value, ...]; returns the status.

  0 built (or already prepared, which it says; also for --help), 2 a usage or input error
  (printed to stderr as one `error: ...` line).
  """
  if any(a in _HELP_ARGS for a in argv[1:]):
    print(f"{__doc__}\n{FLAGS.get_help()}")
    return 0
  for flag_name in list(FLAGS):  # every call starts from the defaults (also after an error)
    FLAGS[flag_name].unparse()
  try:
    rest = FLAGS(list(argv))
  except flags.Error as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if len(rest) != 2:
    got = f"got {rest[1:]}" if len(rest) > 2 else "got none"
    print(
      f"error: expected exactly one dataset NAME (e.g. synth_faces, aflw, "
      f"celeba/in_the_wild); {got}.",
      file=sys.stderr,
    )
    return 2
  name = rest[1]
  values = {k: holder.value for k, holder in _CONFIG_VALUES.items()}
  try:
    builder = make_builder(name, _DATA_DIR.value, _MANUAL_DIR.value, **values)
    if builder.is_prepared():
      print(
        f"already prepared, nothing built: {_describe(name, builder)}. Delete "
        f"{builder.data_dir} to rebuild it."
      )
      return 0
    seconds = build(builder, _DATA_DIR.value, _MANUAL_DIR.value)
  # ValueError includes manual.AnnotationError and the aflw builder's SplitTooSmall.
  except (ValueError, manual.ManualFileMissing, manual.TooManyBadImages) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"built {_describe(name, builder)} in {seconds:.1f} s")
  return 0


if __name__ == "__main__":
  cli.run(main)
