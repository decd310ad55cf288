"""Start a server process, wait until it serves, stop it by process id."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.wait import wait_until


class ServerProcess:
    """A child server process whose output goes to a log file.

    Args:
        argv: The command.
        log: Where stdout and stderr go (read it when the server fails to start).
        ready: A predicate that is true once the server serves.
        env: Extra environment variables.
    """

    def __init__(self, argv: Sequence[str], log: Path, ready: Callable[[], bool],
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.log = log
        self._ready = ready
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> ServerProcess:
        """Start and wait until ready; on failure the log is in the assertion message."""
        log_handle = self.log.open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=log_handle, stderr=subprocess.STDOUT,
                                     env=self._env, cwd=self._cwd, start_new_session=True)
        log_handle.close()
        try:
            wait_until(lambda: self._ready() or self.proc is None or self.proc.poll() is not None,
                       timeout=timeout, what=f"{self.argv[0]} to serve")
        except AssertionError:
            self.stop()
            raise AssertionError(f"{self.argv[0]} did not start:\n{self.tail()}") from None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.argv[0]} exited with {self.proc.returncode}:\n"
                                 f"{self.tail()}")
        return self

    def tail(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    def send_signal(self, sig: int) -> None:
        """Send a signal to the server."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Stop the server (SIGKILL after ``timeout``) and return its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        code = self.proc.returncode
        self.proc = None
        return code
