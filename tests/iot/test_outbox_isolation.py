"""Issue 14: each notifier send is isolated (a refusing, raising or hanging channel never
cancels, fails or delays another's), unsendable rows fail with their reason, and first
sends come ahead of retries in a channel's rate budget. Real Mosquitto, real HTTP
receivers, real SQLite."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
import sqlalchemy as sa
from sqlmodel import col, select
from typer.testing import CliRunner

from netguard.cli import app
from netguard.clock import ManualClock
from netguard.config import Settings
from netguard.iot.models import Household, OutboxMessage
from netguard.iot.notifiers import Notifier, build_notifier
from netguard.iot.notifiers.base import Notification
from netguard.iot.outbox import OutboxWorker, enqueue
from netguard.iot.service import IotService
from netguard.store import Store
from tests.iot.conftest import T0, make_settings, register_estate
from tests.iot.receiver import Receiver
from tests.support.servers import Broker
from tests.support.wait import async_wait_until


def _notification(alert_id: int, community: str) -> Notification:
    return Notification(alert_id=alert_id, reason="raised", type="door_open",
                        severity="critical", community=community, household="h1",
                        sensor="n1", reasons=("opened",), count=1, first_seen=T0.isoformat())


async def _enqueue(store: Store, settings: Settings, clock: ManualClock,
                   alerts: Sequence[tuple[int, str]]) -> list[OutboxMessage]:
    async with store.session() as s:
        rows = [row for alert_id, community in alerts
                for row in enqueue(s, _notification(alert_id, community),
                                   settings.iot.routes, clock.now())]
        await s.commit()
    return rows


async def _rows(store: Store, notifier: str | None = None) -> list[OutboxMessage]:
    async with store.session() as s:
        query = select(OutboxMessage).order_by(col(OutboxMessage.id))
        if notifier is not None:
            query = query.where(col(OutboxMessage.notifier) == notifier)
        return list((await s.exec(query)).all())


def _hook_ids(receiver: Receiver, path: str = "/hook") -> list[list[int]]:
    return [[a["alert_id"] for a in r.body["alerts"]] for r in receiver.on(path)]


@asynccontextmanager
async def _running(store: Store, settings: Settings, clock: ManualClock,
                   extra: dict[str, Notifier] | None = None) -> AsyncIterator[OutboxWorker]:
    """An outbox worker with the configured (real) notifiers, running in the background."""
    async with aiohttp.ClientSession() as http:
        notifiers: dict[str, Notifier] = {
            n.name: build_notifier(n, http, settings.iot.mqtt) for n in settings.iot.notifiers}
        notifiers.update(extra or {})
        worker = OutboxWorker(store, notifiers, settings.iot, clock)
        task = asyncio.create_task(worker.run(), name="test-outbox")
        try:
            yield worker
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


def _status(store: Store, notifier: str, statuses: set[str], count: int) -> Any:
    async def check() -> bool:
        rows = await _rows(store, notifier)
        return len(rows) == count and {r.status for r in rows} <= statuses
    return check


async def test_wildcard_community_fails_alone_and_never_disturbs_a_sibling_send(
        broker: Broker, sqlite_store: Store, receiver: Receiver) -> None:
    """A community named ``#``, ``+`` or ``a/b`` used to make the MQTT notifier raise on
    every pass (the row never failed, its attempts never counted) and cancel the webhook
    send of the same pass mid-flight, so the webhook got the same alert again and again."""
    settings = make_settings(sqlite_store.config, {
        "mqtt": {"enabled": False, "host": broker.host, "port": broker.port},
        "notifiers": [{"name": "bus", "type": "mqtt"},
                      {"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
                       "timeout_seconds": 120}],
        "routes": [{"community": "*", "notifiers": ["bus", "hook"]}],
    })
    clock = ManualClock(T0)
    # The webhook answers only when released: its send is in flight the whole time the
    # MQTT channel refuses the bad rows.
    receiver.hold.add("/hook")
    async with aiomqtt.Client(broker.host, broker.port, identifier="alert-watcher") as watcher:
        await watcher.subscribe("netguard/alerts/#", qos=1)
        await _enqueue(sqlite_store, settings, clock,
                       [(1, "#"), (2, "+"), (3, "a/b"), (4, "c1")])
        async with _running(sqlite_store, settings, clock) as worker:
            await async_wait_until(_status(sqlite_store, "bus", {"failed", "delivered"}, 4),
                                   timeout=30, what="the MQTT rows settled")
            async with asyncio.timeout(30):
                message = await anext(aiter(watcher.messages))
            assert str(message.topic) == "netguard/alerts/c1"
            assert json.loads(bytes(message.payload))["alert_id"] == 4

            bus = {json.loads(r.body)["alert_id"]: r for r in await _rows(sqlite_store, "bus")}
            for alert_id in (1, 2, 3):
                row = bus[alert_id]
                assert (row.status, row.attempts) == ("failed", 1)
                assert row.last_error is not None
                assert "cannot be an MQTT topic level" in row.last_error
            assert (bus[4].status, bus[4].attempts) == ("delivered", 1)

            # The webhook's send was neither cancelled nor repeated meanwhile.
            assert worker.in_flight == {"hook"}
            assert _hook_ids(receiver) == [[1, 2, 3, 4]]
            assert all((r.status, r.attempts) == ("pending", 0)
                       for r in await _rows(sqlite_store, "hook"))
            receiver.release()
            await async_wait_until(_status(sqlite_store, "hook", {"delivered"}, 4),
                                   what="the webhook rows delivered")
            stats = worker.stats
    # Duplicate-free: each alert reached the webhook once, in one message.
    per_alert = Counter(a for ids in _hook_ids(receiver) for a in ids)
    assert per_alert == {1: 1, 2: 1, 3: 1, 4: 1}
    assert all(r.attempts == 1 for r in await _rows(sqlite_store, "hook"))
    assert (stats.refused, stats.failed, stats.delivered) == (3, 3, 5)


class _Raising:
    """A notifier with a bug: every send raises something other than NotifyError."""

    name = "buggy"

    def __init__(self) -> None:
        self.calls = 0

    def check(self, notification: Notification) -> None:
        pass

    async def send(self, batch: Sequence[Notification]) -> None:
        self.calls += 1
        raise RuntimeError("boom")


async def test_a_raising_notifier_counts_attempts_then_fails_with_its_reason(
        sqlite_store: Store, receiver: Receiver) -> None:
    settings = make_settings(sqlite_store.config, {
        "notifiers": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook")}],
        "routes": [{"community": "*", "notifiers": ["hook"]}],
        "outbox_max_attempts": 3, "outbox_backoff_min_seconds": 0.01,
        "outbox_backoff_max_seconds": 0.01,
    })
    clock = ManualClock(T0)
    buggy = _Raising()
    async with _running(sqlite_store, settings, clock, {"buggy": buggy}):
        async with sqlite_store.session() as s:
            rows = enqueue(s, _notification(1, "c1"), settings.iot.routes, clock.now())
            rows += [OutboxMessage(alert_id=1, notifier="buggy", community="c1",
                                   reason="raised", body=_notification(1, "c1").to_json(),
                                   created_at=clock.now(), next_attempt_at=clock.now())]
            s.add_all(rows)
            await s.commit()
        await async_wait_until(_status(sqlite_store, "hook", {"delivered"}, 1),
                               what="the webhook row delivered")
        await async_wait_until(_calls_above(buggy, 0), what="a first attempt")
        for _ in range(2):
            # Each retry comes due on the manual clock, one attempt at a time.
            before = buggy.calls
            clock.advance(1)
            await async_wait_until(_calls_above(buggy, before), what="a retry")
        await async_wait_until(_status(sqlite_store, "buggy", {"failed"}, 1),
                               what="the buggy row failed")
    [row] = await _rows(sqlite_store, "buggy")
    assert row.attempts == 3
    assert row.last_error == "buggy: RuntimeError: boom"
    assert buggy.calls == 3
    assert _hook_ids(receiver) == [[1]]


def _calls_above(notifier: _Raising, n: int) -> Any:
    async def check() -> bool:
        return notifier.calls > n
    return check


async def test_a_hung_receiver_only_delays_its_own_channel(
        sqlite_store: Store, receiver: Receiver) -> None:
    """Head-of-line blocking: a receiver that never answers used to hold every other
    channel's alerts until its timeout, pass after pass."""
    settings = make_settings(sqlite_store.config, {
        "notifiers": [{"name": "stuck", "type": "webhook", "url": receiver.url("/stuck"),
                       "timeout_seconds": 60},
                      {"name": "hook", "type": "webhook", "url": receiver.url("/hook")}],
        "routes": [{"community": "c1", "notifiers": ["stuck", "hook"]}],
    })
    clock = ManualClock(T0)
    receiver.hold.add("/stuck")
    async with _running(sqlite_store, settings, clock) as worker:
        worker.hand_off(await _enqueue(sqlite_store, settings, clock, [(1, "c1")]))
        await async_wait_until(_status(sqlite_store, "hook", {"delivered"}, 1),
                               what="alert 1 at the healthy receiver")
        for alert_id in (2, 3):
            worker.hand_off(await _enqueue(sqlite_store, settings, clock, [(alert_id, "c1")]))
            await async_wait_until(_status(sqlite_store, "hook", {"delivered"}, alert_id),
                                   timeout=45, what=f"alert {alert_id} at the healthy receiver")
        # Causality, not timing: the healthy channel delivered alerts 2 and 3 while the
        # hung channel's first request was still unanswered and its outcome unknown.
        assert [r.path for r in receiver.answered] == ["/hook"] * 3
        assert _hook_ids(receiver, "/stuck") == [[1]]
        assert worker.in_flight == {"stuck"}
        assert all((r.status, r.attempts) == ("pending", 0)
                   for r in await _rows(sqlite_store, "stuck"))
        receiver.release()
        await async_wait_until(_status(sqlite_store, "stuck", {"delivered"}, 3),
                               what="the hung channel catching up")
    assert _hook_ids(receiver) == [[1], [2], [3]]
    # The hung channel's waiting alerts went out together, once each.
    assert _hook_ids(receiver, "/stuck") == [[1], [2, 3]]


