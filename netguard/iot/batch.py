"""One intake batch, from decoded messages to event rows and alert actions (no I/O).

The service decodes each message (:func:`parse`, then :func:`attach` once the registry
found its sensor), asks the :class:`~netguard.iot.dedup.Deduplicator` which are
redeliveries, and hands the batch to :func:`plan_batch`: it returns the ``iot_event``
rows to insert, the sensor states to write and the alert actions the rules produced.
The service then writes all of it in one transaction and reports :func:`results`.
Like :mod:`netguard.iot.rules`, every step here is a function of its arguments, so tests
call it without a database or a broker.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from netguard.errors import PayloadError
from netguard.iot.codecs import decode, topic_address, topic_matches
from netguard.iot.config import IotConfig, RulesConfig, Subscription
from netguard.iot.dedup import Candidate, DedupeKey, dedupe_key, payload_digest
from netguard.iot.events import DoorEvent, RawMessage, native_identity
from netguard.iot.models import TOPIC_MAX, Event, fit_text, printable, row_problems
from netguard.iot.registry import RegistryView, SensorEntry
from netguard.iot.rules import AlertAction, SensorState, evaluate

log = logging.getLogger(__name__)

STATE_WRITE_INTERVAL = timedelta(seconds=30)
"""A sensor row is rewritten for a newer ``last_seen`` alone only this far apart."""

_EVENT_TABLE: sa.Table = Event.__table__  # type: ignore[attr-defined]
_DETAIL_MAX = 500

IngestStatus = Literal["stored", "duplicate", "dead"]


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to one message."""

    status: IngestStatus
    kind: str | None = None
    reason: str | None = None
    sensor_id: str | None = None
    alerts_raised: tuple[int, ...] = ()
    # Invalid optional fields dropped from an accepted message (per-field leniency).
    dropped: tuple[str, ...] = ()


@dataclass(slots=True)
class Incoming:
    """One message of a batch and what decoding found out about it.

    Attributes:
        message: The message as received.
        received_at: Its first receipt time.
        event_time: When the rules judge the event: the device's own time when
            plausible, else ``received_at``.
        event: The decoded event (None for a dead letter).
        error: Why it is a dead letter (None for an event).
        sensor_id / household_id: The registered sensor it came from.
        identity: Its deduplication identity: the native one after decoding, or one
            :func:`event_row` assigns (``m:<chain>:<uuid>``).
        dedupe_key: Its broker-redelivery key (see :func:`~netguard.iot.dedup.dedupe_key`).
    """

    message: RawMessage
    received_at: datetime
    event_time: datetime | None = None
    event: DoorEvent | None = None
    error: PayloadError | None = None
    sensor_id: str | None = None
    household_id: str | None = None
    identity: str = ""
    dedupe_key: DedupeKey | None = None

    @classmethod
    def of(cls, message: RawMessage, now: datetime) -> Incoming:
        """A message received at ``message.received_at``, or at ``now`` if unstamped."""
        return cls(message, message.received_at or now, dedupe_key=dedupe_key(message))

    @property
    def when(self) -> datetime:
        """The time the rules judge it at."""
        return self.event_time or self.received_at

    def candidate(self) -> Candidate:
        """What the deduplicator needs to know about it."""
        return Candidate(self.identity, self.dedupe_key, self.message.dup)


