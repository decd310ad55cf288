"""The probe roster switches target lists without blanking statuses or cutting off polls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import pytest

from netguard.daemon.roster import ProbeRoster
from netguard.errors import NotFoundError
from netguard.faults import FaultKey
from netguard.probes.assess import ActiveFault
from netguard.probes.config import TargetConfig
from netguard.probes.state import PollOutcome, TargetStatus
from tests.support.wait import async_wait_until

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _targets(*ids: str) -> list[TargetConfig]:
    return [TargetConfig.model_validate({"id": tid, "kind": "fiber", "address": "127.0.0.1:9"})
            for tid in ids]


class Backend:
    """A probe service stand-in: statuses start unpolled; a poll may be held."""

    def __init__(self, targets: Sequence[TargetConfig], gate: asyncio.Event | None) -> None:
        self.live = {t.id: TargetStatus(target=t.id, kind=t.kind) for t in targets}
        self.gate = gate
        self.closed = False
        self.held = 0
        self.active: dict[FaultKey, ActiveFault] = {}

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.closed = True

    def statuses(self) -> dict[str, TargetStatus]:
        return dict(self.live)

    def restore_active(self, faults: Iterable[FaultKey | ActiveFault]) -> int:
        seeded = [f if isinstance(f, ActiveFault) else ActiveFault(f) for f in faults]
        self.active.update({f.key: f for f in seeded if f.key.target in self.live})
        return len(seeded)

    def release_active(self, keys: Iterable[FaultKey]) -> int:
        return len([self.active.pop(k) for k in keys if k in self.active])

    def active_faults(self, target_ids: Iterable[str] | None = None) -> list[ActiveFault]:
        ids = set(self.live if target_ids is None else target_ids)
        return [f for k, f in self.active.items() if k.target in ids]

    async def poll(self, target_id: str) -> PollOutcome:
        if target_id not in self.live:
            raise NotFoundError("target", target_id)
        if self.gate is not None:
            self.held += 1
            await self.gate.wait()
        status = replace(self.live[target_id], reachable=True, state="up", last_poll_at=NOW)
        self.live[target_id] = status
        return PollOutcome(status, ())


class Backends:
    def __init__(self) -> None:
        self.opened: list[Backend] = []
        self.gate: asyncio.Event | None = None

    def __call__(self, targets: Sequence[TargetConfig]) -> Any:
        backend = Backend(targets, self.gate)
        self.opened.append(backend)
        return backend


async def _true(value: bool) -> bool:
    return value


async def test_replace_switches_polls_carries_statuses_and_drains_the_old_service() -> None:
    backends = Backends()
    async with ProbeRoster(backends, _targets("a", "b")) as roster:
        await roster.poll("a")
        await roster.poll("b")
        old = backends.opened[0]
        old.gate = asyncio.Event()  # a poll of "b" is under way during the switch
        slow = asyncio.create_task(roster.poll("b"))
        await async_wait_until(lambda: _true(old.held == 1), what="poll under way")
        switched: list[bool] = []
        replacing = asyncio.create_task(
            roster.replace(_targets("b", "c"), lambda: switched.append(True), 5.0))
        await async_wait_until(lambda: _true(bool(switched)), what="switch")
        new = backends.opened[1]
        # Kept "b" shows its last status until the new service polls it; "a" is gone;
        # "c" is new and unpolled.
        statuses = roster.statuses()
        assert set(statuses) == {"b", "c"}
        assert statuses["b"].state == "up"
        assert statuses["c"].last_poll_at is None
        assert not old.closed  # still polling "b"
        old.gate.set()
        await slow
        await replacing
        assert old.closed
        assert not new.closed
        await roster.poll("b")
        assert roster.statuses()["b"] is new.live["b"]
        with pytest.raises(NotFoundError):
            await roster.poll("a")
        assert [t.id for t in roster.targets] == ["b", "c"]
    assert new.closed


async def test_a_stuck_old_poll_does_not_hold_the_reload_past_its_timeout() -> None:
    backends = Backends()
    async with ProbeRoster(backends, _targets("a")) as roster:
        backends.opened[0].gate = asyncio.Event()  # never set
        stuck = asyncio.create_task(roster.poll("a"))
        await async_wait_until(lambda: _true(backends.opened[0].held == 1),
                               what="poll under way")
        await roster.replace(_targets("a"), lambda: None, 0.05)
        assert backends.opened[0].closed
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck


async def test_replace_carries_active_faults_of_kept_targets_and_late_changes() -> None:
    a_down = FaultKey("a", "agent", "unreachable")
    a_low = FaultKey("a", "sensor:rx", "rx_power_low")
    b_low = FaultKey("b", "sensor:rx", "rx_power_low")
    b_new = FaultKey("b", "if:ge0", "oper_down")
    backends = Backends()
    async with ProbeRoster(backends, _targets("a", "b")) as roster:
        assert roster.restore_active([a_down, a_low, b_low,
                                      FaultKey("gone", "agent", "unreachable")]) == 4
        old = backends.opened[0]
        assert set(old.active) == {a_down, a_low, b_low}
        old.gate = asyncio.Event()  # a poll of "b" is under way during the switch
        slow = asyncio.create_task(roster.poll("b"))
        await async_wait_until(lambda: _true(old.held == 1), what="poll under way")
        replacing = asyncio.create_task(roster.replace(_targets("b", "c"), lambda: None, 5.0))
        await async_wait_until(lambda: _true(len(backends.opened) == 2), what="new service")
        new = backends.opened[1]
        await async_wait_until(lambda: _true(b_low in new.active), what="faults carried")
        # Only the kept target's faults move; "a" was removed.
        assert set(new.active) == {b_low}
        # The old service's last poll of "b" clears one fault and opens another.
        del old.active[b_low]
        old.active[b_new] = ActiveFault(b_new, level="down")
        old.gate.set()
        await slow
        await replacing
        assert set(new.active) == {b_new}
        assert new.active[b_new].level == "down"
