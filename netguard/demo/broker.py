"""The demo's embedded MQTT broker (amqtt), so the demo needs no Mosquitto.

amqtt speaks MQTT 3.1.1 only and has known QoS1 loss with persistent sessions, so it is
fit for the demo and nothing else; production points netguard at Mosquitto or EMQX.
"""

from __future__ import annotations

import logging
import socket
from types import TracebackType
from typing import Any

from netguard.errors import BrokerError

log = logging.getLogger(__name__)


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """An in-process amqtt broker on a loopback port, as an async context manager.

    Args:
        host: Address to listen on.
        port: TCP port; ``None`` picks a free one.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port if port is not None else free_tcp_port(host)
        self._broker: Any = None

    @property
    def url(self) -> str:
        """``mqtt://host:port`` of the broker."""
        return f"mqtt://{self.host}:{self.port}"

    async def __aenter__(self) -> EmbeddedBroker:
        try:
            from amqtt.broker import Broker  # noqa: PLC0415  (amqtt is the demo extra only)
        except ImportError as exc:
            raise BrokerError(
                "the embedded demo broker needs amqtt: pip install 'netguard[demo]' "
                "(or pass --mqtt-url to use a running broker)") from exc
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}",
                                      "max_connections": 64}},
            # Only anonymous auth: the default plugin set also publishes $SYS topics and
            # logs every packet, which the demo does not want.
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        }
        # amqtt (and its state-machine library) log each connection at INFO.
        for chatty in ("amqtt", "transitions"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
        self._broker = Broker(config)
        try:
            await self._broker.start()
        except Exception as exc:
            raise BrokerError(f"embedded broker did not start on {self.host}:{self.port}: "
                              f"{exc}") from exc
        log.info("embedded MQTT broker listening on %s", self.url)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.shutdown()
