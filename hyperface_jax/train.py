"""The one training loop for every system (docs/design.md section 2).

init (shape-first) -> restore-or-init -> step -> log -> evaluate -> checkpoint
-> final evaluation, results.json and report. Systems differ by config:
model, losses, weighting, data and evaluator are chosen by name.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Dict

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from etils import epath

from hyperface_jax import (
  atomic_io,
  bridging,
  checkpointing,
  config_checks,
  model_init,
  optim,
  preemption,
  registry,
  sharding,
  steps,
  tasks,
  weighting,
)
from hyperface_jax.data import inputs, prefetch
from hyperface_jax.evaluation import runner
from hyperface_jax.metric_writer import MetricWriter


class NonFiniteLossError(FloatingPointError):
  """Raised when a task loss becomes NaN or infinite."""


def _check_finite(step: int, metrics: Dict[str, Any]) -> None:
  """Stops on a non-finite loss, or gradient (which would poison the parameters
  that the next checkpoint saves even while the losses still look finite)."""
  bad = [
    k
    for k, v in metrics.items()
    if k.startswith(("train/loss", "train/grad_norm")) and not np.all(np.isfinite(v))
  ]
  if bad:
    tasks = [k[len("train/loss/") :] for k in bad if k.startswith("train/loss/")]
    raise NonFiniteLossError(
      f"Non-finite loss at step {step} in task(s) {tasks or ['total / gradient']} "
      f"({', '.join(f'{k}={float(metrics[k])}' for k in bad)}). The run stopped; "
      "the last good checkpoint was left intact."
    )


def build_model(config):
  """The module `config.model_name` with the keyword arguments `config.model`, computing in
  `config.compute_dtype` (config_checks.COMPUTE_DTYPES). bfloat16 is mixed precision: the
  parameters (flax `param_dtype`), the optimiser state, the BatchNorm statistics and the
  losses stay float32 (steps.py casts the outputs); a float32 run passes no `dtype`, so
  models without that field build as before."""
  kwargs = dict(config.model)
  compute_dtype = config.get("compute_dtype") or "float32"
  if compute_dtype != "float32":
    kwargs["dtype"] = jnp.dtype(compute_dtype)
  return registry.MODELS.get(config.model_name)(**kwargs)


def build(config, mesh):
  """Model, loss function, optimiser, weighting and the abstract train state.

  The loss is the declared loss of every task in `config.tasks` (hyperface_jax/tasks.py);
  the model must output each of them with the declared shape (checked at trace time).
  """
  del mesh  # the state is replicated; kept for a sharded-state variant
  model = build_model(config)
  task_list = tasks.resolve(config.tasks)
  loss_fn = functools.partial(tasks.compute_losses, task_list)
  optimizer = optim.make_optimizer(config, config.total_steps)
  names = tuple(t.name for t in task_list)
  weigher = weighting.make_weighting(config.weighting, names)
  image_shape = (1, config.input_size, config.input_size, 3)
  init = lambda rng: steps.init_state(model, optimizer, weigher, names, rng, image_shape)
  return model, loss_fn, optimizer, weigher, init


def prng_key(config) -> jax.Array:
  """The run's root key with the config's generator (`config.prng_impl`), without
  changing JAX's global default (a library must not)."""
  return jax.random.key(config.seed, impl=config.get("prng_impl"))


def restore_or_init(config, mesh, init, ckpt: checkpointing.Checkpointer):
  """Restores the latest checkpoint or initialises (shape first, then jitted init),
  then loads `config.model_init` into a fresh state (model_init.py)."""
  rng = prng_key(config)
  try:
    abstract = jax.eval_shape(init, rng)
  except ValueError as e:  # the model refuses the config (e.g. an input size it cannot take)
    raise config_checks.model_error(config, e) from e
  repl = sharding.replicated(mesh)
  if ckpt.latest_step() is not None:
    target = checkpointing.abstract_with_sharding(abstract, repl)
    state = ckpt.restore(target)
    logging.info("Resumed from %s step %d.", ckpt.directory, int(state.step))
    return state
  shardings = jax.tree.map(lambda _: repl, abstract)
  state = jax.jit(init, out_shardings=shardings)(rng)
  if config.get("model_init"):  # only a fresh run: a resumed one restored above
    state = model_init.initialise_from(state, config, repl)
  return state


