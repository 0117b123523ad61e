"""Atomic file writes: a temporary name in the same folder, then a rename.

A crash or a full disk leaves either the old file or the new one, never a half-written
one (docs/design.md section 7). Paths go through `etils.epath`, so a workdir may be a
cloud URL (gs://, s3://) as well as a local folder; on object stores, where a rename is a
copy, an object only appears once it is complete.
"""

from __future__ import annotations

import errno
import json
import os
from typing import Any, Union

from etils import epath

PathLike = Union[str, os.PathLike]


class WriteError(OSError):
  """A write failed (full disk, no permission, a folder in the way); the destination was
  left as it was and no temporary file remains. The message names the file and the cause."""


def describe_os_error(e: OSError) -> str:
  """The cause of an OSError in words (a full disk is named as such)."""
  if e.errno == errno.ENOSPC:
    return "no space left on the device"
  if e.errno == errno.EDQUOT:
    return "disk quota exceeded"
  return e.strerror or str(e) or type(e).__name__


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
  """Writes `data` to `path` through `path + ".tmp"` and a rename.

  Raises:
    WriteError: the write or the rename failed; `path` is unchanged, the temporary removed.
  """
  path = epath.Path(path)
  tmp = path.with_name(path.name + ".tmp")
  try:
    with tmp.open("wb") as f:
      f.write(data)
    tmp.replace(path)
  except OSError as e:
    message = (
      f"could not write {path}: {describe_os_error(e)} ({type(e).__name__}: {e}); "
      f"{path.name} was left as it was (expected: a writable folder with free space)"
    )
    raise (WriteError(e.errno, message) if e.errno else WriteError(message)) from e
  finally:
    try:
      if tmp.exists():
        tmp.unlink()
    except OSError:
      pass


def write_text_atomic(path: PathLike, text: str) -> None:
  """Writes `text` (UTF-8) to `path` atomically (see `write_bytes_atomic`)."""
  write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: PathLike, payload: Any) -> None:
  """Writes `payload` as sorted, indented JSON (NaN allowed) atomically."""
  write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=True))
