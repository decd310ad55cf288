"""The HTTP endpoint: ``/metrics`` (optional basic auth and TLS), ``/healthz``, ``/readyz``,
with ``ack_links`` the acknowledgement pages ``/ack/<token>`` (:mod:`.ackpage`), and with
``notifications.alertmanager`` the webhook ``/alertmanager/webhook`` (:mod:`.amhook`).

``/metrics`` captures a snapshot on the event loop (cheap: references only) and renders
it in a worker thread, so a slow or large scrape never stalls polling or MQTT intake.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import hmac
import logging
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from types import GeneratorType, TracebackType

from aiohttp import web

from netguard.daemon import allocator
from netguard.daemon.ackpage import AckPages
from netguard.daemon.amhook import AmWebhook
from netguard.daemon.config import MetricsConfig
from netguard.errors import ConfigError
from netguard.metrics import CONTENT_TYPE, MetricsSnapshot, Renderer, runtime_registry
from netguard.metrics.exposition import pieces
from netguard.probes.config import split_address

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[Mapping[str, bool]]]


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` of ``metrics.listen``.

    Raises:
        ConfigError: No port or a bad one.
    """
    try:
        host, port = split_address(listen)
    except ValueError as exc:
        raise ConfigError("metrics.listen", [str(exc)]) from None
    if ":" not in listen or not 0 <= port < 65536:
        raise ConfigError("metrics.listen", [f"metrics.listen: expected host:port, got {listen!r}"])
    return host, port


def _ssl_context(config: MetricsConfig) -> ssl.SSLContext | None:
    if config.tls is None:
        return None
    try:
        return config.tls.server_context()
    except ValueError as exc:
        raise ConfigError("metrics.tls", [f"metrics.tls: {exc}"]) from exc


# Seconds between two refreshes of the renderer's cache while /metrics is scraped. The
# targets polled since the last refresh are rendered then, in the render thread, so that
# a scrape mostly streams cached lines: at 10,000 targets a minute, 800 targets (0.05 s
# CPU) every 5 s instead of up to 10,000 (0.5-0.7 s) in the scrape, sharing the GIL with
# the polling loop meanwhile.
PRERENDER_SECONDS = 5.0
# ...but only while someone scrapes at least this often: nobody else reads the cache.
PRERENDER_IDLE_SECONDS = 300.0

# Compressed bytes gathered before a piece is handed to the event loop: large enough that
# the hops between threads stay few, small enough that the first bytes go out early.
GZIP_PIECE_BYTES = 64 * 1024


def gzip_pieces(renderer: Renderer, snapshot: MetricsSnapshot) -> Generator[bytes, None, None]:
    """The gzip stream of ``snapshot``'s exposition, in pieces; run it in the render thread.

    Each piece is compressed as it comes (zlib releases the GIL while it works), and the
    compressed output is handed on once it reaches :data:`GZIP_PIECE_BYTES`. Level 1: a
    large estate's exposition compresses about 10x at a fraction of the default's CPU.
    """
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    pending: list[bytes] = []
    size = 0
    # Compressed from pieces of the targets' cached lines: the plain body is never
    # made whole (at 10,000 targets it is 85 MB).
    for piece in pieces(renderer.stream(snapshot)[1]):
        out = compressor.compress(piece)
        if out:
            pending.append(out)
            size += len(out)
        if size >= GZIP_PIECE_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    pending.append(compressor.flush())
    yield b"".join(pending)
    # The scrape's pieces are freed by now; their pages go back (see allocator.py).
    allocator.trim()


def _plain_pieces(renderer: Renderer, snapshot: MetricsSnapshot
                  ) -> tuple[int, Generator[bytes, None, None]]:
    """The exposition's length in bytes and its pieces; step both in the render thread.

    Reading the pieces inflates the targets' cached lines (see :meth:`Renderer.stream`).
    """
    length, families = renderer.stream(snapshot)

    def plain() -> Generator[bytes, None, None]:
        yield from pieces(families)
        allocator.trim()  # the scrape's pieces, and the lines replaced, are freed by now

    return length, plain()


