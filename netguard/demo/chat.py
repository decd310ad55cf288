"""What the demo does as the people in the chat would: tap an acknowledgement link, and
post an alert the way Alertmanager would.

Both go through netguard's own HTTP endpoint, as a phone or Alertmanager would reach it;
nothing here touches the daemon's services directly.
"""

from __future__ import annotations

import logging
from datetime import datetime

import aiohttp

from netguard.notify.alertmanager import sample_payload

log = logging.getLogger(__name__)

_TIMEOUT = aiohttp.ClientTimeout(total=10)
ALERTMANAGER_PATH = "/alertmanager/webhook"


async def tap_ack_link(url: str) -> str:
    """Open ``url`` (the confirmation page) and press its button, as staff would.

    Returns:
        One line for the live view: what the page answered.
    """
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as http:
        async with http.get(url) as page:
            shown = page.status
        async with http.post(url) as answer:
            status = answer.status
    if shown == 200 and status == 200:
        return "acknowledged from the chat link (page shown, button pressed)"
    return f"acknowledgement link answered {shown} then {status}"


async def post_alertmanager(base_url: str, token: str, now: datetime) -> str:
    """Post one firing alert to netguard's Alertmanager webhook, as Alertmanager would
    (the demo starts no Alertmanager; `config/alertmanager/alertmanager.yml` wires a real
    one the same way).

    Returns:
        One line for the live view: netguard's answer.
    """
    payload = sample_payload("firing", now=now, alerts=[
        {"target": "pon-riverside", "site": "riverside", "kind": "pon",
         "alertname": "NetguardPonOnuDrop", "severity": "major"}])
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as http, http.post(
            base_url.rstrip("/") + ALERTMANAGER_PATH, json=payload,
            headers={"Authorization": f"Bearer {token}"}) as answer:
        body = await answer.json(content_type=None)
    outcome = body.get("status", answer.status) if isinstance(body, dict) else answer.status
    return f"Prometheus alert NetguardPonOnuDrop posted to {ALERTMANAGER_PATH}: {outcome}"


__all__ = ["ALERTMANAGER_PATH", "post_alertmanager", "tap_ack_link"]
