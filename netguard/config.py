"""Typed configuration: load YAML once, expand secrets, validate, fail with a precise path.

Each area owns its section model (``netguard.probes.config``, ``netguard.tickets.config``,
``netguard.iot.config``, ``netguard.store.config``, ``netguard.daemon.config``,
``netguard.display``); this module assembles them into :class:`Settings` and turns
pydantic errors into ``path: message`` lines such as
``targets[2].snmp.auth_protocol: unknown protocol 'sha999'``.

Secrets may be written inline, as ``${ENV_VAR}`` (with ``${ENV_VAR:-default}``), or as a
sibling ``<key>_file`` naming a file whose stripped content is the value (for every
entry of a webhook's ``headers`` too: ``Authorization_file``; and ``ack_links.key_file``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from netguard.acklinks import AckLinksConfig
from netguard.cluster.config import ClusterConfig
from netguard.daemon.config import DaemonConfig, LoggingConfig, MetricsConfig
from netguard.display import DisplayConfig
from netguard.errors import ConfigError, ConfigNotFoundError, NotFoundError
from netguard.iot.config import NOTIFIER_TYPES, IotConfig
from netguard.notify.config import NotificationsConfig
from netguard.probes.config import ProbesConfig, TargetConfig, engine_problems
from netguard.probes.profiles import library_for, target_profile_problems
from netguard.store.config import StoreConfig
from netguard.tickets.config import TicketsConfig

EMBEDDED = "<embedded>"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Settings(BaseModel):
    """The whole validated configuration of one netguard instance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: list[TargetConfig] = Field(default_factory=list)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    tickets: TicketsConfig = Field(default_factory=TicketsConfig)
    iot: IotConfig = Field(default_factory=IotConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    ack_links: AckLinksConfig = Field(default_factory=AckLinksConfig)
    display: DisplayConfig = Field(default_factory=DisplayConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)

    @model_validator(mode="after")
    def _check_targets(self) -> Settings:
        seen: set[str] = set()
        for i, target in enumerate(self.targets):
            if target.id in seen:
                raise ValueError(f"targets[{i}].id: duplicate target id {target.id!r}")
            seen.add(target.id)
        by_id = {t.id: t for t in self.targets}
        for i, target in enumerate(self.targets):
            if target.upstream is None:
                continue
            if target.upstream not in by_id:
                raise ValueError(
                    f"targets[{i}].upstream: unknown target {target.upstream!r}"
                )
            # Walk the chain; a cycle would make root-cause grouping loop forever.
            chain = [target.id]
            node: str | None = target.upstream
            while node is not None:
                if node in chain:
                    raise ValueError(
                        f"targets[{i}].upstream: dependency cycle {' -> '.join([*chain, node])}"
                    )
                chain.append(node)
                node = by_id[node].upstream
        unknown = self.notifications.unknown_notifiers({n.name for n in self.iot.notifiers})
        if unknown:
            raise ValueError("; ".join(unknown))
        if self.notifications.alertmanager.enabled and not self.metrics.enabled:
            raise ValueError("notifications.alertmanager.enabled: the webhook is served by "
                             "the metrics endpoint; set metrics.enabled")
        if self.ack_links.enabled and not self.metrics.enabled:
            raise ValueError("ack_links.enabled: the links are served by the metrics "
                             "endpoint; set metrics.enabled")
        problems = engine_problems(self.probes, self.targets)
        if problems:
            raise ValueError("; ".join(problems))
        if self.cluster.enabled and not self.store.sqlalchemy_url().startswith("postgresql"):
            raise ValueError("cluster.enabled: scale-out needs a PostgreSQL store (store.url: "
                             "postgresql://...); a SQLite file cannot be shared by several "
                             "instances. Remove the cluster section or move to PostgreSQL")
        return self

    @model_validator(mode="after")
    def _check_profiles(self) -> Settings:
        try:
            library = library_for(self.probes)
        except ConfigError as exc:
            raise ValueError("; ".join(f"probes.profile_dirs: {exc.source}: {p}"
                                       for p in exc.problems)) from None
        problems = target_profile_problems(library, self.targets)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def target(self, target_id: str) -> TargetConfig:
        """Return the target with this id.

        Raises:
            NotFoundError: No target has that id.
        """
        for target in self.targets:
            if target.id == target_id:
                return target
        raise NotFoundError("target", target_id)


CONFIG_ENV = "NETGUARD_CONFIG"
"""The environment variable naming the config file when ``--config`` is not given."""
DEFAULT_CONFIG_FILES: tuple[Path, ...] = (Path("netguard.yaml"),
                                          Path("/etc/netguard/netguard.yaml"))
"""Where netguard looks, in order, when neither ``--config`` nor ``NETGUARD_CONFIG`` is given.

A relative entry is taken in the working directory."""


@dataclass(frozen=True, slots=True)
class ConfigLocation:
    """The config file chosen by :func:`find_config`, and how it was chosen.

    Attributes:
        path: The file (it may not exist when it was given explicitly; loading then
            fails with the file's name).
        found_by: ``--config``, ``NETGUARD_CONFIG``, or ``default`` for a found default.
    """

    path: Path
    found_by: str

    def describe(self) -> str:
        """One line for the operator: ``config: /etc/netguard/netguard.yaml (default)``."""
        return f"config: {self.path} (from {self.found_by})"


def find_config(given: str | os.PathLike[str] | None, *, env: Mapping[str, str] | None = None,
                defaults: Sequence[Path] = DEFAULT_CONFIG_FILES,
                cwd: Path | None = None) -> ConfigLocation:
    """Choose the config file: ``given``, else ``$NETGUARD_CONFIG``, else the first default
    file that exists (``./netguard.yaml``, then ``/etc/netguard/netguard.yaml``).

    There is deliberately no fallback to built-in defaults: a command run from the wrong
    directory would otherwise create or read a ``netguard.db`` there and look empty.

    Args:
        given: The ``--config`` value, if any.
        env: Environment to read ``NETGUARD_CONFIG`` from; defaults to ``os.environ``.
        defaults: The files to look for, in order.
        cwd: Directory for relative defaults; defaults to the working directory.

    Raises:
        ConfigNotFoundError: Nothing given and no default file exists; the error lists
            every place searched.
    """
    if given is not None:
        return ConfigLocation(Path(given), "--config")
    environ = os.environ if env is None else env
    named = environ.get(CONFIG_ENV, "").strip()
    if named:
        return ConfigLocation(Path(named), CONFIG_ENV)
    base = Path.cwd() if cwd is None else cwd
    searched = ["--config (not given)", f"${CONFIG_ENV} (not set)"]
    for candidate in defaults:
        path = candidate if candidate.is_absolute() else base / candidate
        if path.is_file():
            return ConfigLocation(path, "default")
        searched.append(f"{path} (no such file)")
    raise ConfigNotFoundError(searched)


# libyaml's parser under the safe constructor when PyYAML was built with it: the pure-Python
# scanner makes a token, an event and a node object per scalar, and at 10,000 targets the
# allocator kept about 35 MB more after loading (bench/RESULTS.md, issue 10 section 6).
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_settings(path: str | os.PathLike[str] | None, *, env: Mapping[str, str] | None = None
                  ) -> Settings:
    """Load and validate a configuration file.

    Args:
        path: The YAML file. ``None`` gives the embedded defaults (an empty estate).
        env: Environment for ``${VAR}`` expansion; defaults to ``os.environ``.

    Returns:
        The validated settings.

    Raises:
        ConfigError: The file is missing, is not YAML, or does not validate. The error
            lists every problem with its path inside the file.
    """
    if path is None:
        return settings_from_data({}, source=EMBEDDED, env=env)
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror or exc}"]) from exc
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}not valid YAML: {problem}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["<root>: expected a mapping of sections"])
    return settings_from_data(data, source=source, env=env, base_dir=Path(path).parent)


