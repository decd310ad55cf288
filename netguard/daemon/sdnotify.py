"""The systemd notify protocol: readiness, watchdog pings, stopping and status lines.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace) and, with ``WatchdogSec=``, ``WATCHDOG_USEC``. A message is one
datagram of ``KEY=VALUE`` lines (see sd_notify(3)); that is all there is to it, so no
library is needed. Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op.

The watchdog pings come from a task on the daemon's event loop, so a loop stalled by
blocking code stops pinging and systemd kills and restarts the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from types import TracebackType

log = logging.getLogger(__name__)

# STATUS= is shown by `systemctl status`; keep it one short line.
_MAX_STATUS = 200


def watchdog_seconds(env: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout systemd asks for, or ``None`` when there is none for us.

    ``WATCHDOG_PID``, when set, names the process the watchdog is meant for; a child that
    inherited the environment must not ping on the parent's behalf.
    """
    owner = env.get("WATCHDOG_PID", "").strip()
    if owner and owner != str(pid):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def _socket_address(value: str) -> str | None:
    if value.startswith("@"):
        return "\0" + value[1:]  # the abstract namespace
    if value.startswith("/"):
        return value
    return None  # vsock and other forms are not used for services


class SystemdNotifier:
    """Sends sd_notify messages; an async context manager that owns the watchdog task.

    Args:
        socket_path: ``NOTIFY_SOCKET``'s value; ``None`` (or an unusable value) disables
            every message.
        watchdog: Seconds of ``WatchdogSec=``; pings go out every half of it while the
            context is entered. ``None``: no pings.

    Example::

        async with SystemdNotifier.from_env() as notifier:
            ...  # start up
            notifier.ready("serving 120 targets")
            ...
            notifier.stopping()
    """

    def __init__(self, socket_path: str | None, *, watchdog: float | None = None) -> None:
        self._address = _socket_address(socket_path) if socket_path else None
        self.watchdog = watchdog if self._address is not None else None
        self._sock: socket.socket | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._warned = False
        self.sent = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SystemdNotifier:
        """The notifier systemd's environment asks for (a no-op one outside systemd)."""
        environ = os.environ if env is None else env
        return cls(environ.get("NOTIFY_SOCKET") or None,
                   watchdog=watchdog_seconds(environ, os.getpid()))

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send one message of ``KEY=VALUE`` lines; returns whether it was sent.

        A failure is logged once and never raised: the daemon's work matters more than
        telling systemd about it (a missed READY shows as a start timeout in the journal).
        """
        if self._address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                # Never block the event loop on a full receive queue.
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(assignments).encode(), self._address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify systemd", extra={
                    "notify_socket": self._address.replace("\0", "@"), "error": str(exc)})
            return False
        self.sent += 1
        return True

    def status(self, text: str) -> bool:
        """``STATUS=text`` (shown by ``systemctl status``)."""
        return self.notify(f"STATUS={_one_line(text)}")

    def ready(self, status: str) -> bool:
        """``READY=1``: start-up finished, the daemon serves."""
        return self.notify("READY=1", f"STATUS={_one_line(status)}")

    def stopping(self, status: str = "shutting down") -> bool:
        """``STOPPING=1``: the graceful shutdown has begun."""
        return self.notify("STOPPING=1", f"STATUS={_one_line(status)}")

    async def _keep_alive(self, interval: float) -> None:
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def __aenter__(self) -> SystemdNotifier:
        if self.watchdog is not None:
            self._pinger = asyncio.create_task(self._keep_alive(self.watchdog / 2),
                                               name="netguard[systemd].watchdog")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        pinger, self._pinger = self._pinger, None
        if pinger is not None:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
        self.close()

    def close(self) -> None:
        """Close the socket (the next message opens it again)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_STATUS else line[:_MAX_STATUS - 1] + "…"
