"""What the shipped Mosquitto does with QoS 1 messages of a shared subscriber that leaves.

Measured with plain paho clients (no netguard code) against the Mosquitto on PATH
(2.0.11 when this was written), run with the "delivery guarantees" section of
config/mosquitto.conf. docs/scale-out.md ("What the broker does for the intake") states
these results; if a broker upgrade changes them, these tests fail and the page must
change with them:

- a member whose connection drops keeps its persistent session **and its place in the
  group**: messages it had not acknowledged stay in its session (they are not given to
  the others), and the broker goes on assigning it its round-robin share of new
  messages, which wait in its session;
- when it returns before its session expires, it gets all of them (the unacknowledged
  ones flagged DUP);
- when its session expires instead, those messages are **dropped**: no other member of
  the group ever receives them, and the group goes on without it.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.iot.support import shipped_broker_section
from tests.support.servers import MOSQUITTO, Broker, mosquitto
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration]

TOPIC = "netguard/sensors/s1/event"
SHARED = f"$share/netguard/{TOPIC}"


@dataclass
class Member:
    """One subscriber of the shared group: a paho client with its own persistent session."""

    client_id: str
    port: int
    expiry: int
    ack: bool = True
    got: list[str] = field(default_factory=list)
    dups: list[str] = field(default_factory=list)
    session_present: bool | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: mqtt.Client | None = None

    def connect(self) -> Member:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5)
        client.manual_ack_set(not self.ack)  # never acknowledging = a crash mid-batch
        subscribed = threading.Event()

        def on_connect(_c: mqtt.Client, _u: object, flags: mqtt.ConnectFlags,
                       _rc: object, _p: object) -> None:
            self.session_present = bool(flags.session_present)

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            with self._lock:
                self.got.append(msg.payload.decode())
                if msg.dup:
                    self.dups.append(msg.payload.decode())

        client.on_connect = on_connect
        client.on_message = on_message
        client.on_subscribe = lambda *_a: subscribed.set()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.expiry
        client.connect("127.0.0.1", self.port, clean_start=False, properties=props)
        client.loop_start()
        client.subscribe(SHARED, qos=1)
        assert subscribed.wait(10), f"{self.client_id} did not get its SUBACK"
        self._client = client
        return self

    def received(self) -> list[str]:
        with self._lock:
            return list(self.got)

    def drop(self) -> None:
        """Lose the connection without DISCONNECT, as a SIGKILLed process does."""
        client, self._client = self._client, None
        assert client is not None
        client.loop_stop()
        sock = client.socket()
        assert sock is not None
        sock.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


def publish(port: int, payloads: list[str]) -> None:
    """Publish with QoS 1 and wait for every PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="shared-test-pub",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for info in [client.publish(TOPIC, p, qos=1) for p in payloads]:
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def batch(name: str, n: int) -> list[str]:
    return [f"{name}-{i}" for i in range(n)]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with mosquitto(tmp_path / "broker", base=shipped_broker_section(tmp_path)) as b:
        yield b


def test_the_mosquitto_shipped_here_is_2x() -> None:
    # The results below were measured on Mosquitto 2.0.11; a 1.x broker has no MQTT 5
    # session expiry and no shared subscriptions to speak of.
    out = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True, check=False)
    found = re.search(r"mosquitto version (\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    assert found is not None, out.stdout + out.stderr
    assert int(found.group(1)) == 2


def _expired(log: Path, client_id: str) -> bool:
    # Mosquitto logs (at notice level) when it removes a session whose expiry ran out.
    try:
        return f"Expiring client {client_id} due to timeout" in log.read_text(errors="replace")
    except FileNotFoundError:
        return False


def _offline_share(broker: Broker, *, expiry: int) -> tuple[Member, list[str], list[str]]:
    """A and B share the group; A takes messages but never acknowledges them, then drops
    its connection; more messages are published while it is away.

    Returns B, what A held unacknowledged when it dropped, and the messages published
    while it was away.
    """
    a = Member("ng-a", broker.port, expiry, ack=False).connect()
    b = Member("ng-b", broker.port, 3600).connect()
    first = batch("online", 20)
    publish(broker.port, first)
    wait_until(lambda: len(a.received()) + len(b.received()) == len(first), timeout=30,
               what="the first batch to be delivered")
    held = a.received()
    # Round-robin over the two members: each gets half (the group is really shared).
    assert sorted(held + b.received()) == sorted(first)
    assert len(held) == len(first) // 2
    a.drop()
    away = batch("away", 40)
    publish(broker.port, away)
    return b, held, away


def test_a_member_that_returns_gets_its_share_back(broker: Broker) -> None:
    b, held, away = _offline_share(broker, expiry=3600)
    try:
        # B gets only its own round-robin share of what was published meanwhile; the
        # rest waits in A's session.
        wait_until(lambda: len([m for m in b.received() if m.startswith("away")])
                   >= len(away) // 2, timeout=30, what="B's share of the messages")
        back = Member("ng-a", broker.port, 3600).connect()  # same id: same session
        try:
            assert back.session_present is True
            expected_for_a = len(held) + len(away) - len(
                [m for m in b.received() if m.startswith("away")])
            wait_until(lambda: len(back.received()) >= expected_for_a, timeout=30,
                       what="A's held and queued messages after it returned")
            b_away = [m for m in b.received() if m.startswith("away")]
            a_away = [m for m in back.received() if m.startswith("away")]
            # Nothing was given to B instead of A: A's unacknowledged messages come back
            # to A (flagged DUP), and A's share of the new ones waited for it.
            assert sorted(held) == sorted(back.dups)
            assert not set(held) & set(b.received())
            assert sorted(b_away + a_away) == sorted(away)
            assert len(b_away) == len(away) // 2
            assert len(back.received()) == len(held) + len(a_away)  # each once
        finally:
            back.close()
    finally:
        b.close()


def test_a_member_that_never_returns_loses_its_share_at_session_expiry(
        tmp_path: Path) -> None:
    # Notice-level logs name expired sessions; a log file (stdout is block-buffered).
    log = tmp_path / "notices.log"
    with mosquitto(tmp_path / "broker", base=shipped_broker_section(tmp_path),
                   extra=f"log_type notice\nlog_dest file {log}") as broker:
        _never_returns(broker, log)


def _never_returns(broker: Broker, log: Path) -> None:
    b, held, away = _offline_share(broker, expiry=2)
    try:
        wait_until(lambda: _expired(log, "ng-a"), timeout=60,
                   what="Mosquitto to expire A's session")
        # The group goes on with B alone: it gets every message published after that ...
        after = batch("after", 10)
        publish(broker.port, after)
        wait_until(lambda: set(after) <= set(b.received()), timeout=30,
                   what="B to get every message once A's session expired")
        # ... and nothing that was A's: not its unacknowledged messages, not its share
        # of those published while it was away. The broker is single-threaded and B's
        # queue is in order, so anything re-dispatched at expiry would have come first.
        b_got = set(b.received())
        lost = (set(held) | set(away)) - b_got
        assert set(held) <= lost
        assert len(lost) == len(held) + len(away) // 2
        # A coming back under its id finds no session and gets none of them.
        back = Member("ng-a", broker.port, 3600).connect()
        try:
            assert back.session_present is False
            publish(broker.port, ["probe"])
            wait_until(lambda: "probe" in back.received() + b.received(), timeout=30,
                       what="the probe to be delivered")
            assert not lost & set(back.received())
        finally:
            back.close()
    finally:
        b.close()
