"""Prometheus -> Alertmanager -> netguard -> chat, every part real (issue 9, acceptance).

A real netguard daemon (in process, the real wiring) serves ``/metrics`` and
``/alertmanager/webhook``. A real Prometheus scrapes it and evaluates netguard's shipped
rules; a real Alertmanager (Debian ``prometheus-alertmanager``) runs the shipped
``config/alertmanager/alertmanager.yml`` (only the webhook URL, the token file and the
timings changed for a test) and posts to netguard; netguard's WeCom and DingTalk
notifiers deliver to a real HTTP receiver.

The alert is the shipped ``NetguardConfigReloadFailed``: a reload of a broken config file
makes it fire, a reload of a good one resolves it. Between Alertmanager and netguard a
proxy loses netguard's first two answers (after netguard has recorded the notification,
as a timeout or a dropped connection would), so Alertmanager retries; the chat still
gets exactly one message. The resolution arrives while the database is locked: netguard
answers 503, Alertmanager retries, and the resolution is sent once the lock is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from netguard.config import load_settings
from netguard.daemon.app import Daemon
from netguard.daemon.parts import Part
from netguard.store.db import upgrade
from tests.daemon.promql import RULES_DIR
from tests.daemon.runproc import http_get
from tests.iot.receiver import Receiver
from tests.support.ports import free_tcp_port
from tests.support.procs import ServerProcess
from tests.support.tools import require_tool
from tests.support.wait import async_wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              require_tool("prometheus", "prometheus-alertmanager", "amtool"),
              pytest.mark.xdist_group("heavy")]  # three servers at once (docs/testing.md)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "alertmanager" / "alertmanager.yml"
TOKEN = "e2e-alertmanager-token-5f1c"
ALERT = "NetguardConfigReloadFailed"
WAIT = 90.0  # generous: three processes on a loaded 2-core machine


class AnswerDropper:
    """A loopback proxy to netguard that loses the first ``drop`` answers.

    The request goes through; once netguard answers (it has committed the notification
    by then), the connection to Alertmanager is cut instead of passing the answer on.
    """

    def __init__(self, upstream_port: int, drop: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_tcp_port()
        self.drop = drop
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Every connection's ends, aborted at the latest when the proxy closes.
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> AnswerDropper:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.transport.abort()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1",
                                                                 self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.append(up_writer)
        self._spawn(self._pump(reader, up_writer))
        self._spawn(self._answers(up_reader, writer, up_writer))

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
        finally:
            dst.transport.abort()

    async def _answers(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       upstream: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    if self.dropped < self.drop:
                        self.dropped += 1
                        break  # the answer is lost
                    dst.write(data)
                    await dst.drain()
        finally:
            dst.transport.abort()
            upstream.transport.abort()


def _netguard_config(tmp_path: Path, port: int, receiver: Receiver) -> dict[str, Any]:
    return {
        # A writer waits 1 s for a lock, so that a locked database answers 503 quickly.
        "store": {"path": str(tmp_path / "netguard.db"), "statement_timeout_seconds": 1},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "logging": {"level": "INFO", "format": "json"},
        "iot": {"notifiers": [
            {"name": "netops-wecom", "type": "wecom", "url": receiver.url("/wecom")},
            {"name": "duty-ding", "type": "dingtalk", "url": receiver.url("/ding")}]},
        "notifications": {
            "routes": [{"name": "prometheus", "match": {"source": ["alertmanager"]},
                        "notifiers": ["netops-wecom", "duty-ding"]}],
            "alertmanager": {"enabled": True,
                             "token_file": str(tmp_path / "alertmanager-token")}},
    }


def _alertmanager_config(tmp_path: Path, webhook_url: str) -> Path:
    """The shipped config with the test's webhook URL, token file and short timings."""
    config = yaml.safe_load(SHIPPED.read_text())
    [hook] = config["receivers"][0]["webhook_configs"]
    hook["url"] = webhook_url
    hook["http_config"]["authorization"]["credentials_file"] = str(
        tmp_path / "alertmanager-token")
    for route in [config["route"], *config["route"]["routes"]]:
        route.update(group_wait="1s", group_interval="2s", repeat_interval="1h")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    check = subprocess.run(["amtool", "check-config", str(path)], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    return path


def _alertmanager(tmp_path: Path, config: Path) -> tuple[ServerProcess, str]:
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    return ServerProcess([
        "prometheus-alertmanager", f"--config.file={config}",
        f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=", "--log.level=warn"],
        tmp_path / "alertmanager.log", ready=lambda: http_get(f"{base}/-/ready")[0] == 200,
    ), base


def _prometheus(tmp_path: Path, metrics_port: int, am_base: str) -> tuple[ServerProcess, str]:
    port = free_tcp_port()
    conf = tmp_path / "prometheus.yml"
    conf.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in sorted(RULES_DIR.glob("*.yml"))],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [am_base.removeprefix("http://")]}]}]},
        "scrape_configs": [{"job_name": "netguard", "static_configs": [
            {"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }))
    base = f"http://127.0.0.1:{port}"
    return ServerProcess([
        "prometheus", f"--config.file={conf}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        tmp_path / "prometheus.log", ready=lambda: http_get(f"{base}/-/ready")[0] == 200,
    ), base


@contextlib.asynccontextmanager
async def _started(proc: ServerProcess) -> AsyncIterator[ServerProcess]:
    # Start (and stop) in a thread: both wait on the process, the event loop serves on.
    await asyncio.to_thread(proc.start, WAIT)
    try:
        yield proc
    finally:
        await asyncio.to_thread(proc.stop)


def _ours(receiver: Receiver, path: str) -> list[str]:
    """The texts of the messages about our alert at ``path``."""
    key = "content" if path == "/wecom" else "text"
    texts = [r.body["markdown"][key] for r in receiver.on(path)]
    return [t for t in texts if ALERT in t]


async def test_prometheus_alert_reaches_the_chat_once_through_alertmanager_retries(
        tmp_path: Path) -> None:
    (tmp_path / "alertmanager-token").write_text(TOKEN + "\n")
    metrics_port = free_tcp_port()
    receiver = Receiver()
    await receiver.start()
    config_file = tmp_path / "netguard.yaml"
    good = yaml.safe_dump(_netguard_config(tmp_path, metrics_port, receiver),
                          allow_unicode=True)
    config_file.write_text(good)
    settings = load_settings(config_file)
    await upgrade(settings.store)
    base = f"http://127.0.0.1:{metrics_port}"

    async def metric(outcome: str) -> float:
        # Read over HTTP without blocking: the daemon serves on this event loop.
        async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as resp:
            text = await resp.text()
        line = f'netguard_alertmanager_webhooks_total{{outcome="{outcome}"}} '
        return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])

    try:
        async with Daemon(settings, only=Part.INTAKE,
                          load_settings=lambda: load_settings(config_file)) as daemon, \
                AnswerDropper(metrics_port, drop=2) as proxy:
            am_proc, am_base = _alertmanager(tmp_path, _alertmanager_config(
                tmp_path, f"http://127.0.0.1:{proxy.port}/alertmanager/webhook"))
            prom_proc, _ = _prometheus(tmp_path, metrics_port, am_base)
            async with _started(am_proc), _started(prom_proc):
                # A broken edit and a reload: the shipped rule fires.
                config_file.write_text("targets: 5\n")
                assert not await daemon.reload()

                async def firing_delivered() -> bool:
                    return bool(_ours(receiver, "/wecom") and _ours(receiver, "/ding"))

                await async_wait_until(firing_delivered, timeout=WAIT, interval=0.2,
                                       what="the firing alert at both robots")

                # Alertmanager lost two answers and retried; the retries were duplicates.
                async def retried() -> bool:
                    return await metric("duplicate") >= 2

                await async_wait_until(retried, timeout=WAIT, what="Alertmanager's retries")
                assert proxy.dropped == 2
                assert await metric("accepted") == 1
                [wecom] = _ours(receiver, "/wecom")
                assert wecom.startswith(f"### 【警告】{ALERT}\n"), wecom
                assert f"netguard on 127.0.0.1:{metrics_port} rejected a configuration " \
                       "reload" in wecom  # the rule's summary, then its description
                assert f"\uff08127.0.0.1:{metrics_port}\uff09" in wecom  # the instance
                assert "（北京时间）" in wecom  # noqa: RUF001 - the zh-CN time zone words

                # The file fixed and reloaded: the alert resolves. Meanwhile another writer
                # holds the database's lock: netguard answers 503 (nothing recorded) and
                # Alertmanager retries until the lock is gone.
                locker = sqlite3.connect(tmp_path / "netguard.db", isolation_level=None,
                                         check_same_thread=False)
                try:
                    await asyncio.to_thread(locker.execute, "BEGIN IMMEDIATE")
                    config_file.write_text(good)
                    assert await daemon.reload()

                    async def refused() -> bool:
                        return await metric("unavailable") >= 1

                    await async_wait_until(refused, timeout=WAIT, what="a 503 answer")
                    await asyncio.to_thread(locker.execute, "ROLLBACK")
                finally:
                    await asyncio.to_thread(locker.close)

                async def resolved_delivered() -> bool:
                    return len(_ours(receiver, "/wecom")) >= 2 \
                        and len(_ours(receiver, "/ding")) >= 2

                await async_wait_until(resolved_delivered, timeout=WAIT, interval=0.2,
                                       what="the resolution at both robots")
                wecom_texts = _ours(receiver, "/wecom")
                assert wecom_texts[1].startswith(f"### 【已恢复】{ALERT}\n")
                # Exactly one message per robot for each of firing and resolved.
                assert len(wecom_texts) == 2
                assert len(_ours(receiver, "/ding")) == 2
                for refused in ("invalid", "unauthorized", "too_large", "error"):
                    assert await metric(refused) == 0, refused
    finally:
        await receiver.stop()
