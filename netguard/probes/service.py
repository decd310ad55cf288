"""The probe service: poll targets over the configured SNMP engine, assess, emit faults.

``ProbeService`` is what the daemon and the CLI use::

    async with ProbeService(settings.targets) as probes:
        outcome = await probes.poll("olt-hechuan-1")
        outcome.status.state, outcome.events
        probes.statuses()  # cheap immutable snapshot, for the metrics collector
        await probes.update_targets(reloaded.targets)  # a reload, in place

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
from datetime import datetime
from types import MappingProxyType, TracebackType

from netguard.clock import Clock, SystemClock
from netguard.errors import NotFoundError, ProbeError
from netguard.faults import FaultKey
from netguard.probes.assess import ActiveFault, Assessor, Verdict
from netguard.probes.config import PollEngine, ProbesConfig, TargetConfig, engine_problems
from netguard.probes.counters import apply_rates, elapsed_seconds
from netguard.probes.decode import decode_sample
from netguard.probes.profiles import Profile, ProfileLibrary, library_for
from netguard.probes.state import LinkSample, PollOutcome, TargetStatus
from netguard.probes.transport import PollSession, PollTransport, fetch, open_transport

log = logging.getLogger("netguard.probes")

_OUTAGE_STATES = ("down", "unreachable")


@dataclasses.dataclass(frozen=True, slots=True)
class TargetChanges:
    """What :meth:`ProbeService.update_targets` did, by target id.

    Attributes:
        added: New targets (not polled yet).
        removed: Targets dropped, with their state and session.
        replaced: Targets polled differently now (address, SNMP settings, timeout,
            retries, kind, profile or extra OIDs): a fresh session and no previous
            sample; their active faults carry over.
        retuned: Targets polled alike but judged or scheduled differently (thresholds,
            site, upstream, labels, interval, interface filter): they keep everything.
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    retuned: tuple[str, ...] = ()


# What a target's session and decoder depend on: a change to any of these replaces the
# target's slot; any other change retunes it in place.
_POLLED_FIELDS = ("address", "snmp", "timeout_seconds", "retries", "kind", "profile", "oids")


def _polled_alike(old: TargetConfig, new: TargetConfig) -> bool:
    return all(getattr(old, name) == getattr(new, name) for name in _POLLED_FIELDS)


def _unpolled(target: TargetConfig) -> TargetStatus:
    return TargetStatus(target=target.id, kind=target.kind, site=target.site,
                        upstream=target.upstream, reasons=("not polled yet",),
                        labels=target.label_pairs)


