"""A batch from messages to rows and alert actions, without a database or a broker."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime, timedelta

import pytest

from netguard.errors import PayloadError
from netguard.iot import batch as batch_module
from netguard.iot.batch import (
    Incoming,
    attach,
    dirty_states,
    event_row,
    event_time,
    parse,
    plan_batch,
    results,
)
from netguard.iot.config import IotConfig
from netguard.iot.events import AlertType, DoorEvent, EventKind, RawMessage, native_identity
from netguard.iot.registry import RegistryView, SensorEntry
from netguard.iot.rules import ClearAlert, HouseholdRules, Period, RaiseAlert, SensorState
from tests.iot.conftest import T0

CONFIG = IotConfig()
ENTRY = SensorEntry("n1", "h1", "native", "n1")
QUARANTINED = HouseholdRules("h1", "c1", quarantines=(Period(T0 - timedelta(days=1)),))


def _view(**states: SensorState) -> RegistryView:
    entries = {("native", "n1"): ENTRY, ("native", "n2"): SensorEntry("n2", "h1", "native",
                                                                     "n2")}
    return RegistryView(entries, {"h1": QUARANTINED}, dict(states),
                        {e.sensor_id: e for e in entries.values()})


def _native(sensor: str = "n1", seq: int | None = 1, **fields: object) -> RawMessage:
    data: dict[str, object] = {"sensor": sensor, "boot": "b1", "event": "open", **fields}
    if seq is not None:
        data["seq"] = seq
    return RawMessage(f"netguard/sensors/{sensor}/event", json.dumps(data).encode(),
                      received_at=T0, qos=1, mid=seq)


def _decoded(message: RawMessage, view: RegistryView | None = None) -> Incoming:
    """What the service's decode step makes of ``message`` (no registry reload)."""
    incoming = Incoming.of(message, T0)
    parsed = parse(message, CONFIG)
    if isinstance(parsed, PayloadError):
        incoming.error = parsed
    else:
        fmt, event = parsed
        attach(incoming, fmt, event, (view or _view()).lookup(fmt, event.address), CONFIG)
    return incoming


def _plan(batch: list[Incoming], duplicates: set[int] | None = None,
          view: RegistryView | None = None,
          stored_seen: dict[str, datetime | None] | None = None) -> batch_module.BatchPlan:
    return plan_batch(batch, duplicates or set(), view=view or _view(),
                      stored_seen=stored_seen or {}, rules=CONFIG.rules, chain="ng",
                      raw_keep_bytes=CONFIG.raw_keep_bytes)


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    ("netguard/sensors/n1/" + "x" * 600, b"{}", "bad_topic"),
    ("netguard/sensors/n1/ev\x00ent", b"{}", "bad_topic"),
    ("elsewhere/n1", b"{}", "unsupported_topic"),
    ("netguard/sensors/n1/event", b"not json", "malformed"),
])
def test_parse_names_why_a_message_is_a_dead_letter(topic: str, payload: bytes,
                                                    reason: str) -> None:
    parsed = parse(RawMessage(topic, payload), CONFIG)
    assert isinstance(parsed, PayloadError)
    assert parsed.reason == reason


def test_parse_turns_a_decoder_bug_into_a_dead_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> DoorEvent:
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(batch_module, "decode", broken)
    parsed = parse(_native(), CONFIG)
    assert isinstance(parsed, PayloadError)
    assert parsed.reason == "decoder_error"
    assert "RuntimeError: decoder bug" in str(parsed)


def test_attach_binds_the_event_to_its_registered_sensor() -> None:
    incoming = _decoded(_native(seq=41))
    assert incoming.error is None
    assert (incoming.sensor_id, incoming.household_id) == ("n1", "h1")
    assert incoming.identity == native_identity("n1", "b1", 41)
    assert incoming.when == T0


def test_attach_dead_letters_an_unknown_sensor() -> None:
    incoming = _decoded(_native("n9"))
    assert incoming.error is not None
    assert incoming.error.reason == "unknown_sensor"
    assert incoming.event is None


def test_attach_dead_letters_a_value_the_row_cannot_hold() -> None:
    # A valid address and boot id whose identity together outgrows its column (200).
    event = DoorEvent(format="native", address="a" * 150, kind=EventKind.OPEN,
                      contact="open", seq=1, boot="b" * 64)
    incoming = Incoming.of(_native(), T0)
    attach(incoming, "native", event, SensorEntry("n1", "h1", "native", "a" * 150), CONFIG)
    assert incoming.error is not None
    assert incoming.error.reason == "out_of_range"


