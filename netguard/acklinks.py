"""Acknowledgement links: short, signed, expiring, single-use tokens for ``/ack/<token>``.

A token is the URL-safe base64 (unpadded) of ``payload || mac``, where ``payload`` is a
version byte, the kind (1: alert, 2: ticket), the id (4 bytes), the expiry (Unix seconds, 8 bytes),
a random 12-byte nonce and the recipient (UTF-8, possibly empty), and ``mac`` is the first
16 bytes of HMAC-SHA256 over a domain prefix and the payload. About 55 characters without
a recipient: short enough for a chat message. The nonce makes each link single use (the
store keeps the nonces spent; see :class:`netguard.iot.models.AckNonce`).

Pure: no I/O, time passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from netguard.errors import InvalidInputError

_VERSION = 1
_KINDS = {"alert": 1, "ticket": 2}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
LINK_KINDS: frozenset[str] = frozenset(_KINDS)
"""What links can acknowledge (an outbox row's ``subject``)."""
_HEAD = struct.Struct(">BBIQ")  # version, kind, id, expiry
_NONCE_BYTES = 12
_MAC_BYTES = 16
_DOMAIN = b"netguard-ack-link\x00"
# A recipient longer than this is not bound (the link stays short; actor "chat-link").
RECIPIENT_MAX = 64
# Longest token accepted before decoding: bounds the work a hostile request can cause.
TOKEN_MAX = 4 * (_HEAD.size + _NONCE_BYTES + RECIPIENT_MAX * 4 + _MAC_BYTES) // 3 + 4
# The actor recorded when no recipient is bound into the link.
DEFAULT_ACTOR = "chat-link"


class AckLinkError(InvalidInputError):
    """A token that cannot acknowledge anything; ``reason`` is the metric outcome."""

    reason = "invalid"


class AckLinkInvalidError(AckLinkError):
    """Malformed, truncated, forged, or signed with another key (indistinguishable)."""

    reason = "invalid"


class AckLinkExpiredError(AckLinkError):
    """Correctly signed but past its expiry (``expires_at``)."""

    reason = "expired"

    def __init__(self, message: str, expires_at: datetime | None = None) -> None:
        super().__init__(message)
        self.expires_at = expires_at


class AckLinkUsedError(AckLinkError):
    """Already used once (its nonce is spent)."""

    reason = "used"


class AckLinksConfig(BaseModel):
    """``ack_links:``: acknowledgement links in door-alert messages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # The HMAC key (or ``key_file``, or ``${ENV}``); at least 16 characters.
    key: SecretStr | None = None
    # What staff phones open, e.g. https://netguard.example.org (a reverse proxy in front
    # of ``metrics.listen``); links are ``<base_url>/ack/<token>``.
    base_url: str | None = None
    ttl_hours: float = Field(default=24.0, gt=0, le=24 * 30)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _complete(self) -> AckLinksConfig:
        if self.key is not None and len(self.key.get_secret_value()) < 16:
            raise ValueError("key: at least 16 characters")
        if self.enabled and (self.key is None or self.base_url is None):
            raise ValueError("enabled needs key (or key_file) and base_url")
        return self


@dataclass(frozen=True, slots=True)
class AckClaim:
    """What a verified token says."""

    kind: str
    ident: int
    recipient: str
    expires_at: datetime
    nonce: str

    @property
    def actor(self) -> str:
        """Who acknowledges: the bound recipient, else :data:`DEFAULT_ACTOR`."""
        return self.recipient or DEFAULT_ACTOR


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _DOMAIN + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def mint(key: bytes, kind: str, ident: int, expires_at: datetime, *, recipient: str = "",
         nonce: bytes | None = None) -> str:
    """A token for ``kind`` ``ident`` valid until ``expires_at``.

    Raises:
        ValueError: Unknown kind, an id outside 1..2**32-1, or an empty key.
    """
    if not key:
        raise ValueError("empty key")
    if kind not in _KINDS or not 1 <= ident < 2**32:
        raise ValueError(f"cannot link {kind} {ident}")
    bound = recipient.encode("utf-8") if len(recipient) <= RECIPIENT_MAX else b""
    nonce = secrets.token_bytes(_NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != _NONCE_BYTES:
        raise ValueError("nonce must be 12 bytes")
    payload = (_HEAD.pack(_VERSION, _KINDS[kind], ident, int(expires_at.timestamp()))
               + nonce + bound)
    return base64.urlsafe_b64encode(payload + _mac(key, payload)).rstrip(b"=").decode()


def verify(key: bytes, token: str, now: datetime) -> AckClaim:
    """Check ``token``'s signature (constant time), then its expiry.

    Raises:
        AckLinkInvalidError: Malformed, truncated, forged or signed with another key.
        AckLinkExpiredError: Genuine but expired at ``now``.
    """
    if not key or not 0 < len(token) <= TOKEN_MAX or not token.isascii():
        raise AckLinkInvalidError("not an acknowledgement link")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise AckLinkInvalidError("not an acknowledgement link") from None
    fixed = _HEAD.size + _NONCE_BYTES
    if len(raw) < fixed + _MAC_BYTES:
        raise AckLinkInvalidError("not an acknowledgement link")
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise AckLinkInvalidError("not a valid acknowledgement link")
    version, kind, ident, expiry = _HEAD.unpack_from(payload)
    try:
        recipient = payload[fixed:].decode("utf-8")
    except UnicodeDecodeError:
        raise AckLinkInvalidError("not an acknowledgement link") from None
    if version != _VERSION or kind not in _KIND_NAMES or ident < 1:
        raise AckLinkInvalidError("not an acknowledgement link")
    expires_at = datetime.fromtimestamp(expiry, UTC)
    if now >= expires_at:
        raise AckLinkExpiredError(f"this link expired at {expires_at.isoformat()}",
                                  expires_at)
    return AckClaim(_KIND_NAMES[kind], ident, recipient, expires_at,
                    payload[_HEAD.size:fixed].hex())


class AckLinks:
    """Mints the links of one configuration.

    Args:
        key: The HMAC key.
        base_url: The public base URL (no trailing slash).
        ttl: How long a link stays valid.
    """

    def __init__(self, key: bytes, base_url: str, ttl: timedelta) -> None:
        self.key = key
        self._base_url = base_url.rstrip("/")
        self._ttl = ttl

    @classmethod
    def from_config(cls, config: AckLinksConfig) -> AckLinks | None:
        """The minter of an enabled ``ack_links`` section, else None."""
        if not config.enabled or config.key is None or config.base_url is None:
            return None
        return cls(config.key.get_secret_value().encode("utf-8"), config.base_url,
                   timedelta(hours=config.ttl_hours))

    def url(self, kind: str, ident: int, now: datetime, *, recipient: str = "") -> str:
        """``<base_url>/ack/<token>``, valid from ``now`` for the configured TTL."""
        token = mint(self.key, kind, ident, now + self._ttl, recipient=recipient)
        return f"{self._base_url}/ack/{token}"


__all__ = ["DEFAULT_ACTOR", "LINK_KINDS", "AckClaim", "AckLinkError", "AckLinkExpiredError",
           "AckLinkInvalidError", "AckLinkUsedError", "AckLinks", "AckLinksConfig", "mint",
           "verify"]
