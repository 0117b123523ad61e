"""Orbax checkpoints of the train state (the only module that imports orbax).

Orbax's CheckpointManager writes each step into a temporary directory and
renames it only once complete, so a crash mid-save never corrupts the last
good checkpoint; on restart the half-written temporary is removed.
Two ways back:
  * `Checkpointer.restore`: the whole train state, into a full abstract target
    (docs/design.md traps: restoring into an empty or partial target silently skips
    subtrees); the train loop resumes with it.
  * `restore_variables`: only the model variables (params + model_state) of a run, the
    ONE path of everything that runs or reuses a model without training it (inference,
    model_init, surgery): the target is the checkpoint's own metadata of those two
    subtrees, so it needs neither the model nor the optimiser that wrote it, and the
    arrays come back exactly as saved.

Faults (README "Preemption and faults"):
  * Saves are asynchronous by default (`async_save`): `save` returns once the state is
    copied off the devices, the files are written in the background. The next `save`,
    `wait` and `close` wait for it, so a run never exits, nor starts a save, with one in
    flight.
  * Every completed step gets `<step>/checksums.json` (size and CRC-32 of each file,
    written by process 0 once orbax has committed the step). `restore` checks the files
    against it: a truncated or corrupted latest checkpoint (orbax reads flipped bytes back
    without complaint) is reported with its step and problem, moved aside to
    `damaged_<step>`, and the previous step is restored instead.
  * A target whose names or shapes differ from the checkpoint's (another width, another
    head) raises `CheckpointMismatchError` listing every missing, unexpected and
    mis-shaped array, before anything is read.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from typing import Any, Dict, List, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from hyperface_jax import atomic_io, surgery

_ITEM = "default"  # the directory of the one item CheckpointManager saves per step
_VARIABLE_KEYS = ("params", "model_state")  # the model variables of a train state
CHECKSUMS = "checksums.json"  # per step: {relative path: [size, crc32]} of its files
DAMAGED_PREFIX = "damaged_"  # a damaged step directory is renamed to damaged_<step>


class CheckpointMismatchError(surgery.ParamMismatchError):
  """The run's state does not fit the checkpoint (the config changed a shape or a name)."""

  def __init__(self, missing, unexpected, mismatched, directory, step, others=""):
    super().__init__(missing, unexpected, mismatched, f"checkpoint {directory} step {step}")
    lines = str(self).splitlines()[:-1]  # drop surgery's dont_load hint
    if others:
      lines.append(f"  {others}")
    lines.append(
      "  The config differs from the one that wrote the checkpoint (compare with the "
      "workdir's config.json): restore with that config, train the new one in a fresh "
      "--workdir, or load the matching parameters into it with config.model_init."
    )
    ValueError.__init__(self, "\n".join(lines))


class CheckpointDamagedError(RuntimeError):
  """No checkpoint of the directory could be read; the message lists each problem."""


def _name(path) -> str:
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def _shapes(tree) -> Dict[str, Tuple[int, ...]]:
  return {
    _name(p): tuple(x.shape)
    for p, x in jax.tree_util.tree_leaves_with_path(tree)
    if hasattr(x, "shape")
  }


def _absolute(path) -> epath.Path:
  path = epath.Path(path)
  return path if path.is_absolute() else epath.Path(os.path.abspath(os.fspath(path)))


def file_checksums(step_dir) -> Dict[str, List[int]]:
  """{path relative to `step_dir`: [size, crc32]} of every file under it but CHECKSUMS."""
  step_dir = epath.Path(step_dir)
  out = {}
  for root, _, files in step_dir.walk():
    for name in files:
      path = epath.Path(root) / name
      rel = os.path.relpath(os.fspath(path), os.fspath(step_dir))
      if rel == CHECKSUMS or rel.endswith(".tmp"):
        continue
      crc, size = 0, 0
      with path.open("rb") as f:
        while chunk := f.read(1 << 22):
          crc, size = zlib.crc32(chunk, crc), size + len(chunk)
      out[rel] = [size, crc]
  return dict(sorted(out.items()))


