"""``/ack/<token>``: acknowledging an alert or a ticket from the link in a chat message.

``GET`` only shows what the link would acknowledge, with a button: chat apps and link
previewers fetch links on their own, so a ``GET`` must never change anything. The button
``POST``s to the same URL. The link's kind picks what it acknowledges: an ``alert``
through :meth:`IotAdmin.acknowledge`, a ``ticket`` through
:meth:`~netguard.tickets.acklink.TicketLinkAcks.acknowledge`; never the other (the kind is
inside the signature). Either way the link's nonce is spent in the same transaction (a
link works once), the recipient bound in the link is the actor (else ``chat-link``) and
``chat-link`` is recorded as the source. Ticket pages and every refusal are in
``display.language``, times in ``display.timezone``.

Every answer is counted by outcome (``netguard_ack_links_total``). Forged, expired, used
and replayed links get a short page with a 4xx status and change nothing.
"""

from __future__ import annotations

import html
import logging
from typing import Any, Protocol

from aiohttp import web

from netguard.acklinks import (
    DEFAULT_ACTOR,
    AckClaim,
    AckLinkError,
    AckLinkExpiredError,
    AckLinks,
    AckLinksConfig,
    verify,
)
from netguard.clock import Clock
from netguard.daemon.ackticket import PageText, TicketAcknowledger
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


