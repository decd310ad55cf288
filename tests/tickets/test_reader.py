"""The CLI's fast reader returns exactly what the service returns, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from netguard.clock import ManualClock
from netguard.errors import SchemaOutdatedError
from netguard.store import Store
from netguard.tickets.domain import TicketFilter, TicketState
from netguard.tickets.queries import list_query
from netguard.tickets.reader import TicketReader, open_reader
from netguard.tickets.service import TicketService
from tests.tickets.conftest import OpenFactory


async def test_reader_matches_service(service: TicketService, store: Store,
                                      opened: OpenFactory, clock: ManualClock) -> None:
    for n, severity in enumerate(("minor", "critical", "major", "warning", "critical")):
        await service.handle(opened(f"t{n}", severity=severity, site="hotel-1" if n else None,
                                    category="pon" if n % 2 else "fiber"))
        clock.advance(90)
    await service.acknowledge("NG-000002", actor="op")
    await service.assign("NG-000003", "erin", actor="op")
    await service.resolve("NG-000004", actor="op", message="ok")
    await service.close("NG-000004", actor="op")
    clock.advance(86400)  # everything active is overdue now
    filters = [
        TicketFilter(), TicketFilter(limit=2), TicketFilter(states=tuple(TicketState)),
        TicketFilter(categories=("pon",)), TicketFilter(overdue=True),
        TicketFilter(sites=("hotel-1",), severities=("critical",)),
        TicketFilter(assignees=("erin",), since=clock.now() - __import__("datetime")
                     .timedelta(days=2)),
    ]
    async with TicketReader(store.config, prefix="NG", now=clock.now()) as reader:
        for flt in filters:
            expected = await service.list(flt)
            got = [t async for t in reader.tickets(flt)]
            assert got == expected, flt
            records = [r async for r in reader.records(flt)]
            assert records == [list(t.to_dict().values()) for t in expected], flt
    assert [t.ref for t in await service.list(TicketFilter(overdue=True))] == [
        "NG-000002", "NG-000003", "NG-000005", "NG-000001"]  # major at a hotel: critical


async def test_reader_refuses_outdated_schema(store_config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    with pytest.raises(SchemaOutdatedError) as info:
        async with TicketReader(store_config, prefix="NG", now=now):
            pass
    assert info.value.current is None
    if store_config.url is None:
        assert not store_config.path.exists()  # listing never creates a database
    auto = store_config.model_copy(update={"auto_upgrade": True})
    async with open_reader(auto, prefix="NG", now=now) as reader:
        assert [t async for t in reader.tickets(TicketFilter())] == []


async def test_default_listing_walks_the_queue_index(store: Store) -> None:
    """The first page must not sort the table: the plan uses ix_ticket_queue."""
    sql, params = list_query(TicketFilter(), datetime.now(UTC))
    explain = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
    async with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            # The table is empty: make the planner show whether the index can serve the
            # order (on a real table it chooses this plan itself; see the bench).
            await conn.execute(sa.text("SET enable_seqscan = off"))
            await conn.execute(sa.text("SET enable_bitmapscan = off"))
        plan = " ".join(str(r) for r in (await conn.execute(sa.text(explain + sql),
                                                            params)).all())
    assert "ix_ticket_queue" in plan, plan
    assert "TEMP B-TREE" not in plan.upper()
    assert "Sort" not in plan