async def test_a_receiver_that_times_out_is_an_attempt_with_its_reason(
        sqlite_store: Store, receiver: Receiver) -> None:
    settings = make_settings(sqlite_store.config, {
        "notifiers": [{"name": "stuck", "type": "webhook", "url": receiver.url("/stuck"),
                       "timeout_seconds": 0.2}],
        "routes": [{"community": "c1", "notifiers": ["stuck"]}],
        "outbox_max_attempts": 2, "outbox_backoff_min_seconds": 0.01,
        "outbox_backoff_max_seconds": 0.01,
    })
    clock = ManualClock(T0)
    receiver.hold.add("/stuck")
    async with _running(sqlite_store, settings, clock):
        await _enqueue(sqlite_store, settings, clock, [(1, "c1")])
        await async_wait_until(_attempts(sqlite_store, 1), what="a first attempt")
        clock.advance(1)
        await async_wait_until(_status(sqlite_store, "stuck", {"failed"}, 1),
                               what="the row failed after its attempts")
    [row] = await _rows(sqlite_store)
    assert (row.attempts, row.last_error) == (2, "stuck: TimeoutError")
    assert len(receiver.on("/stuck")) == 2


def _attempts(store: Store, n: int) -> Any:
    async def check() -> bool:
        return any(r.attempts >= n for r in await _rows(store))
    return check


