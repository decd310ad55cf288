"""The deduplicator's in-memory windows, without a database or a broker."""

from __future__ import annotations

import hashlib

from netguard.iot.dedup import Candidate, Deduplicator, dedupe_key, payload_digest
from netguard.iot.events import RawMessage, native_identity

N1 = native_identity("n1", "b1", 1)
N2 = native_identity("n1", "b1", 2)


def _dup(mid: int, payload: bytes = b'{"contact":true}', topic: str = "zigbee2mqtt/z1"
         ) -> Candidate:
    return Candidate("", dedupe_key(RawMessage(topic, payload, mid=mid, dup=True)), True)


def test_key_is_packet_id_topic_and_full_payload_hash() -> None:
    payload = b"x" * 10_000
    assert dedupe_key(RawMessage("t/1", payload, mid=7)) == \
        (7, "t/1", hashlib.sha256(payload).hexdigest())
    assert payload_digest(payload) == hashlib.sha256(payload).hexdigest()
    assert dedupe_key(RawMessage("t/1", payload)) is None  # QoS 0: no packet id


def test_native_identity_repeated_in_a_batch_is_a_duplicate_from_the_second_on() -> None:
    dedup = Deduplicator(recent_max=4)
    batch = [Candidate(N1, None, False), Candidate(N2, None, False),
             Candidate(N1, None, False), Candidate(N1, None, True)]
    assert dedup.duplicates(batch) == {2, 3}


def test_recorded_native_identity_is_a_duplicate_in_a_later_batch() -> None:
    dedup = Deduplicator(recent_max=4)
    dedup.record(None, N1, duplicate=False)
    assert dedup.duplicates([Candidate(N1, None, False), Candidate(N2, None, False)]) == {0}


def test_identity_found_in_the_store_is_a_duplicate_even_outside_the_window() -> None:
    dedup = Deduplicator(recent_max=4, native_window=2)
    for seq in range(1, 4):
        dedup.record(None, native_identity("n1", "b1", seq), duplicate=False)
    # seq 1 fell out of a window of two: only the store's answer can catch it now.
    assert dedup.duplicates([Candidate(N1, None, False)]) == set()
    assert dedup.duplicates([Candidate(N1, None, False)], stored={N1}) == {0}
    assert dedup.duplicates([Candidate(N2, None, False)]) == {0}


def test_forget_native_leaves_only_the_store_to_catch_a_redelivery() -> None:
    dedup = Deduplicator(recent_max=4)
    dedup.seed([], [N1])
    assert dedup.duplicates([Candidate(N1, None, False)]) == {0}
    dedup.forget_native()
    assert dedup.duplicates([Candidate(N1, None, False)]) == set()


def test_dup_flag_with_a_remembered_key_is_a_redelivery() -> None:
    dedup = Deduplicator(recent_max=4)
    first = _dup(5)
    dedup.record(first.key, "m:c:1", duplicate=False)
    assert dedup.duplicates([_dup(5)]) == {0}
    # Same packet id but another payload or topic: a new message that reuses the id.
    assert dedup.duplicates([_dup(5, b'{"contact":false}'), _dup(5, topic="zigbee2mqtt/z2")]
                            ) == set()


def test_identical_payload_without_dup_flag_is_a_new_report() -> None:
    dedup = Deduplicator(recent_max=4)
    key = dedupe_key(RawMessage("zigbee2mqtt/z1", b"{}", mid=5))
    dedup.record(key, "m:c:1", duplicate=False)
    assert dedup.duplicates([Candidate("", key, False)]) == set()


def test_a_duplicate_is_not_remembered_as_a_new_message() -> None:
    dedup = Deduplicator(recent_max=1)
    dedup.record(_dup(1).key, "m:c:1", duplicate=False)
    # A duplicate must not push the stored message it repeats out of the window.
    dedup.record(_dup(2).key, "", duplicate=True)
    assert dedup.duplicates([_dup(1), _dup(2)]) == {0}


def test_recent_window_keeps_only_the_newest_keys() -> None:
    dedup = Deduplicator(recent_max=2)
    for mid in (1, 2, 3):
        dedup.record(_dup(mid).key, f"m:c:{mid}", duplicate=False)
    assert dedup.duplicates([_dup(1), _dup(2), _dup(3)]) == {1, 2}


def test_seed_starts_from_stored_messages_oldest_first() -> None:
    dedup = Deduplicator(recent_max=2, native_window=1)
    keys = [_dup(mid).key for mid in (1, 2, 3)]
    dedup.seed([(k, f"m:c:{i}") for i, k in enumerate(keys) if k is not None], [N1, N2])
    assert dedup.duplicates([_dup(1), _dup(2), _dup(3)]) == {1, 2}
    # The newest native identity is kept; the older one needs the store.
    assert dedup.duplicates([Candidate(N1, None, False), Candidate(N2, None, False)]) == {1}
