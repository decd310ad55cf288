"""Late grouping: a child that got its own ticket before its upstream was seen down.

The probes can see a child fail a moment before its upstream in the same polling round;
the child then opens a ticket of its own and is re-sent with ``suppressed_by`` once the
upstream is seen down. Young, untouched tickets move under the upstream's root ticket.
Real SQLite and PostgreSQL (the ``store`` fixture), injected clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from netguard.clock import ManualClock
from netguard.errors import InvalidTransitionError
from netguard.faults import FaultCleared
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import Ticket, TicketFilter, TicketState
from netguard.tickets.service import TicketService
from tests.tickets.conftest import OpenFactory

ALL = TicketFilter(states=tuple(TicketState))
ACTIVE = TicketFilter(states=(TicketState.OPEN, TicketState.ACKNOWLEDGED))


def _site(opened: OpenFactory, n: int = 1, *, upstream: str | None = "olt-1"):
    return opened(f"site-{n}", "agent", "unreachable", category="pon", suppressed_by=upstream)


def _olt(opened: OpenFactory):
    return opened("olt-1", "agent", "unreachable", category="pon", severity="critical")


async def _own(service: TicketService, opened: OpenFactory, n: int = 1) -> Ticket:
    """site-n fails its poll before olt-1: it opens a ticket of its own."""
    own = await service.handle(_site(opened, n, upstream=None))
    assert own is not None
    assert own.target == f"site-{n}"
    return own


async def _grouped(service: TicketService, opened: OpenFactory, clock: ManualClock
                   ) -> tuple[Ticket, Ticket]:
    """site-1's own ticket, grouped under olt-1's root ticket a second later."""
    own = await _own(service, opened)
    root = await service.handle(_olt(opened))
    assert root is not None
    clock.advance(1)
    landed = await service.handle(_site(opened))
    assert landed is not None
    assert landed.id == root.id
    return own, root


async def test_child_first_is_grouped_under_the_root(
        service: TicketService, opened: OpenFactory, cleared: Callable[..., FaultCleared],
        clock: ManualClock) -> None:
    own, root = await _grouped(service, opened, clock)
    # One active ticket, the root, with the child linked; the child's own one resolved.
    assert [t.ref for t in await service.list(ACTIVE)] == [root.ref]
    grouped = await service.detail(own.ref)
    assert (grouped.ticket.state, grouped.ticket.resolved_at) == (
        TicketState.RESOLVED, clock.now())
    last = grouped.events[-1]
    assert (last.actor, last.action, last.old_state, last.new_state, last.message) == (
        "netguard", "grouped", "open", "resolved",
        f"grouped under {root.ref}: upstream olt-1 is down")
    detail = await service.detail(root.ref)
    assert [(c.target, c.state, c.first_seen) for c in detail.children] == [
        ("site-1", "active", own.first_seen)]  # faulty since its own ticket opened
    attached = [e.message for e in detail.events if e.action == "child_attached"]
    assert attached == [f"site-1|agent|unreachable suppressed under this ticket (olt-1 is "
                        f"down); its own ticket {own.ref} was resolved as grouped"]
    # Repeats count on the child, not on either ticket.
    await service.handle(_site(opened))
    detail = await service.detail(root.ref)
    assert (detail.children[0].occurrences, detail.ticket.occurrences) == (2, 1)
    assert (await service.get(own.ref)).state is TicketState.RESOLVED
    # The child recovers with its upstream: nothing reopens, nothing is promoted.
    clock.advance(60)
    await service.handle(cleared("site-1", "agent", "unreachable"))
    await service.handle(cleared("olt-1", "agent", "unreachable"))
    assert [c.state for c in (await service.detail(root.ref)).children] == ["cleared"]
    clock.advance(300)
    result = await service.sweep()
    assert (result.resolved, result.promoted) == ((root.ref,), ())
    assert (await service.get(own.ref)).state is TicketState.RESOLVED
    assert await service.list(ACTIVE) == []


async def test_child_first_grouped_before_the_root_ticket_exists(
        service: TicketService, opened: OpenFactory, clock: ManualClock) -> None:
    own = await _own(service, opened)
    clock.advance(1)
    assert await service.handle(_site(opened)) is None  # waiting for olt-1's ticket
    assert await service.list(ACTIVE) == []
    last = (await service.detail(own.ref)).events[-1]
    assert (last.action, last.new_state, last.message) == (
        "grouped", "resolved",
        "grouped under the ticket of olt-1 (not open yet): upstream olt-1 is down")
    clock.advance(1)
    root = await service.handle(_olt(opened))
    assert root is not None
    assert [c.target for c in (await service.detail(root.ref)).children] == ["site-1"]
    assert [t.ref for t in await service.list(ACTIVE)] == [root.ref]


async def test_outside_the_window_keeps_its_own_ticket(
        service: TicketService, opened: OpenFactory, clock: ManualClock) -> None:
    own = await _own(service, opened)
    clock.advance(300)
    root = await service.handle(_olt(opened))
    assert root is not None
    clock.advance(1)  # own ticket is now 301 s old: window is 300 s
    again = await service.handle(_site(opened))
    assert again is not None
    assert (again.id, again.state, again.occurrences) == (own.id, TicketState.OPEN, 2)
    assert (await service.detail(root.ref)).children == ()
    assert sorted(t.ref for t in await service.list(ACTIVE)) == sorted([own.ref, root.ref])


@pytest.mark.parametrize("touch", ["ack", "assign", "comment"])
async def test_a_ticket_a_human_touched_keeps_its_own_ticket(
        service: TicketService, opened: OpenFactory, clock: ManualClock, touch: str) -> None:
    own = await _own(service, opened)
    if touch == "ack":
        await service.acknowledge(own.ref, actor="dana")
    elif touch == "assign":
        await service.assign(own.ref, "dana", actor="lee")
    else:
        await service.comment(own.ref, "driving there now", actor="dana")
    root = await service.handle(_olt(opened))
    assert root is not None
    clock.advance(1)
    again = await service.handle(_site(opened))
    assert again is not None
    assert (again.id, again.occurrences) == (own.id, 2)
    assert again.state in (TicketState.OPEN, TicketState.ACKNOWLEDGED)
    assert "grouped" not in [e.action for e in (await service.detail(own.ref)).events]
    assert (await service.detail(root.ref)).children == ()


async def test_group_window_is_configurable(store, clock: ManualClock,
                                            opened: OpenFactory) -> None:
    svc = TicketService(store, TicketsConfig(group_window_seconds=0), clock=clock)
    own = await _own(svc, opened)
    await svc.handle(_olt(opened))
    clock.advance(1)
    again = await svc.handle(_site(opened))
    assert again is not None
    assert again.id == own.id  # grouping off


async def test_upstream_recovers_grouped_child_still_down_reopens_its_ticket(
        service: TicketService, opened: OpenFactory, cleared: Callable[..., FaultCleared],
        clock: ManualClock) -> None:
    """The child's own ticket comes back: same fault, same ticket, full history."""
    own, root = await _grouped(service, opened, clock)
    clock.advance(120)
    await service.handle(cleared("olt-1", "agent", "unreachable"))
    # The probes re-announce site-1 without suppression: it is still down.
    back = await service.handle(_site(opened, upstream=None))
    assert back is not None
    assert (back.id, back.state, back.reopens) == (own.id, TicketState.OPEN, 1)
    assert back.first_seen == own.first_seen
    assert [(c.state, c.promoted_to) for c in (await service.detail(root.ref)).children] == [
        ("promoted", own.ref)]
    assert [e.action for e in (await service.detail(own.ref)).events] == [
        "opened", "grouped", "reopened"]
    assert sorted(t.ref for t in await service.list(ACTIVE)) == sorted([own.ref, root.ref])
    # Its clear now resolves its own ticket after the hold.
    await service.handle(cleared("site-1", "agent", "unreachable"))
    clock.advance(300)
    assert set((await service.sweep()).resolved) == {root.ref, own.ref}


