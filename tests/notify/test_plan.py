"""The ticket notification planner: grouping, updates, flaps, repeats, escalation, quiet
hours. Pure logic: states and events in, states and messages out."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from netguard.faults import Severity
from netguard.notify.config import NotificationsConfig
from netguard.notify.plan import DONE, SENT, WAITING, GroupState, Planner, TicketEvent, TicketView
from netguard.notify.texts import TicketTexts

T0 = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _config(**route: object) -> NotificationsConfig:
    base: dict[str, object] = {"name": "duty", "notifiers": ["wecom"], "group_wait_seconds": 30,
                               "group_interval_seconds": 300, "repeat_interval_seconds": 3600}
    base.update(route)
    return NotificationsConfig.model_validate({"routes": [
        base, {"name": "manager", "match": {"site": ["nowhere"]}, "notifiers": ["ding"]}]})


def _view(tid: int = 1, *, children: tuple[str, ...] = (), state: str = "open",
          severity: Severity = Severity.CRITICAL, acknowledged: bool = False) -> TicketView:
    return TicketView(id=tid, ref=f"NG-{tid:06d}", severity=severity, state=state,
                      summary="uplink down", category="uplink", site="east", target="pl-east",
                      opened_at=T0, acknowledged=acknowledged, children=children)


class Run:
    """Feeds passes to a planner and keeps the states, like the engine does."""

    def __init__(self, config: NotificationsConfig, language: str = "en") -> None:
        self.planner = Planner(config, TicketTexts(language), SHANGHAI)
        self.states: dict[tuple[str, int], GroupState] = {}
        self.next_id = 1

    def events(self, tid: int, *actions: str, at: datetime = T0) -> list[TicketEvent]:
        out = []
        for action in actions:
            out.append(TicketEvent(self.next_id, tid, action, at))
            self.next_id += 1
        return out

    def step(self, now: datetime, views: Sequence[TicketView],
             events: Sequence[TicketEvent] = ()) -> list[tuple[str, str, str]]:
        tickets: Mapping[int, TicketView] = {v.id: v for v in views}
        plan = self.planner.plan(self.states, events, tickets, now)
        self.states.update({(s.route, s.ticket_id): s for s in plan.changed_states()})
        return [(o.route.name, o.event, o.text) for o in plan.out]


def test_root_and_children_within_group_wait_make_one_message() -> None:
    run = Run(_config())
    assert run.step(T0, [_view()], run.events(1, "opened")) == []
    assert run.states[("duty", 1)].phase == WAITING
    kids = _view(children=("a", "b"))
    assert run.step(T0 + timedelta(seconds=10), [kids],
                    run.events(1, "child_attached", "child_attached")) == []
    out = run.step(T0 + timedelta(seconds=30), [kids])
    assert [(r, e) for r, e, _ in out] == [("duty", "opened")]
    assert "uplink down; 2 sites behind it\n- behind it: a, b" in out[0][2]
    # Nothing more until something happens or a reminder is due.
    assert run.step(T0 + timedelta(seconds=60), [kids]) == []


def test_late_children_fold_into_one_update_per_group_interval() -> None:
    run = Run(_config())
    run.step(T0, [_view()], run.events(1, "opened"))
    run.step(T0 + timedelta(seconds=30), [_view()])
    one = _view(children=("c",))
    assert run.step(T0 + timedelta(seconds=40), [one], run.events(1, "child_attached")) == []
    two = _view(children=("c", "d"))
    assert run.step(T0 + timedelta(seconds=50), [two], run.events(1, "child_attached")) == []
    out = run.step(T0 + timedelta(seconds=330), [two])
    assert [(r, e) for r, e, _ in out] == [("duty", "child")]
    assert "newly affected: c, d" in out[0][2]
    # A child after the update waits a full interval after it.
    three = _view(children=("c", "d", "e"))
    assert run.step(T0 + timedelta(seconds=340), [three], run.events(1, "child_attached")) == []
    assert run.step(T0 + timedelta(seconds=600), [three]) == []
    out = run.step(T0 + timedelta(seconds=630), [three])
    assert [e for _, e, _ in out] == ["child"]
    assert "newly affected: e" in out[0][2]


def test_resolved_within_group_wait_sends_nothing() -> None:
    run = Run(_config())
    run.step(T0, [_view()], run.events(1, "opened"))
    gone = _view(state="resolved")
    assert run.step(T0 + timedelta(seconds=5), [gone], run.events(1, "resolved")) == []
    assert run.states[("duty", 1)].phase == DONE
    assert run.step(T0 + timedelta(seconds=60), [gone]) == []


def test_resolved_after_the_message_is_sent_and_ends_the_thread() -> None:
    run = Run(_config())
    run.step(T0, [_view()], run.events(1, "opened"))
    run.step(T0 + timedelta(seconds=30), [_view()])
    out = run.step(T0 + timedelta(seconds=90), [_view(state="resolved")],
                   run.events(1, "resolved"))
    assert [e for _, e, _ in out] == ["resolved"]
    assert run.states[("duty", 1)].due_at is None


def test_severity_overdue_reopened_each_send_a_message() -> None:
    run = Run(_config())
    run.step(T0, [_view(severity=Severity.MAJOR)], run.events(1, "opened"))
    # Raised while waiting: the group message shows it, no message of its own.
    assert run.step(T0 + timedelta(seconds=1), [_view()], run.events(1, "severity")) == []
    run.step(T0 + timedelta(seconds=30), [_view()])
    later = T0 + timedelta(seconds=60)
    out = run.step(later, [_view()], run.events(1, "severity", "overdue"))
    assert [e for _, e, _ in out] == ["severity", "overdue"]
    run.step(later, [_view(state="resolved")], run.events(1, "resolved"))
    out = run.step(later, [_view()], run.events(1, "reopened"))
    assert [e for _, e, _ in out] == ["reopened"]
    assert run.states[("duty", 1)].phase == SENT


def test_events_switched_off_on_the_route_send_nothing() -> None:
    run = Run(_config(events=["opened"]))
    run.step(T0, [_view()], run.events(1, "opened"))
    run.step(T0 + timedelta(seconds=30), [_view()])
    out = run.step(T0 + timedelta(seconds=40), [_view(children=("x",), state="resolved")],
                   run.events(1, "child_attached", "severity", "resolved"))
    assert out == []


def test_repeat_until_acknowledged() -> None:
    run = Run(_config(repeat_interval_seconds=600))
    run.step(T0, [_view()], run.events(1, "opened"))
    run.step(T0 + timedelta(seconds=30), [_view()])
    out = run.step(T0 + timedelta(seconds=630), [_view()])
    assert [e for _, e, _ in out] == ["repeat"]
    assert "reminder" in out[0][2]
    assert [e for _, e, _ in run.step(T0 + timedelta(seconds=1230), [_view()])] == ["repeat"]
    acked = _view(state="acknowledged", acknowledged=True)
    assert run.step(T0 + timedelta(seconds=1300), [acked], run.events(1, "acknowledged")) == []
    assert run.states[("duty", 1)].next_repeat_at is None
    assert run.step(T0 + timedelta(hours=5), [acked]) == []


def test_escalation_goes_once_to_the_escalation_route() -> None:
    run = Run(_config(repeat_interval_seconds=0,
                      escalate={"route": "manager", "after_seconds": 900}))
    run.step(T0, [_view()], run.events(1, "opened"))
    run.step(T0 + timedelta(seconds=30), [_view()])
    assert run.states[("duty", 1)].escalate_at == T0 + timedelta(seconds=900)
    out = run.step(T0 + timedelta(seconds=900), [_view()])
    assert [(r, e) for r, e, _ in out] == [("manager", "escalated")]
    assert "[escalated]" in out[0][2]
    assert run.step(T0 + timedelta(seconds=2000), [_view()]) == []


def test_no_escalation_once_acknowledged_or_below_the_severity() -> None:
    config = _config(repeat_interval_seconds=0,
                     escalate={"route": "manager", "after_seconds": 900})
    for view in (_view(acknowledged=True, state="acknowledged"),
                 _view(severity=Severity.MINOR)):
        run = Run(config)
        run.step(T0, [view], run.events(1, "opened"))
        run.step(T0 + timedelta(seconds=30), [view])
        assert run.step(T0 + timedelta(seconds=3600), [view]) == []


def test_quiet_hours_defer_non_critical_messages_and_reminders() -> None:
    run = Run(_config(quiet_hours={"start": "22:00", "end": "07:00"},
                      repeat_interval_seconds=600))
    night = datetime(2026, 3, 5, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    minor = _view(severity=Severity.MINOR)
    run.step(night, [minor], run.events(1, "opened", at=night))
    plan = run.planner.plan(run.states, [], {1: minor}, night + timedelta(seconds=30))
    (message,) = plan.out
    morning = datetime(2026, 3, 5, 23, 0, tzinfo=UTC)  # 07:00 next day in Shanghai
    assert message.not_before == morning
    run.states.update({(s.route, s.ticket_id): s for s in plan.changed_states()})
    # A reminder falling in quiet hours waits for their end instead of piling up.
    assert run.step(night + timedelta(seconds=700), [minor]) == []
    assert run.states[("duty", 1)].next_repeat_at == morning
    # Critical goes out at once.
    run2 = Run(_config(quiet_hours={"start": "22:00", "end": "07:00"}))
    run2.step(night, [_view()], run2.events(1, "opened", at=night))
    plan = run2.planner.plan(run2.states, [], {1: _view()}, night + timedelta(seconds=30))
    assert plan.out[0].not_before is None


def test_continue_sends_to_each_matching_route() -> None:
    config = NotificationsConfig.model_validate({"routes": [
        {"name": "noc", "notifiers": ["wecom"], "continue": True, "group_wait_seconds": 0},
        {"name": "site", "match": {"site": ["east"]}, "notifiers": ["ding"],
         "group_wait_seconds": 0}]})
    run = Run(config)
    out = run.step(T0, [_view()], run.events(1, "opened"))
    assert sorted(r for r, _, _ in out) == ["noc", "site"]


def test_deleted_ticket_or_removed_route_ends_the_thread() -> None:
    run = Run(_config())
    run.step(T0, [_view()], run.events(1, "opened"))
    assert run.step(T0 + timedelta(seconds=30), []) == []
    assert run.states[("duty", 1)].phase == DONE


def test_zh_cn_group_message_text() -> None:
    run = Run(_config(), language="zh-CN")
    run.step(T0, [_view()], run.events(1, "opened"))
    kids = _view(children=("a", "b"))
    out = run.step(T0 + timedelta(seconds=30), [kids], run.events(1, "child_attached"))
    assert out[0][2] == (
        "### 【紧急】NG-000001 pl-east\uff1auplink down\uff1b其后 2 个站点受影响\n"
        "- 受影响站点\uff1aa、b\n"
        "- 站点\uff1aeast\n"
        "- 类别\uff1auplink\n"
        "- 开始时间\uff1a2026-03-05 10:00\uff08北京时间\uff09")


def test_children_list_is_capped() -> None:
    texts = TicketTexts("en")
    names = tuple(f"s{i}" for i in range(13))
    assert texts.names(names).endswith("s9, ... and 3 more")
    assert TicketTexts("zh-CN").names(names).endswith("s9 等\uff0c另有 3 个")


def test_due_at_is_the_earliest_pending_time() -> None:
    state = GroupState("duty", 1, SENT, next_repeat_at=T0 + timedelta(hours=1),
                       escalate_at=T0 + timedelta(minutes=30))
    assert state.due_at == T0 + timedelta(minutes=30)
    assert dataclasses.replace(state, phase=DONE).due_at is None
