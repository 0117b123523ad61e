"""Optimiser and learning-rate schedule from the config.

docs/papers.md section 1.7: the paper trains with SGD (Caffe); its learning rate,
momentum and batch size are unknown, so the documented default is TK's
MomentumSGD (lr 0.01, momentum 0.9) with weight decay 5e-4 (Caffe AlexNet).
`config.optim.freeze` (regexes) freezes parameters (`with_frozen`, docs/surgery.md).
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from hyperface_jax import surgery


def make_schedule(config, total_steps: int) -> optax.Schedule:
  """`config.schedule.name` in {constant, cosine, step}, with linear warm-up."""
  sched = config.schedule
  lr = config.lr
  warmup = int(sched.get("warmup_steps", 0))
  if sched.name == "constant":
    main = optax.constant_schedule(lr)
  elif sched.name == "cosine":
    main = optax.cosine_decay_schedule(
      lr, max(total_steps - warmup, 1), alpha=sched.get("alpha", 0.0)
    )
  elif sched.name == "step":
    boundaries = {int(s) - warmup: sched.get("factor", 0.1) for s in sched.get("boundaries", ())}
    main = optax.piecewise_constant_schedule(lr, boundaries)
  else:
    raise ValueError(
      f"Unknown config.schedule.name {sched.name!r}; expected 'constant', 'cosine' or 'step'."
    )
  if warmup:
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])
  return main


def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  """SGD-momentum / Adam(W) with optional clipping and weight decay."""
  opt = config.optim
  schedule = make_schedule(config, total_steps)
  chain = []
  if opt.get("grad_clip_norm"):
    chain.append(optax.clip_by_global_norm(opt.grad_clip_norm))
  if opt.name == "sgd":
    if opt.get("weight_decay"):
      chain.append(optax.add_decayed_weights(opt.weight_decay))
    chain.append(
      optax.sgd(schedule, momentum=opt.get("momentum", 0.9), nesterov=opt.get("nesterov", False))
    )
  elif opt.name == "adamw":
    chain.append(optax.adamw(schedule, weight_decay=opt.get("weight_decay", 0.0)))
  elif opt.name == "adam":
    chain.append(optax.adam(schedule))
  else:
    raise ValueError(f"Unknown config.optim.name {opt.name!r}; expected 'sgd', 'adam' or 'adamw'.")
  optimizer = optax.chain(*chain)
  freeze = tuple(opt.get("freeze", ()) or ())
  return with_frozen(optimizer, freeze) if freeze else optimizer


def with_frozen(
  optimizer: optax.GradientTransformation, freeze: Sequence[str]
) -> optax.GradientTransformation:
  """Freezes the parameters whose "/" name fully matches a `freeze` regex.

  `optax.multi_transform` routes the frozen parameters to `optax.set_to_zero()`
  and the others to `optimizer`, so frozen values stay bit-for-bit the same and
  carry no optimiser state (no momentum / Adam moments). Consequences, by design:
  - weight decay, gradient clipping and the learning rate act on the trained
    parameters only (clip_by_global_norm sees only their gradients);
  - gradients of frozen parameters are still computed (and counted in the logged
    train/grad_norm); freezing saves optimiser memory, not backward compute;
  - BatchNorm running statistics (model_state, not params) of frozen layers keep
    following the training data, as PyTorch's requires_grad=False does: only the
    learned scale/bias are frozen. Use a BatchNorm-free model or norm="none" to
    avoid drift (the paper's AlexNet has no BatchNorm).
  The labels are computed from the parameter tree at `init`, and a regex that
  matches no parameter is an error naming it (surgery.label_tree).

  Args:
    optimizer: the transformation for the trained parameters.
    freeze: regexes (re.fullmatch, e.g. "backbone/.*").

  Returns:
    The combined transformation.
  """
  labels = lambda params: surgery.label_tree(params, {"frozen": tuple(freeze)}, default="trained")
  return optax.multi_transform({"trained": optimizer, "frozen": optax.set_to_zero()}, labels)


def head_owners(params, tasks: Sequence[str], head_pattern: str) -> Dict[str, Optional[str]]:
  """{"/" parameter name: the task whose head it belongs to, or None}.

  A task's head is every parameter whose name fully matches `head_pattern` with `{task}`
  replaced by the escaped task name (config.weighting.head_pattern; the default matches
  models/heads.py's fc_<task>1 / fc_<task>2 under a "heads..." module).

  Args:
    params: the parameter tree (nested dicts).
    tasks: task names.
    head_pattern: the regex with `{task}`.

  Returns:
    The owner of every parameter, in `surgery.flatten` order.

  Raises:
    ValueError: a task's pattern matches no parameter, or a parameter matches two tasks.
  """
  if "{task}" not in head_pattern:
    raise ValueError(f"weighting.head_pattern {head_pattern!r} must contain '{{task}}'.")
  names = list(surgery.flatten(params))
  patterns = {t: re.compile(head_pattern.replace("{task}", re.escape(t))) for t in tasks}
  owners: Dict[str, Optional[str]] = {}
  for name in names:
    hits = [t for t, p in patterns.items() if p.fullmatch(name)]
    if len(hits) > 1:
      raise ValueError(f"weighting.head_pattern: parameter {name!r} matches the heads of {hits}.")
    owners[name] = hits[0] if hits else None
  headless = [t for t in tasks if t not in owners.values()]
  if headless:
    raise ValueError(
      f"weighting.head_pattern {head_pattern!r} matches no parameter of task(s) {headless}, "
      f"so a stopped task's head could not be frozen; names look like {names[-4:]}."
    )
  return owners


def freeze_stopped_heads(old_params, new_params, updates, active, head_pattern: str):
  """Keeps the heads of stopped tasks (`active[task]` == 0) bit for bit.

  The optimiser's updates of those parameters are zeroed and their old values are
  selected (not old + 0, which would turn -0.0 into +0.0): with weight decay and momentum
  a zero loss weight alone still moves a head. The optimiser state keeps evolving; nothing
  reads it while the task stays stopped.

  Args:
    old_params: the parameters before the step.
    new_params: `optax.apply_updates(old_params, updates)`.
    updates: the optimiser's updates.
    active: {task: scalar, 1 training, 0 stopped}.
    head_pattern: see `head_owners`.

  Returns:
    (params, updates) with the stopped heads' entries replaced.
  """
  owners = head_owners(old_params, tuple(active), head_pattern)
  frozen = {n: jnp.asarray(active[t]) <= 0 for n, t in owners.items() if t is not None}
  name = lambda path: "/".join(str(getattr(k, "key", k)) for k in path)

  def pick(path, x, alt):
    n = name(path)
    return jnp.where(frozen[n], alt, x) if n in frozen else x

  params = jax.tree_util.tree_map_with_path(pick, new_params, old_params)
  zeros = jax.tree.map(jnp.zeros_like, updates)
  updates = jax.tree_util.tree_map_with_path(pick, updates, zeros)
  return params, updates
