"""DingTalk (钉钉) custom robot, markdown messages, optional signed mode."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Callable, Sequence

import aiohttp

from netguard.iot.config import DingtalkNotifierConfig
from netguard.iot.messages import MessageRenderer
from netguard.iot.notifiers.base import HttpNotifier, Notification, post_json
from netguard.iot.notifiers.registry import NotifierDeps, register

# 130101: the robot sends too fast.
DINGTALK_RATE_CODES = frozenset({130101})


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """``urlencode(base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")))``."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(),
                      hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode("ascii"))


def dingtalk_url(url: str, secret: str | None, timestamp_ms: int) -> str:
    """The robot URL, with ``timestamp`` and ``sign`` appended in signed mode."""
    if secret is None:
        return url
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


def dingtalk_body(batch: Sequence[Notification],
                  messages: MessageRenderer | None = None) -> dict[str, object]:
    """The robot request body: recipients mentioned by DingTalk user id, else by mobile."""
    messages = messages or MessageRenderer()
    title = messages.title(batch)
    mentions = {m for n in batch for m in n.mentions}
    user_ids = sorted({m.dingtalk_user for m in mentions if m.dingtalk_user})
    mobiles = sorted({m.mobile for m in mentions if m.mobile and not m.dingtalk_user})
    text = messages.markdown(batch)
    if user_ids or mobiles:
        # DingTalk only notifies a person whose @ also appears in the text.
        text += "\n" + " ".join(f"@{m}" for m in [*user_ids, *mobiles])
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text},
            "at": {"atUserIds": user_ids, "atMobiles": mobiles, "isAtAll": False}}


class DingtalkNotifier(HttpNotifier):
    """Posts to a DingTalk custom robot webhook."""

    def __init__(self, config: DingtalkNotifierConfig, http: aiohttp.ClientSession,
                 messages: MessageRenderer | None = None, *,
                 time_ms: Callable[[], int] | None = None) -> None:
        super().__init__(config, http, messages)
        self._secret = None if config.secret is None else config.secret.get_secret_value()
        self._time_ms = time_ms or (lambda: int(time.time() * 1000))

    async def send(self, batch: Sequence[Notification]) -> None:
        """Post the batch as one markdown message, signed when a secret is set."""
        url = dingtalk_url(self._url, self._secret, self._time_ms())
        await post_json(self._http, url, dingtalk_body(batch, self._messages), name=self.name,
                        timeout_s=self._config.timeout_seconds, robot=True,
                        rate_codes=DINGTALK_RATE_CODES)


@register("dingtalk", DingtalkNotifierConfig)
def _build(config: DingtalkNotifierConfig, deps: NotifierDeps) -> DingtalkNotifier:
    return DingtalkNotifier(config, deps.http, deps.messages)
