"""Acceptance 5: the hash chain detects edits, inserts and deletes; retention keeps it valid."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from netguard.clock import ManualClock
from netguard.iot import registry
from netguard.iot.eventlog import GENESIS, export_events, link_hash, verify
from netguard.iot.service import IotService
from netguard.store import Store
from tests.iot.conftest import T0, make_settings, register_estate

KEY = "audit-key-for-tests"


async def _fill(store: Store, clock: ManualClock, iot: dict[str, Any] | None = None,
                n: int = 12) -> IotService:
    await register_estate(store, T0)
    service = IotService(make_settings(store.config, iot or {}).iot, store, clock=clock)
    async with service:
        for seq in range(n):
            await service.ingest("netguard/sensors/n1/event",
                                 json.dumps({"sensor": "n1", "seq": seq,
                                             "battery": 80}).encode())
            clock.advance(60)
        await service.ingest("zigbee2mqtt/unknown", b'{"contact":false}')  # dead letter
    return service


async def _report(store: Store, key: bytes | None = None, *,
                  retention: timedelta | None = None, clock: ManualClock | None = None
                  ) -> Any:
    before = None if retention is None or clock is None else clock.now() - retention
    async with store.session() as s:
        return await verify(s, key, redacted_before=before)


async def _sql(store: Store, statement: str, **params: Any) -> None:
    async with store.session() as s:
        await s.exec(sa.text(statement), params=params)  # type: ignore[call-overload]
        await s.commit()


async def test_untouched_log_verifies(store: Store, clock: ManualClock) -> None:
    await _fill(store, clock)
    report = await _report(store)
    assert report.ok
    assert report.rows == 13


@pytest.mark.parametrize(("tamper", "bad_seq", "words"), [
    ("UPDATE iot_event SET battery = 5 WHERE chain_seq = 7", 7, "edited"),
    ("UPDATE iot_event SET payload = NULL, purged = true WHERE chain_seq = 4", 4,
     "retention"),
    ("UPDATE iot_event SET received_at = '2020-01-01', purged = true WHERE chain_seq = 4", 4,
     "hash"),
    ("DELETE FROM iot_event WHERE chain_seq = 5", 6, "missing"),
    ("DELETE FROM iot_event WHERE chain_seq = 1", 2, "missing"),
    ("UPDATE iot_event SET chain_seq = chain_seq + 100 WHERE chain_seq >= 9", 109, "missing"),
])
async def test_tampering_is_detected_at_the_first_bad_row(
        sqlite_store: Store, clock: ManualClock, tamper: str, bad_seq: int,
        words: str) -> None:
    await _fill(sqlite_store, clock)
    await _sql(sqlite_store, tamper)
    report = await _report(sqlite_store, retention=timedelta(days=30), clock=clock)
    assert not report.ok
    [problem] = report.problems
    assert problem.chain_seq == bad_seq
    assert words in problem.problem
    assert f"seq {bad_seq}" in str(problem)


async def test_inserted_row_is_detected(store: Store, clock: ManualClock) -> None:
    await _fill(store, clock, {"audit_key": KEY})
    assert (await _report(store, KEY.encode())).ok
    # A forger without the key links a plausible row correctly to the chain's end.
    async with store.session() as s:
        last = (await s.exec(sa.text(  # type: ignore[call-overload]
            "SELECT chain, chain_seq, hash FROM iot_event ORDER BY chain_seq DESC LIMIT 1"
        ))).one()
    digest = "ab" * 32
    await _sql(store, "INSERT INTO iot_event (chain, chain_seq, identity, received_at, topic,"
               " kind, purged, digest, prev_hash, hash) VALUES (:c, :s, 'forged', :t, 'x',"
               " 'close', false, :d, :p, :h)", c=last[0], s=last[1] + 1, t=T0, d=digest,
               p=last[2], h=link_hash(last[2], digest, T0))
    report = await _report(store, KEY.encode())
    [problem] = report.problems
    assert problem.chain_seq == last[1] + 1
    assert "edited" in problem.problem


async def test_retention_purge_keeps_chain_verifiable(sqlite_store: Store,
                                                      clock: ManualClock) -> None:
    iot = {"retention_days": 30}
    await _fill(sqlite_store, clock, iot)
    async with sqlite_store.session() as s:
        await registry.end_quarantine(s, "h1", clock.now())
        await s.commit()
    clock.advance(timedelta(days=31).total_seconds())
    async with IotService(make_settings(sqlite_store.config, iot).iot, sqlite_store,
                          clock=clock) as service:
        await service.sweep()
        await service.ingest("netguard/sensors/n1/event", b'{"sensor":"n1","seq":99}')
    report = await _report(sqlite_store)
    assert report.ok, report.problems
    assert report.rows == 2  # the newest purged row stays as the head, plus the new one
    async with sqlite_store.session() as s:
        checkpoint = (await s.exec(sa.text(  # type: ignore[call-overload]
            "SELECT chain_seq, hash FROM iot_chain_checkpoint"))).one()
        leftovers = (await s.exec(sa.text(  # type: ignore[call-overload]
            "SELECT count(*) FROM iot_event WHERE purged AND payload IS NOT NULL"))).one()
    assert checkpoint[0] == 12
    assert checkpoint[1] != GENESIS
    assert leftovers[0] == 0
    # Deleting a row after the checkpoint is still caught.
    await _sql(sqlite_store, "DELETE FROM iot_event WHERE chain_seq = 13")
    assert not (await _report(sqlite_store)).ok


async def test_active_quarantine_is_not_purged(sqlite_store: Store,
                                               clock: ManualClock) -> None:
    iot = {"retention_days": 30}
    await _fill(sqlite_store, clock, iot)
    clock.advance(timedelta(days=31).total_seconds())
    async with IotService(make_settings(sqlite_store.config, iot).iot, sqlite_store,
                          clock=clock) as service:
        await service.sweep()
    async with sqlite_store.session() as s:
        rows = await export_events(s, "h1", None, None)
    assert len(rows) == 12
    assert all(r["payload"] is not None for r in rows)
