"""Acceptance 2: two processes x 50 concurrent tasks report one fault -> one ticket."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import TicketFilter, TicketState
from netguard.tickets.service import TicketService

REPO = Path(__file__).resolve().parents[2]
PROCESSES = 2
TASKS = 50


def test_concurrent_reports_open_exactly_one_ticket(store_config: StoreConfig,
                                                    tmp_path: Path) -> None:
    asyncio.run(upgrade(store_config))
    if store_config.url is not None:
        target = store_config.url.get_secret_value()
    else:
        target = str(store_config.path)
    workers = [subprocess.Popen(
        [sys.executable, "-m", "tests.tickets.report_worker", target, str(TASKS)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for _ in range(PROCESSES)]
    try:
        for proc in workers:  # blocks until the worker has opened the store
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr
        for proc in workers:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=120) for proc in workers]
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (out, err) in zip(workers, outputs, strict=True):
        assert proc.returncode == 0, err
        # Every one of the reports landed on the same ticket.
        assert json.loads(out) == ["NG-000001"], err

    async def check() -> None:
        async with Store(store_config) as store:
            service = TicketService(store, TicketsConfig())
            tickets = await service.list(TicketFilter(states=tuple(TicketState), limit=None))
            assert len(tickets) == 1
            (ticket,) = tickets
            assert ticket.state is TicketState.OPEN
            assert ticket.occurrences == PROCESSES * TASKS
            actions = [e.action for e in (await service.detail(ticket.ref)).events]
            assert actions.count("opened") == 1
            assert actions.count("repeat") == PROCESSES * TASKS - 1

    asyncio.run(check())
