"""The daemon's wiring runs the ticket notifier: a fault handled by the daemon's ticket
service reaches a real HTTP receiver through the real outbox, labels from the targets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from netguard.clock import SystemClock
from netguard.config import settings_from_data
from netguard.daemon.wiring import open_services
from netguard.faults import FaultKey, FaultOpened
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from netguard.tickets.service import TicketService
from tests.iot.receiver import Receiver
from tests.support.wait import async_wait_until


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver in the WeCom format."""
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


async def test_open_services_runs_the_notifier(tmp_path: Path, receiver: Receiver) -> None:
    db = tmp_path / "netguard.db"
    await upgrade(StoreConfig(path=db))
    settings = settings_from_data({
        "store": {"path": str(db)},
        "targets": [{"id": "pl-east", "kind": "private_line", "address": "127.0.0.1",
                     "labels": {"tier": "core"}}],
        "iot": {"notifiers": [{"name": "wecom", "type": "wecom",
                               "url": receiver.url("/wecom?key=abc")}]},
        "notifications": {"routes": [
            {"name": "core", "match": {"labels": {"tier": "core"}}, "notifiers": ["wecom"],
             "group_wait_seconds": 0},
            {"name": "rest", "notifiers": ["wecom"], "events": []}]},
    })
    async with AsyncExitStack() as stack:
        services = await open_services(settings, SystemClock(), stack, lambda _t: None)
        assert services.notifier is not None
        tickets = services.tickets
        assert isinstance(tickets, TicketService)
        await tickets.handle(FaultOpened(
            key=FaultKey("pl-east", "agent", "unreachable"), category="uplink", site=None,
            severity="critical", summary="专线 pl-east 中断", reasons=("no answer",),
            at=datetime.now(UTC)))

        async def sent() -> bool:
            return bool(receiver.on("/wecom"))

        await async_wait_until(sent, what="the ticket message")
        (request,) = receiver.on("/wecom")
        assert "NG-000001 pl-east" in request.body["markdown"]["content"]
        assert services.notifier.sent == {("core", "opened"): 1}
