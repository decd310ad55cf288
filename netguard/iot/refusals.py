"""Telling a message the database refused from a store that is down.

A batch the store refuses as a whole (unreachable, disk full, read-only) must stay
unacknowledged so that the broker redelivers it; a message the database refuses by itself
must not block the others, and becomes a ``store_rejected`` dead letter instead.
"""

from __future__ import annotations

import sqlalchemy as sa

from netguard.errors import StoreError
from netguard.iot.models import fit_text
from netguard.store.health import store_wide_reason


class MessageRefusedError(StoreError):
    """The database refused something specific to one message of the batch."""


# SQLSTATE classes of errors caused by the data of a row, not by the store: 22 data
# exception (value out of range, string too long, NUL or bad encoding), 23 integrity.
_ROW_SQLSTATE_CLASSES = ("22", "23")


def message_specific(exc: BaseException) -> bool:
    """True when ``exc`` is about the data being stored, not about the store.

    Store-wide errors (connection lost or refused, timeouts, disk full, read-only, the
    SQLite file locked) are False: the intake must hold its acknowledgements and wait.
    A data error (PostgreSQL SQLSTATE class 22/23, SQLAlchemy ``DataError`` and
    ``IntegrityError``, a value the driver cannot bind) is True, and so is any other
    Python error raised while handling the batch (a bug must not stall the intake:
    the message is kept as a dead letter instead).
    """
    if store_wide_reason(exc) is not None:  # the store's own classification comes first
        return False
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return False
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if isinstance(state, str) and state:
            return state[:2] in _ROW_SQLSTATE_CLASSES
        return isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError)
    return not isinstance(exc, sa.exc.SQLAlchemyError | OSError | TimeoutError | MemoryError)


def error_summary(exc: BaseException) -> str:
    """The exception's type and the first line of its message, cut to fit a log line."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {fit_text(text, 200)}"


__all__ = ["MessageRefusedError", "error_summary", "message_specific"]
