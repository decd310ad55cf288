"""Ticket and Alertmanager messages published by the MQTT notifier, on a real Mosquitto:
one topic level below the door alerts', so that door-alert subscribers never get them."""

from __future__ import annotations

import asyncio
import json

import aiomqtt

from netguard.iot.config import MqttConfig, MqttNotifierConfig
from netguard.iot.notifiers.base import Notification
from netguard.iot.notifiers.mqtt import MqttNotifier
from netguard.notify.config import NotificationsConfig
from netguard.notify.enqueue import RoutedMessage, notification_for
from tests.support.servers import Broker


def _door_alert() -> Notification:
    return Notification(alert_id=7, reason="raised", type="door_open", severity="critical",
                        community="riverside", household="h1", sensor="n1",
                        reasons=("opened",), count=1, first_seen="2026-03-05T02:00:00+00:00")


async def test_ticket_messages_go_under_their_subject_and_route(broker: Broker) -> None:
    route = NotificationsConfig.model_validate(
        {"routes": [{"name": "network-duty", "notifiers": ["bus"]}]}).routes[0]
    ticket = notification_for(route, RoutedMessage(
        subject="ticket", ident=12, reason="opened", severity="critical", category="fiber",
        text="### 【紧急】NG-000012 pl-east", first_seen="2026-03-05T02:00:00+00:00"))
    notifier = MqttNotifier(MqttNotifierConfig(name="bus", type="mqtt"),
                            MqttConfig(enabled=False, host=broker.host, port=broker.port))
    async with aiomqtt.Client(broker.host, broker.port, identifier="watch-doors") as doors, \
            aiomqtt.Client(broker.host, broker.port, identifier="watch-tickets") as tickets:
        await doors.subscribe("netguard/alerts/+", qos=1)
        await tickets.subscribe("netguard/alerts/ticket/+", qos=1)
        await notifier.send([ticket])
        await notifier.send([_door_alert()])
        async with asyncio.timeout(10):
            got_ticket = await anext(aiter(tickets.messages))
            # Published after the ticket: if the ticket had reached this subscriber, it
            # would have come first.
            got_door = await anext(aiter(doors.messages))
    assert str(got_ticket.topic) == "netguard/alerts/ticket/network-duty"
    body = json.loads(bytes(got_ticket.payload))  # type: ignore[arg-type]
    assert (body["subject"], body["alert_id"], body["text"]) == (
        "ticket", 12, "### 【紧急】NG-000012 pl-east")
    assert str(got_door.topic) == "netguard/alerts/riverside"
