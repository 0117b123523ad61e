"""Builds a registered TFDS dataset of hyperface_jax (generic entry point for all datasets).

  python -m hyperface_jax.data.prepare synth_faces --data_dir=D \
      [--train_size=N --validation_size=N --test_size=N --seed=S --image_size=N]
  python -m hyperface_jax.data.prepare aflw --data_dir=D --manual_dir=M
  python -m hyperface_jax.data.prepare celeba/in_the_wild --data_dir=D --manual_dir=M

Size / seed / image-size flags select a `SynthFacesConfig.make(...)` config for the synthetic
builders; without them the "default" config is built. Real-data builders read manual_dir.

Atomicity: TFDS (4.9) already writes a dataset into a temporary "incomplete.*_<version>"
directory next to the final one and renames it into place only after every split and the
dataset_info.json are written (tfds.core.utils.incomplete_dir, used by
DatasetBuilder.download_and_prepare), so a crash never leaves a half-built dataset that
`tfds.load` would accept. We rely on that instead of a second temp-dir layer.
"""

from __future__ import annotations

import argparse
import sys
import time

import tensorflow_datasets as tfds

import hyperface_jax.data  # noqa: F401  (registers the builders)
from hyperface_jax.data.builders import manual, synth_faces

SYNTH_BUILDERS = ("synth_faces", "synth_face_crops")
_SIZE_FLAGS = ("train_size", "validation_size", "test_size", "seed", "image_size")


def registered_names():
  """Names of the TFDS builders defined by hyperface_jax (module prefix match)."""
  names = []
  for name in tfds.list_builders(with_community_datasets=False):
    try:
      cls = tfds.builder_cls(name)
    except Exception:  # pylint: disable=broad-except  (a broken foreign builder)
      continue
    if cls.__module__.startswith("hyperface_jax."):
      names.append(name)
  return sorted(names)


def prepare(name, data_dir, manual_dir=None, **sizes):
  """Builds dataset `name` under data_dir and returns (builder, seconds).

  Args:
    name: a registered hyperface_jax builder name, optionally with a builder config
      as TFDS spells it ("celeba/in_the_wild").
    data_dir: TFDS data directory.
    manual_dir: directory with manually downloaded raw data (real datasets).
    **sizes: train_size, validation_size, test_size, seed, image_size (synthetic only;
      None values are ignored).
  Returns:
    (tfds builder, build seconds).
  """
  names = registered_names()
  base, _, config_name = name.partition("/")
  if base not in names:
    raise ValueError(f"unknown dataset {base!r}; registered: {', '.join(names)}")
  if config_name:
    known = [c.name for c in tfds.builder_cls(base).BUILDER_CONFIGS]
    if config_name not in known:
      raise ValueError(f"dataset {base!r} has no config {config_name!r}; known: {', '.join(known)}")
  sizes = {k: v for k, v in sizes.items() if v is not None}
  kwargs = {}
  if sizes:
    if base not in SYNTH_BUILDERS or config_name:
      raise ValueError(f"size/seed flags apply to {SYNTH_BUILDERS} only, not {name!r}")
    kwargs["config"] = synth_faces.SynthFacesConfig.make(**sizes)
  builder = tfds.builder(name, data_dir=data_dir, **kwargs)
  start = time.time()
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder, time.time() - start


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("name")
  parser.add_argument("--data_dir", required=True)
  parser.add_argument("--manual_dir", default=None)
  for flag in _SIZE_FLAGS:
    parser.add_argument(f"--{flag}", type=int, default=None)
  args = parser.parse_args(argv)
  try:
    builder, seconds = prepare(
      args.name, args.data_dir, args.manual_dir, **{k: getattr(args, k) for k in _SIZE_FLAGS}
    )
  except (ValueError, manual.ManualFileMissing, manual.TooManyBadImages) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  counts = {k: v.num_examples for k, v in builder.info.splits.items()}
  print(
    f"built {args.name} ({builder.builder_config.name if builder.builder_config else ''}) "
    f"at {builder.data_dir}: {counts} in {seconds:.1f} s"
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