async def test_retries_never_take_the_budget_of_first_sends(
        sqlite_store: Store, receiver: Receiver) -> None:
    """Retries used to spend a robot's per-minute budget, so a new alert waited for the
    next minute behind them. Now they may take at most half of it."""
    settings = make_settings(sqlite_store.config, {
        "notifiers": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
                       "rate_per_minute": 2}],
        "routes": [{"community": "c1", "notifiers": ["hook"]}],
        "outbox_batch_max": 1, "outbox_backoff_min_seconds": 1,
        "outbox_backoff_max_seconds": 1,
    })
    clock = ManualClock(T0)
    async with aiohttp.ClientSession() as http:
        [config] = settings.iot.notifiers
        worker = OutboxWorker(sqlite_store, {"hook": build_notifier(config, http,
                                                                     settings.iot.mqtt)},
                              settings.iot, clock)

        async def pass_() -> None:
            worker.wake()
            await worker.run_once()
            await worker.flush()

        receiver.fail["/hook"] = 500
        await _enqueue(sqlite_store, settings, clock, [(1, "c1"), (2, "c1")])
        await pass_()
        await pass_()
        assert _hook_ids(receiver) == [[1], [2]]  # both failed: two retries due later
        del receiver.fail["/hook"]
        clock.advance(60)  # a fresh minute; both retries are due
        await pass_()
        await pass_()  # the retry share (1 of 2) is spent: alert 2 waits
        assert _hook_ids(receiver)[2:] == [[1]]
        worker.hand_off(await _enqueue(sqlite_store, settings, clock, [(3, "c1")]))
        await pass_()
        # The new alert goes out in the same minute, ahead of the waiting retry.
        assert _hook_ids(receiver)[2:] == [[1], [3]]
        clock.advance(60)
        await pass_()
    assert _hook_ids(receiver)[2:] == [[1], [3], [2]]
    assert {(json.loads(r.body)["alert_id"], r.status) for r in await _rows(sqlite_store)} \
        == {(1, "delivered"), (2, "delivered"), (3, "delivered")}


