"""/metrics keeps its renderer's cache warm between scrapes (issue 10, section 7)."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest

import netguard.daemon.http as http_module
from netguard.daemon.config import MetricsConfig
from netguard.daemon.http import MetricsServer
from netguard.metrics import MetricsSnapshot, render
from tests.daemon.fakes import estate
from tests.daemon.test_http import Ready
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration


def _repolled(snap: MetricsSnapshot, every: int) -> MetricsSnapshot:
    targets = dict(snap.targets)
    for tid in list(targets)[::every]:
        targets[tid] = dataclasses.replace(targets[tid])
    return dataclasses.replace(snap, targets=targets)


async def test_targets_polled_between_scrapes_are_rendered_before_the_next(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_module, "PRERENDER_SECONDS", 0.02)
    current = [estate(200)]
    async with MetricsServer(MetricsConfig(listen="127.0.0.1:0"), lambda: current[0],
                             Ready()) as server, aiohttp.ClientSession() as http:
        renderer = server._renderer  # its render count is what this checks
        url = f"{server.url}/metrics"
        async with http.get(url, headers={"Accept-Encoding": "gzip"}) as resp:
            await resp.read()
        assert renderer.targets_rendered == 200
        current[0] = _repolled(current[0], 4)

        async def refreshed() -> bool:
            return renderer.targets_rendered == 250
        await async_wait_until(refreshed, what="the 50 re-polled targets rendered")
        async with http.get(url, headers={"Accept-Encoding": "gzip"}) as resp:
            body = await resp.read()
        # The scrape streamed the cache: nothing left to render, the same exposition.
        assert renderer.targets_rendered == 250
        own = body.index(b"# HELP process_")
        assert body[:own] == render(current[0])[:own]
