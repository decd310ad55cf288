"""The MQTT intake: a persistent session whose messages are acknowledged only when stored.

aiomqtt (through paho) normally sends PUBACK before our code sees a message, so a crash
would lose acknowledged messages. The intake therefore turns on paho's manual
acknowledgement, hands each batch to a handler that commits it, and only then sends the
PUBACKs, in order. Unacknowledged messages stay in the broker's session (fixed client id,
MQTT 5 ``clean_start=False`` plus SessionExpiryInterval, or 3.1.1 ``clean_session=False``)
and come back, flagged DUP, after a reconnect. MQTT 5 Receive Maximum bounds how many
unacknowledged messages the broker sends us at once, which also bounds our memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from netguard.clock import Clock, SystemClock
from netguard.errors import ConfigError, NetguardError
from netguard.iot.config import MqttConfig
from netguard.iot.events import RawMessage
from netguard.iot.mqtt import client_kwargs
from netguard.iot.outbox import backoff_seconds
from netguard.store.health import describe_error, store_wide_reason

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[RawMessage]], Awaitable[object]]


class IntakeDisconnectedError(NetguardError):
    """The broker connection dropped while consuming."""


class MqttIntake:
    """Consumes the configured subscriptions and feeds batches to ``handler``.

    Args:
        config: Broker, credentials, TLS, subscriptions.
        handler: Stores a batch durably; it must raise if it did not.
        batch_max: Most messages committed (and acknowledged) together.
        clock: Receive timestamps.
        tls: The SSL context, built once at start (see :func:`netguard.iot.mqtt.tls_context`).
    """

    def __init__(self, config: MqttConfig, handler: BatchHandler, *, batch_max: int = 500,
                 clock: Clock | None = None, rng: random.Random | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self._config = config
        self._tls = tls
        self._handler = handler
        self._batch_max = batch_max
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311  (jitter, not cryptography)
        # First receipt time of each unacknowledged message, by (packet id, topic, payload
        # hash): a redelivery after a failed commit or a reconnect keeps the time the
        # message first arrived, so the rules judge a door opening when it happened, not
        # when the store came back. Bounded: only unacknowledged messages are kept, at most
        # two Receive Maximum windows (older entries belong to dropped sessions).
        self._first_seen: OrderedDict[tuple[int, str, str], datetime] = OrderedDict()
        self._first_seen_max = 2 * config.receive_maximum + batch_max
        self.connected = False
        self.connects = 0
        self.connect_failures = 0
        self.received = 0
        self.acked = 0

    def topic_filters(self) -> list[tuple[str, int]]:
        """The filters to subscribe to (with the shared-subscription prefix if any)."""
        group = self._config.shared_group
        return [(f"$share/{group}/{s.topic}" if group else s.topic, s.qos)
                for s in self._config.subscriptions]

    async def run(self) -> None:
        """Connect, consume, and reconnect with exponential backoff and jitter, forever."""
        failures = 0
        while True:
            try:
                await self._session()
            except ConfigError as exc:
                # E.g. a TLS file removed since start: one line per attempt, no traceback.
                self.connect_failures += 1
                log.warning("MQTT connect failed: %s", exc)
            except (aiomqtt.MqttError, IntakeDisconnectedError) as exc:
                broker = {"broker": f"{self._config.host}:{self._config.port}"}
                if self._was_up:
                    log.warning("MQTT connection lost: %s", exc, extra=broker)
                else:
                    self.connect_failures += 1
                    log.warning("MQTT connect failed: %s", exc, extra=broker)
            except NetguardError as exc:
                # The store refused the batch: drop the connection so that the broker
                # redelivers everything unacknowledged once we are back.
                self._store_refused(exc)
            except Exception as exc:
                if store_wide_reason(exc) is not None:
                    self._store_refused(exc)
                else:
                    # A bug must not stop the intake for good; unacknowledged messages
                    # come back after the reconnect.
                    log.exception("MQTT intake failed unexpectedly, reconnecting")
            finally:
                self.connected = False
            # While the store refuses batches, the pause grows like a failed connect's
            # (with jitter), instead of reconnecting at the minimum delay each time.
            failures = (self.store_failures or 1) if self._was_up else failures + 1
            await asyncio.sleep(backoff_seconds(failures, self._config.reconnect_min_seconds,
                                                self._config.reconnect_max_seconds, self._rng))

    _was_up = False
    store_failures = 0
    """Batches refused by the store in a row (the intake pauses and reconnects)."""
    _store_logged = 0.0

    def _store_refused(self, exc: Exception) -> None:
        # One line when it starts and one a minute while it lasts, with the count: a
        # database outage must not write a traceback per reconnect.
        self.store_failures += 1
        now = time.monotonic()
        if self.store_failures == 1 or now - self._store_logged >= 60.0:
            self._store_logged = now
            log.warning("storing MQTT batches fails; the intake pauses and retries "
                        "(messages stay unacknowledged at the broker): %s",
                        describe_error(exc), extra={"failures": self.store_failures})

    async def _session(self) -> None:
        self._was_up = False
        kwargs = client_kwargs(self._config, self._config.client_id, persistent=True,
                               receive_maximum=self._config.receive_maximum, tls=self._tls)
        client = aiomqtt.Client(**kwargs)
        paho = client._client
        paho.manual_ack_set(True)
        queue: asyncio.Queue[RawMessage | None] = asyncio.Queue()
        clock = self._clock

        def on_message(_client: Any, _userdata: Any, msg: Any) -> None:
            payload = bytes(msg.payload)
            qos, mid = int(msg.qos), int(msg.mid)
            received_at = clock.now()
            if qos > 0:
                received_at = self._first_receipt((mid, msg.topic, payload), received_at,
                                                  redelivery=bool(msg.dup))
            queue.put_nowait(RawMessage(topic=msg.topic, payload=payload,
                                        received_at=received_at, qos=qos, mid=mid,
                                        dup=bool(msg.dup), retain=bool(msg.retain)))

        aiomqtt_on_disconnect = paho.on_disconnect
        assert aiomqtt_on_disconnect is not None

        def on_disconnect(*args: Any) -> None:
            aiomqtt_on_disconnect(*args)
            # We learn of the disconnect through the queue; mark aiomqtt's future as
            # seen so that asyncio does not report its exception as never retrieved.
            done = client._disconnected
            if done.done() and not done.cancelled():
                done.exception()
            queue.put_nowait(None)

        paho.on_message = on_message
        paho.on_disconnect = on_disconnect
        async with client:
            self._was_up = True
            self.connects += 1
            v5 = self._config.protocol == "5"
            for topic, qos in self.topic_filters():
                # Retain handling 1: retained messages only for a new subscription, so a
                # reconnect to our persistent session does not replay them.
                if v5:
                    await client.subscribe(topic, options=SubscribeOptions(
                        qos=qos, retainHandling=1))
                else:
                    await client.subscribe(topic, qos=qos)
            self.connected = True
            # Reconnects during a store outage are the pause, not news (it was logged).
            log.log(logging.DEBUG if self.store_failures else logging.INFO,
                    "MQTT connected", extra={"broker": f"{self._config.host}:"
                                                        f"{self._config.port}",
                                              "client_id": self._config.client_id})
            await self._consume(queue, paho)

    def _first_receipt(self, message: tuple[int, str, bytes], now: datetime, *,
                       redelivery: bool) -> datetime:
        mid, topic, payload = message
        key = (mid, topic, hashlib.sha256(payload).hexdigest())
        if not redelivery:
            # Without DUP it is a new message (that may reuse a packet id): its own time.
            self._first_seen.pop(key, None)
        first = self._first_seen.setdefault(key, now)
        while len(self._first_seen) > self._first_seen_max:
            self._first_seen.popitem(last=False)
        return first

    def _forget(self, message: RawMessage) -> None:
        if message.mid is not None:
            self._first_seen.pop((message.mid, message.topic,
                                  hashlib.sha256(message.payload).hexdigest()), None)

    async def _consume(self, queue: asyncio.Queue[RawMessage | None], paho: Any) -> None:
        while True:
            first = await queue.get()
            if first is None:
                raise IntakeDisconnectedError("broker connection closed")
            batch = [first]
            closed = False
            while len(batch) < self._batch_max and not queue.empty():
                item = queue.get_nowait()
                if item is None:
                    closed = True
                    break
                batch.append(item)
            self.received += len(batch)
            await self._handler(batch)
            if self.store_failures:
                log.warning("storing MQTT batches works again",
                            extra={"after_failures": self.store_failures})
                self.store_failures = 0
            if closed:
                # The PUBACKs would go nowhere; the broker redelivers these (DUP set).
                raise IntakeDisconnectedError("broker connection closed")
            for message in batch:
                if message.qos > 0 and message.mid is not None:
                    paho.ack(message.mid, message.qos)
                    self._forget(message)
            self.acked += len(batch)
