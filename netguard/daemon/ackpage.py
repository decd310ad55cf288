"""``/ack/<token>``: acknowledging an alert from the link in a chat message.

``GET`` only shows what the link would acknowledge, with a button: chat apps and link
previewers fetch links on their own, so a ``GET`` must never change anything. The button
``POST``s to the same URL, which acknowledges through :meth:`IotAdmin.acknowledge` with the
link's nonce (spent in the same transaction: a link works once), the recipient bound in the
link as the actor (else ``chat-link``) and ``acked_via = chat-link``.

Every answer is counted by outcome (``netguard_ack_links_total``). Forged, expired, used
and replayed links get a short page with a 4xx status and change nothing.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from netguard.acklinks import (
    DEFAULT_ACTOR,
    AckClaim,
    AckLinkError,
    AckLinks,
    AckLinksConfig,
    verify,
)
from netguard.clock import Clock
from netguard.errors import InvalidTransitionError, NotFoundError
from netguard.iot.outbox import RateLimiter

log = logging.getLogger(__name__)

# Every outcome, so that the metric shows zeros before the first link is used.
OUTCOMES = ("shown", "acknowledged", "invalid", "expired", "used", "closed", "not_found",
            "rate_limited", "too_large")
# The POST carries no form fields; anything bigger than this is not our form.
BODY_MAX = 1024
# Requests per minute across all clients (a proxy in front makes them one peer anyway):
# enough for a team tapping links, far too few to guess a 128-bit MAC.
RATE_PER_MINUTE = 120
_STATUS = {"invalid": 400, "expired": 410, "used": 409, "closed": 409, "not_found": 404,
           "rate_limited": 429, "too_large": 413}
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; form-action 'self'"}


class Acknowledger(Protocol):
    """What the pages need of :class:`~netguard.iot.admin.IotAdmin`."""

    async def alert(self, alert_id: int) -> dict[str, Any]: ...

    async def acknowledge(self, alert_id: int, actor: str, *, via: str | None = None,
                          nonce: str | None = None) -> dict[str, Any]: ...


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = ("<!doctype html><html><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1>{body}</body></html>\n")
    return web.Response(text=text, status=status, content_type="text/html",
                        headers=_HEADERS)


def _describe(alert: Mapping[str, Any]) -> str:
    rows = (("Alert", f"{alert['id']} ({alert['type']}, {alert['severity']})"),
            ("Household", f"{alert['household']} ({alert['community']})"),
            ("Sensor", alert["sensor"]), ("Since", alert["first_seen"]),
            ("Count", alert["count"]))
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


class AckPages:
    """The ``/ack/{token}`` routes.

    Args:
        admin: Reads and acknowledges alerts (an :class:`~netguard.iot.admin.IotAdmin`).
        key: The ``ack_links`` HMAC key.
        clock: ``now`` for expiry, monotonic time for the rate limit.
    """

    def __init__(self, admin: Acknowledger, key: bytes, clock: Clock, *,
                 per_minute: int = RATE_PER_MINUTE) -> None:
        self._admin = admin
        self._key = key
        self._clock = clock
        self._limiter = RateLimiter(per_minute)
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)

    @classmethod
    def from_config(cls, config: AckLinksConfig, admin: Acknowledger,
                    clock: Clock) -> AckPages | None:
        """The pages of an enabled ``ack_links`` section, else None."""
        links = AckLinks.from_config(config)
        return None if links is None else cls(admin, links.key, clock)

    def add_routes(self, app: web.Application) -> None:
        """Serve ``GET`` and ``POST /ack/{token}`` on ``app``."""
        app.router.add_get("/ack/{token}", self._show, allow_head=False)
        app.router.add_post("/ack/{token}", self._submit)

    def _refuse(self, outcome: str, message: str) -> web.Response:
        self.outcomes[outcome] += 1
        log.info("acknowledgement link refused", extra={"outcome": outcome})
        return _page("Nothing was acknowledged", f"<p>{html.escape(message)}</p>",
                     _STATUS[outcome])

    def _admit(self, request: web.Request) -> tuple[AckClaim | None, web.Response | None]:
        mono = self._clock.monotonic()
        if self._limiter.wait_time(mono) > 0:
            return None, self._refuse("rate_limited", "Too many requests; try again in a "
                                      "minute.")
        self._limiter.record(mono)
        if (request.content_length or 0) > BODY_MAX:
            return None, self._refuse("too_large", "Request too large.")
        try:
            return verify(self._key, request.match_info["token"], self._clock.now()), None
        except AckLinkError as exc:
            return None, self._refuse(exc.reason, f"{exc}. Acknowledge with "
                                      "`netguard alerts ack` or a newer message's link.")

    async def _show(self, request: web.Request) -> web.Response:
        claim, refused = self._admit(request)
        if claim is None:
            assert refused is not None
            return refused
        try:
            alert = await self._admin.alert(claim.ident)
        except NotFoundError:
            return self._refuse("not_found", "This alert no longer exists.")
        if alert["acked_at"] is not None or alert["closed_at"] is not None:
            return self._refuse("closed", self._already(alert))
        self.outcomes["shown"] += 1
        who = "" if claim.actor == DEFAULT_ACTOR else (
            f"<p>As <b>{html.escape(claim.actor)}</b>.</p>")
        form = ("<form method=\"post\"><button type=\"submit\">Acknowledge</button></form>")
        return _page("Acknowledge this alert?", _describe(alert) + who + form)

    async def _submit(self, request: web.Request) -> web.Response:
        claim, refused = self._admit(request)
        if claim is None:
            assert refused is not None
            return refused
        try:
            alert = await self._admin.acknowledge(claim.ident, claim.actor, via="chat-link",
                                                  nonce=claim.nonce)
        except AckLinkError as exc:
            return self._refuse(exc.reason, f"{exc}.")
        except NotFoundError:
            return self._refuse("not_found", "This alert no longer exists.")
        except InvalidTransitionError:
            return self._refuse("closed", self._already(await self._admin.alert(claim.ident)))
        self.outcomes["acknowledged"] += 1
        log.info("alert acknowledged by link", extra={"alert_id": claim.ident,
                                                      "actor": claim.actor})
        return _page("Acknowledged", _describe(alert) + "<p>Reminders have stopped.</p>")

    @staticmethod
    def _already(alert: Mapping[str, Any]) -> str:
        if alert["acked_at"] is not None:
            return (f"Alert {alert['id']} was already acknowledged by {alert['acked_by']} "
                    f"at {alert['acked_at']}.")
        return f"Alert {alert['id']} is already closed ({alert['closed_at']})."


__all__ = ["OUTCOMES", "AckPages", "Acknowledger"]