def settings_from_data(
    data: Mapping[str, Any],
    *,
    source: str = EMBEDDED,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Settings:
    """Validate an already-parsed configuration mapping (see :func:`load_settings`)."""
    problems: list[str] = []
    resolved = _resolve_secrets(data, "", env if env is not None else os.environ,
                                base_dir or Path.cwd(), problems)
    if problems:
        raise ConfigError(source, problems)
    try:
        # The context resolves relative paths (probes.profile_dirs) against the file's place.
        return Settings.model_validate(resolved,
                                       context={"base_dir": base_dir or Path.cwd()})
    except ValidationError as exc:
        raise ConfigError(source, _format_errors(exc)) from None


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def _resolve_secrets(node: Any, path: str, env: Mapping[str, str], base_dir: Path,
                     problems: list[str], *, all_secret: bool = False) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            key_s = str(key)
            here = _join(path, key_s)
            if key_s.endswith("_file") and len(key_s) > 5 and (
                    all_secret or key_s[:-5] in _FILE_SECRET_KEYS
                    or _join(path, key_s[:-5]) in _FILE_SECRET_PATHS):
                target_key = key_s[:-5]
                if target_key in node:
                    problems.append(f"{here}: give either {target_key} or {key_s}, not both")
                    continue
                file_path = Path(str(_resolve_secrets(value, here, env, base_dir, problems)))
                if not file_path.is_absolute():
                    file_path = base_dir / file_path
                try:
                    out[target_key] = file_path.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    problems.append(f"{here}: cannot read secret file {str(file_path)!r}: "
                                    f"{exc.strerror or exc}")
                continue
            out[key_s] = _resolve_secrets(value, here, env, base_dir, problems,
                                          all_secret=key_s in _SECRET_MAPPINGS)
        return out
    if isinstance(node, list):
        return [_resolve_secrets(v, _join(path, i), env, base_dir, problems)
                for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""
        return _ENV_REF.sub(substitute, node)
    return node


# Keys that may be given as ``<key>_file``. Kept explicit so that ordinary path options
# such as ``ca_file`` are never mistaken for secrets.
_FILE_SECRET_KEYS = frozenset({
    "community", "auth_key", "priv_key", "password", "secret", "token", "url", "audit_key",
})
# Secrets whose key is too common to be one everywhere (``tls.key_file`` is a path).
_FILE_SECRET_PATHS = frozenset({"ack_links.key"})
# Mappings whose every value is a secret: inside them, any ``<name>_file`` key reads the
# value of ``<name>`` from a file (``headers: {Authorization_file: /run/credentials/x}``).
_SECRET_MAPPINGS = frozenset({"headers"})


def _format_errors(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        # The notifier union puts the chosen ``type`` into the path
        # (iot.notifiers[2].webhook.url); users wrote iot.notifiers[2].url.
        if len(loc) > 3 and loc[:2] == ["iot", "notifiers"] and loc[3] in NOTIFIER_TYPES:
            del loc[3]
        path = ""
        for part in loc:
            path = _join(path, part)
        message = str(err["msg"])
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = _join(path, "type")
            ctx = err.get("ctx") or {}
            known = str(ctx.get("expected_tags", ", ".join(NOTIFIER_TYPES)))
            message = (f"unknown type {ctx['tag']!r} (known: {known})" if "tag" in ctx
                       else f"required (one of: {known})")
        for prefix in ("Value error, ", "Assertion failed, "):
            if message.startswith(prefix):
                message = message[len(prefix):]
        if err["type"] == "extra_forbidden":
            message = "unknown option"
        # Model-level validators already put the path in the message.
        if not path or message.startswith(("targets[", "iot.", "tickets.", "display.",
                                                  "cluster.")):
            lines.append(message)
        else:
            lines.append(f"{path}: {message}")
    return lines
