"""What ticket events and the passing of time make the notifier send. Pure.

One call of :func:`plan` takes the persisted state of every thread involved (one
:class:`GroupState` per route and ticket), the ticket events read since the last pass and
the tickets they concern, and returns the changed states and the messages to queue. The
engine (:mod:`netguard.notify.tickets`) writes both, and its cursor, in one transaction.

A thread's life: ``waiting`` (an opened ticket waits ``group_wait`` for children), then
``sent`` (its one message went out; later children are folded into one update per
``group_interval``, an unacknowledged ticket is reminded every ``repeat_interval`` and
may escalate once), then ``done`` (resolved or closed; a ticket resolved while still
waiting sends nothing: a flap).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from netguard.faults import Severity
from netguard.notify.config import NotificationsConfig, TicketRoute
from netguard.notify.routing import RouteFacts, select_routes, send_after
from netguard.notify.texts import TicketFacts, TicketTexts

WAITING, SENT, DONE = "waiting", "sent", "done"
PHASES = (WAITING, SENT, DONE)

# Ticket event actions (``ticket_event.action``) that are route events.
ROUTE_EVENTS: Mapping[str, str] = {
    "opened": "opened", "severity": "severity", "child_attached": "child",
    "overdue": "overdue", "reopened": "reopened", "resolved": "resolved",
    # A child's own young ticket resolved as grouped under its upstream's.
    "grouped": "resolved",
}
ACTIVE_STATES = ("open", "acknowledged")


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One ``ticket_event`` row, as far as notifying goes."""

    id: int
    ticket_id: int
    action: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TicketView:
    """A ticket as it is now, with what routes match on and messages show.

    Attributes:
        children: Targets of the child faults attached to it, oldest first.
        labels: The target's labels (``targets[].labels``).
    """

    id: int
    ref: str
    severity: Severity
    state: str
    summary: str
    category: str
    site: str | None
    target: str | None
    opened_at: datetime
    acknowledged: bool
    children: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Open or acknowledged."""
        return self.state in ACTIVE_STATES

    def facts(self) -> RouteFacts:
        """What routes match on."""
        return RouteFacts(source="ticket", severity=self.severity, site=self.site,
                          category=self.category, labels=self.labels)


@dataclass(frozen=True, slots=True)
class GroupState:
    """One route's thread about one ticket (a ``notify_group`` row).

    Attributes:
        flush_at: While ``waiting``: when the group message goes out.
        update_at: When the update naming late children goes out (None: none pending).
        last_update_at: When the last update went out.
        next_repeat_at: When an unacknowledged ticket is reminded next.
        escalate_at: When the ticket escalates if still unacknowledged.
        notified: Children already named in a message.
    """

    route: str
    ticket_id: int
    phase: str
    flush_at: datetime | None = None
    update_at: datetime | None = None
    last_sent_at: datetime | None = None
    last_update_at: datetime | None = None
    next_repeat_at: datetime | None = None
    escalate_at: datetime | None = None
    escalated: bool = False
    notified: tuple[str, ...] = ()

    @property
    def due_at(self) -> datetime | None:
        """The earliest time something is to be done for this thread."""
        if self.phase == DONE:
            return None
        times = [t for t in (self.flush_at, self.update_at, self.next_repeat_at,
                             self.escalate_at) if t is not None]
        return min(times) if times else None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for one route.

    Attributes:
        event: What it says, also the metric's label: ``opened``, ``child`` (an update),
            ``severity``, ``overdue``, ``reopened``, ``resolved``, ``repeat`` or
            ``escalated``.
        text: The rendered markdown.
        not_before: The end of the route's quiet hours, for a message that must wait.
    """

    route: TicketRoute
    event: str
    ticket_id: int
    severity: str
    category: str
    text: str
    first_seen: str
    not_before: datetime | None = None


@dataclass
class Plan:
    """The outcome of one pass: changed states and the messages to queue."""

    states: dict[tuple[str, int], GroupState]
    changed: set[tuple[str, int]] = field(default_factory=set)
    out: list[Outgoing] = field(default_factory=list)

    def put(self, state: GroupState) -> None:
        """Record ``state`` as the thread's new state."""
        key = (state.route, state.ticket_id)
        if self.states.get(key) != state:
            self.states[key] = state
            self.changed.add(key)

    def changed_states(self) -> list[GroupState]:
        """The states to write, in a stable order."""
        return [self.states[k] for k in sorted(self.changed)]


