"""The operator's side of the door-sensor area: one service for the CLI, the demo and the
daemon.

:class:`IotAdmin` registers households (with their quarantine periods and allowed
windows) and sensors, lists and shows them, lists, shows and acknowledges alerts,
exports a household's supervision record and checks the event log's hash chain against
its anchors. Each call is one short session on the store; a change is committed before
the call returns. :meth:`netguard.iot.service.IotService.acknowledge` delegates here, so
an alert is acknowledged one way whoever asks. No caller builds its own query.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from netguard.acklinks import AckLinkUsedError
from netguard.clock import Clock, SystemClock, as_utc
from netguard.errors import InvalidInputError, NotFoundError
from netguard.iot import registry
from netguard.iot.alerts import acknowledge as acknowledge_alert
from netguard.iot.alerts import alert_dict
from netguard.iot.anchor import Anchor, Anchorer, AnchorFile, check, read_anchors
from netguard.iot.config import IotConfig
from netguard.iot.eventlog import VerifyReport, export_events, verify
from netguard.iot.models import AckNonce, Alert, Event, Household, OutboxMessage, Sensor
from netguard.localtime import iso_local
from netguard.store.db import Store

# Alert ids are INTEGER primary keys; a larger number overflows the driver (a traceback).
ALERT_ID_MAX = 2**31 - 1
# At most this many alerts in one listing, newest first.
ALERTS_LISTED = 1000
# The columns of a CSV export, one row per stored event.
EXPORT_CSV_COLUMNS = ("chain", "chain_seq", "received_at", "sensor", "kind", "contact",
                      "battery", "device_time", "seq", "topic", "payload", "dead_reason",
                      "hash")
EXPORT_FORMATS = ("csv", "json")


def check_alert_id(value: int) -> int:
    """``value`` if it can be an alert id.

    Raises:
        InvalidInputError: Outside ``1 .. ALERT_ID_MAX``.
    """
    if not 1 <= value <= ALERT_ID_MAX:
        raise InvalidInputError(f"not an alert id: {value} (expected 1 to {ALERT_ID_MAX})")
    return value


def audit_key(config: IotConfig) -> bytes | None:
    """``iot.audit_key`` as the bytes the event log's HMACs use (None when unset)."""
    key = config.audit_key
    return None if key is None else key.get_secret_value().encode("utf-8")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # JSON is for programs: UTC, like every --json output (docs/decisions.md).
        return as_utc(value).isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# The event columns of a CSV export that hold times (shown in the local zone).
_CSV_TIMES = ("received_at", "device_time")


