"""The JSON record a benchmark writes with --output: what ran, when, and its results."""

from __future__ import annotations

import json
import os
import sys
import time


def write_run_record(path: str, **payload) -> None:
  """Writes {"command", "time", **payload} to `path` atomically (a temporary file renamed
  over it), so an interrupted run never leaves half a file behind."""
  record = {"command": " ".join(sys.argv), "time": time.strftime("%Y-%m-%d %H:%M:%S"), **payload}
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(record, f, indent=1, sort_keys=True)
  os.replace(tmp, path)
