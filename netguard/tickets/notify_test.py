"""``netguard tickets notify-test ROUTE``: a sample message through each notifier of a
route, now, directly (not through the outbox), with each notifier's outcome.

The message is clearly marked as a test (zh-CN or en per ``display.language``), mentions
the route's recipients as a real ticket message would, and uses the real notifier classes,
so that a wrong robot URL, key, signing secret or mention id shows here instead of at the
first fault.
"""

# Chinese text uses full-width punctuation on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import aiohttp

from netguard.config import Settings
from netguard.errors import NotifyError
from netguard.iot.notifiers import build_notifier
from netguard.localtime import zone
from netguard.logsetup import SecretFilter, collect_secrets
from netguard.notify.config import TicketRoute
from netguard.notify.enqueue import RoutedMessage, notification_for

# Added to a notifier's own timeout before the test gives up on it (as the outbox does).
_TIMEOUT_GRACE = 2.0

_TEXT = {
    "zh-CN": ("## 【测试】netguard 通知测试\n"
              "这是一条测试消息，用于检查路由 `{route}` 的通知通道，无需处理。\n"
              "- 发送时间：{at}\n"
              "- 通知通道：{notifiers}"),
    "en": ("## [TEST] netguard notification test\n"
           "This is a test message checking the notifiers of route `{route}`; no action "
           "is needed.\n"
           "- Sent: {at}\n"
           "- Notifiers: {notifiers}"),
}


@dataclass(frozen=True, slots=True)
class NotifyOutcome:
    """What one notifier did with the test message.

    Attributes:
        notifier: The ``iot.notifiers`` name.
        error: Why it failed (secrets masked), or None when it was delivered.
    """

    notifier: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The chat accepted the message."""
        return self.error is None


def sample_text(route: TicketRoute, language: str, timezone: str, now: datetime) -> str:
    """The test message's markdown for ``route`` in ``language``, ``now`` local."""
    at = now.astimezone(zone(timezone)).strftime("%Y-%m-%d %H:%M:%S %z")
    template = _TEXT.get(language, _TEXT["en"])
    return template.format(route=route.name, at=at, notifiers=", ".join(route.notifiers))


async def send_test(settings: Settings, route: TicketRoute, now: datetime
                    ) -> list[NotifyOutcome]:
    """Send the sample message through each notifier of ``route``, one after another.

    Every notifier is tried even when one fails; each is bounded by its own timeout.
    """
    text = sample_text(route, settings.display.language, settings.display.timezone, now)
    message = RoutedMessage(subject="ticket", ident=0, reason="test", severity="warning",
                            category="test", text=text, first_seen=now.isoformat())
    notification = notification_for(route, message)
    configs = {n.name: n for n in settings.iot.notifiers}
    redact = SecretFilter()
    redact.add(collect_secrets(settings))
    outcomes = []
    async with aiohttp.ClientSession() as http:
        for name in route.notifiers:
            config = configs[name]
            timeout = config.timeout_seconds + _TIMEOUT_GRACE
            try:
                notifier = build_notifier(config, http, settings.iot.mqtt,
                                          settings.display.renderer())
                notifier.check(notification)
                async with asyncio.timeout(timeout):
                    await notifier.send([notification])
            except NotifyError as exc:
                outcomes.append(NotifyOutcome(name, redact.redact(str(exc))))
            except TimeoutError:
                outcomes.append(NotifyOutcome(name, f"no answer within {timeout:g} s"))
            except Exception as exc:  # any failure is this notifier's outcome, never a crash
                outcomes.append(NotifyOutcome(
                    name, redact.redact(f"{type(exc).__name__}: {exc}")))
            else:
                outcomes.append(NotifyOutcome(name))
    return outcomes


__all__ = ["NotifyOutcome", "sample_text", "send_test"]
