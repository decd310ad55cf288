"""Configuration of the daemon process, its HTTP endpoint and its logging."""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from netguard.metrics.detail import DetailLevel, ExportDetail
from netguard.probes.config import split_address


def _check_listen(value: str) -> str:
    """Refuse a listen address the daemon could not bind, at load time (check-config)."""
    host, port = split_address(value)
    if ":" not in value or not host or not 0 <= port < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return value


class BasicAuth(BaseModel):
    """HTTP basic auth for ``/metrics``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1)
    password: SecretStr

    @field_validator("password")
    @classmethod
    def _password_given(cls, value: SecretStr) -> SecretStr:
        # An empty password (often an unset ${VAR:-}) would let anyone read /metrics.
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty (an empty password lets anyone in)")
        return value


class HttpTls(BaseModel):
    """TLS for the metrics endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """A TLS 1.2+ server context with the certificate chain and key loaded.

        Raises:
            ValueError: A file is missing, unreadable or not a matching PEM
                certificate and key; the message names both files and the reason.
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"cannot load the certificate or key (cert_file {self.cert_file}, "
                f"key_file {self.key_file}): {exc.strerror or exc}") from exc
        return context


class InterfaceSelection(BaseModel):
    """Which interfaces' series ``/metrics`` exports, by interface name (``re.search``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    include_regex: str | None = None
    exclude_regex: str | None = None

    @field_validator("include_regex", "exclude_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        # Refused at load (check-config names the option), not at the first scrape.
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


class MetricsDetail(BaseModel):
    """How much ``/metrics`` exports per target (the default exports everything)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # summary: per-target series only; interfaces: plus per-interface series;
    # full: plus per-ONU series.
    level: DetailLevel = "full"
    interfaces: InterfaceSelection = InterfaceSelection()

    def export(self) -> ExportDetail:
        """The renderers' selection, with the patterns compiled once."""
        include, exclude = self.interfaces.include_regex, self.interfaces.exclude_regex
        return ExportDetail(self.level,
                            None if include is None else re.compile(include),
                            None if exclude is None else re.compile(exclude))


class MetricsConfig(BaseModel):
    """The ``/metrics``, ``/healthz`` and ``/readyz`` endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    listen: str = "127.0.0.1:9108"
    basic_auth: BasicAuth | None = None
    tls: HttpTls | None = None
    detail: MetricsDetail = MetricsDetail()

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _check_listen(value)


class LoggingConfig(BaseModel):
    """Log format and level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # auto: human on a terminal, JSON otherwise (journald, log shippers).
    format: Literal["auto", "human", "json"] = "auto"


class DaemonConfig(BaseModel):
    """Process-wide timings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shutdown_timeout_seconds: float = Field(default=10.0, gt=0)
    poll_jitter_seconds: float = Field(default=2.0, ge=0)
    misfire_grace_seconds: float = Field(default=30.0, gt=0)
    max_concurrent_polls: int = Field(default=64, ge=1)
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    # Wall and monotonic clocks disagreeing by more than this between two sweeps is a
    # step (logged, counted; heartbeat baselines move with it). NTP slewing stays below.
    clock_step_threshold_seconds: float = Field(default=30.0, gt=0)
    trap_listen: str | None = None
    # Fault events waiting for the ticket store (read-only, full or unreachable): this
    # many in memory, then appended to the journal file, replayed in order. ``None``:
    # ``fault-events.journal`` next to the SQLite database, or in the working directory
    # (the systemd unit's StateDirectory) with PostgreSQL.
    fault_journal: Path | None = None
    fault_backlog_memory: int = Field(default=10_000, ge=1)
    fault_journal_max_events: int = Field(default=1_000_000, ge=1)

    @field_validator("trap_listen")
    @classmethod
    def _trap_listen(cls, value: str | None) -> str | None:
        return None if value is None else _check_listen(value)