@dataclasses.dataclass(slots=True)
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
    # The assessor of the slot this one replaced on a reload. Its active faults move over
    # at this slot's first poll, under the lock both slots share, so whatever a poll of
    # the old slot still running at the switch opened or cleared is carried too.
    inherited: Assessor | None = None

    def active_faults(self) -> list[ActiveFault]:
        faults = {f.key: f for f in self.assessor.active_faults()}
        if self.inherited is not None:
            for fault in self.inherited.active_faults():
                faults.setdefault(fault.key, fault)
        return list(faults.values())

    def take_inheritance(self) -> None:
        if self.inherited is not None:
            for fault in self.inherited.active_faults():
                self.assessor.restore(fault)
            self.inherited = None

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Fetched:
    """What the wire gave one poll: a decoded sample, or why there is none."""

    sample: LinkSample | None
    walk_error: str | None
    failure: str
    duration: float


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
        self._slots: dict[str, _Slot] = {t.id: self._new_slot(t) for t in targets}
        # Slots a reload dropped or replaced whose session waits for a running poll.
        self._retired: list[_Slot] = []
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._transports: dict[PollEngine, PollTransport] | None = None
        # The keys of one dict never change (a reload swaps in a new dict), so copying it
        # for a snapshot is safe even from a scrape thread while the loop replaces values.
        self._live: dict[str, TargetStatus] = {t.id: _unpolled(t) for t in targets}
        self._snapshot: Mapping[str, TargetStatus] | None = None
        self.polls = 0
        self.failures = 0
        self.restore_ignored = 0
        self.engines_opened = 0

    def _new_slot(self, target: TargetConfig, lock: asyncio.Lock | None = None) -> _Slot:
        return _Slot(target=target, profile=self._library.for_target(target),
                     assessor=Assessor.for_target(target), lock=lock or asyncio.Lock(),
                     engine=self._probes.engine_of(target))

    async def __aenter__(self) -> ProbeService:
        self._transports = {}
        # The default engine is always open (a reload may add targets); others on demand.
        try:
            await self._open_engines({self._probes.engine,
                                      *(s.engine for s in self._slots.values())})
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        transports, self._transports = self._transports, None
        for transport in (transports or {}).values():
            await transport.__aexit__(exc_type, exc, tb)

    async def _open_engines(self, engines: Iterable[PollEngine]) -> None:
        """Open the engines among ``engines`` that are not open yet (each once)."""
        if self._transports is None:
            return  # not entered: ``__aenter__`` opens what the slots need
        for engine in sorted(set(engines) - self._transports.keys()):
            transport = open_transport(engine, clock=self._clock,
                                       max_open_sockets=self._probes.max_open_sockets)
            self._transports[engine] = await transport.__aenter__()
            self.engines_opened += 1

    @property
    def targets(self) -> list[TargetConfig]:
        """The configured targets."""
        return [s.target for s in self._slots.values()]

    async def update_targets(self, targets: Sequence[TargetConfig]) -> TargetChanges:
        """Poll ``targets`` from now on, changing the per-target state in place.

        A target kept as it was keeps everything: its last sample (the next poll has
        rates), its fault hysteresis and its session (adapted GETBULK sizes, socket,
        SNMPv3 engine time). One polled alike but judged differently is retuned and
        keeps the same. One polled differently is replaced (see :class:`TargetChanges`):
        a fresh session and no previous sample, but its active faults carry over, so a
        fault that is gone clears through the normal path and its ticket resolves. Kept
        and replaced targets show their last status until polled again. A removed
        target leaves the statuses and its session is closed.

        The switch is one step. A poll running at the switch finishes and its outcome
        goes to its caller, but it no longer changes the statuses. No engine is opened
        again: only one that no target used before, if a target now needs it.

        Raises:
            ValueError: An engine cannot serve a target (nothing was changed).
        """
        problems = engine_problems(self._probes, targets)
        if problems:
            raise ValueError("; ".join(problems))
        await self._open_engines(self._probes.engine_of(t) for t in targets)
        return self._switch(targets)

    def _switch(self, targets: Sequence[TargetConfig]) -> TargetChanges:
        slots: dict[str, _Slot] = {}
        live: dict[str, TargetStatus] = {}
        added: list[str] = []
        replaced: list[str] = []
        retuned: list[str] = []
        for target in targets:
            old = self._slots.get(target.id)
            if old is None:
                slots[target.id], live[target.id] = self._new_slot(target), _unpolled(target)
                added.append(target.id)
                continue
            slots[target.id] = old
            if old.target == target:
                live[target.id] = self._live[target.id]
                continue
            if _polled_alike(old.target, target):
                old.target = target
                old.assessor.retune(target)
                retuned.append(target.id)
            else:
                old.take_inheritance()  # no poll of it runs now: a running one took it
                slots[target.id] = self._new_slot(target, lock=old.lock)
                slots[target.id].inherited = old.assessor
                self._retired.append(old)
                replaced.append(target.id)
            live[target.id] = dataclasses.replace(
                self._live[target.id], kind=target.kind, site=target.site,
                upstream=target.upstream)
        removed = [tid for tid in self._slots if tid not in slots]
        self._retired += [self._slots[tid] for tid in removed]
        self._slots, self._live, self._snapshot = slots, live, None
        self._close_retired()
        return TargetChanges(added=tuple(added), removed=tuple(removed),
                             replaced=tuple(replaced), retuned=tuple(retuned))

    def _close_retired(self) -> None:
        """Close the sessions of dropped slots that no poll holds any more."""
        if self._retired:
            for slot in self._retired:
                if not slot.lock.locked():
                    slot.close()
            self._retired = [s for s in self._retired if s.session is not None]

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
        """Seed faults that are still active elsewhere (the open tickets, at startup).

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

    def active_faults(self) -> list[ActiveFault]:
        """The faults the probes hold active now (pure in-memory state, never blocks)."""
        return [fault for slot in self._slots.values() for fault in slot.active_faults()]

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
        transports = self._transports
        if transports is None:
            raise RuntimeError("ProbeService is not open; use `async with`")
        try:
            while True:
                slot = self._slot(target_id)
                async with slot.lock, self._semaphore:
                    # A reload may have replaced the slot while this poll waited (the
                    # replacement shares the lock) or removed it.
                    current = self._slot(target_id)
                    if current.lock is slot.lock:
                        return await self._poll(current, transports[current.engine])
                # Removed and added again meanwhile: queue on the new slot's lock.
        finally:
            self._close_retired()

    async def _poll(self, slot: _Slot, transport: PollTransport) -> PollOutcome:
        target = slot.target
        slot.take_inheritance()
        if slot.session is None:
            slot.session = transport.agent(target)
        mono = self._clock.monotonic()
        fetched = await self._fetch(slot.profile, slot.session)
        now = self._clock.now()
        sample, reset_note = self._with_rates(slot, fetched.sample, mono)
        suppressed_by = self.suppressor(target)
        # Right after a start or reload the upstream may not have been polled yet; a
        # restored fault must not be re-announced on its placeholder state.
        upstream = None if target.upstream is None else self._live.get(target.upstream)
        verdict = slot.assessor.assess(
            sample, now=now, suppressed_by=suppressed_by,
            unreachable_reason=fetched.failure, complete=fetched.walk_error is None,
            suppression_known=upstream is None or upstream.last_poll_at is not None)
        status = self._status(slot, fetched, sample, reset_note=reset_note, verdict=verdict,
                              now=now, suppressed_by=suppressed_by)
        if self._slots.get(target.id) is slot:
            self._live[target.id] = status
            self._snapshot = None  # readers keep the old snapshot, which never changes
        for event in verdict.events:
            log.info("%s: %s %s", target.id, type(event).__name__, event.key)
        return PollOutcome(status=status, events=verdict.events)

    async def _fetch(self, profile: Profile, session: PollSession) -> _Fetched:
        """GET and walk what the profile reads, and decode it; never raises."""
        target = session.target
        started = time.perf_counter()
        sample: LinkSample | None = None
        walk_error: str | None = None
        failure = ""
        try:
            scalars, columns, walk_error = await fetch(session, profile.scalars,
                                                       profile.columns)
            sample = decode_sample(profile, scalars, columns, interfaces=target.interfaces)
            if walk_error is not None:
                sample = dataclasses.replace(
                    sample, problems=(*sample.problems, f"table walk failed: {walk_error}"))
        except ProbeError as exc:
            failure = str(exc).removeprefix(f"{target.id}: ")
        except Exception as exc:  # a library bug must not stop the poller
            log.exception("%s: poll failed unexpectedly", target.id)
            failure = f"poll failed: {type(exc).__name__}: {exc}"
        return _Fetched(sample, walk_error, failure, time.perf_counter() - started)

    @staticmethod
    def _with_rates(slot: _Slot, sample: LinkSample | None, mono: float
                    ) -> tuple[LinkSample | None, str | None]:
        """``sample`` with rates against the slot's previous sample, which it becomes."""
        if sample is None or slot.session is None:
            return sample, None
        reset_note = None
        # Reboot detection compares the agent's uptime with real time elapsed between
        # the answers that carried it (an injected manual clock does not measure that).
        real = slot.session.answered_at
        previous = slot.last_sample
        if previous is not None:
            seconds = elapsed_seconds(previous, sample, mono - slot.last_sample_mono)
            sample, reset_note = apply_rates(previous, sample, seconds,
                                             real - slot.last_sample_real)
        slot.last_sample = sample
        slot.last_sample_mono = mono
        slot.last_sample_real = real
        return sample, reset_note

    def _status(self, slot: _Slot, fetched: _Fetched, sample: LinkSample | None, *,
                reset_note: str | None, verdict: Verdict, now: datetime,
                suppressed_by: str | None) -> TargetStatus:
        """The target's new status; counts the poll and logs what went wrong."""
        target = slot.target
        old = self._live.get(target.id) or _unpolled(target)
        self.polls += 1
        problems: tuple[str, ...] = ()
        if sample is not None:
            problems = sample.problems + ((reset_note,) if reset_note else ())
            for problem in sample.problems:
                log.warning("%s: %s", target.id, problem)
        else:
            self.failures += 1
            log.info("%s: unreachable: %s", target.id, fetched.failure)
        return TargetStatus(
            target=target.id,
            kind=target.kind,
            site=target.site,
            upstream=target.upstream,
            reachable=sample is not None,
            state=verdict.state,
            reasons=verdict.reasons + tuple(p for p in problems if p not in verdict.reasons),
            sys_uptime_seconds=None if sample is None or sample.sys_uptime_ticks is None
            else sample.sys_uptime_ticks / 100.0,
            poll_duration_seconds=round(fetched.duration, 6),
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
            walk_timeouts=slot.session.walk_timeouts if slot.session is not None else 0,
            rx_thresholds_dbm=slot.assessor.limits.rx_thresholds_dbm,
        )

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