class MetricsServer:
    """An async context manager serving metrics and health on ``config.listen``.

    Args:
        config: Listen address, basic auth and TLS.
        snapshot: Returns the current metrics snapshot; called on the event loop.
        readiness: Returns named checks (``store``, ``broker``, ``scheduler``); all must be
            true for ``/readyz`` to answer 200.
        reasons: Why the failing checks fail (read after ``readiness``), reported by
            ``/readyz`` as ``reasons``.
        ack: The acknowledgement pages to serve (never behind ``basic_auth``: staff
            phones open them), or None.
        alertmanager: The Alertmanager webhook (its own credentials), or None.
    """

    def __init__(self, config: MetricsConfig, snapshot: Callable[[], MetricsSnapshot],
                 readiness: ReadinessCheck,
                 reasons: Callable[[], Mapping[str, str]] | None = None,
                 ack: AckPages | None = None, *,
                 alertmanager: AmWebhook | None = None) -> None:
        self.config = config
        self._ack = ack
        self._alertmanager = alertmanager
        self._snapshot = snapshot
        self._readiness = readiness
        self._reasons = reasons
        self._renderer = Renderer(runtime_registry(), config.detail.export())
        # One render thread: concurrent scrapes queue instead of competing for the GIL
        # with the event loop, and the loop's default executor stays free for others.
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._scheme = "https" if config.tls else "http"
        self._host, self._wanted_port = parse_listen(config.listen)
        self.scrapes = 0
        self.scrapes_abandoned = 0
        self._scraping = 0
        self._last_scrape: float | None = None  # monotonic
        self._prerender: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:9108`` (the bound port when 0 was asked)."""
        if self._port is None:
            raise RuntimeError("MetricsServer is not running")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{self._scheme}://{host}:{self._port}"

    async def __aenter__(self) -> MetricsServer:
        context = _ssl_context(self.config)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="netguard-metrics")
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        if self._ack is not None:
            self._ack.add_routes(app)
        if self._alertmanager is not None:
            self._alertmanager.add_routes(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._wanted_port, ssl_context=context,
                           reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            self._executor.shutdown(wait=False)
            raise ConfigError("metrics.listen", [
                f"metrics.listen: cannot listen on {self.config.listen}: {exc.strerror or exc}"
            ]) from exc
        self._runner = runner
        # The port the kernel chose for "host:0" (IPv4 and IPv6 socknames both hold it second).
        addresses = runner.addresses
        self._port = int(addresses[0][1]) if addresses else self._wanted_port
        log.info("metrics endpoint listening", extra={"url": self.url})
        self._prerender = asyncio.create_task(self._keep_rendered(),
                                              name="netguard[metrics].prerender")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._prerender is not None:
            self._prerender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prerender
            self._prerender = None
        if self._runner is not None:
            await self._runner.cleanup()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._runner = None
        self._executor = None
        self._port = None

    async def _keep_rendered(self) -> None:
        """Refresh the renderer's cache every :data:`PRERENDER_SECONDS` while scraped."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(PRERENDER_SECONDS)
            last = self._last_scrape
            # Not while a scrape streams: it would wait for the refresh between pieces.
            if self._scraping or last is None \
                    or time.monotonic() - last > PRERENDER_IDLE_SECONDS:
                continue
            try:
                await loop.run_in_executor(self._executor, self._renderer.refresh,
                                           self._snapshot())
            except Exception:
                # The next scrape renders what is missing (and reports the error itself).
                log.exception("refreshing the /metrics cache failed")

    def _authorised(self, request: web.Request) -> bool:
        auth = self.config.basic_auth
        if auth is None:
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Compare both parts in constant time, without short-circuiting on the user name.
        user_ok = hmac.compare_digest(user.encode(), auth.username.encode())
        pass_ok = hmac.compare_digest(password.encode(),
                                      auth.password.get_secret_value().encode())
        return bool(sep) and user_ok and pass_ok

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.Response(status=401, text="unauthorised\n",
                                headers={"WWW-Authenticate": 'Basic realm="netguard"'})
        self._last_scrape = time.monotonic()
        self._scraping += 1
        try:
            return await self._serve_metrics(request)
        finally:
            self._scraping -= 1

    async def _serve_metrics(self, request: web.Request) -> web.StreamResponse:
        snapshot = self._snapshot()
        gzip = "gzip" in request.headers.get("Accept-Encoding", "")
        loop = asyncio.get_running_loop()
        headers = {"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding"}
        # Rendered, inflated from the cache and compressed in the render thread, piece by
        # piece as they are sent. Plain text goes out with its length; gzip chunked.
        parts: Iterator[bytes]
        length = None
        if gzip:
            headers["Content-Encoding"] = "gzip"
            parts = gzip_pieces(self._renderer, snapshot)
        else:
            length, parts = await loop.run_in_executor(self._executor, _plain_pieces,
                                                       self._renderer, snapshot)
        response = web.StreamResponse(headers=headers)
        if length is not None:
            response.content_length = length
        first = await loop.run_in_executor(self._executor, next, parts, b"")
        try:
            await response.prepare(request)
            # Written piece by piece: one write of tens of megabytes would copy them all on
            # the event loop in one go.
            while first:
                await response.write(first)
                first = await loop.run_in_executor(self._executor, next, parts, b"")
            await response.write_eof()
        except ConnectionError as exc:
            # The scraper gave up (its scrape_timeout) or went away mid-body: its loss,
            # not a server error. aiohttp would log it at ERROR with a traceback.
            self.scrapes_abandoned += 1
            log.info("scrape abandoned by the client", extra={
                "peer": request.remote, "reason": type(exc).__name__})
            return response
        finally:
            # Frees the compressor now. Still running only when the handler was cancelled
            # while the thread compresses; then it is left to the garbage collector.
            if isinstance(parts, GeneratorType) and not parts.gi_running:
                parts.close()
        self.scrapes += 1
        return response

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        reasons: dict[str, str] = {}
        try:
            checks = dict(await self._readiness())
            if self._reasons is not None:
                reasons = dict(self._reasons())
        except Exception:
            log.exception("readiness check failed")
            checks = {"readiness": False}
        ready = all(checks.values())
        body: dict[str, object] = {"ready": ready, "checks": checks}
        if reasons:
            body["reasons"] = reasons
        return web.json_response(body, status=200 if ready else 503)
