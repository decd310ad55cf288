"""The renderer's deflated line cache, streamed a few families at a time (issue 10)."""

from __future__ import annotations

import dataclasses

import pytest

from netguard.metrics import Renderer, runtime_registry
from netguard.metrics import exposition as exposition_module
from netguard.metrics.exposition import pieces
from tests.daemon.fakes import estate


def _body(renderer: Renderer, snap: object) -> tuple[int, bytes]:
    length, families = renderer.stream(snap)  # type: ignore[arg-type]
    return length, b"".join(pieces(families, size=4096))


@pytest.mark.parametrize("pass_bytes", [1, 2000, 10**9])
def test_streams_the_same_exposition_whatever_the_passes(
        monkeypatch: pytest.MonkeyPatch, pass_bytes: int) -> None:
    """One family per pass, a few, or all at once: the same bytes, and the length told."""
    snap = estate(120)
    whole = Renderer(runtime_registry()).render(snap)
    monkeypatch.setattr(exposition_module, "PASS_BYTES", pass_bytes)
    renderer = Renderer(runtime_registry())
    length, body = _body(renderer, snap)
    # The runtime families (process CPU, GC counts) move between two renders.
    own = whole.index(b"# HELP process_")
    assert body[:own] == whole[:own]
    assert length == len(body)
    # A second scrape from the cache, with some targets re-polled in between.
    targets = dict(snap.targets)
    for tid in list(targets)[::3]:
        targets[tid] = dataclasses.replace(targets[tid])
    changed = dataclasses.replace(snap, targets=targets)
    length, again = _body(renderer, changed)
    assert again[:own] == Renderer().render(changed)[:own]
    assert length == len(again)


def test_cache_keeps_each_targets_lines_deflated() -> None:
    snap = estate(200)
    renderer = Renderer()
    body = renderer.render(snap)
    entries = renderer._entries.values()  # the cache itself is what this checks
    kept = sum(len(entry.lines) for entry in entries)
    inflated = sum(entry.size for entry in entries)
    assert inflated > len(body) // 2  # most of the exposition is per-target lines
    assert kept * 3 < inflated
