"""``POST /alertmanager/webhook``: Alertmanager's notifications into netguard's routes.

Alertmanager has no WeCom or DingTalk robot; pointed at this endpoint (a
``webhook_config``, see ``config/alertmanager/alertmanager.yml``) its alerts reach the
chat groups through netguard's routes, outbox and notifiers.

Every request is answered and counted by outcome (``netguard_alertmanager_webhooks_total``):

- 401 ``unauthorized``: no or wrong bearer token / basic credentials (compared in
  constant time; the body is not read);
- 413 ``too_large``: a body over ``max_body_bytes``;
- 400 ``invalid``: not JSON, or not a valid version 4 payload; the body names the
  problem (``alerts[3].labels: not an object``). Alertmanager does not retry a 4xx;
- 200 ``accepted``, ``unrouted``, ``duplicate`` or ``reminder``
  (:mod:`netguard.notify.amintake`);
- 503 ``unavailable``: the store refused or did not answer: nothing was recorded, and
  Alertmanager retries (a 5xx is what makes it retry);
- 500 ``error``: anything else (a bug, logged with its traceback); Alertmanager retries.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from typing import Protocol

from aiohttp import web

from netguard.errors import StoreUnavailableError
from netguard.notify.alertmanager import AmPayload, AmPayloadError, parse_body, summary
from netguard.notify.amintake import IntakeResult
from netguard.notify.config import AlertmanagerIntake

log = logging.getLogger(__name__)

PATH = "/alertmanager/webhook"
# Every outcome, so that the metric shows zeros before the first post.
OUTCOMES = ("accepted", "unrouted", "duplicate", "reminder", "invalid", "unauthorized",
            "too_large", "unavailable", "error")
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# A refusal is logged at most this often per outcome (a misconfigured sender retries
# forever; the counter still counts every one).
_LOG_EVERY = 60.0


class Intake(Protocol):
    """What the endpoint needs of :class:`~netguard.notify.amintake.AmIntake`."""

    async def receive(self, payload: AmPayload) -> IntakeResult: ...


def _text(status: int, text: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers={**_HEADERS, **headers})


class AmWebhook:
    """The ``POST /alertmanager/webhook`` route.

    Args:
        config: ``notifications.alertmanager``: credentials and the body limit.
        intake: Records and queues what arrives.
    """

    def __init__(self, config: AlertmanagerIntake, intake: Intake) -> None:
        self._config = config
        self._intake = intake
        self._token = config.token.get_secret_value().encode() if config.token else None
        basic = config.basic_auth
        self._basic = (basic.username.encode(), basic.password.get_secret_value().encode()) \
            if basic is not None else None
        self._logged: dict[str, float] = {}
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)

    def add_routes(self, app: web.Application) -> None:
        """Serve ``POST /alertmanager/webhook`` on ``app``."""
        app.router.add_post(PATH, self._post)

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and self._token is not None:
            return hmac.compare_digest(value.encode(), self._token)
        if scheme == "basic" and self._basic is not None:
            try:
                user, sep, password = base64.b64decode(value, validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
            # Both parts compared in full, without short-circuiting on the user name.
            user_ok = hmac.compare_digest(user, self._basic[0])
            pass_ok = hmac.compare_digest(password, self._basic[1])
            return bool(sep) and user_ok and pass_ok
        return False

    def _count(self, outcome: str, level: int, message: str, **extra: object) -> None:
        self.outcomes[outcome] += 1
        now = time.monotonic()
        if level <= logging.INFO or now - self._logged.get(outcome, float("-inf")) >= _LOG_EVERY:
            self._logged[outcome] = now
            log.log(level, message, extra={"outcome": outcome, **extra})

    async def _read(self, request: web.Request) -> bytes | None:
        """The body, or None when it is over the limit (read no further than that)."""
        limit = self._config.max_body_bytes
        if (request.content_length or 0) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.readany()
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)

    async def _post(self, request: web.Request) -> web.Response:
        peer = request.remote or "?"
        if not self._authorised(request):
            self._count("unauthorized", logging.WARNING, "Alertmanager webhook refused: "
                        "no or wrong credentials", peer=peer)
            return _text(401, "unauthorized", **{
                "WWW-Authenticate": 'Bearer realm="netguard"' if self._token is not None
                else 'Basic realm="netguard"'})
        body = await self._read(request)
        if body is None:
            self._count("too_large", logging.WARNING, "Alertmanager webhook refused: body "
                        "too large", peer=peer, limit=self._config.max_body_bytes)
            return _text(413, f"body larger than {self._config.max_body_bytes} bytes "
                              "(set max_alerts in the webhook_config, or raise "
                              "notifications.alertmanager.max_body_bytes)")
        try:
            payload = parse_body(body)
        except AmPayloadError as exc:
            self._count("invalid", logging.WARNING, "Alertmanager webhook refused: invalid "
                        "payload", peer=peer, problem=str(exc))
            return _text(400, f"invalid payload: {exc}")
        try:
            result = await self._intake.receive(payload)
        except StoreUnavailableError as exc:
            self._count("unavailable", logging.WARNING, "Alertmanager notification not "
                        "recorded: the store is unavailable; Alertmanager will retry",
                        peer=peer, error=str(exc)[:300])
            return _text(503, "store unavailable; retry", **{"Retry-After": "5"})
        except Exception:
            self.outcomes["error"] += 1
            log.exception("Alertmanager notification failed", extra=summary(payload))
            return _text(500, "internal error; retry")
        self._count(result.outcome, logging.INFO, "Alertmanager notification received",
                    receipt=result.receipt_id, messages=result.messages, **summary(payload))
        return web.json_response({"status": result.outcome, "receipt": result.receipt_id,
                                  "messages": result.messages}, headers=_HEADERS)


__all__ = ["OUTCOMES", "PATH", "AmWebhook", "Intake"]
