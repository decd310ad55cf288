"""Building aiomqtt clients from :class:`MqttConfig` (TLS, credentials, session settings)."""

from __future__ import annotations

import ssl
from typing import Any

from netguard.iot.config import MqttConfig


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """An SSL context for the broker, or None without TLS."""
    if config.tls is None:
        return None
    ctx = ssl.create_default_context(
        cafile=str(config.tls.ca_file) if config.tls.ca_file else None)
    if config.tls.cert_file is not None:
        ctx.load_cert_chain(str(config.tls.cert_file),
                            str(config.tls.key_file) if config.tls.key_file else None)
    if config.tls.insecure:
        ctx.check_hostname = False
    return ctx


def client_kwargs(config: MqttConfig, identifier: str, *, persistent: bool,
                  receive_maximum: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``aiomqtt.Client``.

    Args:
        persistent: Keep the session (and the broker's queue of QoS1 messages) across
            disconnects: MQTT 5 ``clean_start=False`` plus a SessionExpiryInterval, or
            3.1.1 ``clean_session=False``.
        receive_maximum: MQTT 5 Receive Maximum: how many unacknowledged QoS1 messages
            the broker may send us at once.
    """
    import aiomqtt
    import paho.mqtt.client as paho
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    kwargs: dict[str, Any] = {
        "hostname": config.host, "port": config.port, "identifier": identifier,
        "keepalive": config.keepalive_seconds, "tls_context": tls_context(config),
        "timeout": 10.0,
    }
    if config.username is not None:
        kwargs["username"] = config.username
        kwargs["password"] = (None if config.password is None
                              else config.password.get_secret_value())
    if config.tls is not None and config.tls.insecure:
        kwargs["tls_insecure"] = True
    if config.protocol == "5":
        kwargs["protocol"] = aiomqtt.ProtocolVersion.V5
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if persistent:
            props.SessionExpiryInterval = config.session_expiry_seconds
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        kwargs["properties"] = props
        kwargs["clean_start"] = False if persistent else paho.MQTT_CLEAN_START_FIRST_ONLY
    else:
        kwargs["protocol"] = aiomqtt.ProtocolVersion.V311
        kwargs["clean_session"] = not persistent
    return kwargs