@pytest.mark.parametrize(("offset", "trusted"), [
    (timedelta(hours=-1), True),                 # an hour queued on the device
    (timedelta(seconds=60), True),               # a clock a little ahead
    (timedelta(seconds=121), False),             # further ahead than allowed
    (timedelta(hours=-25), False),               # older than the allowed delay
])
def test_event_time_trusts_the_device_clock_only_when_plausible(offset: timedelta,
                                                                trusted: bool) -> None:
    event = DoorEvent(format="native", address="n1", kind=EventKind.OPEN,
                      device_time=T0 + offset)
    assert event_time(event, T0, CONFIG) == (T0 + offset if trusted else T0)


def test_plan_rows_states_and_actions_of_a_batch() -> None:
    batch = [_decoded(_native(seq=1)), _decoded(_native("n9", seq=2)),
             _decoded(_native(seq=1)), _decoded(_native(seq=3, event="close"))]
    plan = _plan(batch, duplicates={2})
    # The duplicate is left out; the dead letter is stored as one.
    assert [r["kind"] for r in plan.rows] == ["open", "dead", "close"]
    assert plan.rows[1]["dead_reason"] == "unknown_sensor"
    assert plan.rows[1]["identity"] == batch[1].identity
    assert batch[1].identity.startswith("m:ng:")
    # The opening alerts (quarantine) and the closing clears, each under its own index.
    assert [(i, type(a), a.type) for i, a in plan.actions] == [
        (0, RaiseAlert, AlertType.DOOR_OPEN), (3, ClearAlert, AlertType.DOOR_OPEN)]
    assert plan.states["n1"].contact == "closed"
    assert plan.dirty == [plan.states["n1"]]
    assert batch[2].identity == batch[0].identity  # a duplicate gets no new identity


def test_plan_of_a_sensor_without_a_household_stores_without_judging() -> None:
    batch = [_decoded(_native())]
    view = dataclasses.replace(_view(), households={})
    plan = _plan(batch, view=view)
    assert [r["kind"] for r in plan.rows] == ["open"]
    assert (plan.actions, plan.states) == ([], {})


def test_an_older_event_does_not_move_last_seen_back() -> None:
    known = SensorState("n1", "h1", last_seen=T0, contact="closed")
    old = _native(seq=1, event="close", ts=(T0 - timedelta(minutes=5)).isoformat())
    plan = _plan([_decoded(old)], view=_view(n1=known), stored_seen={"n1": T0})
    assert plan.states["n1"].last_seen == T0


def test_dirty_states_skip_a_heartbeat_that_only_moves_last_seen_a_little() -> None:
    old = SensorState("n1", "h1", last_seen=T0, contact="closed")
    soon = dataclasses.replace(old, last_seen=T0 + timedelta(seconds=20))
    later = dataclasses.replace(old, last_seen=T0 + timedelta(seconds=31))
    opened = dataclasses.replace(soon, contact="open")
    known, stored = {"n1": old}, {"n1": T0}
    assert dirty_states({"n1": soon}, known, stored) == []
    assert dirty_states({"n1": later}, known, stored) == [later]
    assert dirty_states({"n1": opened}, known, stored) == [opened]
    assert dirty_states({"n1": soon}, {}, stored) == [soon]  # a sensor new to the view


def test_event_row_keeps_a_bounded_payload_with_its_full_size_and_hash() -> None:
    payload = b"x" * 10_000
    incoming = Incoming.of(RawMessage("t/\x01" + "y" * 600, payload, mid=70_000), T0)
    incoming.error = PayloadError("bad_topic", "z" * 1000)
    row = event_row(incoming, "ng", raw_keep_bytes=100)
    assert row["payload"] == payload[:100]
    assert (row["payload_size"], row["payload_sha256"]) == \
        (10_000, hashlib.sha256(payload).hexdigest())
    assert len(row["topic"]) <= 512
    assert "\x01" not in row["topic"]
    assert len(row["detail"]) <= 500
    assert row["mqtt_mid"] is None  # not a packet id MQTT can have
    assert (row["kind"], row["dead_reason"]) == ("dead", "bad_topic")


def test_results_report_each_message_in_batch_order() -> None:
    batch = [_decoded(_native(seq=1)), _decoded(_native("n9", seq=2)),
             _decoded(_native(seq=1))]
    out = results(batch, {2}, {0: [17]})
    assert [(r.status, r.kind, r.reason, r.sensor_id, r.alerts_raised) for r in out] == [
        ("stored", "open", None, "n1", (17,)),
        ("dead", None, "unknown_sensor", None, ()),
        ("duplicate", None, None, "n1", ()),
    ]
