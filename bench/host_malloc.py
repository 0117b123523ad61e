r"""Train-step time, page faults and kernel time under each host malloc mode.

  PYTHONPATH=. .venv/bin/python bench/host_malloc.py [--configs=hyperface_alexnet@32,demo] \
      [--rounds=2] [--warmup=5] [--steps=6] [--output=FILE.json]

For every config (`NAME[:ARG][@BATCH]`, as bench/train_step_lib.py load_config) and round,
two fresh processes, one per `--host_malloc` mode of hyperface_jax/host_memory.py
("system": glibc's defaults; "retain": freed memory kept mapped), each build the real train
step (train_step_lib.build_train_step: the config's model, losses, weighting, optimiser),
run `--warmup` steps (compilation, and the heap growing to its working size: steps are
dispatched asynchronously, so the next step's temporaries are allocated while the last
one's are still live) and then `--steps` timed steps on one random region batch. Each
process reports per step: wall ms, minor page faults (`ru_minflt`, as MB of 4 KiB pages),
user and kernel CPU seconds (`ru_utime`, `ru_stime`), and its peak resident memory
(`ru_maxrss`). The modes alternate within a round, so drift in the machine's speed hits
both; the table gives medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MODES = ("system", "retain")


def child(config_name: str, mode: str, warmup: int, steps: int) -> dict:
  """One process's measurement (runs in the subprocess)."""
  from hyperface_jax import host_memory

  applied = host_memory.configure(mode)  # first, before jax starts its threads
  import resource

  import jax
  import numpy as np
  from model_flops import random_batch
  from train_step_lib import build_train_step, load_config

  from hyperface_jax import sharding

  config = load_config(config_name)
  mesh = sharding.make_mesh(jax.devices()[:1])
  _, step, state = build_train_step(config, mesh, seed=0)
  rng = np.random.default_rng(0)
  batch = sharding.global_batch(mesh, random_batch(rng, config.batch_size, config.input_size))
  for _ in range(warmup):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  wall = time.perf_counter() - t0
  after = resource.getrusage(resource.RUSAGE_SELF)
  return {
    "applied": applied,
    "ms_per_step": 1e3 * wall / steps,
    "images_per_s": steps * config.batch_size / wall,
    "fault_mb_per_step": (after.ru_minflt - before.ru_minflt) * 4096 / 1e6 / steps,
    "user_s_per_step": (after.ru_utime - before.ru_utime) / steps,
    "sys_s_per_step": (after.ru_stime - before.ru_stime) / steps,
    "max_rss_mb": after.ru_maxrss / 1024,  # Linux reports KiB
  }


def run_child(config_name: str, mode: str, warmup: int, steps: int) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__), f"--child={mode}", f"--configs={config_name}"]
  cmd += [f"--warmup={warmup}", f"--steps={steps}"]
  done = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if done.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--configs", default="hyperface_alexnet@32,demo")
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--warmup", type=int, default=5)
  p.add_argument("--steps", type=int, default=6)
  p.add_argument("--output", default="")
  p.add_argument("--child", default="", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.child:
    print(json.dumps(child(args.configs, args.child, args.warmup, args.steps)))
    return
  load = os.getloadavg()[0]
  results = {}
  for name in [c for c in args.configs.split(",") if c]:
    runs = {m: [] for m in MODES}
    for _ in range(args.rounds):
      for mode in MODES:
        runs[mode].append(run_child(name, mode, args.warmup, args.steps))
    results[name] = runs
  print(f"load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}\n")
  print(
    "| config | host_malloc | ms / step | images/s | speed-up | page faults / step "
    "| user CPU s / step | kernel CPU s / step | peak RSS MB |"
  )
  print("|---|---|---|---|---|---|---|---|---|")
  for name, runs in results.items():
    med = {m: {k: statistics.median(r[k] for r in runs[m]) for k in runs[m][0]} for m in MODES}
    for mode in MODES:
      r = med[mode]
      speedup = med["system"]["ms_per_step"] / r["ms_per_step"]
      print(
        f"| {name} | {mode} | {r['ms_per_step']:.0f} | {r['images_per_s']:.1f} | "
        f"{speedup:.2f}x | {r['fault_mb_per_step']:.0f} MB | {r['user_s_per_step']:.2f} | "
        f"{r['sys_s_per_step']:.2f} | {r['max_rss_mb']:.0f} |"
      )
  if args.output:
    from run_record import write_run_record

    write_run_record(args.output, load_average=load, results=results)


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  main()
