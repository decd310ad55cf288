"""IotAdmin, the operator's service, against real SQLite and PostgreSQL with a ManualClock."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest

from netguard.clock import ManualClock
from netguard.errors import InvalidInputError, InvalidTransitionError, NotFoundError
from netguard.iot import alerts as alert_store
from netguard.iot.admin import ALERT_ID_MAX, EXPORT_CSV_COLUMNS, IotAdmin, export_text
from netguard.iot.events import AlertType
from netguard.iot.rules import RaiseAlert
from netguard.store import Store
from tests.iot.conftest import T0, register_estate


async def _raise(store: Store, sensor: str, household: str, community: str,
                 kind: AlertType) -> int:
    async with store.session() as s:
        alert_id, new = await alert_store.raise_alert(
            s, store.dialect, alert_store.AlertTarget(sensor, household, community),
            RaiseAlert(kind, "major", (kind.value,)), now=T0, schedule=[5])
        await s.commit()
    assert new
    return alert_id


async def test_households_and_sensors(store: Store, clock: ManualClock) -> None:
    admin = IotAdmin(store, clock=clock)
    await admin.add_household("A1", "east", label="Flat 1", start=T0)
    await admin.add_household("B1", "west")
    await admin.add_sensor("d-a1", "A1", fmt="zigbee2mqtt", address="door_a1")
    assert [h["id"] for h in await admin.households()] == ["A1", "B1"]
    [east] = await admin.households("east")
    assert (east["quarantined"], east["sensors"]) == (True, ["d-a1"])
    await admin.allow("A1", T0 + timedelta(hours=1), T0 + timedelta(hours=2), "test visit")
    clock.advance(60)
    assert await admin.end_quarantine("A1", clock.now()) == 1
    shown = await admin.household("A1")
    assert shown["quarantined"] is False
    assert [w["reason"] for w in shown["allowed_windows"]] == ["test visit"]
    assert [s["address"] for s in await admin.sensors("A1")] == ["door_a1"]
    assert await admin.sensors("B1") == []
    with pytest.raises(NotFoundError):
        await admin.sensors("NOPE")  # not the same as a household without sensors
    assert await admin.import_households("id,community\nC1,east\n") == 1
    assert [h["id"] for h in await admin.households("east")] == ["A1", "C1"]


async def test_alerts_list_show_and_one_acknowledgement(store: Store,
                                                       clock: ManualClock) -> None:
    await register_estate(store, T0)
    admin = IotAdmin(store, clock=clock)
    door = await _raise(store, "n1", "h1", "c1", AlertType.DOOR_OPEN)
    other = await _raise(store, "n2", "h2", "c2", AlertType.BATTERY_LOW)
    assert [a["id"] for a in await admin.alerts()] == [other, door]  # newest first
    assert [a["id"] for a in await admin.alerts(community="c1")] == [door]
    assert [a["id"] for a in await admin.alerts(household_id="h2")] == [other]
    with pytest.raises(NotFoundError):
        await admin.alerts(household_id="NOPE")

    clock.advance(30)
    acked = await admin.acknowledge(door, "li.wei")
    assert (acked["acked_by"], acked["acked_at"], acked["state"]) == (
        "li.wei", clock.now().isoformat(), "closed")
    with pytest.raises(InvalidTransitionError):
        await admin.acknowledge(door, "again")
    assert [a["id"] for a in await admin.alerts()] == [other]
    assert {a["id"] for a in await admin.alerts(include_closed=True)} == {door, other}
    shown = await admin.alert(door)
    assert (shown["acked_by"], shown["deliveries"]) == ("li.wei", [])
    with pytest.raises(NotFoundError):
        await admin.alert(ALERT_ID_MAX)


@pytest.mark.parametrize("alert_id", [0, -1, ALERT_ID_MAX + 1])
async def test_an_impossible_alert_id_is_refused_before_the_query(
        store: Store, clock: ManualClock, alert_id: int) -> None:
    admin = IotAdmin(store, clock=clock)
    with pytest.raises(InvalidInputError, match="not an alert id"):
        await admin.alert(alert_id)
    with pytest.raises(InvalidInputError, match="not an alert id"):
        await admin.acknowledge(alert_id, "op")


async def test_export_and_its_text_forms(store: Store, clock: ManualClock) -> None:
    await register_estate(store, T0)
    admin = IotAdmin(store, clock=clock)
    door = await _raise(store, "n1", "h1", "c1", AlertType.DOOR_OPEN)
    record = await admin.export("h1")
    assert (record["household"], record["community"], record["exported_at"]) == (
        "h1", "c1", T0)
    assert [a["id"] for a in record["alerts"]] == [door]
    # An alert entirely before the span is left out.
    later = await admin.export("h1", start=T0 + timedelta(hours=1))
    assert later["alerts"] == []
    data = json.loads(export_text(record, "json"))
    assert (data["exported_at"], data["from"]) == (T0.isoformat(), None)
    rows = list(csv.reader(io.StringIO(export_text(record, "csv"))))
    assert rows == [list(EXPORT_CSV_COLUMNS)]  # no events were stored
    with pytest.raises(InvalidInputError):
        export_text(record, "xml")
    with pytest.raises(NotFoundError):
        await admin.export("NOPE")