def export_text(record: dict[str, Any], fmt: str, tz: tzinfo | None = None) -> str:
    """A supervision record from :meth:`IotAdmin.export` as ``json`` (all of it) or
    ``csv`` (its events, :data:`EXPORT_CSV_COLUMNS`).

    JSON times are UTC; CSV times are ISO 8601 in ``tz`` with its offset (read by people
    in a spreadsheet, and still the exact instant), UTC when ``tz`` is None.

    Raises:
        InvalidInputError: ``fmt`` is neither.
    """
    if fmt not in EXPORT_FORMATS:
        raise InvalidInputError("--format must be csv or json")
    out = io.StringIO()
    if fmt == "json":
        out.write(json.dumps(record, default=_json_value, ensure_ascii=False, indent=2) + "\n")
    else:
        writer = csv.DictWriter(out, fieldnames=EXPORT_CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for event in record["events"]:
            writer.writerow(event if tz is None else
                            {**event, **{k: iso_local(event.get(k), tz) for k in _CSV_TIMES}})
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """What :meth:`IotAdmin.verify_log` found.

    Attributes:
        report: The hash-chain check of every chain.
        anchors: The anchor file read (None when none was given).
        lost: What the anchors show was truncated or deleted since they were taken.
    """

    report: VerifyReport
    anchors: AnchorFile | None = None
    lost: tuple[str, ...] = ()

    @property
    def anchor_problems(self) -> list[str]:
        """Bad anchor lines, then what the anchors show was lost."""
        return [] if self.anchors is None else [*self.anchors.problems, *self.lost]

    @property
    def ok(self) -> bool:
        """Every chain verifies and matches its anchors."""
        return self.report.ok and not self.anchor_problems

    @property
    def notes(self) -> list[str]:
        """What verified but deserves a word (skipped lines, an accepted head)."""
        notes = list(self.report.notes)
        if self.anchors is not None:
            notes += self.anchors.skipped
            accepted = self.anchors.accepted
            if accepted is not None:
                notes.append(f"anchors before line {accepted.line} were set aside by "
                             f"`audit accept-head` at {accepted.at.isoformat()}: "
                             f"{accepted.note}")
        return notes


class IotAdmin:
    """Registry, alert and audit operations on the door-sensor records.

    Args:
        store: An open :class:`~netguard.store.Store`.
        clock: The time source for records (``created_at``, ``acked_at``, "quarantined
            now"); a :class:`~netguard.clock.ManualClock` in tests.
    """

    def __init__(self, store: Store, *, clock: Clock | None = None) -> None:
        self._store = store
        self._clock: Clock = clock or SystemClock()

    # ------------------------------------------------------------------ households

    async def add_household(self, household_id: str, community: str, *, label: str = "",
                            start: datetime | None = None,
                            end: datetime | None = None) -> None:
        """Register a household, quarantined over ``[start, end)`` when ``start`` is given.

        Raises:
            ValueError: A bad id, community or label (:mod:`netguard.names`).
            RegistryError: It exists, or the period ends before it starts.
        """
        async with self._store.session() as s:
            await registry.add_household(s, household_id, community, label=label,
                                         start=start, end=end, now=self._clock.now())
            await s.commit()

    async def add_quarantine(self, household_id: str, start: datetime,
                             end: datetime | None = None) -> None:
        """Add a quarantine period ``[start, end)`` (open-ended without ``end``).

        Raises:
            NotFoundError: No such household.
            RegistryError: The period ends before it starts.
        """
        async with self._store.session() as s:
            await registry.add_quarantine(s, household_id, start, end)
            await s.commit()

    async def allow(self, household_id: str, start: datetime, end: datetime,
                    reason: str = "") -> None:
        """Let the door open in ``[start, end)`` without an alert (e.g. a test visit).

        Raises:
            NotFoundError: No such household.
            ValueError: A bad reason.
            RegistryError: The window ends before it starts.
        """
        async with self._store.session() as s:
            await registry.add_window(s, household_id, start, end, reason)
            await s.commit()

    async def allow_recurring(self, household_id: str, spec: str, *, timezone: str,
                              start: datetime, end: datetime, reason: str = "") -> str:
        """Let the door open in a repeating local-time window, e.g. ``daily 18:00-18:30``,
        for windows starting in ``[start, end)``.

        Returns:
            The window as stored (``daily 18:00-18:30``).

        Raises:
            NotFoundError: No such household.
            RegistryError: A bad spec, zone or span.
        """
        async with self._store.session() as s:
            row = await registry.add_recurring_window(s, household_id, spec, timezone=timezone,
                                                      start=start, end=end, reason=reason)
            await s.commit()
        return row.repeat or spec

    async def end_quarantine(self, household_id: str, at: datetime) -> int:
        """End the household's open (or later-ending) quarantine periods at ``at``.

        Returns:
            How many periods were ended.

        Raises:
            NotFoundError: No such household.
            RegistryError: It has no open period.
        """
        async with self._store.session() as s:
            ended = await registry.end_quarantine(s, household_id, at)
            await s.commit()
        return ended

    async def import_households(self, text: str, *, timezone: str = "Asia/Shanghai") -> int:
        """Import households (and their sensors) from CSV text; all or nothing.

        ``timezone`` is the zone recurring windows in the ``allow`` column are read in.

        Returns:
            How many households were imported.

        Raises:
            CsvImportError: A bad header or row (nothing was imported).
        """
        async with self._store.session() as s:
            count = await registry.import_households(s, text, self._clock.now(),
                                                     timezone=timezone)
            await s.commit()
        return count

    async def households(self, community: str | None = None) -> list[dict[str, Any]]:
        """Every household (of ``community``) by id, as :func:`registry.household_dict`."""
        query = select(Household).order_by(col(Household.id))
        if community:
            query = query.where(col(Household.community) == community)
        now = self._clock.now()
        async with self._store.session() as s:
            return [await registry.household_dict(s, h, now)
                    for h in (await s.exec(query)).all()]

    async def household(self, household_id: str) -> dict[str, Any]:
        """One household with its periods, windows and sensors.

        Raises:
            NotFoundError: No such household.
        """
        async with self._store.session() as s:
            household = await registry.get_household(s, household_id)
            return await registry.household_dict(s, household, self._clock.now())

    # ------------------------------------------------------------------ sensors

    async def add_sensor(self, sensor_id: str, household_id: str, *, fmt: str = "native",
                         address: str | None = None, kind: str = "door") -> None:
        """Bind a sensor to a household (``address`` defaults to the sensor id).

        Raises:
            NotFoundError: No such household.
            ValueError: A bad id, address or kind.
            RegistryError: The sensor or its address is taken, or an unknown format.
        """
        async with self._store.session() as s:
            await registry.add_sensor(s, sensor_id, household_id, fmt=fmt, address=address,
                                      kind=kind, now=self._clock.now())
            await s.commit()

    async def sensors(self, household_id: str | None = None) -> list[dict[str, Any]]:
        """Every sensor (of one household) by id, with its last known state.

        Raises:
            NotFoundError: ``household_id`` is unknown (not the same as one without
                sensors).
        """
        query = select(Sensor).order_by(col(Sensor.id))
        async with self._store.session() as s:
            if household_id:
                await registry.get_household(s, household_id)
                query = query.where(col(Sensor.household_id) == household_id)
            return [registry.sensor_dict(x) for x in (await s.exec(query)).all()]

    # ------------------------------------------------------------------ alerts

    async def alerts(self, *, include_closed: bool = False, community: str | None = None,
                     household_id: str | None = None) -> list[dict[str, Any]]:
        """Open alerts (all with ``include_closed``), newest first, at most
        :data:`ALERTS_LISTED`, as :func:`~netguard.iot.alerts.alert_dict`.

        Raises:
            NotFoundError: ``household_id`` is unknown.
        """
        query = select(Alert).order_by(col(Alert.id).desc())
        if not include_closed:
            query = query.where(col(Alert.closed_at).is_(None))
        if community:
            query = query.where(col(Alert.community) == community)
        async with self._store.session() as s:
            if household_id:
                await registry.get_household(s, household_id)
                query = query.where(col(Alert.household_id) == household_id)
            return [alert_dict(a) for a in (await s.exec(query.limit(ALERTS_LISTED))).all()]

    async def dead_letters(self, *, sensor_id: str | None = None,
                           since: datetime | None = None,
                           limit: int = ALERTS_LISTED) -> list[dict[str, Any]]:
        """Messages the intake could not use, newest first: when, why, the sensor and
        household their topic names (when it names a registered one), the topic, the
        detail, and the payload's full size (only the first ``raw_keep_bytes`` are kept).

        Raises:
            NotFoundError: ``sensor_id`` is not a registered sensor.
        """
        query = select(Event).where(col(Event.kind) == "dead")
        if since is not None:
            query = query.where(col(Event.received_at) >= since)
        async with self._store.session() as s:
            if sensor_id is not None:
                if await s.get(Sensor, sensor_id) is None:
                    raise NotFoundError("sensor", sensor_id)
                query = query.where(col(Event.sensor_id) == sensor_id)
            rows = (await s.exec(query.order_by(col(Event.received_at).desc(),
                                                col(Event.id).desc()).limit(limit))).all()
        return [{"received_at": as_utc(r.received_at).isoformat(), "reason": r.dead_reason,
                 "sensor": r.sensor_id, "household": r.household_id, "topic": r.topic,
                 "detail": r.detail, "payload_size": r.payload_size} for r in rows]

    async def alert(self, alert_id: int) -> dict[str, Any]:
        """One alert with its deliveries (``deliveries``: notifier, reason, status,
        attempts, delivered_at, last_error; oldest first).

        Raises:
            InvalidInputError: Not an alert id.
            NotFoundError: No such alert.
        """
        check_alert_id(alert_id)
        async with self._store.session() as s:
            alert = await s.get(Alert, alert_id)
            if alert is None:
                raise NotFoundError("alert", str(alert_id))
            data = alert_dict(alert)
            rows = (await s.exec(select(OutboxMessage).where(
                col(OutboxMessage.alert_id) == alert_id).order_by(col(OutboxMessage.id)))).all()
        data["deliveries"] = [
            {"notifier": r.notifier, "reason": r.reason, "status": r.status,
             "attempts": r.attempts,
             "delivered_at": None if r.delivered_at is None else as_utc(r.delivered_at).isoformat(),
             "last_error": r.last_error} for r in rows]
        return data

    async def acknowledge(self, alert_id: int, actor: str, *, via: str | None = None,
                          nonce: str | None = None) -> dict[str, Any]:
        """Acknowledge an open alert for ``actor`` (recorded); its reminders stop, and a
        door or tamper alert (or one already cleared) closes.

        Args:
            alert_id: The alert.
            actor: Who acknowledges (``acked_by``).
            via: How (``acked_via``): ``chat-link`` for an acknowledgement link.
            nonce: An acknowledgement link's nonce, spent in the same transaction: a
                second use finds it and changes nothing.

        Returns:
            The alert as :func:`~netguard.iot.alerts.alert_dict` after the change.

        Raises:
            InvalidInputError: Not an alert id.
            NotFoundError: No such alert.
            InvalidTransitionError: It is already acknowledged or closed.
            AckLinkUsedError: ``nonce`` was spent before.
        """
        check_alert_id(alert_id)
        now = self._clock.now()
        async with self._store.session() as s:
            try:
                if nonce is not None:
                    if await s.get(AckNonce, nonce) is not None:
                        raise AckLinkUsedError("this link was already used")
                    s.add(AckNonce(nonce=nonce, alert_id=alert_id, actor=actor, used_at=now))
                    await s.flush()
                alert = await acknowledge_alert(s, alert_id, actor, now, via=via)
                await s.commit()
            except IntegrityError:
                # The same link submitted twice at once: the nonce's key lets one win.
                raise AckLinkUsedError("this link was already used") from None
            return alert_dict(alert)

    # ------------------------------------------------------------------ records

    async def export(self, household_id: str, start: datetime | None = None,
                     end: datetime | None = None) -> dict[str, Any]:
        """A household's supervision record over ``[start, end)``: its events (oldest
        first) and the alerts that overlap the span (by id).

        Raises:
            NotFoundError: No such household.
        """
        query = select(Alert).where(col(Alert.household_id) == household_id)
        if start is not None:
            query = query.where(col(Alert.last_seen) >= start)
        if end is not None:
            query = query.where(col(Alert.first_seen) < end)
        async with self._store.session() as s:
            household = await registry.get_household(s, household_id)
            events = await export_events(s, household_id, start, end)
            alerts = [alert_dict(a) for a in (await s.exec(query.order_by(col(Alert.id)))).all()]
            return {"household": household.id, "community": household.community,
                    "from": start, "to": end, "exported_at": self._clock.now(),
                    "events": events, "alerts": alerts}

    async def verify_log(self, key: bytes | None, *, retention_days: float,
                         anchor_file: Path | None = None) -> AuditCheck:
        """Check every chain of the event log, and against ``anchor_file`` when given
        (which also shows truncated or deleted rows).

        Args:
            key: ``iot.audit_key`` (:func:`audit_key`), or None.
            retention_days: ``iot.retention_days``: rows younger than that must not be
                redacted.
            anchor_file: An anchor file (``iot.audit_anchor.file`` or an auditor's copy).

        Raises:
            AnchorError: The anchor file cannot be read.
        """
        before = self._clock.now() - timedelta(days=retention_days)
        anchors = None if anchor_file is None else read_anchors(anchor_file, key)
        async with self._store.session() as s:
            report = await verify(s, key, redacted_before=before)
            lost = () if anchors is None else tuple(await check(s, anchors.anchors))
        return AuditCheck(report, anchors, lost)

    async def accept_head(self, anchor_file: Path, key: bytes | None, note: str) -> Anchor:
        """Append an ``accept`` line with the current chain heads to ``anchor_file``
        (after knowingly restoring a backup), so that the daemon starts again.

        Raises:
            StoreError, OSError: The heads could not be read or the line not written.
        """
        anchorer = Anchorer(self._store, anchor_file, key, self._clock, 1.0)
        accepted = await anchorer.anchor(kind="accept", note=note)
        assert accepted is not None  # only an unchanged periodic anchor is skipped
        return accepted
