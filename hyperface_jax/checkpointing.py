"""Orbax checkpoints of the train state (the only module that imports orbax).

Orbax's CheckpointManager writes each step into a temporary directory and
renames it only once complete, so a crash mid-save never corrupts the last
good checkpoint; on restart the half-written temporary is ignored.
Restores always go into a full abstract target (docs/design.md traps: restoring
into an empty or partial target silently skips subtrees).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp


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
    path: a workdir (holding `checkpoints/`), its `checkpoints/` directory, or one
      step directory `checkpoints/<step>`.
    step: the step to use with a workdir or checkpoints directory (latest if None).

  Returns:
    The `.../<step>/default` directory that `restore_variables` reads.
  """
  path = os.path.abspath(path)
  if os.path.isdir(os.path.join(path, "default")):
    return os.path.join(path, "default")
  directory = os.path.join(path, "checkpoints")
  directory = directory if os.path.isdir(directory) else path
  steps = sorted(
    int(d)
    for d in (os.listdir(directory) if os.path.isdir(directory) else [])
    if d.isdigit() and os.path.isdir(os.path.join(directory, d, "default"))
  )
  if not steps:
    raise FileNotFoundError(
      f"No checkpoint under {path!r}: expected a workdir with checkpoints/<step>/, a "
      "checkpoints/ directory, or a checkpoints/<step> directory."
    )
  if step is not None and step not in steps:
    raise FileNotFoundError(f"No step {step} in {directory!r}; steps there: {steps}.")
  return os.path.join(directory, str(steps[-1] if step is None else step), "default")


def restore_variables(path: str, step: Optional[int] = None) -> Dict[str, Any]:
  """Reads only the model variables of another run's train state, as numpy.

  Unlike `Checkpointer.restore` this needs no target of the same structure (the
  other run may be another model with another optimiser): the target is built
  from the checkpoint's own metadata, restricted to `params` and `model_state`,
  and restored with orbax's partial restore (the optimiser state is not read).

  Args:
    path: see `resolve_checkpoint`.
    step: see `resolve_checkpoint`.

  Returns:
    {"params": tree, <collection>: tree, ...} (model_state's collections, e.g.
    batch_stats), nested dicts of numpy arrays.
  """
  item = resolve_checkpoint(path, step)
  checkpointer = ocp.PyTreeCheckpointer()
  metadata = checkpointer.metadata(item).item_metadata
  missing = [k for k in ("params", "model_state") if k not in metadata]
  if missing:
    raise KeyError(
      f"Checkpoint {item!r} is not a hyperface_jax train state: it lacks "
      f"{missing} (top-level keys: {sorted(metadata)})."
    )
  target = {
    k: jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), metadata[k])
    for k in ("params", "model_state")
  }
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
  restored = checkpointer.restore(
    item, args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True)
  )
  return {"params": restored["params"], **dict(restored["model_state"] or {})}
