"""Peak memory of the `aflw` builder at two dataset sizes: flat peak = streaming.

  .venv/bin/python bench/builder_memory.py [--sizes 1000 4000] [--height 120 --width 160] \
      [--tfds_buffer_mb 16]

For each size, writes a fixture AFLW distribution in the original format
(tests/fixtures_aflw.py: aflw.sqlite + JPEGs, 2 fully annotated faces per image), then builds
it in a fresh subprocess and reports that process's peak resident memory (ru_maxrss) and the
build time. If the builder held images or rows in memory, the peak would grow by about
size x H x W x 3 bytes (e.g. +173 MB from 1000 to 4000 images of 120 x 160). TFDS itself
buffers serialized examples up to 1000 MB before spilling to disk (tensorflow_datasets
core/shuffle.py MAX_MEM_BUFFER_SIZE); --tfds_buffer_mb lowers that buffer to show the
builder's own memory.
Results go to stdout as JSON lines; docs/datasets/aflw.md quotes them.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))


def child(manual_dir, data_dir, tfds_buffer_mb):
  """Builds `aflw` and prints {"seconds", "peak_rss_mb"} (runs in its own process)."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core import shuffle

  if tfds_buffer_mb:
    # TFDS keeps serialized examples in memory up to this size before spilling to disk
    # (default 1000 MB); a small value isolates the builder's own memory.
    shuffle.MAX_MEM_BUFFER_SIZE = int(tfds_buffer_mb) << 20

  from hyperface_jax.data.builders import aflw  # noqa: F401  (registers)

  start = time.time()
  builder = tfds.builder("aflw", data_dir=data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  seconds = time.time() - start
  peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
  counts = {k: v.num_examples for k, v in builder.info.splits.items()}
  print(
    json.dumps(
      {"seconds": round(seconds, 1), "peak_rss_mb": round(peak_kb / 1024, 1), "splits": counts}
    )
  )


def measure(num_images, height, width, tfds_buffer_mb):
  import fixtures_aflw as fx

  with tempfile.TemporaryDirectory() as tmp:
    manual_dir = os.path.join(tmp, "manual")
    start = time.time()
    fx.write_aflw(manual_dir, fx.many_images(num_images, size=(height, width)))
    fixture_seconds = time.time() - start
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
      [
        sys.executable,
        __file__,
        "--child",
        manual_dir,
        os.path.join(tmp, "data"),
        "--tfds_buffer_mb",
        str(tfds_buffer_mb),
      ],
      capture_output=True,
      text=True,
      env=env,
      check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
  result.update(
    images=num_images,
    image_hw=[height, width],
    tfds_buffer_mb=tfds_buffer_mb,
    fixture_seconds=round(fixture_seconds, 1),
  )
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
  parser.add_argument("--height", type=int, default=120)
  parser.add_argument("--width", type=int, default=160)
  parser.add_argument(
    "--tfds_buffer_mb",
    type=int,
    default=0,
    help="TFDS shuffle buffer in MB (0 = TFDS default, 1000 MB)",
  )
  parser.add_argument("--child", nargs=2, metavar=("MANUAL_DIR", "DATA_DIR"))
  args = parser.parse_args()
  if args.child:
    child(*args.child, args.tfds_buffer_mb)
    return
  for size in args.sizes:
    print(json.dumps(measure(size, args.height, args.width, args.tfds_buffer_mb)), flush=True)


if __name__ == "__main__":
  main()
