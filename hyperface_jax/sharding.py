"""The device mesh and global-array assembly for data parallelism.

pmap semantics without `jax.pmap` (docs/design.md section 2): one mesh axis
'data' over every device of every host; per-device code runs under
`jax.shard_map`; each host feeds its own rows, assembled into global
`jax.Array`s with `jax.make_array_from_process_local_data`.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh ('data',) over `devices` (default: all devices of all hosts).

  axis_types are passed explicitly (docs/design.md traps: defaults changed between
  JAX versions).
  """
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh(
    (len(devices),), (DATA_AXIS,), axis_types=(AxisType.Explicit,), devices=devices
  )


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh, name: str = "batch_size") -> int:
  """Returns the per-host batch size; raises before any compilation if uneven."""
  devices = mesh.size
  if global_batch_size <= 0 or global_batch_size % devices:
    raise ValueError(
      f"config.{name}={global_batch_size} must be a positive multiple of the "
      f"number of devices ({devices}: {jax.process_count()} host(s) x "
      f"{jax.local_device_count()} local device(s))."
    )
  return global_batch_size // jax.process_count()


def global_batch(mesh: Mesh, local_batch: dict) -> dict:
  """Assembles this host's rows of every array into global data-sharded arrays (nested
  dicts too: the face-pair input {"faces", "cues"} of data/pairs.py)."""
  sharding = data_sharded(mesh)
  return jax.tree.map(
    lambda v: jax.make_array_from_process_local_data(sharding, np.asarray(v)), local_batch
  )


def replicate(mesh: Mesh, tree: Any) -> Any:
  """Places a host-local pytree on every device (the pmap-era `replicate`)."""
  return jax.device_put(tree, replicated(mesh))


def to_host(tree: Any) -> Any:
  """Fetches a (fully addressable or replicated) pytree to host numpy."""
  return jax.tree.map(np.asarray, jax.device_get(tree))
