"""A separate OS process that reports the same fault from many concurrent tasks.

Run by ``test_concurrency.py``: ``python -m tests.tickets.report_worker STORE N`` where
STORE is a SQLite path or a PostgreSQL URL. It opens the store, prints ``ready``, waits
for a line on stdin (so that both processes start together), fires N concurrent
``FaultOpened`` reports and prints the ticket ids it got back as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from netguard.faults import FaultKey, FaultOpened
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.tickets.config import TicketsConfig
from netguard.tickets.service import TicketService

KEY = FaultKey("olt-1", "if:1", "oper_down")


async def main(store: str, n: int) -> None:
    # N tasks queue on one row lock (PostgreSQL) or the write lock (SQLite): on a loaded
    # machine the last waits longer than the production timeouts (5 s for a pooled
    # connection, 10 s per statement), which this test does not measure. Generous bounds
    # keep it about counts, not speed.
    limits = {"connect_timeout_seconds": 120.0, "statement_timeout_seconds": 120.0}
    config = (StoreConfig(url=SecretStr(store), **limits) if "://" in store
              else StoreConfig(path=Path(store), **limits))
    async with Store(config) as db:
        service = TicketService(db, TicketsConfig())
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        event = FaultOpened(key=KEY, category="fiber", site=None, severity="major",
                            summary="olt-1: if:1 down", reasons=("oper down",),
                            at=datetime.now(UTC))
        tickets = await asyncio.gather(*(service.handle(event) for _ in range(n)))
    print(json.dumps(sorted({t.ref for t in tickets if t is not None})))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
