"""Reading GETBULK responses from gufo-snmp, a whole response at a time (issue 10).

gufo's own iterator yields one varbind per coroutine step, and its receive wraps each
request in ``asyncio.wait_for`` and (un)registers the socket with the selector; together
that cost more CPU per poll than all of netguard's decoding. Here a column walk sends
with the session's ``_send`` (which keeps the request counter), keeps the socket's
reader registered while the column is walked, and waits on one future per request,
woken by the reader or failed by a timer; gufo's ``GetIter`` keeps the walk's state and
its Rust code decodes. These are gufo internals: gufo is pinned below its next minor,
and the transport contract suite (tests/probes/test_transport_contract.py) covers them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gufo.snmp._fast import GetIter, SnmpV1ClientSocket
from gufo.snmp.aio.client import SnmpSession

from netguard.probes.decode import Index, RawValue

Varbinds = list[tuple[str, Any] | None]  # one response; None: the column ended


class ColumnWalk:
    """One column walk over one gufo session, a whole response per ``next()``.

    Not safe for concurrent use; ``close()`` it before anything else waits on the
    session's socket. SNMPv1 (GETNEXT, one varbind per request) goes through gufo's own
    iterator.

    Args:
        session: The open gufo session.
        base: The column's OID, numeric, no leading dot.
        reps: Max-repetitions of each GETBULK.
    """

    __slots__ = ("_ctx", "_fd", "_future", "_iter", "_loop", "_session", "_sock")

    def __init__(self, session: SnmpSession, base: str, reps: int) -> None:
        self._session = session
        self._sock: Any = session._sock
        self._iter: Any = None
        self._ctx: GetIter | None = None
        self._future: asyncio.Future[None] | None = None
        self._fd: int | None = None
        self._loop = asyncio.get_running_loop()
        self.restart(base, reps)
        if self._ctx is not None:
            self._fd = session._fd
            self._loop.add_reader(self._fd, self._wake)

    def restart(self, base: str, reps: int) -> None:
        """Walk again from the column's start, asking for ``reps`` rows at a time."""
        if self._iter is not None or self._session._sock.__class__ is SnmpV1ClientSocket:
            self._iter = aiter(self._session.getnext(base))
        else:
            self._ctx = GetIter(base, reps)

    def close(self) -> None:
        """Unregister the socket (before anything else may wait on it)."""
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._fd = None

    def _wake(self) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    async def next(self) -> Varbinds:
        """The next response's varbinds; ``None`` ends the column, ``[]`` ends the view
        (or is an answer gufo could not show: tooBig, genErr).

        Raises:
            TimeoutError: No answer within the session's timeout.
        """
        ctx = self._ctx
        if ctx is None:
            try:
                return [await anext(self._iter)]
            except StopAsyncIteration:
                return []
        sock = self._sock
        await self._session._send(lambda: sock.send_get_bulk(ctx))
        loop = self._loop
        while True:
            future = self._future = loop.create_future()
            timer = loop.call_later(self._session._timeout, _expire, future)
            try:
                await future
                batch: Varbinds = sock.recv_get_bulk(ctx)
            except BlockingIOError:  # not the answer (a late one to a retry): wait on
                continue
            except StopAsyncIteration:  # gufo's end of the walk (an error-status, say)
                return []
            finally:
                timer.cancel()
                self._future = None
            return batch


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


# Row indexes by OID tail ("12" -> (12,)), shared by every session: an estate's tables
# repeat the same few thousand indexes, and parsing them was a third of the walk's CPU.
_INDEXES: dict[str, Index] = {}
_INDEXES_MAX = 65_536
_PLAIN_TYPES: frozenset[Any] = frozenset({int, bytes, str})


def take_rows(batch: Varbinds, base: str,
              rows: dict[Index, RawValue], last: Index) -> tuple[Index, bool | None]:
    """Add one response's rows of column ``base`` to ``rows``.

    Args:
        batch: One response, as ``ColumnWalk.next`` returns it.
        base: The column's OID.
        rows: The column so far, by row index (updated in place).
        last: The last index taken so far (``()`` at the start).

    Returns:
        The last index taken, and whether the walk ended: ``None`` (go on), True (on a
        response that brought no rows: the column may have ended exactly at the previous
        response, or the agent refused a response this big) or False (it left the
        column, or the indexes stopped increasing: an agent bug that would loop).
    """
    if not batch:
        return last, True
    prefix = base + "."
    start = len(prefix)
    indexes = _INDEXES
    taken = False
    for item in batch:
        if item is None:
            return last, not taken
        oid, value = item
        if not oid.startswith(prefix):
            return last, False
        tail = oid[start:]
        index = indexes.get(tail)
        if index is None:
            index = parse_index(tail)
            if index is None:
                return last, False
            if len(indexes) >= _INDEXES_MAX:
                indexes.clear()
            indexes[tail] = index
        if index <= last:
            return last, False
        last = index
        rows[index] = value if value.__class__ in _PLAIN_TYPES else plain(value)
        taken = True
    return last, None


def parse_index(tail: str) -> Index | None:
    """``"3.1"`` -> ``(3, 1)``; None if it is not a dotted list of numbers."""
    try:
        return tuple(map(int, tail.split(".")))
    except ValueError:
        return None


def plain(value: object) -> RawValue:
    """gufo's value as the decoder takes it (floats of Opaque: absent)."""
    if isinstance(value, int | bytes | str):
        return value
    return None
