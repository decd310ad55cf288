"""The aiomqtt internals behind the intake's manual PUBACK (see docs/decisions.md).

aiomqtt has no manual-acknowledgement API, so :mod:`netguard.iot.intake` reaches into the
client: ``Client._client`` (the paho client, whose ``manual_ack_set``/``ack`` are public
paho API, and whose ``on_message``/``on_disconnect`` it replaces, chaining aiomqtt's own
disconnect handler) and ``Client._disconnected`` (the future aiomqtt resolves on a
disconnect). These tests fail at once, without a broker, when an aiomqtt release moves any
of them; the durability tests would only fail slowly, or not at all if acknowledgements
silently went back to automatic.
"""

from __future__ import annotations

import asyncio
import inspect
import tomllib
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent.parent


async def test_the_client_still_exposes_what_the_intake_uses() -> None:
    client = aiomqtt.Client("127.0.0.1", 1883, identifier="netguard-internals")
    inner = client._client
    assert isinstance(inner, paho.Client)
    assert isinstance(client._disconnected, asyncio.Future)
    # The intake wraps aiomqtt's handler, which must exist before connecting.
    assert inner.on_disconnect is not None
    assert inner.on_message is not None
    inner.manual_ack_set(True)
    assert list(inspect.signature(inner.ack).parameters) == ["mid", "qos"]


def test_aiomqtt_is_bounded_below_the_next_minor_of_the_tested_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (req,) = [Requirement(r) for r in project["dependencies"] if r.startswith("aiomqtt")]
    (pin,) = [line.split("==", 1)[1].strip()
              for line in (REPO / "constraints.txt").read_text().splitlines()
              if line.startswith("aiomqtt==")]
    tested = Version(pin)
    assert req.specifier.contains(tested)
    next_minor = Version(f"{tested.major}.{tested.minor + 1}.0")
    assert not req.specifier.contains(next_minor), (
        f"pyproject allows aiomqtt {next_minor}; the intake uses its internals, so raise the "
        "bound only after running tests/iot against the new minor")
