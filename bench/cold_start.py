r"""Cold start of the predict CLI: process start to the first JSON written, with JAX's
persistent compilation cache off, cold (empty) and warm (filled by an earlier run).

  PYTHONPATH=. .venv/bin/python bench/cold_start.py [--workdir=runs/demo] [--repeats=3] \
      [--config=demo] [--predict_arg=--config.proposals.name=haar ...]

Each measured run is `python -m hyperface_jax.predict --workdir=W --input=IMAGE
--output=OUT --compilation_cache_dir=DIR` in a fresh process on one 640x480 image (a
synth_faces scene, bench/pipeline_latency.py): `off` passes an empty DIR (no cache), `cold`
a new empty folder each run, `warm` one folder that an unmeasured run filled first. The
time to the first JSON is polled every 10 ms (the file appears when the image is done);
`exit` is the process's wall time, `CPU` its user + system CPU seconds (all threads: on a
machine shared with other jobs, the part that does not depend on their load). Without
--workdir, an untrained workdir of configs/<--config>.py is written first (config.json and
the initialised state as an orbax checkpoint at step 0): the programs compiled are those of
a trained run of that config, but an untrained network keeps many more proposals (and IRP
candidates), so its analysis time is longer; --predict_arg=--config.max_proposals=256
bounds it. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))


def make_workdir(config_name: str, workdir: str) -> str:
  """An untrained workdir of configs/<config_name>.py (as tests/test_predict_cli.py)."""
  from hyperface_jax import train  # pylint: disable=g-import-not-at-top

  config = importlib.import_module(f"configs.{config_name}").get_config()
  return train.write_initial_workdir(config, workdir)


def write_image(path: str) -> str:
  import pipeline_latency  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  Image.fromarray(pipeline_latency.test_images(1)[0]).save(path)
  return path


def _children_cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


def run_once(args, workdir: str, image: str, cache_dir: str, out: str) -> tuple:
  """(seconds to the first JSON, seconds to the exit, CPU seconds) of one predict process."""
  shutil.rmtree(out, ignore_errors=True)
  command = [
    args.python,
    "-m",
    "hyperface_jax.predict",
    f"--workdir={workdir}",
    f"--input={image}",
    f"--output={out}",
    f"--compilation_cache_dir={cache_dir}",
    *args.predict_arg,
  ]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
  cpu0, t0 = _children_cpu_seconds(), time.perf_counter()
  proc = subprocess.Popen(
    command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
  )
  first = None
  while proc.poll() is None:
    if first is None and os.path.isdir(out) and any(f.endswith(".json") for f in os.listdir(out)):
      first = time.perf_counter() - t0
    time.sleep(0.01)
  total = time.perf_counter() - t0
  cpu = _children_cpu_seconds() - cpu0  # every thread of the (reaped) process
  log = proc.stdout.read()
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{log[-3000:]}")
  return (first if first is not None else total), total, cpu


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", default="", help="a trained workdir (default: an untrained one)")
  p.add_argument("--config", default="demo", help="configs/NAME.py of the untrained workdir")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--python", default=sys.executable)
  p.add_argument("--predict_arg", action="append", default=[], help="one more predict flag")
  args = p.parse_args(argv)
  scratch = tempfile.mkdtemp(prefix="cold_start_")
  try:
    workdir = args.workdir or make_workdir(args.config, os.path.join(scratch, "workdir"))
    image = write_image(os.path.join(scratch, "scene.png"))
    out = os.path.join(scratch, "out")
    rows = {}
    for mode in ("off", "cold", "warm"):
      warm_dir = os.path.join(scratch, "cache_warm")
      if mode == "warm":
        run_once(args, workdir, image, warm_dir, out)  # fills the cache, not measured
      times = []
      for i in range(args.repeats):
        cache = {"off": "", "cold": os.path.join(scratch, f"cache_cold_{i}"), "warm": warm_dir}
        times.append(run_once(args, workdir, image, cache[mode], out))
        first, total, cpu = times[-1]
        print(f"{mode} {i}: first JSON {first:.2f} s, exit {total:.2f} s, CPU {cpu:.2f} s")
      rows[mode] = times
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(warm_dir) for f in fs)
    files = sum(len(fs) for _, _, fs in os.walk(warm_dir))
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  import jax  # pylint: disable=g-import-not-at-top

  print(
    f"\nworkdir: {args.workdir or f'untrained configs/{args.config}.py'}; machine: "
    f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, JAX "
    f"{jax.__version__} on {jax.default_backend()}; warm cache: {files} files, "
    f"{size / 2**20:.1f} MiB\n"
  )
  runs = " | ".join(f"run {i + 1} s" for i in range(args.repeats))
  print(f"| cache | {runs} | median to first JSON s | median to exit s | median CPU s |")
  print("|---" * (args.repeats + 4) + "|")
  for mode, times in rows.items():
    cells = " | ".join(f"{t[0]:.2f}" for t in times)
    first, total, cpu = (statistics.median(t[k] for t in times) for k in range(3))
    print(f"| {mode} | {cells} | {first:.2f} | {total:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
  main()