def train_and_evaluate(config, workdir: str) -> Dict[str, float]:
  """Trains `config` in `workdir` (resuming if it holds checkpoints), evaluates.

  Returns:
    The flat final results (also written to `workdir/results.json`).
  """
  config_checks.check(config)  # absurd values: one line naming the key (exit 2)
  make_workdir(workdir)
  mesh = sharding.make_mesh()
  local_batch = sharding.check_batch_size(config.batch_size, mesh)
  first_row = jax.process_index() * local_batch
  logging.info(
    "Process %d of %d generates rows %d-%d of each global batch of %d (%d local devices).",
    jax.process_index(),
    jax.process_count(),
    first_row,
    first_row + local_batch - 1,
    config.batch_size,
    jax.local_device_count(),
  )
  sharding.check_batch_size(config.eval_batch_size, mesh, "eval_batch_size")
  _write_config(config, workdir)

  data = inputs.load(config)
  model, loss_fn, optimizer, weigher, init = build(config, mesh)
  ckpt = checkpointing.Checkpointer(
    workdir,
    max_to_keep=config.keep_checkpoints,
    async_save=config.get("async_checkpointing", True),
  )
  # docs/papers.md 3.3: bridging templates, fitted once and stored beside the checkpoints
  # (checked against the config before anything is restored).
  templates = bridging.prepare(config, workdir)
  state = restore_or_init(config, mesh, init, ckpt)
  state = bridging.attach(state, templates, sharding.replicated(mesh))
  start = int(state.step)
  writer = MetricWriter(workdir, resume_step=start)

  train_step = steps.make_train_step(
    mesh,
    model=model,
    loss_fn=loss_fn,
    optimizer=optimizer,
    weighting=weigher,
    seed=config.seed,
    prng_impl=config.get("prng_impl"),
  )
  eval_step = steps.make_eval_step(mesh, model=model, loss_fn=loss_fn)
  validator = runner.validation(mesh, eval_step, data, config)  # regions, or face pairs

  # Host batches of steps start + 1 .. total_steps, built ahead by config.data.workers
  # processes (data/prefetch.py; 0: here, inline); closed after the last one or when collected.
  batches = prefetch.Prefetcher(
    data.train_batch,
    local_batch,
    start,
    config.total_steps,
    workers=config.data.get("workers", 0),
    prefetch=config.data.get("prefetch", 2),
  )
  make_batch = lambda step: sharding.global_batch(mesh, batches.get(step))
  t0, last_step = time.time(), start
  next_batch = make_batch(start + 1) if start < config.total_steps else None
  # SIGTERM: save at the next step boundary and stop (hyperface_jax/preemption.py).
  watcher = preemption.Watcher().install()
  # Metrics stay on the device and are fetched in one transfer at each log step, and before
  # every evaluation and checkpoint save, instead of a device sync every step.
  pending = []  # [(step, device metrics)] not fetched yet

  def fetch():
    """The pending steps' metrics on the host (those of the latest step returned); stops
    on the first step with a non-finite loss or gradient, before anything is saved."""
    fetched = sharding.to_host([m for _, m in pending])
    done = [s for s, _ in pending]
    pending.clear()
    try:
      for s, m in zip(done, fetched, strict=True):
        _check_finite(s, m)
    except NonFiniteLossError:
      watcher.uninstall()
      batches.close()  # the prefetching workers, if any
      ckpt.close()  # an asynchronous save of an earlier, good step completes first
      raise
    return fetched[-1] if fetched else None

  for step in range(start + 1, config.total_steps + 1):
    state, metrics = train_step(state, next_batch)  # dispatched asynchronously
    if step < config.total_steps:
      next_batch = make_batch(step + 1)  # host work overlaps the device step
    pending.append((step, metrics))  # on the device until the next log, evaluation or save
    if len(pending) > 1:  # at most two steps in flight: wait, without a transfer, for the last
      jax.block_until_ready(pending[-2][1]["train/loss"])
    if step % config.log_every == 0 or step == config.total_steps:
      metrics = fetch()  # this step's row (and a stop on the first bad step since the last)
      dt = time.time() - t0
      rate = (step - last_step) * config.batch_size / max(dt, 1e-9)
      eta = (config.total_steps - step) * config.batch_size / max(rate, 1e-9)
      metrics["train/examples_per_sec"] = rate
      writer.write(step, metrics)
      logging.info(
        "step %d/%d  loss %.4f  %.1f examples/s  ETA %.0f s",
        step,
        config.total_steps,
        metrics["train/loss"],
        rate,
        eta,
      )
      t0, last_step = time.time(), step
    if step % config.eval_every == 0 or step == config.total_steps:
      fetch()  # never evaluate (nor save, below) a state that a bad step has poisoned
      val_losses = validator.losses(state)
      state = state.replace(
        val_losses={
          t: jax.device_put(np.float32(v), sharding.replicated(mesh)) for t, v in val_losses.items()
        },
        # Counts evaluations: a weighting acts once per fresh result (weighting/).
        val_count=jax.device_put(np.int32(int(state.val_count) + 1), sharding.replicated(mesh)),
      )
      writer.write(step, {f"val/loss/{t}": v for t, v in val_losses.items()})
    saved = step % config.checkpoint_every == 0 or step == config.total_steps
    if saved:
      fetch()
      ckpt.save(step, state)
    if step < config.total_steps and watcher.stop_requested():  # all processes agree
      if not saved:
        fetch()
        ckpt.save(step, state)
      watcher.uninstall()
      batches.close()  # the prefetching workers, if any
      ckpt.close()  # complete on disk before the exit
      writer.close()
      raise preemption.Preempted(step, ckpt.directory)
  watcher.uninstall()
  batches.close()
  ckpt.close()

  results = runner.final_evaluation(config, workdir, mesh, eval_step, state, data)
  writer.close()
  return results