async def test_root_resolves_with_grouped_child_still_down(
        service: TicketService, opened: OpenFactory, cleared: Callable[..., FaultCleared],
        clock: ManualClock) -> None:
    own, root = await _grouped(service, opened, clock)
    await service.handle(cleared("olt-1", "agent", "unreachable"))
    clock.advance(300)
    result = await service.sweep()
    assert (result.resolved, result.promoted) == ((root.ref,), (own.ref,))
    assert (await service.get(own.ref)).state is TicketState.OPEN


async def test_grouped_child_after_reopen_window_gets_a_new_ticket(
        service: TicketService, opened: OpenFactory, cleared: Callable[..., FaultCleared],
        clock: ManualClock) -> None:
    own, root = await _grouped(service, opened, clock)
    clock.advance(3601)  # a long outage: past the reopen window
    await service.handle(cleared("olt-1", "agent", "unreachable"))
    fresh = await service.handle(_site(opened, upstream=None))
    assert fresh is not None
    assert fresh.id not in (own.id, root.id)
    assert fresh.first_seen == own.first_seen
    assert (await service.get(own.ref)).state is TicketState.RESOLVED


async def test_acceptance_three_children_before_between_and_after_the_root(
        service: TicketService, opened: OpenFactory, cleared: Callable[..., FaultCleared],
        clock: ManualClock) -> None:
    """Issue 3, acceptance 4, with children arriving in every order around the root."""
    own1 = await _own(service, opened, 1)                  # before, unsuppressed
    clock.advance(1)
    assert await service.handle(_site(opened, 2)) is None  # before, suppressed: waits
    clock.advance(1)
    root = await service.handle(_olt(opened))              # the root
    assert root is not None
    clock.advance(1)
    for n in (1, 3):                                       # after: re-sent, and new
        landed = await service.handle(_site(opened, n))
        assert landed is not None
        assert landed.id == root.id
    active = await service.list(ACTIVE)
    assert [t.ref for t in active] == [root.ref]
    detail = await service.detail(root.ref)
    assert sorted((c.target, c.state) for c in detail.children) == [
        ("site-1", "active"), ("site-2", "active"), ("site-3", "active")]
    everything = {t.ref: t.state for t in await service.list(ALL)}
    assert everything == {root.ref: TicketState.OPEN, own1.ref: TicketState.RESOLVED}
    # The upstream recovers; site-1 and site-2 with it, site-3 stays down.
    clock.advance(60)
    await service.handle(cleared("olt-1", "agent", "unreachable"))
    for n in (1, 2):
        await service.handle(cleared(f"site-{n}", "agent", "unreachable"))
    own3 = await service.handle(_site(opened, 3, upstream=None))
    assert own3 is not None
    assert own3.id not in (root.id, own1.id)
    assert own3.target == "site-3"
    assert sorted(t.ref for t in await service.list(ACTIVE)) == sorted([root.ref, own3.ref])
    assert (await service.get(own1.ref)).state is TicketState.RESOLVED


