"""The ticket service against real SQLite and PostgreSQL, with an injected clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from netguard.clock import ManualClock
from netguard.errors import (
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    TicketConflictError,
)
from netguard.faults import FaultCleared, FaultKey
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import (
    ALLOWED_ACTIONS,
    TicketAction,
    TicketFilter,
    TicketState,
)
from netguard.tickets.service import TicketService
from tests.tickets.conftest import OpenFactory


async def _ticket_in(service: TicketService, state: TicketState, n: int) -> str:
    """A fresh manual ticket brought to ``state``."""
    t = await service.open(category="fiber", summary=f"ticket {n}", severity="minor",
                           target=f"t-{n}", actor="setup")
    if state is TicketState.ACKNOWLEDGED:
        await service.acknowledge(t.ref, actor="setup")
    elif state is TicketState.RESOLVED:
        await service.resolve(t.ref, actor="setup", message="done")
    elif state is TicketState.CLOSED:
        await service.resolve(t.ref, actor="setup", message="done")
        await service.close(t.ref, actor="setup")
    assert (await service.get(t.ref)).state is state
    return t.ref


EXPECTED = {
    TicketAction.ACKNOWLEDGE: TicketState.ACKNOWLEDGED,
    TicketAction.RESOLVE: TicketState.RESOLVED,
    TicketAction.CLOSE: TicketState.CLOSED,
    TicketAction.REOPEN: TicketState.OPEN,
}


async def _apply(service: TicketService, action: TicketAction, ref: str):
    if action is TicketAction.ACKNOWLEDGE:
        return await service.acknowledge(ref, actor="op", message="seen")
    if action is TicketAction.ASSIGN:
        return await service.assign(ref, "dana", actor="op")
    if action is TicketAction.COMMENT:
        return await service.comment(ref, "a note", actor="op")
    if action is TicketAction.RESOLVE:
        return await service.resolve(ref, actor="op", message="fixed")
    if action is TicketAction.CLOSE:
        return await service.close(ref, actor="op")
    return await service.reopen(ref, actor="op", message="again")


async def test_every_transition_valid_and_invalid(service: TicketService) -> None:
    n = 0
    for state in TicketState:
        for action in TicketAction:
            n += 1
            ref = await _ticket_in(service, state, n)
            before = await service.detail(ref)
            if action in ALLOWED_ACTIONS[state]:
                ticket = await _apply(service, action, ref)
                assert ticket.state is EXPECTED.get(action, state), (state, action)
                after = await service.detail(ref)
                last = after.events[-1]
                assert len(after.events) == len(before.events) + 1
                assert (last.actor, last.old_state) == ("op", state.value)
                assert last.new_state == ticket.state.value
            else:
                with pytest.raises(InvalidTransitionError) as info:
                    await _apply(service, action, ref)
                message = str(info.value)
                assert f"it is {state.value}" in message, message
                allowed = ", ".join(a.value for a in ALLOWED_ACTIONS[state])
                assert f"allowed actions: {allowed}" in message
                after = await service.detail(ref)
                assert after.ticket.state is state
                assert len(after.events) == len(before.events)  # nothing recorded


async def test_action_side_effects(service: TicketService, clock: ManualClock) -> None:
    t = await service.open(category="wireless", summary="link flaky", severity="major",
                           site="lab", actor="alice")
    assert t.sla_due == t.opened_at + __import__("datetime").timedelta(minutes=240)
    clock.advance(60)
    acked = await service.acknowledge(t.ref, actor="bob")
    assert acked.acknowledged_at == clock.now()
    assigned = await service.assign(t.ref, "carol", actor="bob", message="night shift")
    assert assigned.assignee == "carol"
    resolved = await service.resolve(t.ref, actor="carol", message="antenna realigned")
    assert resolved.resolved_at == clock.now()
    clock.advance(10)
    closed = await service.close(t.ref, actor="carol")
    assert closed.closed_at == clock.now()
    reopened = await service.reopen(t.ref, actor="alice", message="back again")
    assert (reopened.state, reopened.reopens, reopened.closed_at) == (TicketState.OPEN, 1, None)
    history = [(e.actor, e.action, e.message) for e in (await service.detail(t.ref)).events]
    assert history == [
        ("alice", "opened", "link flaky"),
        ("bob", "acknowledged", ""),
        ("bob", "assigned", "assigned to carol: night shift"),
        ("carol", "resolved", "antenna realigned"),
        ("carol", "closed", ""),
        ("alice", "reopened", "back again"),
    ]


async def test_unknown_ids_and_bad_input(service: TicketService) -> None:
    for ref in ("NG-000404", "NG-xyz", "", "NG-000000"):
        with pytest.raises(NotFoundError):
            await service.acknowledge(ref, actor="op")
    with pytest.raises(NotFoundError):
        await service.detail("NG-000404")
    with pytest.raises(InvalidInputError, match="target or a site"):
        await service.open(category="pon", summary="x", severity="minor", actor="op")
    with pytest.raises(InvalidInputError, match="unknown severity"):
        await service.open(category="pon", summary="x", severity="urgent",  # type: ignore[arg-type]
                           target="a", actor="op")
    t = await service.open(category="pon", summary="x", severity="minor", target="a",
                           actor="op")
    with pytest.raises(InvalidInputError, match="needs a message"):
        await service.comment(t.ref, "  ", actor="op")


async def test_repeat_reports_update_one_ticket(service: TicketService, opened: OpenFactory,
                                                clock: ManualClock) -> None:
    first = await service.handle(opened(summary="olt-1: if:3 down"))
    assert first is not None
    assert (first.ref, first.state, first.occurrences, first.source) == (
        "NG-000001", TicketState.OPEN, 1, "fault")
    clock.advance(30)
    again = await service.handle(opened(summary="olt-1: if:3 still down"))
    assert again is not None
    assert again.id == first.id
    assert (again.occurrences, again.last_seen, again.first_seen) == (
        2, clock.now(), first.first_seen)
    assert again.summary == "olt-1: if:3 still down"
    other = await service.handle(opened(component="if:4"))
    assert other is not None
    assert other.id != first.id
    actions = [e.action for e in (await service.detail(first.ref)).events]
    assert actions == ["opened", "repeat"]


async def test_severity_from_site_criticality(service: TicketService,
                                              opened: OpenFactory) -> None:
    normal = await service.handle(opened("a", severity="minor", site="lab"))
    hotel = await service.handle(opened("b", severity="minor", site="hotel-1"))
    capped = await service.handle(opened("c", severity="critical", site="hotel-1"))
    unknown_site = await service.handle(opened("d", severity="warning", site="nowhere"))
    assert normal is not None
    assert hotel is not None
    assert capped is not None
    assert unknown_site is not None
    assert (normal.severity, hotel.severity, capped.severity, unknown_site.severity) == (
        "minor", "major", "critical", "warning")
    # The SLA follows the raised severity (major: 240 min).
    assert (hotel.sla_due - hotel.opened_at).total_seconds() == 240 * 60
    # A later, worse report raises the ticket's severity and tightens its SLA.
    worse = await service.handle(opened("a", severity="critical", site="lab"))
    assert worse is not None
    assert (worse.id, worse.severity) == (normal.id, "critical")
    assert (worse.sla_due - worse.opened_at).total_seconds() == 60 * 60


async def test_auto_resolve_after_hold(service: TicketService, opened: OpenFactory,
                                       cleared: Callable[..., FaultCleared],
                                       clock: ManualClock) -> None:
    t = await service.handle(opened())
    assert t is not None
    clock.advance(10)
    pending = await service.handle(cleared())
    assert pending is not None
    assert (pending.state, pending.cleared_at) == (TicketState.OPEN, clock.now())
    clock.advance(299)
    assert (await service.sweep()).resolved == ()
    assert (await service.get(t.ref)).state is TicketState.OPEN
    clock.advance(1)
    result = await service.sweep()
    assert result.resolved == (t.ref,)
    done = await service.get(t.ref)
    assert (done.state, done.resolved_at) == (TicketState.RESOLVED, clock.now())
    assert (await service.sweep()).resolved == ()  # idempotent
    last = (await service.detail(t.ref)).events[-1]
    assert (last.actor, last.action, last.old_state, last.new_state) == (
        "netguard", "resolved", "open", "resolved")


async def test_acknowledged_ticket_auto_resolves_too(service: TicketService,
                                                     opened: OpenFactory,
                                                     cleared: Callable[..., FaultCleared],
                                                     clock: ManualClock) -> None:
    t = await service.handle(opened())
    assert t is not None
    await service.acknowledge(t.ref, actor="bob")
    await service.handle(cleared())
    clock.advance(300)
    assert (await service.sweep()).resolved == (t.ref,)
    last = (await service.detail(t.ref)).events[-1]
    assert (last.old_state, last.new_state) == ("acknowledged", "resolved")


async def test_flap_inside_hold_keeps_ticket_open(service: TicketService,
                                                  opened: OpenFactory,
                                                  cleared: Callable[..., FaultCleared],
                                                  clock: ManualClock) -> None:
    t = await service.handle(opened())
    assert t is not None
    for flap in (1, 2):
        await service.handle(cleared())
        clock.advance(200)
        again = await service.handle(opened())
        assert again is not None
        assert (again.id, again.flaps, again.cleared_at) == (t.id, flap, None)
        clock.advance(200)
        assert (await service.sweep()).resolved == ()  # the hold restarted
    assert (await service.get(t.ref)).occurrences == 3
    # A repeat while not clearing is not a flap.
    clock.advance(10)
    assert (await service.handle(opened()) or t).flaps == 2


async def test_reopen_window(service: TicketService, opened: OpenFactory,
                             cleared: Callable[..., FaultCleared], clock: ManualClock) -> None:
    t = await service.handle(opened())
    assert t is not None
    await service.handle(cleared())
    clock.advance(300)
    await service.sweep()
    clock.advance(3599)  # inside the 3600 s window
    back = await service.handle(opened())
    assert back is not None
    assert (back.id, back.state, back.reopens, back.occurrences) == (
        t.id, TicketState.OPEN, 1, 2)
    assert (back.resolved_at, back.cleared_at) == (None, None)
    # Resolve again, then recur after the window: a new ticket.
    await service.handle(cleared())
    clock.advance(300)
    await service.sweep()
    clock.advance(3601)
    fresh = await service.handle(opened())
    assert fresh is not None
    assert fresh.id != t.id
    assert (await service.get(t.ref)).state is TicketState.RESOLVED
    assert (fresh.reopens, fresh.occurrences) == (0, 1)


async def test_closed_ticket_never_reopens_automatically(service: TicketService,
                                                         opened: OpenFactory,
                                                         cleared: Callable[..., FaultCleared],
                                                         clock: ManualClock) -> None:
    t = await service.handle(opened())
    assert t is not None
    await service.handle(cleared())
    clock.advance(300)
    await service.sweep()
    await service.close(t.ref, actor="op")
    clock.advance(5)  # well inside the reopen window
    fresh = await service.handle(opened())
    assert fresh is not None
    assert fresh.id != t.id
    assert (await service.get(t.ref)).state is TicketState.CLOSED
    # Reopening the closed one by hand now conflicts with the active ticket.
    with pytest.raises(TicketConflictError, match="already open"):
        await service.reopen(t.ref, actor="op", message="mine")
    assert (await service.get(t.ref)).state is TicketState.CLOSED


async def test_manual_resolve_then_recurrence_reopens(service: TicketService,
                                                      opened: OpenFactory,
                                                      clock: ManualClock) -> None:
    t = await service.handle(opened())
    assert t is not None
    await service.resolve(t.ref, actor="op", message="looks fine")
    clock.advance(60)
    back = await service.handle(opened())
    assert back is not None
    assert (back.id, back.state) == (t.id, TicketState.OPEN)


async def test_clear_for_unknown_fault_is_ignored(service: TicketService,
                                                  cleared: Callable[..., FaultCleared]) -> None:
    assert await service.handle(cleared("nobody")) is None
    assert await service.list() == []


async def test_zero_hold_resolves_at_once(store, clock: ManualClock, opened: OpenFactory,
                                          cleared: Callable[..., FaultCleared]) -> None:
    svc = TicketService(store, TicketsConfig(resolve_hold_seconds=0), clock=clock)
    t = await svc.handle(opened())
    assert t is not None
    done = await svc.handle(cleared())
    assert done is not None
    assert done.state is TicketState.RESOLVED


async def test_sla_overdue_and_counts(service: TicketService, opened: OpenFactory,
                                      clock: ManualClock) -> None:
    crit = await service.handle(opened("a", severity="critical", category="pon"))
    await service.handle(opened("b", severity="minor", category="pon"))
    await service.handle(opened("c", severity="minor", category="fiber"))
    assert crit is not None
    counts = await service.counts()
    assert counts.open == {("pon", "critical"): 1, ("pon", "minor"): 1, ("fiber", "minor"): 1}
    assert sum(counts.overdue.values()) == 0
    clock.advance(3600)  # the critical SLA (60 min) is due
    result = await service.sweep()
    assert result.overdue == (crit.ref,)
    assert (await service.sweep()).overdue == ()  # marked once
    counts = await service.counts()
    assert counts.overdue == {("pon", "critical"): 1, ("pon", "minor"): 0, ("fiber", "minor"): 0}
    assert [t.ref for t in await service.list(TicketFilter(overdue=True))] == [crit.ref]
    assert (await service.get(crit.ref)).overdue
    last = (await service.detail(crit.ref)).events[-1]
    assert (last.actor, last.action) == ("netguard", "overdue")
    # Resolved tickets are neither open nor overdue.
    await service.resolve(crit.ref, actor="op", message="done")
    counts = await service.counts()
    assert ("pon", "critical") not in counts.open


async def test_root_cause_grouping(service: TicketService, opened: OpenFactory,
                                   cleared: Callable[..., FaultCleared],
                                   clock: ManualClock) -> None:
    """Acceptance 4: a PON station down with 3 faulty children gives 1 ticket + 3 links."""
    root = await service.handle(opened("pon-station", "agent", "unreachable",
                                       severity="critical", category="pon"))
    assert root is not None
    for n in (1, 2, 3):
        landed = await service.handle(opened(f"ont-{n}", "pon:0/1/1", "ont_down",
                                             category="pon", suppressed_by="pon-station"))
        assert landed is not None
        assert landed.id == root.id
    assert [t.ref for t in await service.list(TicketFilter(states=tuple(TicketState)))] == [
        root.ref]
    detail = await service.detail(root.ref)
    assert [(c.target, c.state) for c in detail.children] == [
        ("ont-1", "active"), ("ont-2", "active"), ("ont-3", "active")]
    # Repeats of a child count on the child, not on a ticket.
    await service.handle(opened("ont-1", "pon:0/1/1", "ont_down", category="pon",
                                suppressed_by="pon-station"))
    detail = await service.detail(root.ref)
    assert (detail.ticket.occurrences, detail.children[0].occurrences) == (1, 2)
    # The upstream recovers; ont-1 and ont-2 recover with it, ont-3 stays down.
    clock.advance(60)
    await service.handle(cleared("pon-station", "agent", "unreachable"))
    await service.handle(cleared("ont-1", "pon:0/1/1", "ont_down"))
    await service.handle(cleared("ont-2", "pon:0/1/1", "ont_down"))
    # The probes re-announce ont-3 without suppression: it gets its own ticket.
    own = await service.handle(opened("ont-3", "pon:0/1/1", "ont_down", category="pon"))
    assert own is not None
    assert own.id != root.id
    assert own.first_seen < own.opened_at  # it has been faulty since the outage began
    detail = await service.detail(root.ref)
    assert [(c.target, c.state, c.promoted_to) for c in detail.children] == [
        ("ont-1", "cleared", None), ("ont-2", "cleared", None),
        ("ont-3", "promoted", own.ref)]
    assert [e.action for e in detail.events].count("child_attached") == 3
    assert "child_promoted" in [e.action for e in detail.events]
    active = await service.list()
    assert sorted(t.ref for t in active) == sorted([root.ref, own.ref])


async def test_children_still_down_when_root_resolves_get_tickets(
        service: TicketService, opened: OpenFactory, cleared: Callable[..., FaultCleared],
        clock: ManualClock) -> None:
    root = await service.handle(opened("olt", "agent", "unreachable", category="pon"))
    assert root is not None
    for n in (1, 2, 3):
        await service.handle(opened(f"ont-{n}", "pon:1", "ont_down", category="pon",
                                    suppressed_by="olt"))
    await service.handle(cleared("olt", "agent", "unreachable"))
    await service.handle(cleared("ont-1", "pon:1", "ont_down"))
    await service.handle(cleared("ont-2", "pon:1", "ont_down"))
    clock.advance(300)
    result = await service.sweep()
    assert result.resolved == (root.ref,)
    assert len(result.promoted) == 1  # no re-announcement needed
    own = await service.get(result.promoted[0])
    assert (own.target, own.state) == ("ont-3", TicketState.OPEN)


async def test_child_before_upstream_ticket(service: TicketService, opened: OpenFactory,
                                            clock: ManualClock) -> None:
    waiting = await service.handle(opened("ont-1", "pon:1", "ont_down", category="pon",
                                          suppressed_by="olt"))
    assert waiting is None
    assert await service.list() == []
    clock.advance(5)
    root = await service.handle(opened("olt", "agent", "unreachable", category="pon"))
    assert root is not None
    detail = await service.detail(root.ref)
    assert [c.target for c in detail.children] == ["ont-1"]
    # A second child now lands straight on the root.
    second = await service.handle(opened("ont-2", "pon:1", "ont_down", category="pon",
                                         suppressed_by="olt"))
    assert second is not None
    assert second.id == root.id


async def test_child_whose_upstream_never_opens_gets_own_ticket(
        service: TicketService, opened: OpenFactory, clock: ManualClock) -> None:
    assert await service.handle(opened("ont-9", "pon:1", "ont_down", category="pon",
                                       suppressed_by="olt-x")) is None
    clock.advance(599)
    assert (await service.sweep()).promoted == ()
    clock.advance(1)
    result = await service.sweep()
    assert len(result.promoted) == 1
    assert (await service.get(result.promoted[0])).target == "ont-9"


async def test_chained_suppression_attaches_to_the_root(service: TicketService,
                                                        opened: OpenFactory) -> None:
    root = await service.handle(opened("core", "agent", "unreachable", category="fiber"))
    assert root is not None
    mid = await service.handle(opened("olt", "agent", "unreachable", category="pon",
                                      suppressed_by="core"))
    leaf = await service.handle(opened("ont", "pon:1", "ont_down", category="pon",
                                       suppressed_by="olt"))
    assert mid is not None
    assert leaf is not None
    assert mid.id == leaf.id == root.id


async def test_fault_with_old_own_ticket_keeps_it_when_suppressed(
        service: TicketService, opened: OpenFactory, clock: ManualClock) -> None:
    own = await service.handle(opened("ont-1", "pon:1", "ont_down", category="pon"))
    clock.advance(301)  # past tickets.group_window_seconds: no late grouping
    await service.handle(opened("olt", "agent", "unreachable", category="pon"))
    again = await service.handle(opened("ont-1", "pon:1", "ont_down", category="pon",
                                        suppressed_by="olt"))
    assert own is not None
    assert again is not None
    assert (again.id, again.occurrences) == (own.id, 2)


async def test_list_filters_and_order(service: TicketService, opened: OpenFactory,
                                      clock: ManualClock) -> None:
    a = await service.handle(opened("a", severity="minor", category="fiber", site="lab"))
    clock.advance(60)
    b = await service.handle(opened("b", severity="critical", category="pon"))
    clock.advance(60)
    c = await service.handle(opened("c", severity="minor", category="wireless"))
    clock.advance(60)
    d = await service.open(category="cabin_power", summary="door forced", severity="major",
                           site="lab", actor="op")
    assert a
    assert b
    assert c
    refs = [t.ref for t in await service.list()]
    assert refs == [b.ref, d.ref, a.ref, c.ref]  # severity, then oldest first
    await service.assign(c.ref, "erin", actor="op")
    await service.resolve(a.ref, actor="op", message="ok")
    await service.close(a.ref, actor="op")

    async def refs_for(**kw: object) -> list[str]:
        return [t.ref for t in await service.list(TicketFilter(**kw))]  # type: ignore[arg-type]

    assert await refs_for() == [b.ref, d.ref, c.ref]  # closed hidden by default
    assert await refs_for(states=(TicketState.CLOSED,)) == [a.ref]
    assert await refs_for(categories=("pon", "wireless")) == [b.ref, c.ref]
    assert await refs_for(severities=("major",)) == [d.ref]
    assert await refs_for(sites=("lab",), states=tuple(TicketState)) == [d.ref, a.ref]
    assert await refs_for(targets=("b",)) == [b.ref]
    assert await refs_for(assignees=("erin",)) == [c.ref]
    assert await refs_for(since=b.opened_at) == [b.ref, d.ref, c.ref]
    assert await refs_for(since=clock.now()) == [d.ref]
    assert await refs_for(limit=2) == [b.ref, d.ref]


async def test_times_are_utc_aware(service: TicketService, opened: OpenFactory) -> None:
    t = await service.handle(opened())
    assert t is not None
    detail = await service.detail(t.ref)
    for value in (t.first_seen, t.last_seen, t.opened_at, t.updated_at, t.sla_due,
                  *(e.at for e in detail.events)):
        assert value.utcoffset() is not None
        assert value.utcoffset().total_seconds() == 0


async def test_fault_key_text_round_trips(service: TicketService, opened: OpenFactory) -> None:
    t = await service.handle(opened("olt-7", "pon:0/1/2", "rx_power_low"))
    assert t is not None
    assert t.fault_key is not None
    assert FaultKey.parse(t.fault_key) == FaultKey("olt-7", "pon:0/1/2", "rx_power_low")


_MANUAL = {"category": "fiber", "summary": "cut at the hotel", "target": "olt-1",
           "site": "hotel-1", "actor": "op"}


@pytest.mark.parametrize(("field", "limit"), [
    ("category", 64), ("target", 128), ("site", 128), ("summary", 1024), ("actor", 128)])
async def test_manual_ticket_fields_are_checked_against_their_columns(
        service: TicketService, field: str, limit: int) -> None:
    """Too long is an InvalidInputError naming the field on every database, not 'database
    failed'."""
    at_limit = await service.open(severity="minor", **{**_MANUAL, field: "x" * limit})
    assert at_limit.ref
    with pytest.raises(InvalidInputError,
                       match=rf"^{field} is {limit + 1} characters; at most {limit}"):
        await service.open(severity="minor", **{**_MANUAL, field: "x" * (limit + 1)})
    assert len(await service.list(TicketFilter())) == 1  # nothing half-written


async def test_assignee_and_actor_lengths_are_checked(service: TicketService) -> None:
    t = await service.open(severity="minor", **_MANUAL)
    with pytest.raises(InvalidInputError, match=r"^assignee is 129 characters"):
        await service.assign(t.ref, "a" * 129, actor="op")
    with pytest.raises(InvalidInputError, match=r"^actor is 129 characters"):
        await service.acknowledge(t.ref, actor="o" * 129)
    assert (await service.assign(t.ref, "a" * 128, actor="o" * 128)).assignee == "a" * 128