def make_workdir(workdir) -> None:
  """Creates `workdir` (a local folder or a cloud URL, through etils.epath).

  Raises:
    NotADirectoryError: `workdir` (or a parent) exists and is not a folder.
  """
  path = epath.Path(workdir)
  expected = "expected a folder, or a path where one can be created"
  if path.exists() and not path.is_dir():
    raise NotADirectoryError(f"--workdir={workdir} is a file; {expected}.")
  try:
    path.mkdir(parents=True, exist_ok=True)
  except (FileExistsError, NotADirectoryError) as e:  # a parent is a file
    where = f" ({e.filename})" if e.filename else ""
    raise NotADirectoryError(f"--workdir={workdir}: {e.strerror or e}{where}; {expected}.") from e


def write_initial_workdir(config, workdir: str) -> str:
  """Makes `workdir` a run of `config` at step 0: config.json and the initial train state
  as the step-0 checkpoint (what predict, evaluate and export read), without training.
  For tests and benchmarks of the tools that load a run (bench/cold_start.py)."""
  make_workdir(workdir)
  _write_config(config, workdir)
  mesh = sharding.make_mesh()
  init = build(config, mesh)[-1]
  ckpt = checkpointing.Checkpointer(workdir)
  ckpt.save(0, restore_or_init(config, mesh, init, ckpt))
  ckpt.close()
  return workdir


def _write_config(config, workdir: str) -> None:
  """Writes config.json; only the primary process (the others would race on the rename)."""
  if jax.process_index() != 0:
    return
  atomic_io.write_text_atomic(
    epath.Path(workdir) / "config.json", config.to_json_best_effort(indent=2)
  )
