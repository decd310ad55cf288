"""WeCom (企业微信) group robot, markdown messages."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from netguard.iot.config import WecomNotifierConfig
from netguard.iot.messages import MessageRenderer
from netguard.iot.notifiers.base import (
    HttpNotifier,
    Notification,
    post_json,
    truncate_utf8,
)
from netguard.iot.notifiers.registry import NotifierDeps, register

WECOM_MARKDOWN_LIMIT = 4096
WECOM_TEXT_LIMIT = 2048
# 45009: the robot's send frequency limit was exceeded.
WECOM_RATE_CODES = frozenset({45009})


def wecom_body(batch: Sequence[Notification], messages: MessageRenderer | None = None,
               msgtype: str = "markdown") -> dict[str, object]:
    """The robot request body: markdown (at most 4096 bytes) mentioning user ids as
    ``<@userid>``, or text (at most 2048 bytes) with ``mentioned_list`` and, for those
    without a user id, ``mentioned_mobile_list``."""
    content = (messages or MessageRenderer()).markdown(batch)
    mentions = {m for n in batch for m in n.mentions}
    user_ids = sorted({m.wecom for m in mentions if m.wecom})
    mobiles = sorted({m.mobile for m in mentions if m.mobile and not m.wecom})
    if msgtype == "text":
        return {"msgtype": "text",
                "text": {"content": truncate_utf8(content, WECOM_TEXT_LIMIT),
                         "mentioned_list": user_ids, "mentioned_mobile_list": mobiles}}
    if user_ids:
        # Appended after cutting, so that the mentions are never cut off.
        tail = "\n" + " ".join(f"<@{u}>" for u in user_ids)
        content = truncate_utf8(content, WECOM_MARKDOWN_LIMIT - len(tail.encode())) + tail
    return {"msgtype": "markdown",
            "markdown": {"content": truncate_utf8(content, WECOM_MARKDOWN_LIMIT)}}


class WecomNotifier(HttpNotifier):
    """Posts to a WeCom group robot webhook."""

    def __init__(self, config: WecomNotifierConfig, http: aiohttp.ClientSession,
                 messages: MessageRenderer | None = None) -> None:
        super().__init__(config, http, messages)
        self._msgtype = config.msgtype

    async def send(self, batch: Sequence[Notification]) -> None:
        """Post the batch as one message (``msgtype`` of the config)."""
        body = wecom_body(batch, self._messages, self._msgtype)
        await post_json(self._http, self._url, body, name=self.name,
                        timeout_s=self._config.timeout_seconds, robot=True,
                        rate_codes=WECOM_RATE_CODES)


@register("wecom", WecomNotifierConfig)
def _build(config: WecomNotifierConfig, deps: NotifierDeps) -> WecomNotifier:
    return WecomNotifier(config, deps.http, deps.messages)
