"""What every notifier shares: the notification value, the Notifier port, HTTP posting."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import aiohttp

from netguard.errors import NotifyError, NotifyTransientError
from netguard.iot.config import UrlNotifierConfig
from netguard.iot.messages import MessageRenderer

_MOBILE = re.compile(r"1[0-9]{10}\Z")


@dataclass(frozen=True, slots=True)
class Mention:
    """How the robots @-mention one recipient (validated by the route's config)."""

    wecom: str | None = None
    dingtalk_user: str | None = None
    mobile: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification, as stored in the outbox body.

    For a door alert (``subject`` ``alert``), ``reason`` is ``raised`` (a new alert),
    ``renotify`` (a reminder), ``repeat`` (the door opened again) or ``recovery`` (an
    offline sensor is heard again); it picks the message template
    (:mod:`netguard.iot.messages`). A ticket or Alertmanager message (``subject``
    ``ticket`` or ``alertmanager``; ``alert_id`` is then the ticket's or the receipt's
    id) carries its ``text``, rendered when it was queued, because what it says (a root
    and the children grouped under it) is a snapshot of that moment.
    """

    alert_id: int
    reason: str
    type: str
    severity: str
    community: str
    household: str
    sensor: str
    reasons: tuple[str, ...]
    count: int
    first_seen: str
    # Who the route names (labels, for records and webhooks) ...
    recipients: tuple[str, ...] = field(default=())
    # ... and how the robots mention them.
    mentions: tuple[Mention, ...] = field(default=())
    # The acknowledgement link (``ack_links``), added at delivery time; None without.
    ack_url: str | None = None
    # alert (a door alert), ticket or alertmanager.
    subject: str = "alert"
    # The markdown of a ticket or Alertmanager message; None for door alerts.
    text: str | None = None

    def to_json(self) -> str:
        """The outbox body."""
        data = asdict(self)
        # Door-alert bodies stay readable by a release without links or subjects.
        for key, default in (("ack_url", None), ("subject", "alert"), ("text", None)):
            if data[key] == default:
                del data[key]
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Notification:
        """Read an outbox body back."""
        data = json.loads(text)
        data["reasons"] = tuple(data["reasons"])
        data["recipients"] = tuple(data.get("recipients", ()))
        if "mentions" in data:
            data["mentions"] = tuple(Mention(**m) for m in data["mentions"])
        else:
            # A body queued before mentions existed: its recipients were mobiles.
            data["mentions"] = tuple(Mention(mobile=r) for r in data["recipients"]
                                     if _MOBILE.match(r))
        return cls(**data)


class Notifier(Protocol):
    """A delivery channel. ``send`` delivers a batch as one message, or raises.

    The outbox bounds every ``send`` with a timeout and treats any other exception as a
    failed attempt, so a notifier cannot stall or break its neighbours; still, raise
    :class:`NotifyError` with a reason rather than anything else.
    """

    name: str

    def check(self, notification: Notification) -> None:
        """Refuse a notification this channel can never deliver, before anything is sent.

        Called for each alert of a batch, so that one unsendable alert (a community name
        that would make an MQTT topic a wildcard) fails alone instead of with its batch.

        Raises:
            NotifyError: Permanently undeliverable on this channel; the message says why.
        """
        ...

    async def send(self, batch: Sequence[Notification]) -> None:
        """Deliver ``batch`` as one message.

        Raises:
            NotifyTransientError: Worth retrying (receiver down, 5xx, rate limited).
            NotifyError: Will not succeed as is (4xx, refused by the robot).
        """
        ...


class HttpNotifier:
    """Shared set-up of the notifiers that POST to a URL from their config."""

    def __init__(self, config: UrlNotifierConfig, http: aiohttp.ClientSession,
                 messages: MessageRenderer | None = None) -> None:
        self.name = config.name
        self._config = config
        self._messages = messages or MessageRenderer()
        self._url = config.url.get_secret_value()
        self._http = http

    def check(self, notification: Notification) -> None:
        """Every notification can be rendered into an HTTP message."""


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes without splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "..."


async def post_json(http: aiohttp.ClientSession, url: str, body: Mapping[str, Any], *,
                    name: str, timeout_s: float, headers: Mapping[str, str] | None = None,
                    robot: bool = False, rate_codes: frozenset[int] = frozenset()) -> None:
    """POST JSON and classify the outcome.

    Args:
        robot: The receiver answers 200 with ``{"errcode": N}`` (WeCom, DingTalk); a
            non-zero errcode is a failure, transient when it is in ``rate_codes``.
    """
    try:
        async with http.post(url, json=body, headers=dict(headers or {}),
                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            text = await resp.text()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The URL embeds the robot key, so only the exception type is reported.
        raise NotifyTransientError(f"{name}: {type(exc).__name__}") from None
    if status == 429 or status >= 500:
        raise NotifyTransientError(f"{name}: HTTP {status}")
    if status >= 400:
        raise NotifyError(f"{name}: HTTP {status}")
    if robot:
        try:
            code = int(json.loads(text).get("errcode", 0))
        except (ValueError, AttributeError):
            raise NotifyTransientError(f"{name}: unreadable robot answer") from None
        if code in rate_codes:
            raise NotifyTransientError(f"{name}: rate limited (errcode {code})")
        if code != 0:
            raise NotifyError(f"{name}: robot refused (errcode {code})")