def verify_checksums(step_dir) -> Optional[str]:
  """None if the files under `step_dir` match its CHECKSUMS, else the problem in words.

  A step without CHECKSUMS (written before they existed, or killed between orbax's commit
  and their writing) is not checked: orbax's own errors still catch missing files.
  """
  step_dir = epath.Path(step_dir)
  manifest = step_dir / CHECKSUMS
  if not manifest.exists():
    logging.warning("%s has no %s; its files are not checked.", step_dir, CHECKSUMS)
    return None
  try:
    want = json.loads(manifest.read_text())
  except (OSError, ValueError) as e:
    return f"{CHECKSUMS} is unreadable ({e})"
  got = file_checksums(step_dir)
  problems = []
  for rel, (size, crc) in want.items():
    if rel not in got:
      problems.append(f"{rel} is missing")
    elif got[rel][0] != size:
      problems.append(f"{rel} has {got[rel][0]} bytes, {size} when saved (truncated)")
    elif got[rel][1] != crc:
      problems.append(f"{rel} has another CRC-32 than when saved (corrupted)")
  if not problems:
    return None
  more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
  return "; ".join(problems[:3]) + more


class Checkpointer:
  """Saves and restores `TrainState`s under `workdir/checkpoints` (a folder or a URL)."""

  def __init__(self, workdir, *, max_to_keep: int = 3, async_save: bool = True):
    """
    Args:
      workdir: the run's folder; checkpoints go to `workdir/checkpoints`.
      max_to_keep: the newest checkpoints kept (older ones are deleted).
      async_save: write in the background (module docstring); False blocks in `save`.
    """
    self.path = _absolute(workdir) / "checkpoints"
    self.directory = os.fspath(self.path)
    self.async_save = bool(async_save)
    options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep,
      create=True,
      enable_async_checkpointing=self.async_save,
      # A save killed half-way leaves a temporary directory: removed on the next start.
      cleanup_tmp_directories=True,
    )
    self._manager = ocp.CheckpointManager(
      self.path, options=options, item_handlers=ocp.StandardCheckpointHandler()
    )
    self._pending: Optional[threading.Thread] = None
    self._pending_error: Optional[BaseException] = None

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self) -> List[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any) -> None:
    """Saves `state` as `step`: blocking until it is on disk, or (async_save) until it is
    copied off the devices, the rest in the background. Waits for the previous save first.

    Raises:
      atomic_io.WriteError: this save (or, raised here or by `wait`, the previous
        asynchronous one) failed, e.g. on a full disk; what orbax had written of that step
        is removed, the earlier checkpoints are untouched.
    """
    self.wait()
    step = int(step)
    try:
      self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_failed(step, e) from e
    if not self.async_save:
      self._finish(step)
      self.wait()
      return
    self._pending = threading.Thread(target=self._finish, args=(step,), name=f"checkpoint-{step}")
    self._pending.start()

  def _finish(self, step: int) -> None:
    """Waits for orbax's commit of `step`, then writes its checksums (process 0)."""
    try:
      self._manager.wait_until_finished()
    except BaseException as e:  # re-raised by wait() in the main thread
      self._pending_error = (step, e)
      return
    step_dir = self.path / str(step)
    if jax.process_index() == 0 and step_dir.exists():
      try:
        atomic_io.write_json_atomic(step_dir / CHECKSUMS, file_checksums(step_dir))
      except OSError as e:  # the step itself is complete: kept, unchecked on restore
        logging.warning("Checkpoint step %d saved without %s: %s", step, CHECKSUMS, e)

  def wait(self) -> None:
    """Blocks until the last save is complete on disk (with its checksums).

    Raises:
      atomic_io.WriteError: that save failed (see `save`).
    """
    if self._pending is not None:
      self._pending.join()
      self._pending = None
    if self._pending_error is not None:
      (step, error), self._pending_error = self._pending_error, None
      raise self._save_failed(step, error) from error

  def _save_failed(self, step: int, error: BaseException) -> atomic_io.WriteError:
    """Removes what orbax left of `step` (its temporary directory) and describes `error`."""
    removed = []
    if jax.process_index() == 0:
      for p in self.path.iterdir() if self.path.exists() else ():
        if p.name.startswith(f"{step}.") and "tmp" in p.name:
          p.rmtree()
          removed.append(p.name)
    cause, seen = error, set()
    while cause is not None and not isinstance(cause, OSError) and id(cause) not in seen:
      seen.add(id(cause))
      cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError):
      reason, code = atomic_io.describe_os_error(cause), cause.errno
    else:
      reason, code = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}", None
    message = (
      f"could not save the checkpoint of step {step} in {self.directory}: {reason}; "
      f"nothing of step {step} was left{f' (removed {removed})' if removed else ''} and the "
      f"earlier checkpoints {self._committed()} are untouched (expected: a writable folder "
      "with free space)"
    )
    return atomic_io.WriteError(code, message) if code else atomic_io.WriteError(message)

  def _committed(self) -> List[int]:
    if not self.path.exists():
      return []
    return sorted(int(p.name) for p in self.path.iterdir() if p.name.isdigit())

  def check_target(self, abstract_state: Any, step: int) -> None:
    """Raises CheckpointMismatchError if `abstract_state` has other array names or shapes
    than the checkpoint of `step` (read from its metadata only)."""
    saved = _shapes(self._manager.item_metadata(step))
    wanted = _shapes(abstract_state)
    missing = sorted(set(wanted) - set(saved))
    unexpected = sorted(set(saved) - set(wanted))
    reshaped = sorted(
      (n, saved[n], wanted[n]) for n in set(saved) & set(wanted) if saved[n] != wanted[n]
    )
    if not (missing or unexpected or reshaped):
      return
    # The model variables are listed name by name; the optimiser and weighting states
    # mirror them and are only counted (unless nothing else differs).
    variables = lambda n: n.split("/", 1)[0] in _VARIABLE_KEYS
    shown = [
      [x for x in group if variables(x if isinstance(x, str) else x[0])]
      for group in (missing, unexpected, reshaped)
    ]
    others = sum(len(g) for g in (missing, unexpected, reshaped)) - sum(len(g) for g in shown)
    if not any(shown):
      shown, others = [missing, unexpected, reshaped], 0
    note = (
      f"and {others} arrays of the optimiser / weighting state that mirror them" if others else ""
    )
    raise CheckpointMismatchError(*shown, self.directory, step, note)

  def restore(self, abstract_state: Any, step: Optional[int] = None) -> Any:
    """Restores into the full abstract target (with shardings).

    Without `step`, the latest checkpoint whose files are intact: a damaged one is logged
    (step and problem), moved to `damaged_<step>`, and the previous one is tried.

    Args:
      abstract_state: pytree of `jax.ShapeDtypeStruct` with shardings, the
        exact structure of the saved state.
      step: step to restore; the latest intact one if None.

    Returns:
      The restored state.

    Raises:
      CheckpointMismatchError: the target's names or shapes differ from the checkpoint's.
      CheckpointDamagedError: `step` (or, without `step`, every checkpoint) is damaged.
      FileNotFoundError: there is no checkpoint.
    """
    self.wait()
    steps = self.all_steps() if step is None else [int(step)]
    if not steps:
      raise FileNotFoundError(f"No checkpoint in {self.directory}.")
    problems = []
    for s in reversed(steps):
      problem = self._damage(abstract_state, s)
      if problem is None:
        try:
          return self._manager.restore(s, args=ocp.args.StandardRestore(abstract_state))
        except Exception as e:  # pylint: disable=broad-except
          if (self.path / str(s) / CHECKSUMS).exists():
            raise  # the files are those saved: not damage, a problem of this run
          problem = f"orbax could not read it ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
      problems.append(f"step {s}: {problem}")
      if step is not None:
        break
      moved = self._quarantine(s)
      fallback = [x for x in steps if x < s]
      logging.error(
        "Checkpoint step %d in %s is damaged: %s. Moved to %s; %s.",
        s,
        self.directory,
        problem,
        moved,
        f"restoring step {fallback[-1]} instead" if fallback else "no earlier checkpoint",
      )
    raise CheckpointDamagedError(
      f"No intact checkpoint in {self.directory}: "
      + "; ".join(problems)
      + ". "
      + (
        "Restore another step, or use a fresh --workdir."
        if step is not None
        else "The damaged steps were moved to damaged_<step>; rerun to start from scratch."
      )
    )

  def _damage(self, abstract_state, step: int) -> Optional[str]:
    """None if `step` looks intact (metadata readable, files match their checksums), else
    the problem; raises CheckpointMismatchError for a target of other shapes."""
    try:
      self._manager.item_metadata(step)
    except Exception as e:  # pylint: disable=broad-except
      return f"its metadata is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
    self.check_target(abstract_state, step)
    problem = verify_checksums(self.path / str(step)) if jax.process_index() == 0 else None
    if jax.process_count() > 1:  # process 0's verdict for all (one reader of the files)
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

      bad = multihost_utils.broadcast_one_to_all(np.int32(problem is not None))
      if int(bad) and problem is None:
        problem = "its files do not match their checksums (details in process 0's log)"
    return problem

  def _quarantine(self, step: int) -> str:
    """Renames `<step>` to `damaged_<step>` (process 0; all wait) and rescans the steps."""
    target = self.path / f"{DAMAGED_PREFIX}{step}"
    n = 1
    while target.exists():
      n += 1
      target = self.path / f"{DAMAGED_PREFIX}{step}.{n}"
    if jax.process_index() == 0:
      (self.path / str(step)).rename(target)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

      multihost_utils.sync_global_devices(f"checkpoint quarantine {step}")
    self._manager.reload()
    return os.fspath(target)

  def close(self) -> None:
    """Waits for the last save, then releases orbax's resources."""
    try:
      self.wait()
    finally:
      try:
        self._manager.close()
      except Exception as e:  # pylint: disable=broad-except  (a save that failed already)
        logging.warning("Closing the checkpoint manager of %s: %s", self.directory, e)


