"""Host malloc settings for training processes: keep freed memory mapped (a CPU speed lever).

With glibc's default settings a CPU train step re-faults its large temporaries in from
the kernel every step: XLA allocates and frees them per execution, glibc serves blocks
above its mmap threshold (at most 32 MB) with fresh `mmap`s and returns them with
`munmap`, and allocations from XLA's worker threads land in per-thread arenas that hand
freed memory back as well. Every page of a fresh mapping costs a page fault and a zeroing
in the kernel: measured on the 2-core CPU (bench/host_malloc.py), the HyperFace-AlexNet
step (batch 32) faults in ~790 MB per step and spends ~0.4 CPU-s per step in the kernel
(`ru_minflt`, `ru_stime`); with the settings below, none.

`retain_freed_memory()` sets three glibc `mallopt` options at run time, so that freed
blocks are reused instead of returned:

- `M_ARENA_MAX=1`: every thread allocates from the main arena (per-thread arenas are
  capped at 64 MB heaps and fall back to `mmap` for larger blocks);
- `M_MMAP_MAX=0`: no block is served by its own `mmap` (all come from the heap);
- `M_TRIM_THRESHOLD=2**31 - 1`: the heap top is not given back to the kernel.

The cost is that the process keeps its peak heap: freed memory is reused by later
allocations but not returned to the system (peak RSS of the AlexNet step 1.6 -> 2.7 GB).
`bench/host_malloc.py` and `bench/vs_pytorch.py --host_malloc` measure it; the numbers are
in README "Running a config" and "Against PyTorch".

Written by hand because no package on the index does this: tcmalloc and jemalloc do the
same job but must be `LD_PRELOAD`ed before the process starts and are not installed here;
the `MALLOC_ARENA_MAX` / `MALLOC_MMAP_MAX_` / `MALLOC_TRIM_THRESHOLD_` environment
variables are the equivalent for a process started from a shell that sets them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# glibc malloc.h parameter numbers.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8

MODES = ("retain", "system")
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the largest value


def _glibc():
  """The C library as a ctypes handle if it is glibc (mallopt exists), else None."""
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    return None
  lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
  return lib if hasattr(lib, "mallopt") else None


def retain_freed_memory() -> bool:
  """Set the glibc options of the module docstring for this process.

  Call it early (before the threads that allocate start, e.g. at the top of a `main`):
  threads that already own an arena keep it. Returns True if applied, False where the C
  library is not glibc (macOS, musl), where the process keeps the system allocator.

  Raises:
    OSError: glibc rejected one of the settings.
  """
  lib = _glibc()
  if lib is None:
    return False
  for name, option, value in (
    ("M_ARENA_MAX", M_ARENA_MAX, 1),
    ("M_MMAP_MAX", M_MMAP_MAX, 0),
    ("M_TRIM_THRESHOLD", M_TRIM_THRESHOLD, TRIM_THRESHOLD),
  ):
    if lib.mallopt(option, value) != 1:
      raise OSError(f"glibc mallopt({name}, {value}) failed.")
  return True


def configure(mode: str) -> bool:
  """Apply `mode`: "retain" (retain_freed_memory) or "system" (leave glibc's defaults).

  Returns whether the retaining settings are in effect."""
  if mode not in MODES:
    raise ValueError(f"host_malloc must be one of {MODES}, got {mode!r}.")
  return retain_freed_memory() if mode == "retain" else False
