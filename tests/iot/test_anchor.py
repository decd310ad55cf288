"""Issue 14 item 2: the supervision log proves completeness against anchors kept outside
the database; keyed links and checkpoints; start-up refuses a head behind its anchor.

Each deletion or restore case first shows that the chain alone still verifies (what
failed before anchors existed), then that the anchors catch it. Real SQLite and
PostgreSQL (the ``store`` fixture runs each test on both).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from netguard.clock import ManualClock
from netguard.iot import registry
from netguard.iot.anchor import (
    Anchorer,
    AnchorError,
    check,
    last_anchor,
    read_anchors,
)
from netguard.iot.eventlog import KEYED_STORE, WRONG_KEY, link_hash, verify
from netguard.iot.service import IotService
from netguard.store import Store
from tests.iot.conftest import T0, make_settings, register_estate

KEY = "anchor-audit-key-for-tests"
KEYED = pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])


def _iot(anchors: Path, keyed: bool, **more: Any) -> dict[str, Any]:
    iot: dict[str, Any] = {"audit_anchor": {"file": str(anchors)}, **more}
    if keyed:
        iot["audit_key"] = KEY
    return iot


def _key(keyed: bool) -> bytes | None:
    return KEY.encode() if keyed else None


async def _ingest(store: Store, clock: ManualClock, iot: dict[str, Any], seqs: range
                  ) -> IotService:
    service = IotService(make_settings(store.config, iot).iot, store, clock=clock)
    async with service:
        for seq in seqs:
            await service.ingest("netguard/sensors/n1/event",
                                 json.dumps({"sensor": "n1", "seq": seq,
                                             "battery": 80}).encode())
            clock.advance(60)
    return service


async def _fill(store: Store, clock: ManualClock, iot: dict[str, Any], n: int = 12
                ) -> IotService:
    await register_estate(store, T0)
    return await _ingest(store, clock, iot, range(n))


async def _sql(store: Store, statement: str, **params: Any) -> None:
    async with store.session() as s:
        await s.exec(sa.text(statement), params=params)  # type: ignore[call-overload]
        await s.commit()


async def _rows(store: Store, statement: str, **params: Any) -> list[Any]:
    async with store.session() as s:
        return list((await s.exec(sa.text(statement), params=params)).all())  # type: ignore[call-overload]


def _ts(value: Any) -> datetime:
    """A timestamp read with raw SQL (SQLite gives text, naive UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _verify(store: Store, keyed: bool, clock: ManualClock | None = None) -> Any:
    before = None if clock is None else clock.now() - timedelta(days=180)
    async with store.session() as s:
        return await verify(s, _key(keyed), redacted_before=before)


async def _check(store: Store, anchors: Path, keyed: bool) -> list[str]:
    found = read_anchors(anchors, _key(keyed))
    assert not found.problems
    async with store.session() as s:
        return [*found.problems, *(await check(s, found.anchors))]


# ------------------------------------------------------------------ the four cases


@KEYED
async def test_deleting_the_newest_rows_is_caught(store: Store, clock: ManualClock,
                                                  tmp_path: Path, keyed: bool) -> None:
    anchors = tmp_path / "anchors.jsonl"
    await _fill(store, clock, _iot(anchors, keyed))
    assert await _check(store, anchors, keyed) == []
    await _sql(store, "DELETE FROM iot_event WHERE chain_seq > 9")
    assert (await _verify(store, keyed, clock)).ok  # the chain alone cannot tell
    [problem] = await _check(store, anchors, keyed)
    assert "ends at seq 9, but was anchored at seq 12" in problem
    assert "rows 10..12 were deleted" in problem


@KEYED
async def test_deleting_a_whole_chain_is_caught(store: Store, clock: ManualClock,
                                                tmp_path: Path, keyed: bool) -> None:
    anchors = tmp_path / "anchors.jsonl"
    await _fill(store, clock, _iot(anchors, keyed))
    await _sql(store, "DELETE FROM iot_event")
    await _sql(store, "DELETE FROM iot_chain_checkpoint")
    report = await _verify(store, keyed, clock)
    assert report.ok  # the chain alone cannot tell
    assert report.chains == 0
    [problem] = await _check(store, anchors, keyed)
    assert "chain 'netguard' is gone: anchored at seq 12" in problem


async def _forge_checkpoint(store: Store, through: int, *, bound: bool,
                            mac: str | None = None) -> None:
    """Delete rows 1..through and hide the gap behind a checkpoint made from the last one."""
    [row] = await _rows(store, "SELECT chain, chain_seq, hash, prev_hash, digest, received_at"
                        " FROM iot_event WHERE chain_seq = :s", s=through)
    await _sql(store, "DELETE FROM iot_event WHERE chain_seq <= :s", s=through)
    await _sql(store, "INSERT INTO iot_chain_checkpoint (chain, chain_seq, hash, purged_at,"
               " prev_hash, digest, received_at, mac) VALUES (:c, :s, :h, :t, :p, :d, :r, :m)",
               c=row[0], s=row[1], h=row[2], t=T0, p=row[3] if bound else None,
               d=row[4] if bound else None, r=row[5] if bound else None, m=mac)


async def test_forged_checkpoint_is_caught_by_the_anchor_without_a_key(
        store: Store, clock: ManualClock, tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.jsonl"
    await _fill(store, clock, _iot(anchors, False))
    await _forge_checkpoint(store, 5, bound=False)
    report = await _verify(store, False, clock)
    assert report.ok  # the chain alone cannot tell an old-style checkpoint from a forgery
    assert "only an anchor can vouch for it" in report.notes[0]
    [problem] = await _check(store, anchors, False)
    assert "checkpoint moved from seq 0" in problem
    assert "not bound to its row: a forged checkpoint hides deleted rows" in problem


async def test_bound_forged_checkpoint_of_recent_rows_is_caught(
        store: Store, clock: ManualClock, tmp_path: Path) -> None:
    await _fill(store, clock, _iot(tmp_path / "anchors.jsonl", False))
    await _forge_checkpoint(store, 5, bound=True)
    [problem] = (await _verify(store, False, clock)).problems
    assert problem.chain_seq == 5
    assert "within the retention period" in problem.problem


@pytest.mark.parametrize(("bound", "mac", "words"), [
    (False, None, "carries no HMAC, but the row links with the key"),
    (True, None, "carries no HMAC, but its row links with the key"),
    (True, "ab" * 32, "checkpoint HMAC does not match"),
])
async def test_forged_checkpoint_is_caught_by_its_hmac_with_a_key(
        store: Store, clock: ManualClock, tmp_path: Path, bound: bool, mac: str | None,
        words: str) -> None:
    await _fill(store, clock, _iot(tmp_path / "anchors.jsonl", True))
    await _forge_checkpoint(store, 5, bound=bound, mac=mac)
    report = await _verify(store, True)  # no retention check: the HMAC alone catches it
    [problem] = report.problems
    assert words in problem.problem
    assert report.key_hint is None


@KEYED
async def test_restoring_an_older_backup_is_caught_and_refused_at_start(
        store: Store, clock: ManualClock, tmp_path: Path, keyed: bool) -> None:
    anchors = tmp_path / "anchors.jsonl"
    iot = _iot(anchors, keyed)
    await _fill(store, clock, iot, n=6)
    # The backup: the event log as it is now (a table-level dump and restore).
    await _sql(store, "CREATE TABLE backup_event AS SELECT * FROM iot_event")
    await _ingest(store, clock, iot, range(6, 12))
    await _sql(store, "DELETE FROM iot_event")
    await _sql(store, "INSERT INTO iot_event SELECT * FROM backup_event")
    assert (await _verify(store, keyed, clock)).ok  # the chain alone cannot tell
    [problem] = await _check(store, anchors, keyed)
    assert "ends at seq 6, but was anchored at seq 12" in problem
    assert "older backup was restored" in problem

    settings = make_settings(store.config, iot)
    with pytest.raises(AnchorError) as refused:
        async with IotService(settings.iot, store, clock=clock):
            pytest.fail("started on a restored backup")
    message = str(refused.value)
    assert "\n" not in message
    assert f"behind its last anchor in {anchors}" in message
    assert "ends at seq 6, but was anchored at seq 12" in message
    assert "netguard audit accept-head" in message

    # The documented override: an operator accepts the restored store, on the record.
    accepted = await Anchorer(store, anchors, _key(keyed), clock, 60).anchor(
        kind="accept", note="ops: restored last night's backup")
    assert accepted is not None
    async with IotService(settings.iot, store, clock=clock) as service:
        await service.ingest("netguard/sensors/n1/event", b'{"sensor":"n1","seq":99}')
    assert await _check(store, anchors, keyed) == []
    found = read_anchors(anchors, _key(keyed))
    assert found.accepted is not None
    assert found.accepted.note == "ops: restored last night's backup"
    assert (await _verify(store, keyed, clock)).ok


@KEYED
async def test_start_up_refuses_a_truncated_tail(store: Store, clock: ManualClock,
                                                 tmp_path: Path, keyed: bool) -> None:
    anchors = tmp_path / "anchors.jsonl"
    iot = _iot(anchors, keyed)
    await _fill(store, clock, iot)
    await _sql(store, "DELETE FROM iot_event WHERE chain_seq > 10")
    with pytest.raises(AnchorError, match="ends at seq 10, but was anchored at seq 12"):
        async with IotService(make_settings(store.config, iot).iot, store, clock=clock):
            pytest.fail("carried on from the cut head")
    # Nothing was written on top of the cut head.
    assert (await _rows(store, "SELECT max(chain_seq) FROM iot_event"))[0][0] == 10


async def test_start_up_refuses_a_rewritten_chain(store: Store, clock: ManualClock,
                                                  tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.jsonl"
    iot = _iot(anchors, False)
    await _fill(store, clock, iot)
    # An unkeyed store rewritten whole, from row 3 on, with every link recomputed.
    rows = await _rows(store, "SELECT chain_seq, digest, received_at, prev_hash FROM iot_event"
                       " ORDER BY chain_seq")
    prev = rows[2][3]
    for seq, _digest, received_at, _prev in rows[2:]:
        digest = "cd" * 32
        head = link_hash(prev, digest, _ts(received_at))
        await _sql(store, "UPDATE iot_event SET digest = :d, prev_hash = :p, hash = :h,"
                   " purged = true WHERE chain_seq = :s", d=digest, p=prev, h=head, s=seq)
        prev = head
    with pytest.raises(AnchorError, match="row seq 12 does not have its anchored hash"):
        async with IotService(make_settings(store.config, iot).iot, store, clock=clock):
            pytest.fail("carried on from a rewritten chain")


# ------------------------------------------------------------------ keys


async def test_no_key_on_a_keyed_store_says_so(store: Store, clock: ManualClock,
                                               tmp_path: Path) -> None:
    await _fill(store, clock, _iot(tmp_path / "anchors.jsonl", True))
    report = await _verify(store, False)
    assert not report.ok
    assert report.key_hint == KEYED_STORE
    assert "this store is keyed; give audit_key" in KEYED_STORE


async def test_wrong_key_is_named_and_fails_the_anchors(store: Store, clock: ManualClock,
                                                        tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.jsonl"
    await _fill(store, clock, _iot(anchors, True))
    async with store.session() as s:
        report = await verify(s, b"not-the-key")
    assert report.key_hint == WRONG_KEY
    found = read_anchors(anchors, b"not-the-key")
    assert found.anchors == ()
    assert found.problems
    assert all("HMAC does not match" in p for p in found.problems)
    with pytest.raises(AnchorError, match="HMAC does not match"):
        last_anchor(anchors, b"not-the-key")


async def test_an_edited_first_row_is_an_edit_not_a_key_problem(
        store: Store, clock: ManualClock, tmp_path: Path) -> None:
    await _fill(store, clock, _iot(tmp_path / "anchors.jsonl", False))
    await _sql(store, "UPDATE iot_event SET battery = 5 WHERE chain_seq = 1")
    report = await _verify(store, False)
    assert report.key_hint is None
    [problem] = report.problems
    assert problem.chain_seq == 1
    assert "edited" in problem.problem


async def test_keyed_links_continue_a_chain_of_plain_links(store: Store, clock: ManualClock,
                                                           tmp_path: Path) -> None:
    """A keyed store written before links were keyed still verifies, and once a row links
    with the key a plain link after it is refused."""
    iot = _iot(tmp_path / "anchors.jsonl", True)
    await _fill(store, clock, iot, n=4)
    # Rewrite the links as the previous version made them: keyed digest, plain link.
    rows = await _rows(store, "SELECT chain_seq, digest, received_at FROM iot_event"
                       " ORDER BY chain_seq")
    prev = "0" * 64
    for seq, digest, received_at in rows:
        head = link_hash(prev, digest, _ts(received_at))
        await _sql(store, "UPDATE iot_event SET prev_hash = :p, hash = :h WHERE chain_seq = :s",
                   p=prev, h=head, s=seq)
        prev = head
    (tmp_path / "anchors.jsonl").unlink()  # anchors of the old links; start afresh
    assert (await _verify(store, True)).ok
    await _ingest(store, clock, iot, range(4, 8))
    assert (await _verify(store, True)).ok
    [last] = await _rows(store, "SELECT chain_seq, hash, prev_hash, digest, received_at FROM "
                         "iot_event ORDER BY chain_seq DESC LIMIT 1")
    plain = link_hash(last[2], last[3], _ts(last[4]))
    assert last[1] != plain  # keyed now
    # A forger re-links the newest row plainly (e.g. after swapping in a purged digest).
    await _sql(store, "UPDATE iot_event SET hash = :h WHERE chain_seq = :s", h=plain,
               s=last[0])
    [problem] = (await _verify(store, True)).problems
    assert problem.chain_seq == last[0]
    assert "keyed link" in problem.problem


@KEYED
async def test_retention_checkpoints_verify_and_match_the_anchors(
        store: Store, clock: ManualClock, tmp_path: Path, keyed: bool) -> None:
    anchors = tmp_path / "anchors.jsonl"
    iot = _iot(anchors, keyed, retention_days=30)
    await _fill(store, clock, iot)
    async with store.session() as s:
        await registry.end_quarantine(s, "h1", clock.now())
        await s.commit()
    clock.advance(timedelta(days=31).total_seconds())
    async with IotService(make_settings(store.config, iot).iot, store, clock=clock) as service:
        await service.sweep()
        await service.ingest("netguard/sensors/n1/event", b'{"sensor":"n1","seq":99}')
    [cp] = await _rows(store, "SELECT chain_seq, mac, received_at FROM iot_chain_checkpoint")
    assert cp[0] == 11
    assert (cp[1] is not None) is keyed
    async with store.session() as s:
        report = await verify(s, _key(keyed), redacted_before=clock.now()
                              - timedelta(days=30))
    assert report.ok, report.problems
    assert report.notes == ()
    assert await _check(store, anchors, keyed) == []


# ------------------------------------------------------------------ where anchors go


async def test_anchors_go_to_the_file_the_journal_and_the_snapshot(
        store: Store, clock: ManualClock, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    anchors = tmp_path / "anchors.jsonl"
    iot = _iot(anchors, True)
    caplog.set_level(logging.INFO, logger="netguard.iot.anchor")
    service = await _fill(store, clock, iot, n=3)
    lines = [json.loads(line) for line in anchors.read_text().splitlines()]
    # At start (whatever was stored by then), then at shutdown.
    assert [a["heads"].get("netguard", {}).get("seq", 0) for a in lines][-1] == 3
    last = lines[-1]
    assert len(last["mac"]) == 64
    logged = [r.audit_anchor for r in caplog.records  # type: ignore[attr-defined]
              if r.getMessage() == "audit anchor"]
    assert logged[-1] == last  # the journal's copy, HMAC and all
    snap = service.snapshot()
    assert snap.audit_anchor_sequence == {"netguard": 3}
    assert snap.audit_anchor_time == clock.now().timestamp()
    assert snap.audit_anchor_failures == 0
    # An unchanged head writes no new line; a changed one does.
    anchorer = Anchorer(store, anchors, KEY.encode(), clock, 60)
    anchorer.last = last_anchor(anchors, KEY.encode())
    assert await anchorer.anchor() is None
    assert len(anchors.read_text().splitlines()) == len(lines)
    await _ingest(store, clock, iot, range(3, 4))
    assert len(anchors.read_text().splitlines()) == len(lines) + 1


async def test_a_torn_last_line_is_passed_over(store: Store, clock: ManualClock,
                                               tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.jsonl"
    iot = _iot(anchors, True)
    await _fill(store, clock, iot, n=3)
    with anchors.open("a") as handle:
        handle.write('{"v":1,"kind":"anch')  # a crash mid-write
    anchor = last_anchor(anchors, KEY.encode())
    assert anchor is not None
    assert anchor.heads[0].seq == 3
    found = read_anchors(anchors, KEY.encode())
    assert not found.problems
    assert found.skipped
    # It starts (the torn line is not a newer anchor), and the next line is whole.
    await _ingest(store, clock, iot, range(3, 4))
    anchor = last_anchor(anchors, KEY.encode())
    assert anchor is not None
    assert anchor.heads[0].seq == 4
    assert len(read_anchors(anchors, KEY.encode()).skipped) == 1


async def test_anchor_failures_are_counted_not_raised(store: Store, clock: ManualClock,
                                                      tmp_path: Path) -> None:
    blocked = tmp_path / "anchors.jsonl"
    blocked.mkdir()  # a directory where the file should be: every append fails
    anchorer = Anchorer(store, blocked, None, clock, 60)
    await register_estate(store, T0)
    assert await anchorer.try_anchor() is None
    assert anchorer.failures == 1
    # A missing directory is created (a fresh StateDirectory), not a failure.
    fresh = Anchorer(store, tmp_path / "audit" / "anchors.jsonl", None, clock, 60)
    assert await fresh.try_anchor() is not None
    assert fresh.failures == 0
