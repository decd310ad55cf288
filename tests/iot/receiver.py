"""A real local HTTP receiver standing in for WeCom, DingTalk and a generic webhook."""

from __future__ import annotations

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
    """Records every POST; answers like the robots do (``{"errcode": 0}``)."""

    port: int = field(default_factory=free_tcp_port)
    requests: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        """The URL of ``path`` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(Received(request.path, dict(request.query),
                                      dict(request.headers), body, time.monotonic()))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def start(self) -> None:
        """Listen (again) on the receiver's port."""
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def on(self, path: str) -> list[Received]:
        """Requests to ``path``."""
        return [r for r in self.requests if r.path == path]
