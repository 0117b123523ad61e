"""HyperFace-AlexNet cost: params, XLA-counted GFLOPs per image, CPU train-step throughput.

Run: .venv/bin/python bench/model_flops.py [--max_seconds=30]
Prints a markdown table for the paper-size model (227 px, width 1) and the demo model
(input size and width from configs/demo.py when it exists, else 99 px, width 0.5).
GFLOPs come from `compiled.cost_analysis()["flops"]` (XLA's count: a multiply-add is 2 FLOPs).
Images/s is measured on whatever CPU runs this (numbers in the README name the machine).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from typing import Any, Dict, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hyperface_jax.models.hyperface import HyperFaceAlexNet  # noqa: E402

SIZE_KEYS = ("input_size", "image_size", "crop_size")


def find_key(tree: Any, keys: Tuple[str, ...]) -> Any:
  """First value under any of `keys` in a nested dict (depth first), or None."""
  if isinstance(tree, dict):
    for k in keys:
      if k in tree and not isinstance(tree[k], dict):
        return tree[k]
    for v in tree.values():
      found = find_key(v, keys)
      if found is not None:
        return found
  return None


def demo_setting() -> Tuple[int, float, str]:
  """(input size, width, source) of the demo model."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = os.path.join(root, "configs", "demo.py")
  if os.path.exists(path):
    try:
      spec = importlib.util.spec_from_file_location("demo_config", path)
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      cfg = module.get_config().to_dict()
      size, width = find_key(cfg, SIZE_KEYS), find_key(cfg, ("width",))
      if size is not None and width is not None:
        return int(size), float(width), "configs/demo.py"
    except Exception as e:  # A broken demo config must not stop the paper-size numbers.
      print(f"warning: could not read configs/demo.py ({e!r}); using defaults")
  return 99, 0.5, "defaults"


def cost_flops(compiled) -> float:
  """FLOPs from XLA cost analysis (a dict, or a list of per-module dicts in older JAX)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    return float(sum(c.get("flops", 0.0) for c in cost))
  return float(cost.get("flops", 0.0))


def numpy_params(model, images) -> Dict[str, Any]:
  """He-scaled random params built in NumPy (jitted threefry init compiles slowly on CPU)."""
  rng = np.random.default_rng(0)
  shapes = jax.eval_shape(model.init, jax.random.key(0), images)

  def fill(s):
    fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 1
    return jnp.asarray(rng.normal(size=s.shape) * np.sqrt(2.0 / fan_in) * 0.5, jnp.float32)

  return jax.tree.map(fill, shapes)["params"]


def measure(size: int, width: float, batch: int, max_seconds: float) -> Dict[str, float]:
  """Params, GFLOPs/image (forward, train step) and train-step images/s for one setting."""
  model = HyperFaceAlexNet(width=width)
  images = jnp.asarray(np.random.default_rng(1).normal(size=(batch, size, size, 3)), jnp.float32)
  params = numpy_params(model, images)
  tx = optax.sgd(1e-4, momentum=0.9)

  def loss_fn(p, x, key):
    out = model.apply({"params": p}, x, train=True, rngs={"dropout": key})
    return sum(jnp.sum(jnp.square(v)) for v in jax.tree.leaves(out)) / x.shape[0]

  def train_step(p, opt_state, x, key):
    loss, grads = jax.value_and_grad(loss_fn)(p, x, key)
    updates, opt_state = tx.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), opt_state, loss

  forward = jax.jit(lambda p, x: model.apply({"params": p}, x))
  fwd_flops = cost_flops(forward.lower(params, images).compile())
  opt_state = tx.init(params)
  key = jax.random.key(0, impl="rbg")
  step = jax.jit(train_step, donate_argnums=(0, 1))
  compiled = step.lower(params, opt_state, images, key).compile()
  step_flops = cost_flops(compiled)
  for _ in range(2):  # warm-up
    params, opt_state, loss = compiled(params, opt_state, images, key)
  jax.block_until_ready(loss)
  n, start = 0, time.perf_counter()
  while n < 10 and (n < 2 or time.perf_counter() - start < max_seconds):
    params, opt_state, loss = compiled(params, opt_state, images, key)
    jax.block_until_ready(loss)
    n += 1
  elapsed = time.perf_counter() - start
  return {
    "params": sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params)),
    "fwd_gflops": fwd_flops / batch / 1e9,
    "step_gflops": step_flops / batch / 1e9,
    "images_per_s": n * batch / elapsed,
    "steps": n,
    "loss_finite": bool(np.isfinite(loss)),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--max_seconds",
    type=float,
    default=30.0,
    help="time budget of the timed steps per model (at least 2 steps)",
  )
  args = parser.parse_args()
  demo_size, demo_width, source = demo_setting()
  rows = [("paper", 227, 1.0, 32), (f"demo ({source})", demo_size, demo_width, 64)]
  print(
    f"jax {jax.__version__}, backend {jax.default_backend()}, "
    f"{jax.device_count()} device(s), {os.cpu_count()} CPU(s)\n"
  )
  print(
    "| model | input | width | params | fwd GFLOPs/img | train-step GFLOPs/img "
    "| batch | train images/s (CPU) |"
  )
  print("|---|---|---|---|---|---|---|---|")
  for name, size, width, batch in rows:
    r = measure(size, width, batch, args.max_seconds)
    if not r["loss_finite"]:
      print(f"warning: non-finite loss for {name}")
    print(
      f"| {name} | {size} | {width:g} | {r['params']:,} | {r['fwd_gflops']:.3f} "
      f"| {r['step_gflops']:.3f} | {batch} | {r['images_per_s']:.1f} "
      f"({r['steps']} steps) |",
      flush=True,
    )


if __name__ == "__main__":
  main()
