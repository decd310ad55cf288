"""Vendor and link-kind profiles, kept as YAML data in ``netguard/probes/profiles/``.

A profile lists metrics: a well-known ``name`` the decoder understands (``if_oper_status``,
``optical_rx_dbm``, ``ups_battery_status``, ...), a numeric ``oid``, whether it is a table
column (walked) or a scalar (fetched with GET), a ``scale`` and optional ``invalid`` raw
values meaning "no reading". Profiles ``include`` others; later metrics replace earlier
ones of the same name. A target picks a profile with ``profile:`` (default per kind) and
adds or overrides metrics with ``oids:``; names the decoder does not know are reported
under ``extra``. Adding a vendor needs a YAML file, no code.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from netguard.errors import ConfigError
from netguard.probes.config import ExtraOid, LinkKind, ProbesConfig, TargetConfig
from netguard.probes.state import ExportFamily

DEFAULT_PROFILES: Mapping[LinkKind, str] = {
    "fiber": "fiber-standard",
    "wireless": "wireless-ubiquiti",
    "private_line": "private-line",
    "cabin_5g": "cabin-ups",
    "pon": "pon-huawei",
}


# Prometheus metric names; families of netguard itself and of prometheus_client's runtime
# collectors keep their prefixes, so that a profile cannot shadow or collide with them.
METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
RESERVED_PREFIXES = ("netguard_", "process_", "python_", "__")


class MetricSpec(BaseModel):
    """One OID a profile reads.

    ``type`` is ``number`` or ``text`` for values netguard decodes or shows under
    ``extra``; ``gauge`` or ``counter`` also exports the value (a scalar) as its own
    Prometheus family named ``name``, with ``help`` as its HELP text.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=METRIC_NAME, max_length=200)
    oid: str = Field(pattern=r"^\.?[0-9]+(\.[0-9]+)+$")
    table: bool = False
    scale: float = 1.0
    type: Literal["number", "text", "gauge", "counter"] = "number"
    help: str | None = Field(default=None, min_length=1, max_length=500)
    invalid: tuple[int, ...] = ()

    @model_validator(mode="after")
    def _exportable(self) -> MetricSpec:
        if self.type not in ("gauge", "counter"):
            if self.help is not None:
                raise ValueError(f"{self.name}: help is for exported metrics "
                                 "(type gauge or counter)")
            return self
        problem = _export_problem(self)
        if problem:
            raise ValueError(f"{self.name}: {problem}")
        return self

    @property
    def exported(self) -> bool:
        """Exported as a Prometheus family (type ``gauge`` or ``counter``)."""
        return self.type in ("gauge", "counter")


def _export_problem(spec: MetricSpec) -> str | None:
    if spec.table:
        return "only scalars can be exported (table: false)"
    if not spec.help:
        return f"an exported {spec.type} needs a help text"
    if any(not c.isprintable() for c in spec.help):
        return "help must be one line of printable text"
    if spec.name.startswith(RESERVED_PREFIXES):
        return f"exported names may not start with {', '.join(RESERVED_PREFIXES)}"
    if spec.type == "counter" and not spec.name.endswith("_total"):
        return "a counter's name ends in _total"
    if spec.type == "gauge" and spec.name.endswith("_total"):
        return "_total is for counters; name the gauge without it"
    return None


