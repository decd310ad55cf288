"""A real local HTTP receiver standing in for WeCom, DingTalk and a generic webhook."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.ports import free_tcp_port


@dataclass
class Received:
    """One request."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class Receiver:
    """Records every POST; answers like the robots do (``{"errcode": 0}``).

    Attributes:
        hold: Paths whose requests are recorded at once but answered only after
            :meth:`release` (a receiver that hangs).
        fail: Paths answered with this HTTP status instead.
        answered: Requests answered so far (``requests`` holds them on arrival).
    """

    port: int = field(default_factory=free_tcp_port)
    requests: list[Received] = field(default_factory=list)
    hold: set[str] = field(default_factory=set)
    fail: dict[str, int] = field(default_factory=dict)
    answered: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        """Answer the held requests (and no longer hold new ones)."""
        self.hold.clear()
        self._released.set()

    def url(self, path: str) -> str:
        """The URL of ``path`` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        received = Received(request.path, dict(request.query), dict(request.headers), body,
                            time.monotonic())
        self.requests.append(received)
        if request.path in self.hold:
            await self._released.wait()
        self.answered.append(received)
        if request.path in self.fail:
            return web.json_response({"error": "test"}, status=self.fail[request.path])
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def start(self) -> None:
        """Listen (again) on the receiver's port."""
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Stop listening (answering held requests first)."""
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def on(self, path: str) -> list[Received]:
        """Requests to ``path``."""
        return [r for r in self.requests if r.path == path]
