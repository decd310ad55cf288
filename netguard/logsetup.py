"""Structured logging: JSON for journald and shippers, human text on a terminal, no secrets.

Every secret value found in the settings is registered with :class:`SecretFilter`, which
masks it in any log record, as a last line of defence behind ``SecretStr``.

Under systemd (``JOURNAL_STREAM`` names the log stream), every line starts with its syslog
priority, ``<3>`` for an error, so that ``journalctl -p warning`` selects by level.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, SecretStr

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message", "asctime", "taskName"}
MASK = "***"


def _render(render: Callable[[object], str], value: object) -> str:
    try:
        return render(value)
    except Exception:
        return ""  # a broken __repr__ must not break logging; it shows no secret either


class SecretFilter(logging.Filter):
    """Replaces registered secret strings in every record's message and extra fields."""

    def __init__(self) -> None:
        super().__init__()
        self._pattern: re.Pattern[str] | None = None
        self._secrets: set[str] = set()

    def add(self, secrets: Iterable[str]) -> None:
        """Register more secret values (very short ones are ignored: they would mask noise)."""
        self._secrets.update(s for s in secrets if len(s) >= 4)
        if self._secrets:
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        """``text`` with every registered secret masked."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def _redact_object(self, value: object) -> str | None:
        """The redacted text of a non-string extra that shows a secret, else ``None``.

        Formatters print such extras with ``str()``; a dict of headers or an exception
        object can carry a secret inside, so both its ``repr()`` and ``str()`` are checked
        and the value is replaced by its redacted text (repr preferred).
        """
        assert self._pattern is not None
        for render in (repr, str):
            text = _render(render, value)
            if self._pattern.search(text):
                return self._pattern.sub(MASK, text)
        return None

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        record.msg = self.redact(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key in _STANDARD_ATTRS:
                continue
            if isinstance(value, str):
                setattr(record, key, self.redact(value))
            else:
                masked = self._redact_object(value)
                if masked is not None:
                    setattr(record, key, masked)
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        return True


SECRETS = SecretFilter()


def collect_secrets(model: BaseModel) -> list[str]:
    """Every ``SecretStr`` value inside a pydantic model, recursively."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(model)
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            payload["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL logger: message key=value ...`` for terminals."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items()
                          if k not in _STANDARD_ATTRS and not k.startswith("_"))
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info))
        return line


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: DEBUG 7, INFO 6, WARNING 4, ERROR 3,
    CRITICAL 2 (levels in between take the next lower one's)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """Prefixes every line of another formatter's output with ``<priority>``.

    journald reads the prefix of each line it receives on a stream (``SyslogLevelPrefix=``
    is on by default), so a multi-line record (a traceback in the human format) keeps its
    level on every line.
    """

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self._inner.format(record).split("\n"))


def writes_to_journal(stream: Any, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``stream`` is the journald stream systemd gave us.

    systemd sets ``JOURNAL_STREAM=<device>:<inode>`` for a service whose stdout or stderr
    is connected to the journal; the variable is inherited by children whose output goes
    elsewhere, so it counts only when it matches ``stream``'s own file.
    """
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        expected = (int(device), int(inode))
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        # io.UnsupportedOperation (a StringIO) is both an OSError and a ValueError.
        return False
    return (st.st_dev, st.st_ino) == expected


class _AlembicChatter(logging.Filter):
    """Drops Alembic's per-connection INFO lines; keeps "Running upgrade ..." and warnings."""

    _NOISE = ("setup plugin", "Context impl", "Will assume")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not str(record.msg).startswith(self._NOISE)


_ALEMBIC_FILTER = _AlembicChatter()


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None, *,
                      env: Mapping[str, str] | None = None) -> None:
    """Install one handler on the root logger with the secret filter attached.

    Args:
        level: Root log level.
        fmt: ``json``, ``human``, or ``auto`` (human when the stream is a terminal).
        stream: Where to write; defaults to stderr.
        env: Environment to read ``JOURNAL_STREAM`` from; defaults to ``os.environ``.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "human" if getattr(stream, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(stream)
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else HumanFormatter()
    if writes_to_journal(stream, env):
        formatter = JournalFormatter(formatter)
    handler.setFormatter(formatter)
    handler.addFilter(SECRETS)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Library chatter at INFO drowns the operator's view.
    for noisy in ("aiosqlite", "apscheduler.executors", "asyncio", "pysnmp", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # Alembic announces its plugins and dialect on every connection at INFO; the schema
    # changes it runs are worth a line, the rest is not.
    for name in ("alembic.runtime.plugins", "alembic.runtime.migration"):
        logger = logging.getLogger(name)
        if _ALEMBIC_FILTER not in logger.filters:
            logger.addFilter(_ALEMBIC_FILTER)
