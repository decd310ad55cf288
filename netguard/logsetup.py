"""Structured logging: JSON for journald and shippers, human text on a terminal, no secrets.

Every secret value found in the settings is registered with :class:`SecretFilter`, which
masks it in any log record, as a last line of defence behind ``SecretStr``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterable
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


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """Install one handler on the root logger with the secret filter attached.

    Args:
        level: Root log level.
        fmt: ``json``, ``human``, or ``auto`` (human when the stream is a terminal).
        stream: Where to write; defaults to stderr.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "human" if getattr(stream, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    handler.addFilter(SECRETS)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Library chatter at INFO drowns the operator's view.
    for noisy in ("aiosqlite", "apscheduler.executors", "asyncio", "pysnmp", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
