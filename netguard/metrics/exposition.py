"""The Prometheus text exposition (0.0.4) written directly from a snapshot.

This writer caches each target's escaped label set and skips prometheus_client's
per-sample object churn, which is what makes 10,000 targets render well inside half a
second. It must agree with :class:`~netguard.metrics.collectors.SnapshotCollector` (a test
checks it). It runs off the event loop, in a worker thread, from the snapshot alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from netguard.metrics.detail import FULL, ExportDetail
from netguard.metrics.snapshot import ExportFamilyView, MetricsSnapshot, TargetView
from netguard.metrics.specs import OPTIONAL_TARGET_SECTIONS, SPECS, Labels, Sample, label_pairs

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Bytes per streamed piece (:func:`pieces`): a join this size takes well under a
# millisecond, and a few hundred of them carry a 10,000-target exposition.
PIECE_BYTES = 256 * 1024
# Targets rendered between two offers of the GIL to the event loop (about a millisecond
# of work). Without them the loop, which drops the GIL at every socket call, waits for
# the interpreter's switch interval (5 ms) each time it wants it back.
YIELD_EVERY = 20


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


# The text of small whole numbers and common link speeds, looked up rather than formatted:
# most of a target's series (states, oper status, error and discard counts) are such.
_COMMON: dict[float, str] = {float(n): str(n) for n in range(1024)} | {
    float(bps // 8): str(bps // 8) for bps in (10**7, 10**8, 10**9, 10**10, 25 * 10**9,
                                               4 * 10**10, 10**11)}


def _target_labels(target_id: str, status: TargetView) -> str:
    return (f'target="{_escape(target_id)}",kind="{_escape(status.kind)}",'
            f'site="{_escape(status.site or "")}"')


def _lines(name: str, base: str, label_names: Labels, samples: Iterable[Sample],
           rest_cache: dict[Labels, str], *, free_labels: bool = False) -> str:
    parts: list[str] = []
    common = _COMMON.get
    for extra, value in samples:
        number = common(value) or _number(value)
        if extra:
            # Extra label sets (interface names, directions, ports) repeat across targets
            # and scrapes; rendering each once saves most of the formatting work.
            rest = rest_cache.get(extra)
            if rest is None:
                pairs = label_pairs(extra) if free_labels \
                    else zip(label_names, extra, strict=True)
                rest = ",".join(f'{n}="{_escape(v)}"' for n, v in pairs)
                rest_cache[extra] = rest
            if base:
                parts.append(f"{name}{{{base},{rest}}} {number}\n")
            else:
                parts.append(f"{name}{{{rest}}} {number}\n")
        elif base:
            parts.append(f"{name}{{{base}}} {number}\n")
        else:
            parts.append(f"{name} {number}\n")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class _Rendered:
    status: TargetView
    chunks: tuple[bytes, ...]
    # The target's lines of each profile-exported family it has values for.
    exported: tuple[tuple[ExportFamilyView, bytes], ...] = ()


def _exported_chunks(base: str, status: TargetView
                     ) -> tuple[tuple[ExportFamilyView, bytes], ...]:
    return tuple((family, f"{family.name}{{{base}}} {_number(value)}\n".encode())
                 for family, value in status.exported)


def _exported_families(entries: Iterable[_Rendered]) -> list[bytes]:
    """The profile-exported families, by name, each with every target's line.

    A profile library declares each name once (it refuses conflicting declarations); a
    status left from an earlier library that declares it otherwise is left out until
    its target is polled again, so that a family never has two types.
    """
    families: dict[str, tuple[ExportFamilyView, list[bytes]]] = {}
    for entry in entries:
        for family, line in entry.exported:
            group = families.setdefault(family.name, (family, []))
            if group[0] == family:
                group[1].append(line)
    out: list[bytes] = []
    for name in sorted(families):
        family, lines = families[name]
        help_text = family.help.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {family.type}\n".encode()
                   + b"".join(lines))
    return out


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
        detail: Which families and interfaces to export (default: all of them).
    """

    def __init__(self, runtime: CollectorRegistry | None = None,
                 detail: ExportDetail = FULL) -> None:
        self._runtime = runtime
        self._detail = detail
        self._specs = detail.select(SPECS)
        self._target_specs = tuple(spec for spec in self._specs if spec.per_target)
        self._entries: dict[str, _Rendered] = {}
        self._rest: dict[str, dict[Labels, str]] = {spec.name: {} for spec in SPECS}

    def _render_target(self, target_id: str, status: TargetView) -> _Rendered:
        base = _target_labels(target_id, status)
        chunks: list[bytes] = []
        # The entry keeps ``status`` (the cache key); the lines come from its filtered view.
        view = self._detail.view(status)
        for spec in self._target_specs:
            if spec.section in OPTIONAL_TARGET_SECTIONS and not getattr(view, spec.section):
                chunks.append(b"")
                continue
            chunks.append(_lines(spec.name, base, spec.labels, spec.read(view),
                                 self._rest[spec.name], free_labels=spec.free_labels).encode())
        return _Rendered(status, tuple(chunks),
                         _exported_chunks(base, status) if status.exported else ())

    def _refresh(self, snapshot: MetricsSnapshot) -> list[_Rendered]:
        """Every target's entry for ``snapshot``, from the cache or rendered now.

        The cache is taken out whole first and its entries dropped as they are replaced,
        so that a fully re-polled estate never holds two sets of lines at once (the cache
        is the renderer's largest allocation). A render running meanwhile in another
        thread finds the cache empty and renders its targets afresh: slower, never wrong.
        """
        old, self._entries = self._entries, {}
        fresh: dict[str, _Rendered] = {}
        rendered = 0
        for target_id, status in snapshot.targets.items():
            entry = old.pop(target_id, None)
            if entry is None or entry.status is not status:
                entry = self._render_target(target_id, status)
                rendered += 1
                if not rendered % YIELD_EVERY:
                    time.sleep(0)  # see YIELD_EVERY
            fresh[target_id] = entry
        old.clear()
        self._entries = fresh
        return list(fresh.values())

    def render_parts(self, snapshot: MetricsSnapshot) -> list[list[bytes]]:
        """The text exposition of ``snapshot``, family by family, each a list of parts.

        The parts are the header and each target's cached lines, not joined: a large
        estate's exposition is tens of megabytes, which a caller streams (see
        :func:`pieces`) rather than copies into one body.
        """
        entries = self._refresh(snapshot)
        out: list[list[bytes]] = []
        index = 0
        for spec in self._specs:
            header = f"# HELP {spec.name} {spec.help}\n# TYPE {spec.name} {spec.type}\n".encode()
            if spec.per_target:
                i = index
                out.append([header, *[entry.chunks[i] for entry in entries]])
                index += 1
            else:
                out.append([header + _lines(spec.name, "", spec.labels, spec.read(snapshot),
                                            self._rest[spec.name]).encode()])
        out.extend([family] for family in
                   _exported_families(entry for entry in entries if entry.exported))
        if self._runtime is not None:
            out.append([generate_latest(self._runtime)])
        return out

    def render_families(self, snapshot: MetricsSnapshot) -> list[bytes]:
        """The text exposition of ``snapshot``, one chunk per metric family."""
        return [b"".join(parts) for parts in self.render_parts(snapshot)]

    def render(self, snapshot: MetricsSnapshot) -> bytes:
        """The whole text exposition of ``snapshot`` in one piece."""
        return b"".join(self.render_families(snapshot))


def pieces(families: list[list[bytes]], size: int = PIECE_BYTES) -> Iterator[bytes]:
    """``families`` (from :meth:`Renderer.render_parts`) joined into pieces of ``size`` bytes.

    A piece ends at the first part boundary past ``size`` bytes, so that no single join
    holds the GIL for long or allocates much; the pieces are made as they are read.
    """
    batch: list[bytes] = []
    length = 0
    for parts in families:
        for part in parts:
            batch.append(part)
            length += len(part)
            if length >= size:
                yield b"".join(batch)
                batch, length = [], 0
    if batch:
        yield b"".join(batch)


def render(snapshot: MetricsSnapshot, runtime: CollectorRegistry | None = None,
           detail: ExportDetail = FULL) -> bytes:
    """The text exposition of one snapshot, without a cache (see :class:`Renderer`)."""
    return Renderer(runtime, detail).render(snapshot)