@dataclass(slots=True)
class BatchPlan:
    """What one batch writes.

    Attributes:
        rows: ``iot_event`` rows (not yet chained), in batch order, duplicates left out.
        states: Each sensor's state after the batch's events.
        dirty: Those of ``states`` worth writing (see :func:`dirty_states`).
        actions: Alert actions, by the index in the batch of the event that caused them.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, SensorState] = field(default_factory=dict)
    dirty: list[SensorState] = field(default_factory=list)
    actions: list[tuple[int, AlertAction]] = field(default_factory=list)


def topic_problem(topic: str) -> str | None:
    """Why a topic cannot be stored (too long, control characters), or None."""
    if len(topic) > TOPIC_MAX:
        return f"topic of {len(topic)} characters exceeds {TOPIC_MAX}"
    if printable(topic) != topic:
        return "topic contains control characters"
    return None


def format_for(subscriptions: Sequence[Subscription], topic: str) -> str | None:
    """The payload format of the first subscription matching ``topic``."""
    for sub in subscriptions:
        if topic_matches(sub.topic, topic):
            return sub.format
    return None


def parse(message: RawMessage, config: IotConfig) -> tuple[str, DoorEvent] | PayloadError:
    """Decode a message: its (format, event), or why it is a dead letter."""
    problem = topic_problem(message.topic)
    if problem is not None:
        return PayloadError("bad_topic", problem)
    fmt = format_for(config.mqtt.subscriptions, message.topic)
    if fmt is None:
        return PayloadError("unsupported_topic",
                            f"no subscription format for topic {message.topic!r}")
    try:
        return fmt, decode(fmt, message.topic, message.payload,
                           max_bytes=config.mqtt.max_payload_bytes)
    except PayloadError as exc:
        return exc
    except Exception as exc:
        # A decoder bug must not turn one message into a poison pill that the broker
        # redelivers forever: dead-letter it like any bad payload.
        log.exception("decoder failed on a message", extra={"topic": message.topic[:200]})
        return PayloadError("decoder_error", f"{type(exc).__name__}: {exc}")


def file_under_sensor(incoming: Incoming, view: RegistryView, config: IotConfig) -> None:
    """File a dead letter under the registered sensor its topic names, if any, so that it
    is part of that household's record (export, audit) like the sensor's other messages."""
    fmt = format_for(config.mqtt.subscriptions, incoming.message.topic)
    address = None if fmt is None else topic_address(fmt, incoming.message.topic)
    entry = None if fmt is None or address is None else view.lookup(fmt, address)
    if entry is not None:
        incoming.sensor_id = entry.sensor_id
        incoming.household_id = entry.household_id


def attach(incoming: Incoming, fmt: str, event: DoorEvent, entry: SensorEntry | None,
           config: IotConfig) -> None:
    """Bind a decoded event to its registered sensor (``entry``), or dead-letter it."""
    if entry is None:
        incoming.error = PayloadError("unknown_sensor",
                                      f"no {fmt} sensor registered at {event.address!r}")
        return
    identity = "" if event.seq is None else native_identity(event.address, event.boot,
                                                             event.seq)
    problems = row_problems(_EVENT_TABLE, {
        "identity": identity, "sensor_id": entry.sensor_id,
        "household_id": entry.household_id, "kind": event.kind.value,
        "contact": event.contact, "seq": event.seq})
    if problems:
        # The codecs should have refused it; never let the insert find out.
        incoming.error = PayloadError("out_of_range", "; ".join(problems))
        incoming.sensor_id, incoming.household_id = entry.sensor_id, entry.household_id
        return
    incoming.event = event
    incoming.sensor_id = entry.sensor_id
    incoming.household_id = entry.household_id
    incoming.identity = identity
    incoming.event_time = event_time(event, incoming.received_at, config)


def event_time(event: DoorEvent, received_at: datetime, config: IotConfig) -> datetime:
    """The device's own time when it is plausible, else the first receipt time."""
    device = event.device_time
    if device is None:
        return received_at
    behind = (received_at - device).total_seconds()
    if -config.device_time_max_ahead_seconds <= behind <= \
            config.device_time_max_delay_seconds:
        return device
    return received_at


def plan_batch(batch: Sequence[Incoming], duplicates: set[int], *, view: RegistryView,
               stored_seen: Mapping[str, datetime | None], rules: RulesConfig, chain: str,
               raw_keep_bytes: int) -> BatchPlan:
    """Turn a decoded, deduplicated batch into rows, sensor states and alert actions.

    Assigns an identity (``m:<chain>:<uuid>``) to each stored message without a native
    one.

    Args:
        batch: The batch, decoded.
        duplicates: Indexes of redeliveries (left out).
        view: The registry, with each sensor's state before the batch.
        stored_seen: Each sensor's ``last_seen`` as the store holds it.
        rules: Rule thresholds.
        chain: This instance's chain name.
        raw_keep_bytes: How much of each payload to keep.
    """
    plan = BatchPlan()
    for i, incoming in enumerate(batch):
        if i in duplicates:
            continue
        plan.rows.append(event_row(incoming, chain, raw_keep_bytes))
        plan.actions.extend((i, a) for a in judge(incoming, plan.states, view, rules))
    plan.dirty = dirty_states(plan.states, view.states, stored_seen)
    return plan


