"""The Prometheus text exposition (0.0.4) written directly from a snapshot.

This writer caches each target's escaped label set and skips prometheus_client's
per-sample object churn, which is what makes 10,000 targets render well inside half a
second. Each target's lines are kept between scrapes, deflated (85 MB of text at 10,000
full-detail targets keeps in 7 MB), and inflated a few families at a time as a scrape
streams them. It must agree with :class:`~netguard.metrics.collectors.SnapshotCollector` (a test
checks it). It runs off the event loop, in a worker thread, from the snapshot alone.
"""

from __future__ import annotations

import itertools
import math
import time
import zlib
from array import array
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
# Inflated bytes of per-target lines held at once while a scrape streams. A scrape
# inflates the targets' lines in passes over consecutive families, each inflating every
# target's text up to the pass's last family: families together up to this much, held
# until streamed, or one larger family alone, inflated as it is read and never held.
# At 10,000 full-detail targets (85 MB): 7 passes, 0.15-0.2 s CPU, most of it without the
# GIL, and at most 16 MB held (3 passes of 32 MB held were 0.1 s, and 33 MiB more peak RSS).
PASS_BYTES = 16 * 2**20
_WBITS = -15  # raw deflate: no header or checksum per target


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
    # The target's lines of each per-target family, joined and deflated (raw, level 1):
    # the 8.5 KB of a private line's 73 series keep in 0.7 KB (its label sets repeat).
    # ``ends``: where each family's lines end in the inflated text.
    lines: bytes
    ends: array[int]
    # The target's lines of each profile-exported family it has values for.
    exported: tuple[tuple[ExportFamilyView, bytes], ...] = ()

    @property
    def size(self) -> int:
        """Bytes of the target's per-target family lines, inflated."""
        return self.ends[-1] if self.ends else 0


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
        self.targets_rendered = 0  # target renders so far (a render per status seen)
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
        ends = array("I")
        end = 0
        for chunk in chunks:
            end += len(chunk)
            ends.append(end)
        return _Rendered(status, zlib.compress(b"".join(chunks), 1, _WBITS), ends,
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
        self.targets_rendered += rendered
        return list(fresh.values())

    def refresh(self, snapshot: MetricsSnapshot) -> None:
        """Render the targets of ``snapshot`` that the cache does not hold as they are now.

        Ahead of a scrape, so that the scrape itself mostly streams cached lines. Run it
        in the thread that renders.
        """
        self._refresh(snapshot)

    def stream(self, snapshot: MetricsSnapshot) -> tuple[int, Iterator[Iterable[bytes]]]:
        """The text exposition of ``snapshot``: its length, and its families as they come.

        Each family is a list of parts (its header, then each target's lines), not
        joined: a large estate's exposition is tens of megabytes, which a caller streams
        (see :func:`pieces`) rather than copies into one body. Targets are rendered (or
        found in the cache) before this returns; their cached lines are inflated while
        the families are read, a few families at a time (:data:`PASS_BYTES`), so read
        them in the thread that renders.
        """
        entries = self._refresh(snapshot)
        plan: list[bytes | int] = []  # a family's whole text, or a per-target family's index
        index = 0
        for spec in self._specs:
            header = f"# HELP {spec.name} {spec.help}\n# TYPE {spec.name} {spec.type}\n".encode()
            if spec.per_target:
                plan += [header, index]
                index += 1
            else:
                plan.append(header + _lines(spec.name, "", spec.labels, spec.read(snapshot),
                                            self._rest[spec.name]).encode())
        plan += _exported_families(entry for entry in entries if entry.exported)
        if self._runtime is not None:
            plan.append(generate_latest(self._runtime))
        length = sum(len(part) for part in plan if isinstance(part, bytes)) \
            + sum(entry.size for entry in entries)
        return length, self._families(plan, entries)

    def _families(self, plan: list[bytes | int], entries: list[_Rendered]
                  ) -> Iterator[Iterable[bytes]]:
        passes = _passes(entries, len(self._target_specs))
        held: dict[int, list[bytes]] = {}
        header = b""
        for part in plan:
            if isinstance(part, bytes):
                if header:
                    yield (header,)
                header = part
                continue
            if part not in held:
                families = next(passes)
                if len(families) == 1:
                    # A family alone in its pass is inflated as it is read, never held.
                    yield itertools.chain((header,), _streamed(entries, part))
                    header = b""
                    continue
                held = _inflate(entries, families)
            yield [header, *held.pop(part)]
            header = b""
        if header:
            yield (header,)

    def render_parts(self, snapshot: MetricsSnapshot) -> list[list[bytes]]:
        """The text exposition of ``snapshot``, family by family, each a list of parts.

        Every target's lines inflated at once: :meth:`stream` holds a few families at a
        time.
        """
        return [list(parts) for parts in self.stream(snapshot)[1]]

    def render_families(self, snapshot: MetricsSnapshot) -> list[bytes]:
        """The text exposition of ``snapshot``, one chunk per metric family."""
        return [b"".join(parts) for parts in self.render_parts(snapshot)]

    def render(self, snapshot: MetricsSnapshot) -> bytes:
        """The whole text exposition of ``snapshot`` in one piece."""
        return b"".join(self.render_families(snapshot))


def _passes(entries: list[_Rendered], families: int) -> Iterator[range]:
    """Consecutive per-target families, in ranges of about :data:`PASS_BYTES` inflated.

    Sized from a sample of the targets (each family's share of their lines).
    """
    sample = entries[::max(1, len(entries) // 64)]
    share = [0] * families
    for entry in sample:
        start = 0
        for i, end in enumerate(entry.ends):
            share[i] += end - start
            start = end
    limit = PASS_BYTES * len(sample) / max(1, len(entries))  # in the sample's bytes
    start = size = 0
    for i in range(families):
        if size and size + share[i] > limit:  # a family larger than the limit goes alone
            yield range(start, i)
            start, size = i, 0
        size += share[i]
    yield range(start, families)


def _streamed(entries: list[_Rendered], family: int) -> Iterator[bytes]:
    """The lines of one per-target family of every target, inflated one by one."""
    for entry in entries:
        ends = entry.ends
        start, end = ends[family - 1] if family else 0, ends[family]
        if end > start:
            yield zlib.decompressobj(_WBITS).decompress(entry.lines, end)[start:]


def _inflate(entries: list[_Rendered], families: range) -> dict[int, list[bytes]]:
    """The lines of ``families`` (per-target family indexes) of every target, by family."""
    out: dict[int, list[bytes]] = {i: [] for i in families}
    first, last = families.start, families.stop - 1
    lists = [out[i] for i in families]
    for entry in entries:
        ends = entry.ends
        start = ends[first - 1] if first else 0
        if ends[last] == start:
            continue  # no lines in these families (no radio, no UPS...)
        # Inflated only as far as the last family wanted: passes go front to back.
        text = zlib.decompressobj(_WBITS).decompress(entry.lines, ends[last])
        for lines, end in zip(lists, ends[first:last + 1], strict=True):
            if end > start:  # most targets have no lines in some families (no radio...)
                lines.append(text[start:end])
            start = end
    return out


def pieces(families: Iterable[Iterable[bytes]], size: int = PIECE_BYTES) -> Iterator[bytes]:
    """``families`` (from :meth:`Renderer.stream`) joined into pieces of ``size`` bytes.

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
