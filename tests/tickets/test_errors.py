"""CLI exit codes follow the subtrees of the error tree, not leaf classes."""

from __future__ import annotations

from netguard.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_SCHEMA,
    exit_code,
)
from netguard.errors import (
    ConfigError,
    DatabaseMissingError,
    InvalidInputError,
    InvalidTransitionError,
    NetguardError,
    NotFoundError,
    RefusedError,
    StoreError,
    StoreUnavailableError,
    TicketConflictError,
    TicketError,
)


def test_exit_codes_go_by_subtree() -> None:
    assert exit_code(ConfigError("x", [])) == EXIT_CONFIG
    assert exit_code(InvalidInputError("too long")) == EXIT_CONFIG
    assert exit_code(NotFoundError("ticket", "NG-1")) == EXIT_NOT_FOUND
    # Both refusals of a ticket action exit the same (a conflict used to exit 1).
    assert exit_code(InvalidTransitionError("NG-1", "closed", "ack", [])) == EXIT_REFUSED
    assert exit_code(TicketConflictError("NG-1", "reopen", "dup")) == EXIT_REFUSED
    assert exit_code(StoreError("down")) == EXIT_FAILURE
    assert exit_code(StoreUnavailableError("down")) == EXIT_FAILURE
    assert exit_code(DatabaseMissingError("/x.db", "0004")) == EXIT_SCHEMA
    assert exit_code(NetguardError("other")) == EXIT_FAILURE


def test_a_new_refusal_exits_4_without_touching_the_cli() -> None:
    class HouseholdFullError(RefusedError):
        pass

    assert exit_code(HouseholdFullError("full")) == EXIT_REFUSED
    assert issubclass(TicketError, RefusedError)
