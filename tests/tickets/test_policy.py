"""The ticket rules as pure functions: no database, every branch of every rule."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from netguard.faults import FaultCleared, FaultKey, FaultOpened, Severity
from netguard.tickets import policy
from netguard.tickets.config import SiteConfig, TicketsConfig
from netguard.tickets.domain import ALLOWED_ACTIONS, TicketAction, TicketState
from netguard.tickets.policy import (
    AdoptOrphan,
    BumpTicket,
    ChildFacts,
    ClearChild,
    ClearTicket,
    FaultFacts,
    GroupTicket,
    OpenTicket,
    PromoteChild,
    PromoteOrphan,
    ReopenTicket,
    SuppressChild,
    TicketFacts,
    Transition,
)

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
CONFIG = TicketsConfig(resolve_hold_seconds=300, reopen_window_seconds=3600,
                       orphan_grace_seconds=600, group_window_seconds=300,
                       sites=[SiteConfig(id="hotel-1", criticality="quarantine_hotel"),
                              SiteConfig(id="lab", criticality="normal")])
KEY = FaultKey("site-1", "agent", "unreachable")


def _opened(*, severity: str = "major", site: str | None = None,
            suppressed_by: str | None = None, at: datetime = NOW) -> FaultOpened:
    return FaultOpened(key=KEY, category="pon", site=site, severity=severity,  # type: ignore[arg-type]
                       summary="site-1 unreachable", reasons=("no answer",), at=at,
                       suppressed_by=suppressed_by)


def _ticket(tid: int = 7, *, state: TicketState = TicketState.OPEN,
            severity: Severity = Severity.MAJOR, opened_at: datetime = NOW,
            **changes: object) -> TicketFacts:
    facts = TicketFacts(id=tid, state=state, severity=severity, target="site-1",
                        first_seen=opened_at - timedelta(seconds=30), opened_at=opened_at,
                        sla_due=opened_at + timedelta(hours=4))
    return dataclasses.replace(facts, **changes)  # type: ignore[arg-type]


def _child(cid: int = 3, ticket_id: int | None = 9, *, upstream: str = "olt-1",
           first_seen: datetime = NOW - timedelta(minutes=20)) -> ChildFacts:
    return ChildFacts(id=cid, ticket_id=ticket_id, fault_key=str(KEY), target="site-1",
                      upstream_target=upstream, first_seen=first_seen)


# ----------------------------------------------------------------------- severities


def test_site_criticality_raises_the_severity_and_unknown_sites_do_not() -> None:
    assert policy.severity_for("minor", "hotel-1", CONFIG) is Severity.MAJOR
    assert policy.severity_for("critical", "hotel-1", CONFIG) is Severity.CRITICAL  # cap
    assert policy.severity_for("minor", "lab", CONFIG) is Severity.MINOR
    assert policy.severity_for("minor", "nowhere", CONFIG) is Severity.MINOR
    assert policy.severity_for("minor", None, CONFIG) is Severity.MINOR


def test_sla_due_by_severity() -> None:
    assert policy.sla_due("critical", NOW, CONFIG) == NOW + timedelta(minutes=60)
    assert policy.sla_due(Severity.WARNING, NOW, CONFIG) == NOW + timedelta(minutes=4320)


# -------------------------------------------------------------- open / bump / reopen


def test_a_first_report_opens_a_ticket() -> None:
    (action,) = policy.decide_opened(_opened(site="hotel-1"), FaultFacts(), CONFIG)
    assert action == OpenTicket(Severity.CRITICAL, NOW + timedelta(minutes=60), NOW)


def test_a_repeat_report_bumps_the_active_ticket() -> None:
    facts = FaultFacts(active=_ticket(state=TicketState.ACKNOWLEDGED))
    assert policy.decide_opened(_opened(), facts, CONFIG) == (
        BumpTicket(7, TicketState.ACKNOWLEDGED, flap=False),)


def test_a_report_during_the_resolve_hold_is_a_flap() -> None:
    facts = FaultFacts(active=_ticket(cleared_at=NOW - timedelta(seconds=10)))
    (bump,) = policy.decide_opened(_opened(), facts, CONFIG)
    assert isinstance(bump, BumpTicket)
    assert bump.flap


def test_a_more_severe_report_raises_the_ticket_and_only_moves_its_sla_earlier() -> None:
    opened_at = NOW - timedelta(hours=2)
    facts = FaultFacts(active=_ticket(opened_at=opened_at, severity=Severity.MINOR))
    (bump,) = policy.decide_opened(_opened(severity="critical"), facts, CONFIG)
    # The critical SLA from the ticket's opening (1 h) is earlier than its minor one (4 h).
    assert bump == BumpTicket(7, TicketState.OPEN, flap=False, raise_to=Severity.CRITICAL,
                              sla_due=opened_at + timedelta(minutes=60))
    late = FaultFacts(active=_ticket(severity=Severity.MINOR,
                                     sla_due=NOW + timedelta(minutes=5)))
    (kept,) = policy.decide_opened(_opened(severity="major"), late, CONFIG)
    assert isinstance(kept, BumpTicket)
    assert kept.sla_due == NOW + timedelta(minutes=5)  # never later than it was


@pytest.mark.parametrize("severity", ["major", "minor", "warning"])
def test_an_equal_or_lesser_report_does_not_change_the_severity(severity: str) -> None:
    (bump,) = policy.decide_opened(_opened(severity=severity),
                                   FaultFacts(active=_ticket()), CONFIG)
    assert isinstance(bump, BumpTicket)
    assert (bump.raise_to, bump.sla_due) == (None, None)


@pytest.mark.parametrize(("resolved_ago", "reopens"), [
    (timedelta(minutes=59), True), (timedelta(minutes=60), True),
    (timedelta(minutes=61), False)])
def test_the_reopen_window(resolved_ago: timedelta, reopens: bool) -> None:
    recent = _ticket(state=TicketState.RESOLVED, resolved_at=NOW - resolved_ago)
    (action,) = policy.decide_opened(_opened(), FaultFacts(resolved=recent), CONFIG)
    if reopens:
        assert action == ReopenTicket(7, Severity.MAJOR, NOW + timedelta(minutes=240))
    else:
        assert isinstance(action, OpenTicket)


def test_a_closed_ticket_never_reopens_by_itself() -> None:
    closed = _ticket(state=TicketState.CLOSED, resolved_at=NOW - timedelta(minutes=1))
    (action,) = policy.decide_opened(_opened(), FaultFacts(resolved=closed), CONFIG)
    assert isinstance(action, OpenTicket)


def test_an_unsuppressed_report_promotes_its_child_link_and_keeps_its_first_sighting() -> None:
    child = _child()
    actions = policy.decide_opened(_opened(), FaultFacts(child=child), CONFIG)
    assert actions == (PromoteChild(3, 9),
                       OpenTicket(Severity.MAJOR, NOW + timedelta(minutes=240),
                                  child.first_seen))


def test_a_given_first_sighting_is_kept() -> None:
    since = NOW - timedelta(hours=1)
    (action,) = policy.decide_opened(_opened(), FaultFacts(), CONFIG, first_seen=since)
    assert isinstance(action, OpenTicket)
    assert action.first_seen == since


def test_a_fault_suppressed_by_its_own_target_is_not_suppressed() -> None:
    (action,) = policy.decide_opened(_opened(suppressed_by="site-1"), FaultFacts(), CONFIG)
    assert isinstance(action, OpenTicket)


# ------------------------------------------------------------ suppression, grouping


def test_a_suppressed_report_attaches_to_the_root_or_waits() -> None:
    assert policy.decide_opened(_opened(suppressed_by="olt-1"), FaultFacts(root=1),
                                CONFIG) == (
        SuppressChild(1, "olt-1", Severity.MAJOR, NOW),)
    assert policy.decide_opened(_opened(suppressed_by="olt-1"), FaultFacts(),
                                CONFIG) == (
        SuppressChild(None, "olt-1", Severity.MAJOR, NOW),)


def test_a_repeat_suppressed_report_updates_its_link() -> None:
    facts = FaultFacts(child=_child(ticket_id=None), root=1)
    (action,) = policy.decide_opened(_opened(suppressed_by="olt-1"), facts, CONFIG)
    assert action == SuppressChild(1, "olt-1", Severity.MAJOR, NOW, child_id=3)


def test_a_young_untouched_own_ticket_is_grouped_under_the_root() -> None:
    own = _ticket(opened_at=NOW - timedelta(seconds=5))
    actions = policy.decide_opened(_opened(suppressed_by="olt-1"),
                                   FaultFacts(active=own, root=1), CONFIG)
    assert actions == (GroupTicket(7, 1, "olt-1"),
                       SuppressChild(1, "olt-1", Severity.MAJOR, own.first_seen,
                                     grouped=7))


def test_grouping_waits_for_a_root_that_is_not_open_yet() -> None:
    own = _ticket()
    group, child = policy.decide_opened(_opened(suppressed_by="olt-1"),
                                        FaultFacts(active=own), CONFIG)
    assert group == GroupTicket(7, None, "olt-1")
    assert isinstance(child, SuppressChild)
    assert child.root is None


@pytest.mark.parametrize("change", [
    {"state": TicketState.ACKNOWLEDGED},
    {"acknowledged_at": NOW},
    {"assignee": "alice"},
    {"opened_at": NOW - timedelta(seconds=301)},
])
def test_a_worked_or_old_own_ticket_keeps_its_fault(change: dict[str, object]) -> None:
    own = _ticket(**change)  # type: ignore[arg-type]
    (action,) = policy.decide_opened(_opened(suppressed_by="olt-1"),
                                     FaultFacts(active=own, root=1), CONFIG)
    assert action == BumpTicket(7, own.state, flap=False)


def test_a_commented_own_ticket_keeps_its_fault() -> None:
    (action,) = policy.decide_opened(_opened(suppressed_by="olt-1"),
                                     FaultFacts(active=_ticket(), root=1, touched=True), CONFIG)
    assert isinstance(action, BumpTicket)


def test_an_own_ticket_that_is_the_root_is_not_grouped_under_itself() -> None:
    (action,) = policy.decide_opened(_opened(suppressed_by="olt-1"),
                                     FaultFacts(active=_ticket(), root=7), CONFIG)
    assert isinstance(action, BumpTicket)


# ----------------------------------------------------------------------------- clear


def test_a_clear_ends_the_child_link_and_starts_the_hold() -> None:
    clear = FaultCleared(KEY, at=NOW)
    assert policy.decide_cleared(clear, FaultFacts()) == ()
    assert policy.decide_cleared(clear, FaultFacts(child=_child())) == (ClearChild(3, 9),)
    assert policy.decide_cleared(clear, FaultFacts(active=_ticket())) == (
        ClearTicket(7, TicketState.OPEN),)
    holding = _ticket(cleared_at=NOW - timedelta(seconds=1))
    assert policy.decide_cleared(clear, FaultFacts(active=holding)) == ()


# ----------------------------------------------------------------------------- sweep


def test_the_resolve_hold() -> None:
    cleared = _ticket(cleared_at=NOW - timedelta(seconds=300))
    assert policy.decide_resolve_cleared(cleared, NOW, CONFIG) == Transition(
        TicketAction.RESOLVE, TicketState.OPEN, TicketState.RESOLVED, stamp="resolved_at",
        promote_children=True)
    young = _ticket(cleared_at=NOW - timedelta(seconds=299))
    assert policy.decide_resolve_cleared(young, NOW, CONFIG) is None
    assert policy.decide_resolve_cleared(_ticket(), NOW, CONFIG) is None  # recurred
    done = _ticket(state=TicketState.RESOLVED, cleared_at=NOW - timedelta(hours=1))
    assert policy.decide_resolve_cleared(done, NOW, CONFIG) is None


def test_tickets_the_probes_still_see_are_held() -> None:
    candidates = [(1, "a|agent|down"), (2, "b|agent|down"), (3, None)]
    assert policy.split_resolvable(candidates, None) == ([1, 2, 3], set())
    assert policy.split_resolvable(candidates, lambda key: key.startswith("b")) == (
        [1, 3], {2})


def test_orphans_are_adopted_promoted_or_wait() -> None:
    child = _child(ticket_id=None)
    assert policy.decide_orphan(child, 5, upstream_waiting=False) == AdoptOrphan(3, 5)
    assert policy.decide_orphan(child, None, upstream_waiting=False) == PromoteOrphan(3)
    assert policy.decide_orphan(child, None, upstream_waiting=True) is None
    assert policy.orphan_cutoff(NOW, CONFIG) == NOW - timedelta(seconds=600)


# ---------------------------------------------------------------- operator actions


@pytest.mark.parametrize("state", list(TicketState))
@pytest.mark.parametrize("action", list(TicketAction))
def test_operator_actions_follow_the_lifecycle_table(state: TicketState,
                                                     action: TicketAction) -> None:
    move = policy.decide_action(action, _ticket(state=state), NOW, CONFIG)
    if action not in ALLOWED_ACTIONS[state]:
        assert move is None
        return
    assert move is not None
    assert move.old is state
    assert move.new.active == (action in (TicketAction.ACKNOWLEDGE, TicketAction.REOPEN)
                               or (state.active and action in (TicketAction.ASSIGN,
                                                               TicketAction.COMMENT)))
    assert move.promote_children == (action is TicketAction.RESOLVE)
    assert (move.sla_due is not None) == (action is TicketAction.REOPEN)


def test_reopen_gets_a_fresh_sla_and_stamps_are_named() -> None:
    move = policy.decide_action(TicketAction.REOPEN,
                                _ticket(state=TicketState.CLOSED, severity=Severity.CRITICAL),
                                NOW, CONFIG)
    assert move == Transition(TicketAction.REOPEN, TicketState.CLOSED, TicketState.OPEN,
                              sla_due=NOW + timedelta(minutes=60))
    ack = policy.decide_action(TicketAction.ACKNOWLEDGE, _ticket(), NOW, CONFIG)
    assert ack is not None
    assert (ack.new, ack.stamp) == (TicketState.ACKNOWLEDGED, "acknowledged_at")
    comment = policy.decide_action(TicketAction.COMMENT, _ticket(state=TicketState.CLOSED),
                                   NOW, CONFIG)
    assert comment is not None
    assert (comment.new, comment.stamp) == (TicketState.CLOSED, None)
