"""Telling a redelivered door-sensor message from a new one, in memory (no I/O).

Two identities, one per kind of payload:

* native payloads: ``n:<len>:<sensor>:<len>:<boot>:<seq>`` (length-prefixed, so no
  sensor id or boot id can make two events share it), a database unique key. The last
  100,000 are also kept here, so the common path needs no lookup; an older one makes the
  insert fail, and the service retries the batch once with a lookup (``stored``);
* Zigbee2MQTT and Shelly payloads carry no sequence number, and identical payloads
  legitimately repeat, so a content hash cannot tell a redelivery from a new report.
  What can: the broker redelivers an unacknowledged message on the same persistent
  session with the DUP flag set and the *same packet id*. Because the service
  acknowledges right after each commit, only the last ``receive_maximum`` messages can be
  unacknowledged, so a DUP message whose (packet id, topic, payload) matches one of the
  last 2 x ``receive_maximum`` stored messages is that message again. Everything else is
  new.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from netguard.iot.events import RawMessage

DedupeKey = tuple[int, str, str]
"""(MQTT packet id, topic, SHA-256 of the whole payload)."""

NATIVE_WINDOW = 100_000
"""Native identities kept in memory (~100 bytes each)."""

NATIVE_PREFIX = "n:"


def payload_digest(payload: bytes) -> str:
    """The hex SHA-256 of a payload, as stored in ``iot_event.payload_sha256``."""
    return hashlib.sha256(payload).hexdigest()


def dedupe_key(message: RawMessage) -> DedupeKey | None:
    """The key a broker redelivery of ``message`` shares with it (None without a packet id)."""
    if message.mid is None:
        return None
    return (message.mid, message.topic, payload_digest(message.payload))


@dataclass(frozen=True, slots=True)
class Candidate:
    """What deduplication looks at in one message of a batch.

    Attributes:
        identity: The native identity, or ``""`` for a payload without a sequence number.
        key: The message's :func:`dedupe_key`, if it has a packet id.
        dup: The broker set the DUP flag.
    """

    identity: str
    key: DedupeKey | None
    dup: bool


class Deduplicator:
    """The in-memory windows of recently stored messages.

    Args:
        recent_max: How many (packet id, topic, payload) keys to keep; the service uses
            2 x ``iot.mqtt.receive_maximum``.
        native_window: How many native identities to keep.
    """

    def __init__(self, recent_max: int, native_window: int = NATIVE_WINDOW) -> None:
        self._recent: OrderedDict[DedupeKey, str] = OrderedDict()
        self._recent_max = recent_max
        self._native: OrderedDict[str, None] = OrderedDict()
        self._native_max = native_window

    def seed(self, recent: Iterable[tuple[DedupeKey, str]], natives: Iterable[str]) -> None:
        """Start from stored messages, oldest first: (key, identity) pairs and native
        identities (the service reads them from the store at start)."""
        self._recent.clear()
        for key, identity in recent:
            self._remember(key, identity)
        self._native = OrderedDict((i, None) for i in natives)
        while len(self._native) > self._native_max:
            self._native.popitem(last=False)

    def forget_native(self) -> None:
        """Drop the native window: every native identity then needs the store's unique key
        (as one older than the window does)."""
        self._native.clear()

    def duplicates(self, batch: Sequence[Candidate], stored: Collection[str] = ()
                   ) -> set[int]:
        """Indexes of redeliveries in ``batch``.

        Args:
            batch: The messages in arrival order; a native identity repeated within the
                batch is a duplicate from its second occurrence on.
            stored: Native identities the store already holds (the service looks them up
                only when an insert failed on the unique key).
        """
        duplicates: set[int] = set()
        seen: set[str] = set()
        for i, c in enumerate(batch):
            if c.identity:
                if c.identity in stored or c.identity in self._native or c.identity in seen:
                    duplicates.add(i)
                seen.add(c.identity)
            elif c.dup and c.key is not None and c.key in self._recent:
                duplicates.add(i)
        return duplicates

    def record(self, key: DedupeKey | None, identity: str, *, duplicate: bool) -> None:
        """Note one message of a committed batch (``identity`` as stored)."""
        if key is not None and not duplicate:
            self._remember(key, identity)
        if identity.startswith(NATIVE_PREFIX):
            self._native[identity] = None
            self._native.move_to_end(identity)
            if len(self._native) > self._native_max:
                self._native.popitem(last=False)

    def _remember(self, key: DedupeKey, identity: str) -> None:
        self._recent[key] = identity
        self._recent.move_to_end(key)
        while len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)


__all__ = ["NATIVE_WINDOW", "Candidate", "DedupeKey", "Deduplicator", "dedupe_key",
           "payload_digest"]
