"""glibc allocator tuning (netguard/daemon/allocator.py): on glibc it applies, elsewhere a no-op."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from netguard.daemon import allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_arena_limit_and_trim_apply_on_glibc() -> None:
    # In a fresh interpreter: the limit is meant for a process with no threads yet.
    code = ("from netguard.daemon import allocator; "
            "print(allocator.limit_arenas(), allocator._glibc() is not None)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.split()
    assert out == ["True", "True"]
    # 80 MB outside pymalloc, freed but for every 16th block: the holes stay in the heap
    # (glibc only gives back its top by itself) until trimmed.
    held = [bytes(4096) for _ in range(20_000)]
    kept = held[::16]
    del held
    assert allocator.trim() is True
    assert len(kept) == 1250


def test_off_glibc_both_are_no_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    allocator._glibc.cache_clear()
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", "1.2"))
    try:
        assert allocator._glibc() is None
        assert allocator.limit_arenas() is False
        assert allocator.trim() is False
    finally:
        allocator._glibc.cache_clear()
