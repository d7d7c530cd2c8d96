"""Process-level speed settings every entry point that runs a model calls first."""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = False


def apply_malloc_fix() -> bool:
    """Stop glibc from mapping/unmapping large activations on every forward pass.

    Sets M_MMAP_THRESHOLD and M_TRIM_THRESHOLD to 2**31-1 (both are needed; one alone does
    not help). A 3-5x CPU speed-up on small VMs. Returns True when applied (glibc only).
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, 2**31 - 1) == 1
    ok = (libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1) and ok
    _applied = ok
    return ok


def configure_threads(n_threads: int | None = None) -> int:
    """Use every core for intra-op parallelism unless told otherwise; returns the count."""
    import torch

    if n_threads is None:
        n_threads = int(os.environ.get("IASIDE_THREADS", 0)) or (os.cpu_count() or 1)
    torch.set_num_threads(max(1, n_threads))
    return torch.get_num_threads()
