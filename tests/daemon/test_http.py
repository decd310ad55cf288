"""The HTTP endpoint against a real aiohttp client: metrics, auth, TLS, health, readiness."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from netguard.daemon.config import BasicAuth, HttpTls, MetricsConfig
from netguard.daemon.http import MetricsServer
from netguard.errors import ConfigError
from netguard.metrics import MetricsSnapshot, Renderer
from tests.daemon.fakes import estate
from tests.support.tls import self_signed
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration


class Ready:
    def __init__(self) -> None:
        self.checks = {"store": True, "broker": True, "scheduler": True}

    async def __call__(self) -> dict[str, bool]:
        return dict(self.checks)


def _auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _own(exposition: str) -> list[str]:
    return [line for line in exposition.splitlines() if "netguard_" in line]


async def test_metrics_health_and_readiness() -> None:
    ready = Ready()
    snap = estate(20)
    async with MetricsServer(MetricsConfig(listen="127.0.0.1:0"), lambda: snap, ready) as server, \
            aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = await resp.text()
        assert 'netguard_target_up{target="fiber-00000",kind="fiber",site="site-0"} 1' in body
        async with http.get(f"{server.url}/metrics", headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert "Content-Length" not in resp.headers  # streamed as it is compressed
            zipped = await resp.text()
        # Same exposition; process_* and python_gc_* values move between the two scrapes.
        assert _own(zipped) == _own(body)
        assert "process_resident_memory_bytes " in zipped
        async with http.get(f"{server.url}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{server.url}/readyz") as resp:
            assert resp.status == 200
            assert (await resp.json())["ready"] is True
        ready.checks["broker"] = False
        async with http.get(f"{server.url}/readyz") as resp:
            assert resp.status == 503
            assert (await resp.json())["checks"]["broker"] is False
        ready.checks["broker"] = True
        async with http.get(f"{server.url}/readyz") as resp:
            assert resp.status == 200


async def test_basic_auth() -> None:
    config = MetricsConfig(listen="127.0.0.1:0",
                           basic_auth=BasicAuth(username="prom", password=SecretStr("s3cret!")))
    snap = estate(1)
    async with MetricsServer(config, lambda: snap, Ready()) as server, \
            aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/metrics") as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic")
        async with http.get(f"{server.url}/metrics", headers=_auth("prom", "wrong")) as resp:
            assert resp.status == 401
        async with http.get(f"{server.url}/metrics", headers={"Authorization": "Basic !!"}) as resp:
            assert resp.status == 401
        async with http.get(f"{server.url}/metrics", headers=_auth("prom", "s3cret!")) as resp:
            assert resp.status == 200
        # Health stays open: probes from orchestrators carry no credentials.
        async with http.get(f"{server.url}/healthz") as resp:
            assert resp.status == 200


async def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "cert.pem", tmp_path / "key.pem")
    config = MetricsConfig(listen="127.0.0.1:0", tls=HttpTls(cert_file=cert, key_file=key))
    snap = estate(1)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    client_ctx.check_hostname = False
    async with MetricsServer(config, lambda: snap, Ready()) as server, \
            aiohttp.ClientSession() as http:
        assert server.url.startswith("https://")
        async with http.get(f"{server.url}/metrics", ssl=client_ctx) as resp:
            assert resp.status == 200
            assert "netguard_build_info" in await resp.text()


async def test_bad_tls_files_and_busy_port_are_config_errors(tmp_path: Path) -> None:
    bad = MetricsConfig(listen="127.0.0.1:0",
                        tls=HttpTls(cert_file=tmp_path / "no.pem", key_file=tmp_path / "no.key"))
    with pytest.raises(ConfigError, match=r"metrics\.tls"):
        async with MetricsServer(bad, lambda: estate(1), Ready()):
            pass
    async with MetricsServer(MetricsConfig(listen="127.0.0.1:0"), lambda: estate(1),
                             Ready()) as first:
        port = first.url.rsplit(":", 1)[1]
        with pytest.raises(ConfigError, match="cannot listen"):
            async with MetricsServer(MetricsConfig(listen=f"127.0.0.1:{port}"),
                                     lambda: estate(1), Ready()):
                pass


async def _record_ticks(stop: asyncio.Event, ticks: list[tuple[float, float]]) -> None:
    """Each 1 ms sleep's (start, end) on the perf counter, until ``stop``: the loop's pulse."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        ticks.append((before, time.perf_counter()))


async def test_scrape_renders_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2,000-target scrape renders on a worker thread while the loop keeps running.

    Nothing here compares against a fixed time or a render timed at another moment (a
    loaded machine breaks both): the render is timed as it happens, and the loop's stalls
    during that same window are compared with it. Rendered on the loop, one stall would
    span the whole render; off the loop, the loop ticks all through it.
    """
    loop_thread = threading.get_ident()
    renders: list[tuple[int, float, float]] = []
    render_parts = Renderer.stream

    def timed(self: Renderer, snapshot: MetricsSnapshot
              ) -> tuple[int, Iterator[Iterable[bytes]]]:
        started = time.perf_counter()
        try:
            return render_parts(self, snapshot)
        finally:
            renders.append((threading.get_ident(), started, time.perf_counter()))

    monkeypatch.setattr(Renderer, "stream", timed)
    snap = estate(2000)
    ticks: list[tuple[float, float]] = []
    stop = asyncio.Event()
    config = MetricsConfig(listen="127.0.0.1:0")
    async with MetricsServer(config, lambda: snap, Ready()) as server, \
            aiohttp.ClientSession() as http, asyncio.TaskGroup() as tg:
        tg.create_task(_record_ticks(stop, ticks))
        async with http.get(f"{server.url}/metrics") as resp:
            body = await resp.read()
        stop.set()
    assert body.count(b"\n") > 50_000
    [(render_thread, started, ended)] = renders
    assert render_thread != loop_thread
    # The loop woke several times inside the render's own window...
    during = [(a, b) for a, b in ticks if started <= b <= ended]
    assert len(during) >= 3, f"{len(during)} loop ticks during a {ended - started:.3f} s render"
    # ...so no single stall spanned the render, as one on the loop would have.
    longest = max(b - a for a, b in during)
    assert longest < ended - started


async def test_a_scraper_that_hangs_up_mid_body_is_no_server_error(
        caplog: pytest.LogCaptureFixture) -> None:
    # Prometheus gives up at its scrape_timeout and resets the connection. That used to
    # come out as aiohttp's "Error handling request" ERROR with a traceback.
    snap = estate(2000)  # a body far larger than the socket buffers
    async with MetricsServer(MetricsConfig(listen="127.0.0.1:0"), lambda: snap,
                             Ready()) as server:
        host, port = server.url.removeprefix("http://").split(":")
        for _ in range(3):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            await reader.readexactly(1)  # the response has started: the body is being sent
            sock = writer.get_extra_info("socket")
            # Reset, not FIN: what a client that gives up does to a half-read response.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()

        async def accounted() -> bool:
            return server.scrapes_abandoned + server.scrapes == 3

        await async_wait_until(accounted, what="the three scrapes accounted for")
    assert server.scrapes_abandoned >= 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