@dataclass(frozen=True, slots=True)
class Planner:
    """Plans passes for one configuration.

    Args:
        config: The ``notifications:`` section.
        texts: Renders the messages.
        tz: ``display.timezone`` (quiet hours are read in it).
    """

    config: NotificationsConfig
    texts: TicketTexts
    tz: ZoneInfo

    def plan(self, states: Mapping[tuple[str, int], GroupState],
             events: Sequence[TicketEvent], tickets: Mapping[int, TicketView],
             now: datetime) -> Plan:
        """New states and messages for ``events`` and whatever is due at ``now``.

        Args:
            states: Every persisted thread of the tickets in ``events`` and every thread
                that is due, by (route, ticket id).
            events: New ticket events, oldest first.
            tickets: The tickets of both, as they are now (a missing one was deleted).
        """
        plan = Plan(states=dict(states))
        for event in sorted(events, key=lambda e: e.id):
            view = tickets.get(event.ticket_id)
            if view is not None:
                self._event(plan, event, view, now)
        for key in sorted(plan.states):
            state = plan.states[key]
            if state.phase == DONE:
                continue
            view = tickets.get(state.ticket_id)
            route = self.config.route(state.route)
            if view is None or route is None:
                # Ticket deleted, or route removed from the config: the thread ends.
                plan.put(replace(state, phase=DONE))
                continue
            self._due(plan, state, route, view, now)
        return plan

    # ---------------------------------------------------------------- events

    def _threads(self, plan: Plan, ticket_id: int) -> list[tuple[TicketRoute, GroupState]]:
        found = []
        for (name, tid), state in sorted(plan.states.items()):
            route = self.config.route(name)
            if tid == ticket_id and state.phase != DONE and route is not None:
                found.append((route, state))
        return found

    def _event(self, plan: Plan, event: TicketEvent, view: TicketView, now: datetime
               ) -> None:
        kind = ROUTE_EVENTS.get(event.action)
        if event.action == "closed":
            for _, state in self._threads(plan, view.id):
                plan.put(replace(state, phase=DONE))
        if kind is None:
            return  # acknowledged and the rest act through the ticket's current view
        if kind == "opened":
            for route in select_routes(self.config.routes, view.facts(), "opened"):
                if (route.name, view.id) not in plan.states:
                    flush = event.at + timedelta(seconds=route.group_wait_seconds)
                    plan.put(GroupState(route.name, view.id, WAITING, flush_at=flush))
        elif kind == "child":
            self._child(plan, view, now)
        elif kind == "resolved":
            for route, state in self._threads(plan, view.id):
                if state.phase == SENT and "resolved" in route.events:
                    self._send(plan, route, view, "resolved", kind="ticket_resolved", now=now)
                plan.put(replace(plan.states[(route.name, view.id)], phase=DONE))
        else:
            self._direct(plan, kind, view, now)

    def _child(self, plan: Plan, view: TicketView, now: datetime) -> None:
        """A late child: one update per ``group_interval`` on each sent thread."""
        for route, state in self._threads(plan, view.id):
            if state.phase != SENT or "child" not in route.events \
                    or state.update_at is not None:
                continue
            interval = timedelta(seconds=route.group_interval_seconds)
            last = state.last_update_at or state.last_sent_at or now
            plan.put(replace(state, update_at=max(now, last + interval)))

    def _direct(self, plan: Plan, kind: str, view: TicketView, now: datetime) -> None:
        """Severity raised, overdue, reopened: a message on each route that takes it."""
        for route in select_routes(self.config.routes, view.facts(), kind):
            state = plan.states.get((route.name, view.id))
            if kind == "severity" and state is not None and state.phase == WAITING:
                continue  # the group message, still to go, shows the new severity
            if state is None or (kind == "reopened" and state.phase == DONE):
                state = GroupState(route.name, view.id, SENT, notified=view.children)
            elif state.phase != SENT and kind != "reopened":
                continue
            plan.put(replace(state, phase=SENT, escalated=state.escalated
                             and kind != "reopened"))
            self._send(plan, route, view, kind, kind=f"ticket_{kind}", now=now)

    # ---------------------------------------------------------------- due work

    def _due(self, plan: Plan, state: GroupState, route: TicketRoute, view: TicketView,
             now: datetime) -> None:
        if not view.active:
            plan.put(replace(state, phase=DONE))
            return
        if state.phase == WAITING:
            if state.flush_at is not None and state.flush_at > now:
                return
            plan.put(replace(state, phase=SENT, flush_at=None, notified=view.children))
            self._send(plan, route, view, "opened", kind="ticket_opened", now=now)
            state = plan.states[(route.name, view.id)]
        if state.update_at is not None and state.update_at <= now:
            new = tuple(c for c in view.children if c not in state.notified)
            plan.put(replace(state, update_at=None, notified=state.notified + new,
                             last_update_at=now if new else state.last_update_at))
            if new:
                self._send(plan, route, view, "child", kind="ticket_update", now=now, new=new)
            state = plan.states[(route.name, view.id)]
        self._repeat(plan, state, route, view, now)
        self._escalate(plan, plan.states[(route.name, view.id)], route, view, now)

    def _repeat(self, plan: Plan, state: GroupState, route: TicketRoute, view: TicketView,
                now: datetime) -> None:
        if view.acknowledged or route.repeat_interval_seconds == 0:
            plan.put(replace(state, next_repeat_at=None))
            return
        if state.next_repeat_at is None or state.next_repeat_at > now:
            return
        quiet = send_after(route, view.severity, now, self.tz)
        if quiet > now:
            # A reminder in quiet hours waits for their end, not one per interval.
            plan.put(replace(state, next_repeat_at=quiet))
            return
        self._send(plan, route, view, "repeat", kind="ticket_repeat", now=now)

    def _escalate(self, plan: Plan, state: GroupState, route: TicketRoute, view: TicketView,
                  now: datetime) -> None:
        esc = route.escalate
        target = self.config.route(esc.route) if esc is not None else None
        if esc is None or target is None or state.escalated or view.acknowledged \
                or view.severity not in esc.severity or state.phase != SENT:
            plan.put(replace(state, escalate_at=None))
            return
        due = view.opened_at + timedelta(seconds=esc.after_seconds)
        if due > now:
            plan.put(replace(state, escalate_at=due))
            return
        plan.put(replace(state, escalate_at=None, escalated=True))
        self._emit(plan, target, view, "escalated", kind="ticket_escalated", now=now)

    # ---------------------------------------------------------------- messages

    def _send(self, plan: Plan, route: TicketRoute, view: TicketView, event: str, *,
              kind: str, now: datetime, new: tuple[str, ...] = ()) -> None:
        """Queue a message on the thread's route; any message restarts its reminders."""
        self._emit(plan, route, view, event, kind=kind, now=now, new=new)
        state = plan.states[(route.name, view.id)]
        repeat = route.repeat_interval_seconds
        plan.put(replace(state, last_sent_at=now, next_repeat_at=(
            now + timedelta(seconds=repeat) if repeat and event != "resolved" else None)))

    def _emit(self, plan: Plan, route: TicketRoute, view: TicketView, event: str, *,
              kind: str, now: datetime, new: tuple[str, ...] = ()) -> None:
        facts = TicketFacts(ref=view.ref, severity=view.severity.value, site=view.site,
                            target=view.target, summary=view.summary,
                            category=view.category, opened_at=view.opened_at,
                            children=view.children, new_children=new, route=route.name)
        text = self.texts.render(kind, facts, now)
        not_before = send_after(route, view.severity, now, self.tz)
        plan.out.append(Outgoing(
            route, event, ticket_id=view.id, severity=view.severity.value,
            category=view.category, text=text, first_seen=view.opened_at.isoformat(),
            not_before=not_before if not_before > now else None))


__all__ = ["DONE", "PHASES", "ROUTE_EVENTS", "SENT", "WAITING", "GroupState", "Outgoing",
           "Plan", "Planner", "TicketEvent", "TicketView"]
