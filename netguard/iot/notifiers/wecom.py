"""WeCom (企业微信) group robot, markdown messages."""

from __future__ import annotations

from collections.abc import Sequence

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
# 45009: the robot's send frequency limit was exceeded.
WECOM_RATE_CODES = frozenset({45009})


def wecom_body(batch: Sequence[Notification],
               messages: MessageRenderer | None = None) -> dict[str, object]:
    """The robot request body (markdown, at most 4096 bytes)."""
    content = (messages or MessageRenderer()).markdown(batch)
    mentions = sorted({r for n in batch for r in n.recipients})
    if mentions:
        content += "\n" + " ".join(f"<@{m}>" for m in mentions)
    return {"msgtype": "markdown",
            "markdown": {"content": truncate_utf8(content, WECOM_MARKDOWN_LIMIT)}}


class WecomNotifier(HttpNotifier):
    """Posts to a WeCom group robot webhook."""

    async def send(self, batch: Sequence[Notification]) -> None:
        """Post the batch as one markdown message."""
        await post_json(self._http, self._url, wecom_body(batch, self._messages), name=self.name,
                        timeout_s=self._config.timeout_seconds, robot=True,
                        rate_codes=WECOM_RATE_CODES)


@register("wecom", WecomNotifierConfig)
def _build(config: WecomNotifierConfig, deps: NotifierDeps) -> WecomNotifier:
    return WecomNotifier(config, deps.http, deps.messages)
