"""Orbax checkpoints of the train state (the only module that imports orbax).

Orbax's CheckpointManager writes each step into a temporary directory and
renames it only once complete, so a crash mid-save never corrupts the last
good checkpoint; on restart the half-written temporary is ignored.
Restores always go into a full abstract target (STYLE.md traps: restoring
into an empty or partial target silently skips subtrees).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
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
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
      abstract_tree)