class AckPages:
    """The ``/ack/{token}`` routes.

    Args:
        admin: Reads and acknowledges alerts (an :class:`~netguard.iot.admin.IotAdmin`).
        key: The ``ack_links`` HMAC key.
        clock: ``now`` for expiry, monotonic time for the rate limit.
        tickets: Reads and acknowledges tickets; None where tickets are not served
            (``run --only intake``): a ticket link then changes nothing.
        language: ``display.language`` of ticket pages and refusals.
        timezone: ``display.timezone`` of the times they show.
    """

    def __init__(self, admin: Acknowledger, key: bytes, clock: Clock, *,
                 per_minute: int = RATE_PER_MINUTE, tickets: TicketAcknowledger | None = None,
                 language: str = "en", timezone: str = "UTC") -> None:
        self._admin = admin
        self._tickets = tickets
        self._key = key
        self._clock = clock
        self._limiter = RateLimiter(per_minute)
        self._text = PageText(language, timezone)
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)

    @classmethod
    def from_config(cls, config: AckLinksConfig, admin: Acknowledger, clock: Clock, *,
                    tickets: TicketAcknowledger | None = None, language: str = "zh-CN",
                    timezone: str = "Asia/Shanghai") -> AckPages | None:
        """The pages of an enabled ``ack_links`` section, else None."""
        links = AckLinks.from_config(config)
        return None if links is None else cls(admin, links.key, clock, tickets=tickets,
                                              language=language, timezone=timezone)

    def add_routes(self, app: web.Application) -> None:
        """Serve ``GET`` and ``POST /ack/{token}`` on ``app``."""
        app.router.add_get("/ack/{token}", self._show, allow_head=False)
        app.router.add_post("/ack/{token}", self._submit)

    def _refuse(self, outcome: str, message: str) -> web.Response:
        self.outcomes[outcome] += 1
        log.info("acknowledgement link refused", extra={"outcome": outcome})
        return _page(self._text["refused"], f"<p>{html.escape(message)}</p>",
                     _STATUS[outcome])

    def _link_error(self, exc: AckLinkError) -> str:
        text = self._text
        if isinstance(exc, AckLinkExpiredError) and exc.expires_at is not None:
            return text.say("expired", at=text.time(exc.expires_at))
        return text.say("used" if exc.reason == "used" else "invalid")

    def _admit(self, request: web.Request) -> tuple[AckClaim | None, web.Response | None]:
        mono = self._clock.monotonic()
        if self._limiter.wait_time(mono) > 0:
            return None, self._refuse("rate_limited", self._text["rate_limited"])
        self._limiter.record(mono)
        if (request.content_length or 0) > BODY_MAX:
            return None, self._refuse("too_large", self._text["too_large"])
        try:
            return verify(self._key, request.match_info["token"], self._clock.now()), None
        except AckLinkError as exc:
            return None, self._refuse(exc.reason, f"{self._link_error(exc)} "
                                      f"{self._text['hint']}")

    async def _show(self, request: web.Request) -> web.Response:
        claim, refused = self._admit(request)
        if claim is None:
            assert refused is not None
            return refused
        if claim.kind == "ticket":
            return await self._show_ticket(claim)
        if claim.kind != "alert":
            return self._refuse("invalid", self._text["invalid"])
        try:
            alert = await self._admin.alert(claim.ident)
        except NotFoundError:
            return self._refuse("not_found", self._text["alert_gone"])
        if alert["acked_at"] is not None or alert["closed_at"] is not None:
            return self._refuse("closed", self._text.alert_done(alert))
        self.outcomes["shown"] += 1
        return _page(self._text["alert_confirm"],
                     self._text.alert_table(alert) + self._form(claim))

    async def _submit(self, request: web.Request) -> web.Response:
        claim, refused = self._admit(request)
        if claim is None:
            assert refused is not None
            return refused
        if claim.kind == "ticket":
            return await self._submit_ticket(claim)
        if claim.kind != "alert":
            return self._refuse("invalid", self._text["invalid"])
        try:
            alert = await self._admin.acknowledge(claim.ident, claim.actor, via="chat-link",
                                                  nonce=claim.nonce)
        except AckLinkError as exc:
            return self._refuse(exc.reason, self._link_error(exc))
        except NotFoundError:
            return self._refuse("not_found", self._text["alert_gone"])
        except InvalidTransitionError:
            return self._refuse("closed",
                                self._text.alert_done(await self._admin.alert(claim.ident)))
        self.outcomes["acknowledged"] += 1
        log.info("alert acknowledged by link", extra={"alert_id": claim.ident,
                                                      "actor": claim.actor})
        return _page(self._text["done"], self._text.alert_table(alert)
                     + f"<p>{html.escape(self._text['stopped'])}</p>")

    def _form(self, claim: AckClaim) -> str:
        """Who acknowledges (when bound) and the button that ``POST``s."""
        text = self._text
        who = "" if claim.actor == DEFAULT_ACTOR else (
            f"<p>{html.escape(text['as'])}<b>{html.escape(claim.actor)}</b></p>")
        return (f"{who}<form method=\"post\"><button type=\"submit\">"
                f"{html.escape(text['button'])}</button></form>")

    # ---------------------------------------------------------------- tickets

    async def _show_ticket(self, claim: AckClaim) -> web.Response:
        text = self._text
        if self._tickets is None:
            return self._refuse("not_found", text["unserved"])
        try:
            ticket = await self._tickets.ticket(claim.ident)
        except NotFoundError:
            return self._refuse("not_found", text.say("not_found",
                                                      ref=self._tickets.ref(claim.ident)))
        if ticket.state.value != "open":
            return self._refuse("closed", await self._ticket_done(claim.ident))
        self.outcomes["shown"] += 1
        return _page(text["confirm"], text.ticket_table(ticket) + self._form(claim))

    async def _submit_ticket(self, claim: AckClaim) -> web.Response:
        text = self._text
        if self._tickets is None:
            return self._refuse("not_found", text["unserved"])
        try:
            ticket = await self._tickets.acknowledge(claim.ident, claim.actor,
                                                     nonce=claim.nonce)
        except AckLinkError as exc:
            return self._refuse(exc.reason, self._link_error(exc))
        except NotFoundError:
            return self._refuse("not_found", text.say("not_found",
                                                      ref=self._tickets.ref(claim.ident)))
        except InvalidTransitionError:
            return self._refuse("closed", await self._ticket_done(claim.ident))
        self.outcomes["acknowledged"] += 1
        return _page(text["done"], text.ticket_table(ticket)
                     + f"<p>{html.escape(text['stopped'])}</p>")

    async def _ticket_done(self, ticket_id: int) -> str:
        """Why a ticket needs no acknowledgement: who did it and when, or its state."""
        assert self._tickets is not None
        text, ref = self._text, self._tickets.ref(ticket_id)
        ticket = await self._tickets.ticket(ticket_id)
        acked = await self._tickets.acked_by(ticket_id)
        if ticket.state.value == "acknowledged" and acked is not None:
            return text.say("acked", ref=ref, actor=acked.actor, at=text.time(acked.at))
        return text.say("closed", ref=ref, state=ticket.state.value)


__all__ = ["OUTCOMES", "AckPages", "Acknowledger"]
