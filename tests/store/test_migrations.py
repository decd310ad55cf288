"""Acceptance 5: migrations from an empty database and from each earlier revision,
on SQLite and PostgreSQL; the migrated schema matches the models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import netguard.store.models  # noqa: F401  (every table on the metadata)
from netguard.errors import SchemaOutdatedError
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import (
    alembic_config,
    alembic_head_revision,
    create_engine,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import TicketState
from netguard.tickets.service import TicketService


def _revisions() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


REVISIONS = _revisions()
EARLIER = REVISIONS[:-1]


def test_head_revision_without_alembic_matches_alembic() -> None:
    assert head_revision() == alembic_head_revision() == REVISIONS[-1]
    assert REVISIONS[0] == "0001_tickets"


async def _schema_diff(config: StoreConfig) -> list[Any]:
    engine = create_engine(config)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync),
                                              SQLModel.metadata))
    finally:
        await engine.dispose()


async def _tables(config: StoreConfig) -> set[str]:
    engine = create_engine(config)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_from_empty_matches_models(store_config: StoreConfig) -> None:
    engine = create_engine(store_config)
    assert await current_revision(engine) is None
    await upgrade(store_config)
    assert await current_revision(engine) == head_revision()
    await engine.dispose()
    assert await _schema_diff(store_config) == []
    tables = await _tables(store_config)
    assert {"ticket", "ticket_event", "ticket_child"} <= tables


async def test_downgrade_to_base_and_up_again(store_config: StoreConfig) -> None:
    await upgrade(store_config)
    await downgrade(store_config, "base")
    assert await _tables(store_config) <= {"alembic_version"}
    await upgrade(store_config)
    assert await _schema_diff(store_config) == []


async def _seed_ticket(config: StoreConfig) -> None:
    """A ticket written with plain SQL, as an older netguard would have left it."""
    now = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    meta = sa.MetaData()
    ticket = sa.Table("ticket", meta, *[
        sa.Column(n, t) for n, t in [
            ("id", sa.Integer()), ("fault_key", sa.String()), ("source", sa.String()),
            ("category", sa.String()), ("target", sa.String()), ("site", sa.String()),
            ("severity", sa.String()), ("severity_rank", sa.Integer()),
            ("state", sa.String()), ("summary", sa.String()), ("reasons", sa.JSON()),
            ("first_seen", sa.DateTime(timezone=True)),
            ("last_seen", sa.DateTime(timezone=True)),
            ("opened_at", sa.DateTime(timezone=True)),
            ("updated_at", sa.DateTime(timezone=True)),
            ("occurrences", sa.Integer()), ("flaps", sa.Integer()),
            ("reopens", sa.Integer()), ("sla_due", sa.DateTime(timezone=True)),
            ("overdue", sa.Boolean())]])
    engine = create_engine(config)
    try:
        async with engine.begin() as conn:
            await conn.execute(ticket.insert().values(
                fault_key="olt-1|if:3|oper_down", source="fault", category="fiber",
                target="olt-1", site=None, severity="major", severity_rank=1, state="open",
                summary="olt-1: if:3 down", reasons=["oper down"], first_seen=now,
                last_seen=now, opened_at=now, updated_at=now, occurrences=3, flaps=1,
                reopens=0, sla_due=now, overdue=False))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("start", EARLIER)
async def test_upgrade_from_each_earlier_revision(store_config: StoreConfig, start: str
                                                  ) -> None:
    await upgrade(store_config, start)
    await _seed_ticket(store_config)
    with pytest.raises(SchemaOutdatedError) as info:
        async with Store(store_config):
            pass
    assert (info.value.current, info.value.head) == (start, head_revision())
    await upgrade(store_config)
    assert await _schema_diff(store_config) == []
    async with Store(store_config) as store:
        service = TicketService(store, TicketsConfig())
        kept = await service.get("NG-000001")
        assert (kept.fault_key, kept.occurrences, kept.flaps, kept.state) == (
            "olt-1|if:3|oper_down", 3, 1, TicketState.OPEN)
        assert kept.opened_at == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
        # The upgraded store keeps deduplicating onto the old ticket.
        await service.acknowledge("NG-000001", actor="op")


@pytest.mark.parametrize("target", EARLIER)
async def test_downgrade_to_each_earlier_revision(store_config: StoreConfig, target: str
                                                  ) -> None:
    await upgrade(store_config)
    await downgrade(store_config, target)
    engine = create_engine(store_config)
    assert await current_revision(engine) == target
    await engine.dispose()
    await upgrade(store_config)
    assert await _schema_diff(store_config) == []


async def test_store_auto_upgrade(store_config: StoreConfig) -> None:
    with pytest.raises(SchemaOutdatedError, match="netguard db upgrade"):
        async with Store(store_config):
            pass
    auto = store_config.model_copy(update={"auto_upgrade": True})
    async with Store(auto) as store:
        assert await store.ping()
    engine = create_engine(store_config)
    assert await current_revision(engine) == head_revision()
    await engine.dispose()
