"""Atomic file writes: a temporary name in the same folder, then a rename.

A crash or a full disk leaves either the old file or the new one, never a half-written
one (docs/design.md section 7).
"""

from __future__ import annotations

import json
import os
from typing import Any


def write_text_atomic(path: str, text: str) -> None:
  """Writes `text` to `path` through `path + ".tmp"` and `os.replace`."""
  tmp = path + ".tmp"
  try:
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_json_atomic(path: str, payload: Any) -> None:
  """Writes `payload` as sorted, indented JSON (NaN allowed) atomically."""
  write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=True))