class ProfileSpec(BaseModel):
    """A profile file as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    kinds: tuple[LinkKind, ...] = ()
    include: tuple[str, ...] = ()
    metrics: tuple[MetricSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Metric:
    """A resolved metric with its OID as a tuple of ints (cheap prefix checks)."""

    name: str
    oid: str
    oid_tuple: tuple[int, ...]
    table: bool
    scale: float
    text: bool
    invalid: frozenset[int]
    # The family this metric is exported as (``type: gauge`` or ``counter``), else None.
    export: ExportFamily | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """A resolved profile: includes expanded, target overrides applied."""

    name: str
    scalars: tuple[Metric, ...]
    columns: tuple[Metric, ...]
    by_name: Mapping[str, Metric]
    # The scalars that are exported as Prometheus families (polled with the other
    # scalars, in the same GET).
    exported: tuple[Metric, ...] = ()

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """Scalars then columns."""
        return self.scalars + self.columns

    def metric(self, name: str) -> Metric | None:
        """The metric of that name, if the profile reads it."""
        return self.by_name.get(name)


def _builtin_dir() -> Path:
    return Path(str(resources.files("netguard.probes") / "profiles"))


class ProfileLibrary:
    """Profiles found in one or more directories (the built-in one first).

    Args:
        extra_dirs: Directories with more ``*.yaml`` profiles; a file with the same
            ``name`` as a built-in one replaces it.

    Raises:
        ConfigError: A directory is missing or unreadable, a file is unreadable or not a
            valid profile, or two extra files define the same profile name. The error's
            ``source`` is the directory or file at fault.
    """

    def __init__(self, extra_dirs: Iterable[Path] = ()) -> None:
        self._specs: dict[str, ProfileSpec] = {}
        # Resolved profiles without target overrides, shared by every target using them:
        # one copy per target cost about 9 KB each (bench/RESULTS.md, memory).
        self._resolved: dict[str, Profile] = {}
        builtin = _builtin_dir()
        sources: dict[str, Path] = {}
        for directory in (builtin, *extra_dirs):
            for path in _profile_files(directory):
                spec = _read_spec(path)
                other = sources.get(spec.name)
                if other is not None and other.parent != builtin:
                    raise ConfigError(str(path), [
                        f"profile {spec.name!r} is already defined in {other}"])
                sources[spec.name] = path
                self._specs[spec.name] = spec
        self._families = _export_families(self._specs, sources)

    def names(self) -> list[str]:
        """All profile names."""
        return sorted(self._specs)

    def spec(self, name: str) -> ProfileSpec:
        """The profile as written.

        Raises:
            ConfigError: No profile has that name.
        """
        try:
            return self._specs[name]
        except KeyError:
            raise ConfigError("profiles", [
                f"unknown profile {name!r} (one of {', '.join(self.names())})"]) from None

    def resolve(self, name: str, overrides: Sequence[ExtraOid] = ()) -> Profile:
        """Expand includes and apply a target's ``oids:`` overrides.

        Without overrides the result is cached: the same immutable object for every
        target of that profile.
        """
        if not overrides:
            cached = self._resolved.get(name)
            if cached is None:
                cached = self._resolved[name] = self._resolve(name, ())
            return cached
        return self._resolve(name, overrides)

    def _resolve(self, name: str, overrides: Sequence[ExtraOid]) -> Profile:
        merged: dict[str, MetricSpec] = {}
        self._expand(name, merged, ())
        for extra in overrides:
            replaced = merged.get(extra.name)
            # A target moving an exported metric to another OID keeps it exported.
            keep = replaced is not None and replaced.exported and not extra.table
            merged[extra.name] = MetricSpec(
                name=_safe_name(extra.name), oid=extra.oid, table=extra.table,
                scale=extra.scale, type=replaced.type if keep and replaced else "number",
                help=replaced.help if keep and replaced else None)
        metrics = [_resolve_metric(m, self._families.get(m.name) if m.exported else None)
                   for m in merged.values()]
        return Profile(name=name,
                       scalars=tuple(m for m in metrics if not m.table),
                       columns=tuple(m for m in metrics if m.table),
                       by_name=MappingProxyType({m.name: m for m in metrics}),
                       exported=tuple(m for m in metrics if m.export is not None))

    def for_target(self, target: TargetConfig) -> Profile:
        """The resolved profile a target uses (its ``profile:`` or its kind's default)."""
        return self.resolve(target.profile or DEFAULT_PROFILES[target.kind], target.oids)

    def _expand(self, name: str, merged: dict[str, MetricSpec], seen: tuple[str, ...]) -> None:
        if name in seen:
            raise ConfigError("profiles", [f"include cycle {' -> '.join([*seen, name])}"])
        spec = self.spec(name)
        for inc in spec.include:
            self._expand(inc, merged, (*seen, name))
        for metric in spec.metrics:
            merged[metric.name] = metric


def target_profile_problems(library: ProfileLibrary,
                            targets: Sequence[TargetConfig]) -> list[str]:
    """What keeps targets from resolving their profiles, as ``targets[i].profile: ...`` lines.

    An unknown profile name, or a profile whose includes do not resolve.
    """
    problems: list[str] = []
    names = set(library.names())
    for i, target in enumerate(targets):
        if target.profile is not None and target.profile not in names:
            problems.append(f"targets[{i}].profile: unknown profile {target.profile!r} "
                            f"(one of {', '.join(library.names())})")
            continue
        try:
            library.for_target(target)
        except ConfigError as exc:
            problems.extend(f"targets[{i}].profile: {p}" for p in exc.problems)
    return problems


def _safe_name(name: str) -> str:
    safe = "".join(c if c.isascii() and c.isalnum() else "_" for c in name.lower())
    # A metric name may not start with a digit.
    return ("x" + safe if safe[:1].isdigit() else safe) or "extra"


def _resolve_metric(spec: MetricSpec, export: ExportFamily | None) -> Metric:
    oid = spec.oid.lstrip(".")
    return Metric(name=spec.name, oid=oid, oid_tuple=tuple(int(p) for p in oid.split(".")),
                  table=spec.table, scale=spec.scale, text=spec.type == "text",
                  invalid=frozenset(spec.invalid), export=export)


def _export_families(specs: Mapping[str, ProfileSpec],
                     sources: Mapping[str, Path]) -> dict[str, ExportFamily]:
    """One family per exported name; every profile must declare it alike.

    Raises:
        ConfigError: Two profiles export one name with a different type or help.
    """
    families: dict[str, ExportFamily] = {}
    declared_in: dict[str, str] = {}
    for profile in sorted(specs):
        for metric in specs[profile].metrics:
            if not metric.exported or metric.help is None:
                continue
            family = ExportFamily(metric.name, "counter" if metric.type == "counter"
                                  else "gauge", metric.help)
            first = families.setdefault(metric.name, family)
            if first != family:
                raise ConfigError(str(sources[profile]), [
                    f"metrics: {metric.name} is exported as a {family.type} with help "
                    f"{family.help!r} here, but as a {first.type} with help {first.help!r} "
                    f"in {sources[declared_in[metric.name]]}; one name, one declaration"])
            declared_in.setdefault(metric.name, profile)
    return families


def _profile_files(directory: Path) -> list[Path]:
    # iterdir, not glob: glob hides an unreadable directory as an empty one.
    try:
        return sorted(p for p in directory.iterdir() if p.suffix == ".yaml")
    except FileNotFoundError:
        raise ConfigError(str(directory), ["profile directory does not exist"]) from None
    except NotADirectoryError:
        raise ConfigError(str(directory), ["not a directory"]) from None
    except OSError as exc:
        raise ConfigError(str(directory), [
            f"cannot list profile directory: {exc.strerror or exc}"]) from exc


def _read_spec(path: Path) -> ProfileSpec:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return ProfileSpec.model_validate(data)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read profile: {exc.strerror or exc}"]) from exc
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), [f"not a valid YAML profile: {exc}"]) from exc
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: "
                    f"{str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()]
        raise ConfigError(str(path), problems) from None


@functools.cache
def default_library() -> ProfileLibrary:
    """The built-in profiles (loaded once)."""
    return ProfileLibrary()


def library_for(probes: ProbesConfig) -> ProfileLibrary:
    """The built-in profiles plus those in ``probes.profile_dirs``.

    Without extra directories this is the shared :func:`default_library`; with them the
    files are read again on each call, so a reload picks up edited profiles.

    Raises:
        ConfigError: See :class:`ProfileLibrary`.
    """
    if not probes.profile_dirs:
        return default_library()
    return ProfileLibrary(probes.profile_dirs)
