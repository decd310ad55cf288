"""The shipped Mosquitto ACL (config/mosquitto.acl) with a real Mosquitto: each device,
bridge and netguard may publish only its own topics, so one Shelly, sensor or bridge
login cannot spoof another household's door (issue 14, item 4)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import REPO
from tests.support.servers import mosquitto
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

SHIPPED_ACL = REPO / "config" / "mosquitto.acl"
USERS = ("netguard", "n1", "n2", "shellydw2-ABC", "shellydw2-XYZ", "zigbee2mqtt")

# (login, topic, allowed)
CASES = [
    ("n1", "netguard/sensors/n2/event", False),       # another sensor's topic
    ("n1", "shellies/shellydw2-ABC/sensor/state", False),
    ("n1", "zigbee2mqtt/door_z1", False),
    ("n1", "netguard/sensors/n1/event", True),
    ("shellydw2-ABC", "shellies/shellydw2-XYZ/sensor/state", False),
    ("shellydw2-ABC", "netguard/sensors/n1/event", False),
    ("shellydw2-ABC", "zigbee2mqtt/door_z1", False),
    ("shellydw2-ABC", "shellies/shellydw2-ABC/sensor/state", True),
    ("zigbee2mqtt", "netguard/sensors/n1/event", False),
    ("zigbee2mqtt", "shellies/shellydw2-ABC/sensor/state", False),
    ("zigbee2mqtt", "netguard/alerts/c1", False),
    ("zigbee2mqtt", "zigbee2mqtt/door_z1", True),
    ("netguard", "netguard/sensors/n1/event", False),  # netguard only writes alerts
    ("netguard", "netguard/alerts/c1", True),
]


@pytest.fixture
def passwd(tmp_path: Path) -> Path:
    """A Mosquitto password file with one login per user (password ``pw-<user>``)."""
    path = tmp_path / "passwd"
    for i, user in enumerate(USERS):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(path),
                        user, f"pw-{user}"], check=True, capture_output=True)
    path.chmod(0o644)  # root-started mosquitto drops to the mosquitto user
    return path


async def test_shipped_acl_confines_each_login_to_its_own_topics(tmp_path: Path,
                                                                 passwd: Path) -> None:
    extra = (f"allow_anonymous false\npassword_file {passwd}\nacl_file {SHIPPED_ACL}\n")
    with mosquitto(tmp_path / "broker", extra=extra) as broker:
        received: list[str] = []
        # The watcher is netguard's own login: it reads every sensor topic.
        async with aiomqtt.Client(broker.host, broker.port, identifier="acl-watch",
                                  username="netguard", password="pw-netguard") as watch:
            for topic in ("netguard/sensors/+/event", "zigbee2mqtt/#", "shellies/#"):
                await watch.subscribe(topic, qos=1)

            async def collect() -> None:
                async for message in watch.messages:
                    received.append(bytes(message.payload).decode())

            task = asyncio.create_task(collect())
            try:
                # netguard first: Mosquitto routes a publish before it acknowledges it, so
                # a denied publish that got through would arrive before any later one.
                for login in ("netguard", "n1", "shellydw2-ABC", "zigbee2mqtt"):
                    mine = [c for c in CASES if c[0] == login]
                    async with aiomqtt.Client(broker.host, broker.port,
                                              identifier=f"acl-{login}", username=login,
                                              password=f"pw-{login}") as pub:
                        # The allowed publishes last, on the same connection.
                        for _who, topic, _ok in sorted(mine, key=lambda c: c[2]):
                            await pub.publish(topic, f"{login}->{topic}".encode(), qos=1)
                    readable = [f"{w}->{t}" for w, t, ok in mine
                                if ok and not t.startswith("netguard/alerts/")]
                    for payload in readable:
                        async def arrived(payload: str = payload) -> bool:
                            return payload in received

                        await async_wait_until(arrived, what=f"{payload} to arrive")
            finally:
                task.cancel()
        # Exactly the allowed publishes arrived: nothing denied got through.
        assert sorted(received) == sorted(
            f"{w}->{t}" for w, t, ok in CASES if ok and not t.startswith("netguard/alerts/"))