async def test_a_refused_alert_is_failed_counted_and_shown_by_alerts_show(
        broker: Broker, sqlite_store: Store, tmp_path: Path) -> None:
    """A community name stored before names were validated ('#') still never reaches the
    broker: its alert's MQTT delivery fails at once, visibly."""
    await register_estate(sqlite_store, T0)
    async with sqlite_store.session() as s:
        await s.exec(sa.update(Household).where(col(Household.id) == "h1")
                     .values(community="#"))
        await s.commit()
    settings = make_settings(sqlite_store.config, {
        "mqtt": {"enabled": False, "host": broker.host, "port": broker.port},
        "notifiers": [{"name": "bus", "type": "mqtt"}],
        "routes": [{"community": "*", "notifiers": ["bus"]}],
        "rules": {"heartbeat_timeout_seconds": 86400},
    })
    async with IotService(settings.iot, sqlite_store) as service:
        result = await service.ingest("netguard/sensors/n1/event",
                                      b'{"sensor":"n1","seq":1,"event":"open"}')
        [alert_id] = result.alerts_raised
        await async_wait_until(_status(sqlite_store, "bus", {"failed"}, 1),
                               what="the MQTT delivery failed")
        snapshot = service.snapshot()
    assert (snapshot.deliveries_refused, snapshot.deliveries_failed,
            snapshot.deliveries_delivered) == (1, 1, 0)

    config = tmp_path / "netguard.yaml"
    config.write_text(f"store:\n  path: {sqlite_store.config.path}\n")
    # The CLI runs its own event loop: give it a thread.
    shown = await asyncio.to_thread(CliRunner().invoke, app, [
        "alerts", "show", str(alert_id), "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    line = next(x for x in shown.output.splitlines() if "delivery:" in x)
    assert " ".join(line.split()).endswith(
        "bus raised failed attempts=1 bus: community '#' cannot be an MQTT topic level: it "
        "contains an MQTT wildcard (# or +)"), line


async def test_a_row_held_until_later_is_not_sent_by_its_hand_off(
        sqlite_store: Store, receiver: Receiver) -> None:
    """Quiet hours queue a row with its send time ahead; handing it over at once must not
    send it early (the ticket notifier hands over every row it commits)."""
    settings = make_settings(sqlite_store.config, {
        "notifiers": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook")}],
        "routes": [{"community": "c1", "notifiers": ["hook"]}],
    })
    clock = ManualClock(T0)
    held = await _enqueue(sqlite_store, settings, clock, [(1, "c1")])
    async with sqlite_store.session() as s:
        for row in held:
            row.next_attempt_at = T0 + timedelta(hours=8)
            s.add(row)
        await s.commit()
        for row in held:
            await s.refresh(row)
    def delivered(alert_id: int) -> Any:
        async def check() -> bool:
            return any(r.alert_id == alert_id and r.status == "delivered"
                       for r in await _rows(sqlite_store, "hook"))
        return check

    async with _running(sqlite_store, settings, clock) as worker:
        # Past the worker's first poll, so that the hand-off path is what runs next (a
        # poll would read only the due rows anyway).
        worker.hand_off(await _enqueue(sqlite_store, settings, clock, [(2, "c1")]))
        await async_wait_until(delivered(2), what="the first due row delivered")
        worker.hand_off(held)
        worker.hand_off(await _enqueue(sqlite_store, settings, clock, [(3, "c1")]))
        await async_wait_until(delivered(3), what="the second due row delivered")
        assert _hook_ids(receiver) == [[2], [3]]
        assert [r.status for r in await _rows(sqlite_store, "hook")] == [
            "pending", "delivered", "delivered"]
