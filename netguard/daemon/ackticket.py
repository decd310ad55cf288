"""The words and tables of the ``/ack/<token>`` pages, in ``display.language``.

Ticket pages (kind ``ticket``) show the ticket's id, severity, summary, site or target and
when it opened; alert pages the alert, household, sensor and since when; times in
``display.timezone``. The refusal pages of every kind say why nothing changed. Pure: no
I/O.
"""

# Chinese text uses full-width punctuation on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from netguard.localtime import zone
from netguard.tickets.domain import Ticket


class TicketAcknowledger(Protocol):
    """What the pages need of :class:`~netguard.tickets.acklink.TicketLinkAcks`."""

    def ref(self, ticket_id: int) -> str: ...

    async def ticket(self, ticket_id: int) -> Ticket: ...

    async def acked_by(self, ticket_id: int) -> AckedByLike | None: ...

    async def acknowledge(self, ticket_id: int, actor: str, *, nonce: str) -> Ticket: ...


class AckedByLike(Protocol):
    """Who acknowledged, and when."""

    @property
    def actor(self) -> str: ...
    @property
    def at(self) -> datetime: ...


_TEXT: Mapping[str, Mapping[str, str]] = {
    "zh-CN": {
        "refused": "未执行确认", "confirm": "确认此工单？", "button": "确认",
        "done": "已确认", "as": "确认人：", "stopped": "提醒已停止。",
        "ticket": "工单", "severity": "级别", "summary": "摘要", "where": "站点/设备",
        "opened": "开单时间", "state": "状态",
        "invalid": "这不是有效的确认链接（可能被篡改或来自其他系统）。",
        "expired": "此链接已过期（有效期至 {at}）。",
        "used": "此链接已使用过，每个链接只能使用一次。",
        "not_found": "工单 {ref} 不存在。",
        "gone": "此确认对象已不存在。",
        "acked": "工单 {ref} 已于 {at} 由 {actor} 确认。",
        "closed": "工单 {ref} 当前状态为 {state}，无需确认。",
        "rate_limited": "请求过多，请一分钟后再试。",
        "too_large": "请求过大。",
        "hint": "可用 `netguard tickets ack`、`netguard alerts ack` 或较新消息中的链接进行确认。",
        "unserved": "此服务器不处理工单确认。",
        "alert_confirm": "确认此告警？", "alert": "告警", "household": "住户",
        "sensor": "传感器", "since": "开始时间", "count": "次数",
        "alert_gone": "此告警已不存在。",
        "alert_acked": "告警 {id} 已于 {at} 由 {actor} 确认。",
        "alert_closed": "告警 {id} 已于 {at} 关闭。",
    },
    "en": {
        "refused": "Nothing was acknowledged", "confirm": "Acknowledge this ticket?",
        "button": "Acknowledge", "done": "Acknowledged", "as": "As ",
        "stopped": "Reminders have stopped.",
        "ticket": "Ticket", "severity": "Severity", "summary": "Summary",
        "where": "Site / target", "opened": "Opened", "state": "State",
        "invalid": "Not a valid acknowledgement link (altered, or from another system).",
        "expired": "This link expired at {at}.",
        "used": "This link was already used; a link works once.",
        "not_found": "Ticket {ref} does not exist.",
        "gone": "What this link acknowledges no longer exists.",
        "acked": "Ticket {ref} was already acknowledged by {actor} at {at}.",
        "closed": "Ticket {ref} is {state}; there is nothing to acknowledge.",
        "rate_limited": "Too many requests; try again in a minute.",
        "too_large": "Request too large.",
        "hint": ("Acknowledge with `netguard tickets ack`, `netguard alerts ack` or a "
                 "newer message's link."),
        "unserved": "This server does not acknowledge tickets.",
        "alert_confirm": "Acknowledge this alert?", "alert": "Alert",
        "household": "Household", "sensor": "Sensor", "since": "Since", "count": "Count",
        "alert_gone": "This alert no longer exists.",
        "alert_acked": "Alert {id} was already acknowledged by {actor} at {at}.",
        "alert_closed": "Alert {id} is already closed ({at}).",
    },
}


class PageText:
    """The page words of one language, with times in one zone.

    Args:
        language: ``zh-CN`` or ``en`` (anything else reads as ``en``).
        timezone: An IANA zone name (``display.timezone``).
    """

    def __init__(self, language: str = "en", timezone: str = "UTC") -> None:
        self.language = language if language in _TEXT else "en"
        self._words = _TEXT[self.language]
        self._zone = zone(timezone)

    def __getitem__(self, key: str) -> str:
        return self._words[key]

    def say(self, key: str, **values: str) -> str:
        """The sentence ``key`` with ``values`` filled in."""
        return self._words[key].format(**values)

    def time(self, at: datetime) -> str:
        """``at`` in the display zone, to the minute, with its offset."""
        return at.astimezone(self._zone).strftime("%Y-%m-%d %H:%M %z")

    def iso_time(self, value: str | None) -> str:
        """An ISO 8601 instant (as an alert stores it) in the display zone."""
        return "-" if value is None else self.time(datetime.fromisoformat(value))

    def alert_table(self, alert: Mapping[str, Any]) -> str:
        """A door alert's id, household, sensor, since when and count, as an HTML table."""
        rows = ((self["alert"], f"{alert['id']} ({alert['type']}, {alert['severity']})"),
                (self["household"], f"{alert['household']} ({alert['community']})"),
                (self["sensor"], alert["sensor"]),
                (self["since"], self.iso_time(alert["first_seen"])),
                (self["count"], alert["count"]))
        return table(rows)

    def alert_done(self, alert: Mapping[str, Any]) -> str:
        """Why an alert needs no acknowledgement: who did it and when, or its closing."""
        if alert["acked_at"] is not None:
            return self.say("alert_acked", id=str(alert["id"]), actor=str(alert["acked_by"]),
                            at=self.iso_time(alert["acked_at"]))
        return self.say("alert_closed", id=str(alert["id"]),
                        at=self.iso_time(alert["closed_at"]))

    def ticket_table(self, ticket: Ticket) -> str:
        """The ticket's id, severity, summary, where and when, as an HTML table."""
        where = " / ".join(v for v in (ticket.site, ticket.target) if v) or "-"
        rows = ((self["ticket"], ticket.ref), (self["severity"], ticket.severity.value),
                (self["summary"], ticket.summary), (self["where"], where),
                (self["opened"], self.time(ticket.opened_at)),
                (self["state"], ticket.state.value))
        return table(rows)


def table(rows: Sequence[tuple[str, object]]) -> str:
    """An escaped two-column HTML table."""
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


__all__ = ["AckedByLike", "PageText", "TicketAcknowledger", "table"]