async def test_grandchildren_move_up_with_their_grouped_parent(
        service: TicketService, opened: OpenFactory, clock: ManualClock) -> None:
    """olt-1 had its own ticket with a site under it; then its uplink is seen down."""
    mid = await service.handle(opened("olt-1", "agent", "unreachable", category="pon"))
    assert mid is not None
    assert (await service.handle(_site(opened))) is not None
    clock.advance(1)
    # Before the uplink has a ticket: both wait, then the uplink's ticket adopts both.
    assert await service.handle(opened("olt-1", "agent", "unreachable", category="pon",
                                       suppressed_by="core")) is None
    events = (await service.detail(mid.ref)).events
    assert [e.action for e in events][-2:] == ["grouped", "child_moved"]
    clock.advance(700)  # past the orphan grace: site-1 keeps waiting for olt-1's fate
    assert (await service.sweep()).promoted == (mid.ref,)  # olt-1 itself waited too long
    reborn = await service.get(mid.ref)
    assert reborn.state is TicketState.OPEN  # its own ticket, reopened
    assert [c.target for c in (await service.detail(mid.ref)).children
            if c.state == "active"] == ["site-1"]


async def test_grandchildren_move_to_an_existing_root(
        service: TicketService, opened: OpenFactory, clock: ManualClock) -> None:
    mid = await service.handle(opened("olt-1", "agent", "unreachable", category="pon"))
    assert mid is not None
    await service.handle(_site(opened))
    root = await service.handle(opened("core", "agent", "unreachable", category="fiber"))
    assert root is not None
    clock.advance(1)
    landed = await service.handle(opened("olt-1", "agent", "unreachable", category="pon",
                                         suppressed_by="core"))
    assert landed is not None
    assert landed.id == root.id
    children = (await service.detail(root.ref)).children
    assert sorted(c.target for c in children) == ["olt-1", "site-1"]
    assert [t.ref for t in await service.list(ACTIVE)] == [root.ref]


