"""Building aiomqtt clients from :class:`MqttConfig` (TLS, credentials, session settings)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from netguard.errors import ConfigError
from netguard.iot.config import MqttConfig


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """An SSL context for the broker, or None without TLS.

    Raises:
        ConfigError: A CA, certificate or key file is missing or does not load; the
            message names the ``iot.mqtt.tls.*`` key and the path.
    """
    tls = config.tls
    if tls is None:
        return None
    for key, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file),
                      ("key_file", tls.key_file)):
        if path is not None and not path.is_file():
            raise _tls_error(key, path, "no such file")
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    except OSError as exc:  # ssl.SSLError is an OSError
        raise _tls_error("ca_file", tls.ca_file, _reason(exc)) from None
    if tls.cert_file is not None:
        try:
            ctx.load_cert_chain(str(tls.cert_file),
                                str(tls.key_file) if tls.key_file else None)
        except OSError as exc:
            key = "cert_file" if tls.key_file is None else "cert_file/key_file"
            raise _tls_error(key, tls.cert_file, _reason(exc)) from None
    if tls.insecure:
        ctx.check_hostname = False
    return ctx


def _tls_error(key: str, path: Path | None, reason: str) -> ConfigError:
    return ConfigError("iot.mqtt.tls", [f"iot.mqtt.tls.{key}: cannot load {path}: {reason}"])


def _reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    return exc.strerror or str(exc) or type(exc).__name__


def client_kwargs(config: MqttConfig, identifier: str, *, persistent: bool,
                  receive_maximum: int | None = None,
                  tls: ssl.SSLContext | None = None) -> dict[str, Any]:
    """Keyword arguments for ``aiomqtt.Client``.

    Args:
        persistent: Keep the session (and the broker's queue of QoS1 messages) across
            disconnects: MQTT 5 ``clean_start=False`` plus a SessionExpiryInterval, or
            3.1.1 ``clean_session=False``.
        receive_maximum: MQTT 5 Receive Maximum: how many unacknowledged QoS1 messages
            the broker may send us at once.
        tls: An SSL context built once by :func:`tls_context`; built here if not given.
    """
    kwargs: dict[str, Any] = {
        "hostname": config.host, "port": config.port, "identifier": identifier,
        "keepalive": config.keepalive_seconds,
        "tls_context": tls if tls is not None else tls_context(config),
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
