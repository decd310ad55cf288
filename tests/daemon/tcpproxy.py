"""A loopback TCP proxy a test can cut and restore, to make a real server unreachable."""

from __future__ import annotations

import asyncio
import contextlib

from tests.support.ports import free_tcp_port


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; :meth:`cut` drops every connection and
    refuses new ones until :meth:`restore`; :meth:`freeze` makes it a hung server (open
    connections and new ones stay open, and nothing is ever answered)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_tcp_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._frozen = False
        self._held: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        """Listen (again) on the same port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                  reuse_address=True)
        return self

    async def cut(self) -> None:
        """Stop listening and abort every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def restore(self) -> None:
        """Accept connections again."""
        await self.start()

    async def freeze(self) -> None:
        """Stop forwarding in both directions without closing anything: every open
        connection, and every new one (accepted, never answered), hangs."""
        self._frozen = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Drop everything, frozen or not."""
        await self.cut()
        for writer in list(self._held):
            writer.transport.abort()
        self._held.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._frozen:
            self._held.add(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        # A cut or freeze that came while the upstream connection was being opened
        # applies to this connection too; pumping it would let one connection escape.
        if self._server is None:
            writer.transport.abort()
            up_writer.transport.abort()
            return
        if self._frozen:
            self._held.update((writer, up_writer))
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.transport.abort()
        self._writers.discard(dst)
