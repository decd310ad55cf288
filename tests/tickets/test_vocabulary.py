"""The ticket vocabulary is defined once; these hold every derived copy to it."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from typing import get_args

import pytest

from netguard.faults import SEVERITIES, FaultSeverity, Severity
from netguard.store.db import MIGRATIONS_DIR
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import (
    ACTION_TARGET,
    ACTIVE_SQL,
    ACTIVE_STATES,
    QUEUE_SQL,
    TICKET_COLUMNS,
    TICKET_FIELDS,
    TicketAction,
    TicketState,
    as_severity,
)
from netguard.tickets.models import TicketRow
from netguard.tickets.policy import TicketFacts, decide_action

TABLE = TicketRow.__table__  # type: ignore[attr-defined]


def test_severity_is_one_enum_in_rank_order() -> None:
    assert get_args(FaultSeverity) == tuple(s.value for s in SEVERITIES)
    assert [s.rank for s in Severity] == [0, 1, 2, 3]
    assert Severity.MINOR.raised(1) is Severity.MAJOR
    assert Severity.MAJOR.raised(9) is Severity.CRITICAL
    assert as_severity("warning") is Severity.WARNING


def test_config_takes_severity_names_and_rejects_others() -> None:
    config = TicketsConfig.model_validate({"sla_minutes": {"critical": 30}})
    assert config.sla_minutes == {Severity.CRITICAL: 30.0}
    assert config.sla_minutes.get("critical") == 30.0  # the stored spelling still finds it
    with pytest.raises(ValueError, match="'critical', 'major', 'minor' or 'warning'"):
        TicketsConfig.model_validate({"sla_minutes": {"urgent": 30}})


def test_the_active_predicate_is_the_unique_index_of_the_table_and_the_migration() -> None:
    assert tuple(s for s in TicketState if s.active) == ACTIVE_STATES
    assert ACTIVE_SQL == "state IN ('open', 'acknowledged')"
    (index,) = [i for i in TABLE.indexes if i.name == "uq_ticket_active_fault_key"]
    assert str(index.dialect_options["sqlite"]["where"]) == ACTIVE_SQL
    assert str(index.dialect_options["postgresql"]["where"]) == ACTIVE_SQL
    # The migration is frozen history and spells it itself: it must agree.
    spec = importlib.util.spec_from_file_location(
        "migration_0001", MIGRATIONS_DIR / "versions" / "0001_tickets.py")
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert (migration.ACTIVE, migration.QUEUE) == (ACTIVE_SQL, QUEUE_SQL)


def test_ticket_columns_are_columns_of_the_table() -> None:
    columns = {c.name for c in TABLE.columns}
    assert set(TICKET_COLUMNS) <= columns
    assert set(TICKET_FIELDS) - set(TICKET_COLUMNS) == {"overdue"}  # computed on read
    assert TICKET_FIELDS[: len(TICKET_COLUMNS)] == TICKET_COLUMNS
    # Every name of the vocabulary fits the column it is stored in.
    assert max(len(s) for s in TicketState) <= TABLE.c.state.type.length
    assert max(len(s) for s in Severity) <= TABLE.c.severity.type.length


@pytest.mark.parametrize("action", list(TicketAction))
def test_the_policy_moves_tickets_by_the_one_action_table(action: TicketAction) -> None:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    for state in TicketState:
        facts = TicketFacts(id=1, state=state, severity=Severity.MAJOR, target="t",
                            first_seen=now, opened_at=now, sla_due=now)
        move = decide_action(action, facts, now, TicketsConfig())
        if move is not None:
            assert move.new is (ACTION_TARGET[action] or state)
