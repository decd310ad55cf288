"""A target whose host name does not resolve is unreachable, with a reason, not a crash."""

from __future__ import annotations

import logging

import pytest

from netguard.probes.service import ProbeService
from tests.probes.conftest import targets


async def test_unresolvable_host_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    # .invalid never resolves (RFC 6761), so this fails in getaddrinfo without a network.
    config = {"id": "typo", "kind": "fiber", "address": "no-such-host.invalid:161",
              "timeout_seconds": 0.2, "retries": 0}
    with caplog.at_level(logging.INFO):
        async with ProbeService(targets(config)) as probes:
            for _ in range(2):  # the second poll resolves again: nothing bad is cached
                status = (await probes.poll("typo")).status
                assert not status.reachable
                assert status.state == "unreachable"
                assert any(r.startswith("cannot resolve no-such-host.invalid")
                           for r in status.reasons), status.reasons
    assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records]
