"""hyperface_jax/host_memory.py: glibc keeps freed memory mapped under "retain".

Each mode runs in a fresh process (the settings are process-wide): malloc and fill a 64 MiB
block, free it, then count the page faults of a second malloc + fill of the same size.
glibc's defaults serve a block that large with a fresh mmap (above the 32 MiB ceiling of
its mmap threshold), so its pages fault again: every 4 KiB page (64 MiB / 4 KiB = 16384
faults), or every 2 MiB page where transparent huge pages are "always" (32 faults). Under
"retain" the freed heap block is reused and nothing faults. Raw malloc through ctypes:
numpy would madvise huge pages for the block itself.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from hyperface_jax import host_memory

_SIZE = 64 * 1024 * 1024
_HUGE_PAGES = _SIZE // (2 * 1024 * 1024)  # 32: the fewest faults a fresh mapping can take

_PROBE = """
import ctypes, json, resource, sys
from hyperface_jax import host_memory
applied = host_memory.configure(sys.argv[1])
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
n = int(sys.argv[2])
p = libc.malloc(n); ctypes.memset(p, 1, n); libc.free(p)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
q = libc.malloc(n); ctypes.memset(q, 1, n)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
libc.free(q)
print(json.dumps({"applied": applied, "faults": faults}))
"""

glibc_only = pytest.mark.skipif(
  platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
  reason="mallopt settings exist only in glibc",
)


def _probe(mode: str) -> dict:
  out = subprocess.run(
    [sys.executable, "-c", _PROBE, mode, str(_SIZE)], capture_output=True, text=True, check=True
  ).stdout
  return json.loads(out.strip().splitlines()[-1])


@glibc_only
def test_system_mode_faults_every_page_of_a_reallocated_block():
  r = _probe("system")
  assert r["applied"] is False
  assert r["faults"] >= _HUGE_PAGES  # a fresh mapping: each page faults once


@glibc_only
def test_retain_mode_reuses_the_freed_block_without_faults():
  r = _probe("retain")
  assert r["applied"] is True
  assert r["faults"] < _HUGE_PAGES // 2


def test_unknown_mode_names_the_choices():
  with pytest.raises(ValueError, match=r"host_malloc must be one of \('retain', 'system'\)"):
    host_memory.configure("jemalloc")
