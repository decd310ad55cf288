"""The acknowledgement-link tokens (pure): round trip, expiry, forgery, garbage."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netguard.acklinks import (
    AckLinkExpiredError,
    AckLinkInvalidError,
    AckLinks,
    AckLinksConfig,
    mint,
    verify,
)
from netguard.config import settings_from_data
from netguard.errors import ConfigError

KEY = b"k" * 32
NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=24)


def test_a_token_round_trips_with_its_recipient_and_a_fresh_nonce() -> None:
    one = mint(KEY, "alert", 42, LATER, recipient="wang.fang")
    two = mint(KEY, "alert", 42, LATER, recipient="wang.fang")
    claim = verify(KEY, one, NOW)
    assert (claim.kind, claim.ident, claim.recipient, claim.actor, claim.expires_at) == (
        "alert", 42, "wang.fang", "wang.fang", LATER)
    assert one != two
    assert verify(KEY, two, NOW).nonce != claim.nonce
    assert verify(KEY, mint(KEY, "alert", 7, LATER), NOW).actor == "chat-link"
    assert len(mint(KEY, "alert", 7, LATER)) <= 60  # short enough for a chat line


def test_an_expired_token_is_refused_at_its_expiry() -> None:
    token = mint(KEY, "alert", 1, LATER)
    verify(KEY, token, LATER - timedelta(seconds=1))
    with pytest.raises(AckLinkExpiredError):
        verify(KEY, token, LATER)


def test_a_wrong_key_a_flipped_bit_and_a_truncation_are_invalid() -> None:
    token = mint(KEY, "alert", 1, LATER, recipient="li")
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[3] ^= 1  # the id changes, the mac does not
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    for bad, key in ((token, b"x" * 32), (forged, KEY), (token[:-4], KEY), (token[:10], KEY),
                     ("", KEY), (token + "A", KEY), ("é" * 20, KEY)):
        with pytest.raises(AckLinkInvalidError):
            verify(key, bad, NOW)


def test_an_expired_forgery_is_invalid_not_expired() -> None:
    # The signature is checked first, so an attacker learns nothing from the expiry.
    token = mint(b"x" * 32, "alert", 1, NOW - timedelta(days=1))
    with pytest.raises(AckLinkInvalidError):
        verify(KEY, token, NOW)


@given(st.text(max_size=400))
def test_garbage_text_is_invalid_never_a_crash(text: str) -> None:
    with pytest.raises(AckLinkInvalidError):
        verify(KEY, text, NOW)


@given(st.binary(max_size=200))
def test_garbage_bytes_in_base64_are_invalid(data: bytes) -> None:
    with pytest.raises(AckLinkInvalidError):
        verify(KEY, base64.urlsafe_b64encode(data).rstrip(b"=").decode(), NOW)


def test_the_minter_builds_links_under_the_base_url() -> None:
    config = AckLinksConfig(enabled=True, key="s" * 20,  # type: ignore[arg-type]
                            base_url="https://netguard.example.org/", ttl_hours=2)
    links = AckLinks.from_config(config)
    assert links is not None
    url = links.url("alert", 5, NOW)
    assert url.startswith("https://netguard.example.org/ack/")
    claim = verify(links.key, url.rsplit("/", 1)[1], NOW)
    assert claim.expires_at == NOW + timedelta(hours=2)
    assert AckLinks.from_config(AckLinksConfig()) is None


@pytest.mark.parametrize("data", [
    {"enabled": True, "base_url": "https://x.example"},
    {"enabled": True, "key": "s" * 20},
    {"key": "short"},
    {"base_url": "ftp://x"},
])
def test_the_config_refuses_an_incomplete_or_bad_section(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"key|base_url|URL"):
        AckLinksConfig.model_validate(data)


def test_the_key_may_come_from_a_file_while_tls_key_file_stays_a_path(tmp_path: Path) -> None:
    (tmp_path / "ack").write_text("from-a-file-0123456789\n")
    settings = settings_from_data({"ack_links": {
        "enabled": True, "key_file": str(tmp_path / "ack"), "base_url": "https://n.example"},
        "metrics": {"tls": {"cert_file": "/x.pem", "key_file": "/x.key"}}})
    assert settings.ack_links.key is not None
    assert settings.ack_links.key.get_secret_value() == "from-a-file-0123456789"
    assert settings.metrics.tls is not None
    assert str(settings.metrics.tls.key_file) == "/x.key"


def test_links_need_the_http_endpoint() -> None:
    with pytest.raises(ConfigError, match=r"metrics\.enabled"):
        settings_from_data({"metrics": {"enabled": False}, "ack_links": {
            "enabled": True, "key": "k" * 16, "base_url": "https://n.example"}})
