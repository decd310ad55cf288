"""``netguard cluster status`` against a real PostgreSQL with registered members."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from netguard.cluster.leader import LeaderLock, leader_engine
from netguard.cluster.members import MemberTable
from netguard.cluster.rendezvous import assign
from netguard.cluster.status import cluster_status
from netguard.store import Store
from netguard.store.config import StoreConfig
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

NETGUARD = Path(sys.executable).parent / "netguard"
REPO = Path(__file__).resolve().parents[2]
TARGETS = [f"t{i}" for i in range(30)]


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NETGUARD), "cluster", "status", "--config", str(config),
                           *args], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


async def _live(store: Store, count: int) -> bool:
    return (await cluster_status(store.engine, TARGETS)).live == count


def _config(tmp_path: Path, pg_url: str) -> Path:
    data: dict[str, Any] = {
        "store": {"url": pg_url},
        "targets": [{"id": t, "kind": "private_line", "address": "192.0.2.1",
                     "snmp": {"version": "2c", "community": "public"}} for t in TARGETS],
        "display": {"timezone": "Asia/Shanghai"},
    }
    path = tmp_path / "netguard.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def test_status_lists_members_owned_counts_and_the_leader(
        tmp_path: Path, pg_url: str, pg_store: Store, pg_config: StoreConfig) -> None:
    table = MemberTable(pg_store.engine)
    await table.join("ng-a", 60.0, host="host-a", pid=101)
    await table.join("ng-b", 60.0, host="host-b", pid=102)
    await table.join("ng-gone", 0.5, host="host-c", pid=103)
    lock = LeaderLock(leader_engine(pg_config, "ng-b", 60.0))
    assert await lock.try_acquire()
    try:
        config = _config(tmp_path, pg_url)
        # The short lease runs out while the CLI starts; wait for it in the library first.
        await async_wait_until(lambda: _live(pg_store, 2), timeout=15,
                               what="the short lease to run out")
        expected = assign(TARGETS, ["ng-a", "ng-b"])
        result = _cli(config, "--json")
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        assert shown["leader"] == "ng-b"
        assert shown["live_members"] == 2
        rows = {m["instance_id"]: m for m in shown["members"]}
        assert set(rows) == {"ng-a", "ng-b", "ng-gone"}
        assert rows["ng-a"]["owned_targets"] == len(expected["ng-a"])
        assert rows["ng-b"]["owned_targets"] == len(expected["ng-b"])
        assert (rows["ng-gone"]["live"], rows["ng-gone"]["owned_targets"]) == (False, 0)
        assert rows["ng-b"]["leader"]
        assert rows["ng-a"]["host"] == "host-a"
        assert rows["ng-a"]["last_heartbeat"].endswith("+00:00")

        text = _cli(config)
        assert text.returncode == 0, text.stderr
        assert text.stdout.startswith("leader: ng-b    live members: 2    targets: 30")
        lines = {line.split()[0]: line for line in text.stdout.splitlines()[2:]}
        assert lines["ng-gone"].split()[1] == "gone"
        assert lines["ng-b"].split()[1:3] == ["live", "yes"]
    finally:
        await lock.close()
    result = _cli(_config(tmp_path, pg_url), "--json")
    assert json.loads(result.stdout)["leader"] is None
