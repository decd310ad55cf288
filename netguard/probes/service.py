"""The probe service: poll targets over the configured SNMP engine, assess, emit faults.

``ProbeService`` is what the daemon and the CLI use::

    async with ProbeService(settings.targets) as probes:
        outcome = await probes.poll("olt-hechuan-1")
        outcome.status.state, outcome.events
        probes.statuses()  # cheap immutable snapshot, for the metrics collector

A poll never raises for agent problems: a dead agent gives ``unreachable`` with a
reason, a refused v3 login gives ``unreachable`` with the USM error as reason, and
undecodable values become ``problems`` while the rest of the poll is kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType, TracebackType

from netguard.clock import Clock, SystemClock
from netguard.errors import NotFoundError, ProbeError
from netguard.faults import FaultKey
from netguard.probes.assess import ActiveFault, Assessor
from netguard.probes.config import PollEngine, ProbesConfig, TargetConfig, engine_problems
from netguard.probes.counters import apply_rates, elapsed_seconds
from netguard.probes.decode import decode_sample
from netguard.probes.profiles import Profile, ProfileLibrary, library_for
from netguard.probes.state import LinkSample, PollOutcome, TargetStatus
from netguard.probes.transport import PollSession, PollTransport, fetch, open_transport

log = logging.getLogger("netguard.probes")

_OUTAGE_STATES = ("down", "unreachable")


@dataclasses.dataclass
class _Slot:
    """Everything the service keeps per target."""

    target: TargetConfig
    profile: Profile
    assessor: Assessor
    lock: asyncio.Lock
    engine: PollEngine
    session: PollSession | None = None
    last_sample: LinkSample | None = None
    last_sample_mono: float = 0.0
    last_sample_real: float = 0.0


class ProbeService:
    """Polls SNMP targets; an async context manager owning the polling transports.

    Args:
        targets: The targets it may poll (upstream links are looked up among them).
        clock: Time source (``SystemClock`` by default).
        max_concurrency: Polls in flight at once; more wait their turn.
        profiles: Where profiles come from (the built-in library by default).
        probes: The ``probes:`` settings: which engine polls (gufo by default).

    Raises:
        ValueError: An engine cannot serve a target (see ``engine_problems``).
    """

    def __init__(self, targets: Sequence[TargetConfig], *, clock: Clock | None = None,
                 max_concurrency: int = 64, profiles: ProfileLibrary | None = None,
                 probes: ProbesConfig | None = None) -> None:
        self._probes = probes or ProbesConfig()
        problems = engine_problems(self._probes, targets)
        if problems:
            raise ValueError("; ".join(problems))
        self._clock = clock or SystemClock()
        self._library = profiles or library_for(self._probes)
        self._slots: dict[str, _Slot] = {}
        for target in targets:
            self._slots[target.id] = _Slot(
                target=target,
                profile=self._library.for_target(target),
                assessor=Assessor.for_target(target),
                lock=asyncio.Lock(),
                engine=self._probes.engine_of(target),
            )
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._transports: dict[PollEngine, PollTransport] | None = None
        # Keys are fixed here and never added or removed, so copying the dict for a
        # snapshot is safe even from a scrape thread while the loop replaces values.
        self._live: dict[str, TargetStatus] = {
            t.id: TargetStatus(target=t.id, kind=t.kind, site=t.site, upstream=t.upstream,
                               reasons=("not polled yet",), labels=t.label_pairs)
            for t in targets
        }
        self._snapshot: Mapping[str, TargetStatus] | None = None
        self.polls = 0
        self.failures = 0
        self.restore_ignored = 0

    async def __aenter__(self) -> ProbeService:
        transports: dict[PollEngine, PollTransport] = {}
        # The default engine is always open (a reload may add targets); others on demand.
        engines = {self._probes.engine, *(s.engine for s in self._slots.values())}
        try:
            for engine in sorted(engines):
                transport = open_transport(engine, clock=self._clock,
                                           max_open_sockets=self._probes.max_open_sockets)
                transports[engine] = await transport.__aenter__()
        except BaseException:
            for opened in transports.values():
                await opened.__aexit__(None, None, None)
            raise
        self._transports = transports
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        transports, self._transports = self._transports, None
        for transport in (transports or {}).values():
            await transport.__aexit__(exc_type, exc, tb)

    @property
    def targets(self) -> list[TargetConfig]:
        """The configured targets."""
        return [s.target for s in self._slots.values()]

    def statuses(self) -> Mapping[str, TargetStatus]:
        """The latest status of every target: an immutable snapshot, never blocks.

        The snapshot is rebuilt at most once per change (a scrape after N polls copies
        once, not N times).
        """
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = MappingProxyType(dict(self._live))
        return snapshot

    def status(self, target_id: str) -> TargetStatus:
        """The latest status of one target.

        Raises:
            NotFoundError: Unknown target id.
        """
        try:
            return self._live[target_id]
        except KeyError:
            raise NotFoundError("target", target_id) from None

    def wire_counts(self) -> tuple[int, int, int]:
        """(PDUs answered, varbinds received, values kept) over all targets since start.

        Varbinds a GETBULK returns past the end of a column are received but not kept.
        """
        sessions = [s.session for s in self._slots.values() if s.session is not None]
        return (sum(x.pdus for x in sessions), sum(x.varbinds for x in sessions),
                sum(x.values for x in sessions))

    def restore_active(self, faults: Iterable[FaultKey | ActiveFault]) -> int:
        """Seed faults that are still active elsewhere (open tickets, a previous service).

        Each starts *active* in its target's hysteresis, so the normal path clears it
        (``FaultCleared`` after ``clear_after`` recovered polls) if the condition is gone,
        and does not raise it again while it persists. Call it before the targets are
        polled. Faults of unknown targets are ignored (counted in ``restore_ignored`` and
        logged at debug level).

        Returns:
            How many faults were seeded.
        """
        restored = 0
        for item in faults:
            fault = item if isinstance(item, ActiveFault) else ActiveFault(item)
            slot = self._slots.get(fault.key.target)
            if slot is None:
                self.restore_ignored += 1
                log.debug("not restoring %s: unknown target", fault.key)
                continue
            slot.assessor.restore(fault)
            restored += 1
        return restored

    def release_active(self, keys: Iterable[FaultKey]) -> int:
        """Stop holding faults active, emitting nothing (their clear was already reported).

        Returns:
            How many were active.
        """
        released = 0
        for key in keys:
            slot = self._slots.get(key.target)
            if slot is not None and slot.assessor.release(key.component, key.condition):
                released += 1
        return released

    def active_faults(self, target_ids: Iterable[str] | None = None) -> list[ActiveFault]:
        """The faults the probes hold active now (of ``target_ids``, default all).

        Pure in-memory state: it can still be read after the service has closed, which
        lets a reload carry the faults of a retired service over to its successor.
        """
        ids = self._slots.keys() if target_ids is None else target_ids
        return [fault for tid in ids if tid in self._slots
                for fault in self._slots[tid].assessor.active_faults()]

    def _slot(self, target_id: str) -> _Slot:
        try:
            return self._slots[target_id]
        except KeyError:
            raise NotFoundError("target", target_id) from None

    def suppressor(self, target: TargetConfig) -> str | None:
        """The upstream target whose outage explains ``target``'s faults, if any.

        The nearest upstream that is down or unreachable is blamed, unless it is itself
        suppressed, in which case its root cause is passed on.
        """
        if target.upstream is None:
            return None
        upstream = self._live.get(target.upstream)
        if upstream is None:
            return None
        if upstream.suppressed_by is not None:
            return upstream.suppressed_by
        if upstream.state in _OUTAGE_STATES:
            return upstream.target
        return None

    async def poll(self, target_id: str) -> PollOutcome:
        """Poll one target once, assess it and publish its new status.

        Raises:
            NotFoundError: Unknown target id (the only error it raises).
        """
        slot = self._slot(target_id)
        if self._transports is None:
            raise RuntimeError("ProbeService is not open; use `async with`")
        async with slot.lock, self._semaphore:
            return await self._poll(slot, self._transports[slot.engine])

    async def _poll(self, slot: _Slot, transport: PollTransport) -> PollOutcome:
        target = slot.target
        if slot.session is None:
            slot.session = transport.agent(target)
        started = time.perf_counter()
        mono = self._clock.monotonic()
        sample: LinkSample | None = None
        walk_error: str | None = None
        failure = ""
        try:
            scalars, columns, walk_error = await fetch(slot.session, slot.profile.scalars,
                                                       slot.profile.columns)
            sample = decode_sample(slot.profile, scalars, columns,
                                   interfaces=target.interfaces)
            if walk_error is not None:
                sample = dataclasses.replace(
                    sample, problems=(*sample.problems, f"table walk failed: {walk_error}"))
        except ProbeError as exc:
            failure = str(exc).removeprefix(f"{target.id}: ")
        except Exception as exc:  # a library bug must not stop the poller
            log.exception("%s: poll failed unexpectedly", target.id)
            failure = f"poll failed: {type(exc).__name__}: {exc}"
        duration = time.perf_counter() - started
        now = self._clock.now()
        reset_note = None
        # Reboot detection compares the agent's uptime with real time elapsed between
        # the answers that carried it (an injected manual clock does not measure that).
        real = slot.session.answered_at
        if sample is not None:
            previous = slot.last_sample
            if previous is not None:
                seconds = elapsed_seconds(previous, sample, mono - slot.last_sample_mono)
                sample, reset_note = apply_rates(previous, sample, seconds,
                                                 real - slot.last_sample_real)
            slot.last_sample = sample
            slot.last_sample_mono = mono
            slot.last_sample_real = real
        suppressed_by = self.suppressor(target)
        # Right after a start or reload the upstream may not have been polled yet; a
        # restored fault must not be re-announced on its placeholder state.
        upstream = None if target.upstream is None else self._live.get(target.upstream)
        verdict = slot.assessor.assess(
            sample, now=now, suppressed_by=suppressed_by, unreachable_reason=failure,
            complete=walk_error is None,
            suppression_known=upstream is None or upstream.last_poll_at is not None)
        old = self._live[target.id]
        self.polls += 1
        problems: tuple[str, ...] = ()
        if sample is not None:
            problems = sample.problems + ((reset_note,) if reset_note else ())
            for problem in sample.problems:
                log.warning("%s: %s", target.id, problem)
        else:
            self.failures += 1
            log.info("%s: unreachable: %s", target.id, failure)
        status = TargetStatus(
            target=target.id,
            kind=target.kind,
            site=target.site,
            upstream=target.upstream,
            reachable=sample is not None,
            state=verdict.state,
            reasons=verdict.reasons + tuple(p for p in problems if p not in verdict.reasons),
            sys_uptime_seconds=None if sample is None or sample.sys_uptime_ticks is None
            else sample.sys_uptime_ticks / 100.0,
            poll_duration_seconds=round(duration, 6),
            last_poll_at=now,
            last_success_at=now if sample is not None else old.last_success_at,
            flaps=verdict.flaps,
            suppressed_by=suppressed_by,
            interfaces=sample.interfaces if sample else (),
            optical=sample.optical if sample else (),
            radio=sample.radio if sample else None,
            ups=sample.ups if sample else None,
            pon=sample.pon if sample else (),
            extra=sample.extra if sample else (),
            exported=sample.exported if sample else (),
            labels=target.label_pairs,
            decode_errors=old.decode_errors + (sample.decode_errors if sample else 0),
            sys_name=sample.sys_name if sample else old.sys_name,
            problems=problems,
            polls=old.polls + 1,
            failures=old.failures + (0 if sample is not None else 1),
            active_faults=verdict.active,
            walk_timeouts=slot.session.walk_timeouts,
            rx_thresholds_dbm=slot.assessor.limits.rx_thresholds_dbm,
        )
        self._live[target.id] = status
        self._snapshot = None  # readers keep the old snapshot, which never changes
        for event in verdict.events:
            log.info("%s: %s %s", target.id, type(event).__name__, event.key)
        return PollOutcome(status=status, events=verdict.events)

    async def poll_all(self) -> list[PollOutcome]:
        """Poll every target concurrently (bounded by ``max_concurrency``).

        Upstream targets are polled first, level by level, so children see the fresh
        state of their upstream when judging suppression.
        """
        outcomes: list[PollOutcome] = []
        for level in self._levels():
            results = await asyncio.gather(*(self.poll(t) for t in level))
            outcomes.extend(results)
        return outcomes

    def _levels(self) -> list[list[str]]:
        depth: dict[str, int] = {}

        def depth_of(tid: str) -> int:
            if tid not in depth:
                up = self._slots[tid].target.upstream
                depth[tid] = 0 if up is None or up not in self._slots else depth_of(up) + 1
            return depth[tid]

        levels: dict[int, list[str]] = {}
        for tid in self._slots:
            levels.setdefault(depth_of(tid), []).append(tid)
        return [levels[d] for d in sorted(levels)]
