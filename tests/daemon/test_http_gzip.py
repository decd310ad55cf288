"""/metrics gzip: compressed piece by piece in the render thread and streamed as it comes."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
import zlib
from collections.abc import Generator

import aiohttp
import pytest

import netguard.daemon.http as http_module
from netguard.daemon.config import MetricsConfig
from netguard.daemon.http import MetricsServer
from netguard.metrics import MetricsSnapshot, Renderer, render
from tests.daemon.fakes import estate
from tests.daemon.test_http import Ready, _record_ticks
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

_RUNTIME = (b"# HELP process_", b"# HELP python_")


def _own_part(body: bytes) -> bytes:
    """The body without prometheus_client's process_* and python_gc_* families (they move)."""
    cut = min((i for i in map(body.find, _RUNTIME) if i >= 0), default=len(body))
    return body[:cut]


async def test_a_client_decodes_the_gzip_stream_to_the_plain_body() -> None:
    snap = estate(300)
    plain = render(snap)
    async with MetricsServer(MetricsConfig(listen="127.0.0.1:0"), lambda: snap,
                             Ready()) as server, \
            aiohttp.ClientSession(auto_decompress=False) as raw, aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/metrics",
                            headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert resp.headers["Vary"] == "Accept-Encoding"
            decoded = await resp.read()
        async with raw.get(f"{server.url}/metrics", headers={"Accept-Encoding": "gzip"}) as resp:
            # Streamed: the length is not known when the first piece goes out.
            assert "Content-Length" not in resp.headers
            assert resp.headers["Transfer-Encoding"] == "chunked"
            wire = await resp.read()
        async with http.get(f"{server.url}/metrics",
                            headers={"Accept-Encoding": "identity"}) as resp:
            assert "Content-Encoding" not in resp.headers
            assert int(resp.headers["Content-Length"]) > len(plain)
            unzipped = await resp.read()
    assert _own_part(decoded) == plain
    assert _own_part(unzipped) == plain
    assert decoded[len(plain):].startswith(b"# HELP process_")
    # One gzip member, nothing after it, compressed well.
    member = zlib.decompressobj(31)
    assert _own_part(member.decompress(wire)) == plain
    assert member.eof
    assert not member.unused_data
    assert len(wire) < len(plain) / 5


def test_gzip_pieces_are_one_gzip_stream_of_the_families() -> None:
    snap = estate(2000)
    renderer = Renderer()
    pieces = list(http_module.gzip_pieces(renderer, snap))
    assert len(pieces) > 1
    assert all(pieces)
    assert zlib.decompress(b"".join(pieces), 31) == renderer.render(snap)


async def test_a_gzip_scrape_compresses_off_the_loop_while_it_ticks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2,000-target gzip scrape renders and compresses on the render thread, in pieces.

    As in test_http's render test, nothing is compared with a fixed time: the pieces are
    stamped as they are produced, and the loop's ticks inside that same window show it
    kept running all through the render and compression.
    """
    loop_thread = threading.get_ident()
    produced: list[tuple[int, float]] = []
    original = http_module.gzip_pieces

    def stamped(renderer: Renderer, snapshot: MetricsSnapshot) -> Generator[bytes, None, None]:
        produced.append((threading.get_ident(), time.perf_counter()))
        for piece in original(renderer, snapshot):
            produced.append((threading.get_ident(), time.perf_counter()))
            yield piece

    monkeypatch.setattr(http_module, "gzip_pieces", stamped)
    snap = estate(2000)
    ticks: list[tuple[float, float]] = []
    stop = asyncio.Event()
    async with MetricsServer(MetricsConfig(listen="127.0.0.1:0"), lambda: snap,
                             Ready()) as server, \
            aiohttp.ClientSession() as http, asyncio.TaskGroup() as tg:
        tg.create_task(_record_ticks(stop, ticks))
        async with http.get(f"{server.url}/metrics",
                            headers={"Accept-Encoding": "gzip"}) as resp:
            body = await resp.read()
        stop.set()
    assert body.count(b"\n") > 50_000
    threads = {thread for thread, _ in produced}
    assert loop_thread not in threads
    assert len(produced) > 3  # the start and several pieces
    started, ended = produced[0][1], produced[-1][1]
    during = [(a, b) for a, b in ticks if started <= b <= ended]
    assert len(during) >= 3, f"{len(during)} loop ticks during a {ended - started:.3f} s render"
    assert max(b - a for a, b in during) < ended - started


async def test_a_scraper_that_hangs_up_mid_gzip_stream_is_no_server_error(
        caplog: pytest.LogCaptureFixture) -> None:
    # Streaming gzip writes while the render thread still compresses: a reset between
    # two pieces must be counted as abandoned, like the plain-text case in test_http.
    snap = estate(5000)  # compressed, still far more than the socket buffers hold
    async with MetricsServer(MetricsConfig(listen="127.0.0.1:0"), lambda: snap,
                             Ready()) as server:
        host, port = server.url.removeprefix("http://").split(":")
        for _ in range(3):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
            await writer.drain()
            await reader.readexactly(1)  # the response has started
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()

        async def accounted() -> bool:
            return server.scrapes_abandoned + server.scrapes == 3

        await async_wait_until(accounted, what="the three scrapes accounted for")
    assert server.scrapes_abandoned >= 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