def abstract_with_sharding(abstract_tree: Any, sharding) -> Any:
  """Attaches `sharding` to every leaf of an eval_shape'd tree."""
  return jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract_tree
  )


def resolve_checkpoint(path, step: Optional[int] = None) -> str:
  """The orbax item directory of a run's checkpoint.

  Args:
    path: a workdir (holding `checkpoints/`), its `checkpoints/` directory, one step
      directory `checkpoints/<step>`, or that step's item directory `<step>/default`
      (local paths or URLs).
    step: the step to use with a workdir or checkpoints directory (latest if None).

  Returns:
    The `.../<step>/default` directory that `restore_variables` reads.
  """
  path = _absolute(path)
  if path.name == _ITEM and path.parent.name.isdigit():
    return os.fspath(path)
  if (path / _ITEM).is_dir():
    return os.fspath(path / _ITEM)
  directory = path / "checkpoints"
  directory = directory if directory.is_dir() else path
  steps = sorted(
    int(d.name)
    for d in (directory.iterdir() if directory.is_dir() else [])
    if d.name.isdigit() and (d / _ITEM).is_dir()
  )
  if not steps:
    raise FileNotFoundError(
      f"No checkpoint under {os.fspath(path)!r}: expected a workdir with checkpoints/<step>/, "
      "a checkpoints/ directory, or a checkpoints/<step> directory."
    )
  if step is not None and step not in steps:
    raise FileNotFoundError(f"No step {step} in {os.fspath(directory)!r}; steps there: {steps}.")
  return os.fspath(directory / str(steps[-1] if step is None else step) / _ITEM)


def checkpoint_step(item) -> int:
  """The step of a `resolve_checkpoint` item directory (`.../<step>/default`)."""
  return int(_absolute(item).parent.name)


def restore_variables(path, step: Optional[int] = None) -> Dict[str, Any]:
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
  problem = verify_checksums(_absolute(item).parent)
  if problem:
    raise CheckpointDamagedError(f"Checkpoint {item!r} is damaged: {problem}.")
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
