"""The IoT service's counters and the snapshot metrics read at scrape time (no I/O)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from netguard.iot.batch import IngestResult
from netguard.iot.codecs import field_label

log = logging.getLogger("netguard.iot.service")


@dataclass(frozen=True, slots=True)
class IotSnapshot:
    """Counters and gauges for metrics; built without I/O.

    Attributes:
        mqtt_connected: The intake holds a broker connection.
        mqtt_connect_failures: Failed attempts to connect to the broker since start.
        door_events: Events stored since start, by kind (``open``, ``close``, ...).
        duplicates: Redeliveries dropped since start.
        dead_letters: Messages dead-lettered since start, by reason (``store_rejected``:
            the database refused the message itself, after every check passed).
        store_failures: Batches the store refused as a whole (unreachable, disk full,
            read-only); the intake then holds their acknowledgements and reconnects.
        sensors_online / sensors_offline / sensors_low_battery: Current sensor counts.
        alerts_open: Open alerts by (type, community).
        deliveries_delivered / deliveries_failed: Outbox rows since start.
        delivery_send_errors: Alert messages whose send failed (error answer, exception
            or timeout) since start; each failed row is retried until its attempts run out.
        deliveries_refused: Rows a notifier refused outright since start (a community name
            that cannot be an MQTT topic level); they also count in ``deliveries_failed``.
        outbox_pending: Rows waiting for delivery (as of the last outbox pass).
        mqtt_enabled: The MQTT intake is configured (``iot.mqtt.enabled``).
        delivered_by / failed_by: ``deliveries_*`` by notifier name.
        audit_anchor_sequence: The anchored head sequence number per chain.
        audit_anchor_time: Unix time of the last anchor pass (None before the first).
        audit_anchor_failures: Anchor passes that failed since start.
        payload_field_errors: Invalid optional fields dropped from accepted messages
            since start, by field (bounded: see ``netguard.iot.codecs.FIELD_LABELS``).
    """

    mqtt_connected: bool = False
    mqtt_connect_failures: int = 0
    door_events: Mapping[str, int] = field(default_factory=dict)
    duplicates: int = 0
    dead_letters: Mapping[str, int] = field(default_factory=dict)
    store_failures: int = 0
    sensors_online: int = 0
    sensors_offline: int = 0
    sensors_low_battery: int = 0
    alerts_open: Mapping[tuple[str, str], int] = field(default_factory=dict)
    deliveries_delivered: int = 0
    deliveries_failed: int = 0
    delivery_send_errors: int = 0
    deliveries_refused: int = 0
    outbox_pending: int = 0
    mqtt_enabled: bool = False
    delivered_by: Mapping[str, int] = field(default_factory=dict)
    failed_by: Mapping[str, int] = field(default_factory=dict)
    audit_anchor_sequence: Mapping[str, int] = field(default_factory=dict)
    audit_anchor_time: float | None = None
    audit_anchor_failures: int = 0
    payload_field_errors: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class IngestCounters:
    """What the intake did since start.

    Attributes:
        events: Stored events by kind.
        dead: Dead letters by reason.
        duplicates: Redeliveries dropped.
        store_failures: Batches the store refused as a whole.
    """

    events: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    field_errors: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    store_failures: int = 0

    def count(self, results: Iterable[IngestResult]) -> None:
        """Add the outcome of a committed batch."""
        for r in results:
            if r.status == "duplicate":
                self.duplicates += 1
            elif r.status == "dead":
                self.dead[r.reason or ""] += 1
            elif r.kind is not None:
                self.events[r.kind] += 1
                if r.dropped:
                    self.field_errors.update(field_label(f) for f in r.dropped)
                    log.info("accepted a message without its invalid field(s) %s",
                             ", ".join(r.dropped), extra={"sensor": r.sensor_id})


__all__ = ["IngestCounters", "IotSnapshot"]
