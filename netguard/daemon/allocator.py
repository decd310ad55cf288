"""Keep glibc's allocator from holding on to memory the daemon has freed (Linux only).

Python objects over 512 bytes, and every buffer the ``/metrics`` renderer makes (its
per-target lines, the pieces it compresses), come from ``malloc``. glibc gives each
thread that allocates its own arena (up to 8 per core), and an arena keeps what is freed
in it for reuse instead of returning it: the render thread, the default executor's
threads (config reloads, ``asyncio.to_thread``) and the event loop each fragment their
own. :func:`limit_arenas` caps them before any thread starts, and :func:`trim` hands the
free pages inside the arenas back to the system after large short-lived allocations
(loading the configuration, a scrape). Measured at 10,000 targets in bench/RESULTS.md
(issue 10, section 7).

Elsewhere (macOS, musl) both are no-ops that return False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys
from functools import cache

# mallopt() parameter number of M_ARENA_MAX in glibc's <malloc.h>.
_M_ARENA_MAX = -8
# Two arenas: the event loop's and one shared by every other thread. One alone would make
# the render thread and the loop wait on the same lock at every allocation.
ARENAS = 2


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas``; call it before any thread starts.

    Returns:
        Whether the limit was set (False off glibc).
    """
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Return the free memory of every malloc arena to the system (``malloc_trim(0)``).

    About a millisecond at a few hundred megabytes; ctypes releases the GIL meanwhile.

    Returns:
        Whether any memory was returned (False off glibc).
    """
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))