async def test_grouping_races(service: TicketService, opened: OpenFactory,
                              clock: ManualClock) -> None:
    """20 concurrent suppressed reports: grouped once, every report counted."""
    own = await _own(service, opened)
    root = await service.handle(_olt(opened))
    assert root is not None
    clock.advance(1)
    landed = await asyncio.gather(*(service.handle(_site(opened)) for _ in range(20)))
    assert {t.id for t in landed if t is not None} == {root.id}
    detail = await service.detail(own.ref)
    assert [e.action for e in detail.events].count("grouped") == 1
    children = (await service.detail(root.ref)).children
    assert [(c.target, c.occurrences) for c in children] == [("site-1", 20)]


async def test_grouping_racing_an_acknowledgement(service: TicketService,
                                                  opened: OpenFactory,
                                                  clock: ManualClock) -> None:
    """Either the engineer wins (kept, acknowledged) or grouping wins (ack refused)."""
    own = await _own(service, opened)
    root = await service.handle(_olt(opened))
    assert root is not None
    clock.advance(1)
    ack, landed = await asyncio.gather(service.acknowledge(own.ref, actor="dana"),
                                       service.handle(_site(opened)),
                                       return_exceptions=True)
    after = await service.detail(own.ref)
    if isinstance(ack, InvalidTransitionError):
        assert after.ticket.state is TicketState.RESOLVED
        assert isinstance(landed, Ticket)
        assert landed.id == root.id
    else:
        assert not isinstance(ack, BaseException), ack
        assert after.ticket.state is TicketState.ACKNOWLEDGED
        assert isinstance(landed, Ticket)
        assert (landed.id, landed.occurrences) == (own.id, 2)
        assert (await service.detail(root.ref)).children == ()


async def test_pending_grandchildren_adopted_when_the_root_opens(
        service: TicketService, opened: OpenFactory, clock: ManualClock) -> None:
    mid = await service.handle(opened("olt-1", "agent", "unreachable", category="pon"))
    assert mid is not None
    await service.handle(_site(opened))
    clock.advance(1)
    assert await service.handle(opened("olt-1", "agent", "unreachable", category="pon",
                                       suppressed_by="core")) is None
    clock.advance(1)
    root = await service.handle(opened("core", "agent", "unreachable", category="fiber"))
    assert root is not None
    detail = await service.detail(root.ref)
    assert sorted((c.target, c.upstream_target) for c in detail.children) == [
        ("olt-1", "core"), ("site-1", "olt-1")]
    assert [e.action for e in detail.events].count("child_attached") == 2
    assert [t.ref for t in await service.list(ACTIVE)] == [root.ref]
    clock.advance(700)
    assert (await service.sweep()).promoted == ()  # nothing is an orphan any more
