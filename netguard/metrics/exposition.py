"""The Prometheus text exposition (0.0.4) written directly from a snapshot.

This writer caches each target's escaped label set and skips prometheus_client's
per-sample object churn, which is what makes 10,000 targets render well inside half a
second. It must agree with :class:`~netguard.metrics.collectors.SnapshotCollector` (a test
checks it). It runs off the event loop, in a worker thread, from the snapshot alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from netguard.metrics.snapshot import MetricsSnapshot, TargetView
from netguard.metrics.specs import OPTIONAL_TARGET_SECTIONS, SPECS, Labels, Sample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _target_labels(target_id: str, status: TargetView) -> str:
    return (f'target="{_escape(target_id)}",kind="{_escape(status.kind)}",'
            f'site="{_escape(status.site or "")}"')


def _lines(name: str, base: str, label_names: Labels, samples: Iterable[Sample],
           rest_cache: dict[Labels, str]) -> str:
    parts: list[str] = []
    for extra, value in samples:
        if extra:
            # Extra label sets (interface names, directions, ports) repeat across targets
            # and scrapes; rendering each once saves most of the formatting work.
            rest = rest_cache.get(extra)
            if rest is None:
                rest = ",".join(f'{n}="{_escape(v)}"'
                                for n, v in zip(label_names, extra, strict=True))
                rest_cache[extra] = rest
            labels = f"{base},{rest}" if base else rest
            parts.append(f"{name}{{{labels}}} {_number(value)}\n")
        elif base:
            parts.append(f"{name}{{{base}}} {_number(value)}\n")
        else:
            parts.append(f"{name} {_number(value)}\n")
    return "".join(parts)


_TARGET_SPECS = tuple(spec for spec in SPECS if spec.per_target)


@dataclass(frozen=True, slots=True)
class _Rendered:
    status: TargetView
    chunks: tuple[bytes, ...]


class Renderer:
    """Writes the Prometheus text exposition (0.0.4) of snapshots.

    A target's lines are kept between scrapes and reused while its status object is the
    same one: snapshots are immutable, and a target is polled far less often than it is
    scraped, so most of a large estate renders from this cache. Targets that disappear
    from the snapshot drop out of the cache on the next render.

    :meth:`render` is safe to call from worker threads, also concurrently: the cache is
    replaced whole, and every entry is checked against the snapshot before reuse.

    Args:
        runtime: A registry whose families are appended after the snapshot's, such as
            :func:`~netguard.metrics.collectors.runtime_registry` (``process_*`` and
            ``python_gc_*``). None appends nothing.
    """

    def __init__(self, runtime: CollectorRegistry | None = None) -> None:
        self._runtime = runtime
        self._entries: dict[str, _Rendered] = {}
        self._rest: dict[str, dict[Labels, str]] = {spec.name: {} for spec in SPECS}

    def _target_chunks(self, target_id: str, status: TargetView) -> tuple[bytes, ...]:
        base = _target_labels(target_id, status)
        chunks: list[bytes] = []
        for spec in _TARGET_SPECS:
            if spec.section in OPTIONAL_TARGET_SECTIONS and not getattr(status, spec.section):
                chunks.append(b"")
                continue
            chunks.append(_lines(spec.name, base, spec.labels, spec.read(status),
                                 self._rest[spec.name]).encode())
        return tuple(chunks)

    def render_families(self, snapshot: MetricsSnapshot) -> list[bytes]:
        """The text exposition of ``snapshot``, one chunk per metric family.

        Chunks keep every single C-level join or encode small, so that a worker thread
        rendering a large estate never holds the GIL long enough to stall the event loop.
        """
        old = self._entries
        fresh: dict[str, _Rendered] = {}
        for target_id, status in snapshot.targets.items():
            entry = old.get(target_id)
            if entry is None or entry.status is not status:
                entry = _Rendered(status, self._target_chunks(target_id, status))
            fresh[target_id] = entry
        self._entries = fresh

        out: list[bytes] = []
        index = 0
        for spec in SPECS:
            header = f"# HELP {spec.name} {spec.help}\n# TYPE {spec.name} {spec.type}\n".encode()
            if spec.per_target:
                i = index
                out.append(header + b"".join([entry.chunks[i] for entry in fresh.values()]))
                index += 1
            else:
                out.append(header + _lines(spec.name, "", spec.labels, spec.read(snapshot),
                                           self._rest[spec.name]).encode())
        if self._runtime is not None:
            out.append(generate_latest(self._runtime))
        return out

    def render(self, snapshot: MetricsSnapshot) -> bytes:
        """The whole text exposition of ``snapshot`` in one piece."""
        return b"".join(self.render_families(snapshot))


def render(snapshot: MetricsSnapshot, runtime: CollectorRegistry | None = None) -> bytes:
    """The text exposition of one snapshot, without a cache (see :class:`Renderer`)."""
    return Renderer(runtime).render(snapshot)
