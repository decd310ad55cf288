"""Repeat openings in the household's record: the alert's history in `alerts show` and
`audit export`, the openings in the hash-chained event log, and acknowledgement covering
the openings up to it (issue 13, item 1)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from netguard.config import load_settings
from netguard.iot.service import IotService
from netguard.store import Store
from tests.iot.conftest import ng


def _door(config: Path, *events: tuple[int, str]) -> None:
    settings = load_settings(config)

    async def run() -> None:
        async with Store(settings.store) as store, IotService(settings.iot, store) as svc:
            for seq, event in events:
                body = {"sensor": "d1", "seq": seq, "event": event}
                result = await svc.ingest("netguard/sensors/d1/event", json.dumps(body).encode())
                assert result.status == "stored", result

    asyncio.run(run())


def test_the_alert_history_and_the_export_record_every_opening(config: Path) -> None:
    start = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert ng(config, "households", "add", "A1", "--community", "c1", "--from", start)[0] == 0
    assert ng(config, "sensors", "add", "d1", "--household", "A1", "--format", "native")[0] == 0
    _door(config, (1, "open"), (2, "close"), (3, "open"), (4, "close"), (5, "open"))

    code, out = ng(config, "alerts", "list", "--json")
    assert code == 0, out
    [door] = json.loads(out)
    assert door["count"] == 3
    code, out = ng(config, "alerts", "ack", str(door["id"]), "--by", "warden")
    assert code == 0, out
    _door(config, (6, "close"), (7, "open"))

    code, out = ng(config, "audit", "export", "--household", "A1", "--format", "json")
    assert code == 0, out
    exported = json.loads(out)
    first, second = exported["alerts"]
    assert (first["count"], first["state"], first["acked_by"]) == (3, "closed", "warden")
    assert len(first["reasons"]) == 3
    assert first["reasons"][0].startswith("door opened at ")
    assert first["reasons"][1].startswith("door opened again at ")
    assert first["reasons"][1].endswith("(2nd opening)")
    assert first["reasons"][2].endswith("(3rd opening)")
    # The acknowledgement covered the first three openings; the fourth is a new alert.
    assert (second["count"], second["state"], second["acked_by"]) == (1, "active", None)
    assert [e["kind"] for e in exported["events"]] == [
        "open", "close", "open", "close", "open", "close", "open"]
    code, out = ng(config, "audit", "verify")
    assert code == 0, out
