"""A reload changes the daemon's targets in place (real services, snmpsim agents).

The kept target's counters survive the reload: its first poll afterwards already has
rates, so ``/metrics`` exports its utilisation at once. The removed target's series leave
the exposition with the reload; the added target's appear once it is polled.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from netguard.config import Settings, settings_from_data
from netguard.daemon.app import Daemon
from netguard.daemon.ports import PollOutcomeView
from netguard.metrics import render
from netguard.probes.state import PollOutcome
from netguard.sim import SnmpSim, build_agent
from netguard.store import upgrade
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

KEEP, DROP, ADD = "fib-keep", "fib-drop", "fib-add"


def _settings(tmp_path: Path, sim: SnmpSim, *names: str) -> Settings:
    data: dict[str, Any] = {
        # An hour between polls: after the first, only poll_now polls a target.
        "targets": [sim.target(name, interval_seconds=3600) for name in names],
        "store": {"path": str(tmp_path / "netguard.db")},
        "metrics": {"enabled": False},
        "daemon": {"poll_jitter_seconds": 0, "shutdown_timeout_seconds": 5},
    }
    return settings_from_data(data)


async def test_reload_keeps_counters_drops_and_adds_series(tmp_path: Path) -> None:
    agents = [build_agent(name, "fiber") for name in (KEEP, DROP, ADD)]
    with SnmpSim(agents, tmp_path / "sim") as sim:
        settings = _settings(tmp_path, sim, KEEP, DROP)
        await upgrade(settings.store)
        reloaded = _settings(tmp_path, sim, KEEP, ADD)
        outcomes: list[PollOutcome] = []
        stop = asyncio.Event()
        async with Daemon(settings, load_settings=lambda: reloaded) as daemon, \
                asyncio.TaskGroup() as tg:
            daemon.on_poll.append(lambda outcome: _record(outcomes, outcome))
            tg.create_task(daemon.serve(stop))
            await async_wait_until(lambda: _polled(outcomes, KEEP, DROP), timeout=30,
                                   what="first polls")
            first = next(o for o in outcomes if o.status.target == KEEP)
            assert first.status.interfaces[0].utilisation is None  # one sample: no rate

            assert await daemon.reload()
            text = render(daemon.metrics_snapshot()).decode()
            assert f'target="{DROP}"' not in text
            assert f'target="{KEEP}"' in text  # its last status, until polled again

            before = len(outcomes)
            assert daemon.scheduler.poll_now(KEEP)
            await async_wait_until(lambda: _polled(outcomes[before:], KEEP, ADD), timeout=30,
                                   what="the kept and the added target polled")
            after = next(o for o in outcomes[before:] if o.status.target == KEEP)
            assert after.status.interfaces[0].utilisation is not None
            assert after.status.polls == 2
            text = render(daemon.metrics_snapshot()).decode()
            assert f'netguard_interface_utilisation_ratio{{target="{KEEP}"' in text
            assert f'target="{ADD}"' in text
            assert f'target="{DROP}"' not in text
            stop.set()


def _record(outcomes: list[PollOutcome], outcome: PollOutcomeView) -> None:
    assert isinstance(outcome, PollOutcome)  # the real probe service's
    outcomes.append(outcome)


async def _polled(outcomes: list[PollOutcome], *targets: str) -> bool:
    return set(targets) <= {o.status.target for o in outcomes}
