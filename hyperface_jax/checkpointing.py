"""Orbax checkpoints of the train state (the only module that imports orbax).

Orbax's CheckpointManager writes each step into a temporary directory and
renames it only once complete, so a crash mid-save never corrupts the last
good checkpoint; on restart the half-written temporary is ignored.
Two ways back:
  * `Checkpointer.restore`: the whole train state, into a full abstract target
    (docs/design.md traps: restoring into an empty or partial target silently skips
    subtrees); the train loop resumes with it.
  * `restore_variables`: only the model variables (params + model_state) of a run, the
    ONE path of everything that runs or reuses a model without training it (inference,
    model_init, surgery): the target is the checkpoint's own metadata of those two
    subtrees, so it needs neither the model nor the optimiser that wrote it, and the
    arrays come back exactly as saved.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

_ITEM = "default"  # the directory of the one item CheckpointManager saves per step
_VARIABLE_KEYS = ("params", "model_state")  # the model variables of a train state


class Checkpointer:
  """Saves and restores `TrainState`s under `workdir/checkpoints`."""

  def __init__(self, workdir: str, *, max_to_keep: int = 3):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, step: int, state: Any) -> None:
    """Saves `state` as `step` (blocking until it is complete on disk)."""
    self._manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
    self._manager.wait_until_finished()

  def restore(self, abstract_state: Any, step: Optional[int] = None) -> Any:
    """Restores into the full abstract target (with shardings).

    Args:
      abstract_state: pytree of `jax.ShapeDtypeStruct` with shardings, the
        exact structure of the saved state.
      step: step to restore; the latest if None.

    Returns:
      The restored state.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {self.directory}.")
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def abstract_with_sharding(abstract_tree: Any, sharding) -> Any:
  """Attaches `sharding` to every leaf of an eval_shape'd tree."""
  return jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract_tree
  )


def resolve_checkpoint(path: str, step: Optional[int] = None) -> str:
  """The orbax item directory of a run's checkpoint.

  Args:
    path: a workdir (holding `checkpoints/`), its `checkpoints/` directory, one step
      directory `checkpoints/<step>`, or that step's item directory `<step>/default`.
    step: the step to use with a workdir or checkpoints directory (latest if None).

  Returns:
    The `.../<step>/default` directory that `restore_variables` reads.
  """
  path = os.path.abspath(path)
  if os.path.basename(path) == _ITEM and os.path.basename(os.path.dirname(path)).isdigit():
    return path
  if os.path.isdir(os.path.join(path, _ITEM)):
    return os.path.join(path, _ITEM)
  directory = os.path.join(path, "checkpoints")
  directory = directory if os.path.isdir(directory) else path
  steps = sorted(
    int(d)
    for d in (os.listdir(directory) if os.path.isdir(directory) else [])
    if d.isdigit() and os.path.isdir(os.path.join(directory, d, _ITEM))
  )
  if not steps:
    raise FileNotFoundError(
      f"No checkpoint under {path!r}: expected a workdir with checkpoints/<step>/, a "
      "checkpoints/ directory, or a checkpoints/<step> directory."
    )
  if step is not None and step not in steps:
    raise FileNotFoundError(f"No step {step} in {directory!r}; steps there: {steps}.")
  return os.path.join(directory, str(steps[-1] if step is None else step), _ITEM)


def checkpoint_step(item: str) -> int:
  """The step of a `resolve_checkpoint` item directory (`.../<step>/default`)."""
  return int(os.path.basename(os.path.dirname(os.path.abspath(item))))


def restore_variables(path: str, step: Optional[int] = None) -> Dict[str, Any]:
  """Reads only the model variables of a run's train state, as numpy, exactly as saved.

  Unlike `Checkpointer.restore` this needs no target of the same structure (the run may
  be another model with another optimiser): the target is the checkpoint's own metadata
  of the `params` and `model_state` subtrees, restored with orbax's partial restore (the
  optimiser and weighting states are not read). Every saved leaf of the two subtrees
  comes back (checked), with its saved dtype and bits (tests/test_restore_variables.py).

  Args:
    path: see `resolve_checkpoint`.
    step: see `resolve_checkpoint`.

  Returns:
    {"params": tree, <collection>: tree, ...} (model_state's collections, e.g.
    batch_stats), nested dicts of numpy arrays. `checkpoint_step(resolve_checkpoint(path,
    step))` is the step read.
  """
  item = resolve_checkpoint(path, step)
  checkpointer = ocp.PyTreeCheckpointer()
  metadata = checkpointer.metadata(item).item_metadata
  missing = [k for k in _VARIABLE_KEYS if k not in metadata]
  if missing:
    raise KeyError(
      f"Checkpoint {item!r} is not a hyperface_jax train state: it lacks "
      f"{missing} (top-level keys: {sorted(metadata)})."
    )
  target = {k: metadata[k] for k in _VARIABLE_KEYS}
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
  restored = checkpointer.restore(
    item, args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True)
  )
  # A partial restore silently skips what its target lacks (docs/design.md traps): the
  # target is the saved subtrees' own metadata, so every saved leaf must be back.
  want = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(target)}
  got = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(restored)}
  if want != got:
    raise ValueError(
      f"Restoring the variables of {item!r} returned other arrays than saved: missing "
      f"{sorted(want - got)[:5]}, unexpected {sorted(got - want)[:5]}."
    )
  return {"params": restored["params"], **dict(restored["model_state"] or {})}