def judge(incoming: Incoming, states: dict[str, SensorState], view: RegistryView,
          rules: RulesConfig) -> tuple[AlertAction, ...]:
    """Run the rules on one stored event; its sensor's new state goes into ``states``
    (which holds the states the batch changed so far, ahead of ``view.states``)."""
    if incoming.event is None or incoming.sensor_id is None:
        return ()
    household = view.households.get(incoming.household_id or "")
    if household is None:
        return ()
    state = states.get(incoming.sensor_id) or view.states.get(
        incoming.sensor_id) or SensorState(incoming.sensor_id, household.household_id)
    try:
        result = evaluate(state, incoming.event, household, rules, incoming.when)
    except Exception:
        # The event is stored either way; a rule bug must not block the intake.
        log.exception("rule evaluation failed", extra={"sensor": incoming.sensor_id})
        return ()
    new_state = result.state
    if state.last_seen is not None and (new_state.last_seen is None
                                        or new_state.last_seen < state.last_seen):
        # An older event (queued on the device) does not make a sensor look silent
        # for longer than it has been.
        new_state = dataclasses.replace(new_state, last_seen=state.last_seen)
    states[incoming.sensor_id] = new_state
    return result.actions


def dirty_states(states: Mapping[str, SensorState], known: Mapping[str, SensorState],
                 stored_seen: Mapping[str, datetime | None]) -> list[SensorState]:
    """Sensor states worth writing: any change but ``last_seen``, or a ``last_seen``
    more than 30 s ahead of the stored one.

    Keeps a heartbeat storm from rewriting sensor rows on every batch; events themselves
    are always stored, and after a crash a sensor's stored ``last_seen`` is at most 30 s
    stale.
    """
    dirty: list[SensorState] = []
    for sensor_id, new in states.items():
        old = known.get(sensor_id)
        stored = stored_seen.get(sensor_id)
        if (old is None or new.last_seen is None or stored is None
                or dataclasses.replace(old, last_seen=new.last_seen) != new
                or new.last_seen - stored > STATE_WRITE_INTERVAL):
            dirty.append(new)
    return dirty


def event_row(p: Incoming, chain: str, raw_keep_bytes: int) -> dict[str, Any]:
    """The ``iot_event`` row of one message (an event or a dead letter), not yet chained."""
    m, ev = p.message, p.event
    if not p.identity:
        p.identity = f"m:{chain}:{uuid.uuid4().hex}"
    row: dict[str, Any] = {
        "identity": p.identity, "received_at": p.received_at, "topic": m.topic,
        # Only the first raw_keep_bytes are kept, with the full size and hash: a
        # client that may publish must not be able to fill the disk (a full disk
        # stops the intake).
        "payload": m.payload[:raw_keep_bytes], "payload_size": len(m.payload),
        "payload_sha256": payload_digest(m.payload),
        "sensor_id": p.sensor_id, "household_id": p.household_id,
        "kind": "dead", "contact": None, "battery": None, "device_time": None,
        "seq": None, "mqtt_mid": m.mid, "dead_reason": None, "detail": None,
    }
    if ev is not None:
        row.update(kind=ev.kind.value, contact=ev.contact, battery=ev.battery,
                   device_time=ev.device_time, seq=ev.seq)
    elif p.error is not None:
        # A dead letter always fits its row: the topic (refused as too long, or with
        # control characters) is stored escaped and cut, and the detail likewise.
        row.update(topic=fit_text(m.topic, TOPIC_MAX), dead_reason=p.error.reason,
                   detail=fit_text(str(p.error), _DETAIL_MAX),
                   mqtt_mid=m.mid if m.mid is not None and 0 < m.mid < 2**16 else None)
    return row


def results(batch: Sequence[Incoming], duplicates: set[int],
            raised: Mapping[int, Sequence[int]]) -> list[IngestResult]:
    """What happened to each message, in batch order.

    Args:
        batch: The committed batch.
        duplicates: Indexes of redeliveries.
        raised: Ids of the alerts each message opened, by its index.
    """
    out: list[IngestResult] = []
    for i, p in enumerate(batch):
        if i in duplicates:
            out.append(IngestResult("duplicate", sensor_id=p.sensor_id))
        elif p.error is not None:
            out.append(IngestResult("dead", reason=p.error.reason))
        else:
            assert p.event is not None
            out.append(IngestResult("stored", kind=p.event.kind.value, sensor_id=p.sensor_id,
                                    alerts_raised=tuple(raised.get(i, ())),
                                    dropped=tuple(p.event.dropped)))
    return out


__all__ = ["STATE_WRITE_INTERVAL", "BatchPlan", "Incoming", "IngestResult", "IngestStatus",
           "attach", "dirty_states", "event_row", "event_time", "file_under_sensor",
           "format_for", "judge", "parse", "plan_batch", "results", "topic_problem"]
