"""A local webhook sink: receives the demo's alerts so nothing needs the internet.

Every request is appended to a JSONL file (one object per line: ``received_at``, ``path``,
``body``), which the end-to-end test and curious users read. It answers the way WeCom and
DingTalk robots do (``{"errcode": 0, "errmsg": "ok"}``), so any notifier type can point here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from netguard.clock import Clock, SystemClock
from netguard.demo.broker import free_tcp_port

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReceivedAlert:
    """One request the sink received."""

    received_at: str
    path: str
    body: Any

    def to_json(self) -> dict[str, Any]:
        """The JSONL record."""
        return {"received_at": self.received_at, "path": self.path, "body": self.body}


def read_received(path: Path) -> list[ReceivedAlert]:
    """Read a sink's JSONL file back (skipping a torn last line)."""
    out: list[ReceivedAlert] = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        out.append(ReceivedAlert(record["received_at"], record["path"], record["body"]))
    return out


class WebhookSink:
    """An aiohttp server on loopback recording every POST, as an async context manager.

    Args:
        record_file: The JSONL file to append to.
        host: Address to listen on.
        port: TCP port; ``None`` picks a free one.
        clock: Time source for ``received_at``.
        on_receive: Called with each received alert (the live view counts them).
    """

    def __init__(self, record_file: Path, *, host: str = "127.0.0.1", port: int | None = None,
                 clock: Clock | None = None,
                 on_receive: Callable[[ReceivedAlert], None] | None = None) -> None:
        self.record_file = record_file
        self.host = host
        self.port = port if port is not None else free_tcp_port(host)
        self._clock = clock or SystemClock()
        self._on_receive = on_receive
        self._runner: web.AppRunner | None = None
        self.received: list[ReceivedAlert] = []

    def url(self, path: str = "/alerts") -> str:
        """The URL a notifier posts to."""
        return f"http://{self.host}:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = raw.decode("utf-8", errors="replace")
        alert = ReceivedAlert(self._clock.now().isoformat(), request.path, body)
        self.received.append(alert)
        # One short line per write: appends of this size are not interleaved.
        with self.record_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(alert.to_json(), ensure_ascii=False) + "\n")
        if self._on_receive is not None:
            self._on_receive(alert)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def __aenter__(self) -> WebhookSink:
        self.record_file.parent.mkdir(parents=True, exist_ok=True)
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("webhook sink listening on %s, recording to %s", self.url(), self.record_file)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
