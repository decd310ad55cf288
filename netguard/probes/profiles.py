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
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from netguard.errors import ConfigError
from netguard.probes.config import ExtraOid, LinkKind, ProbesConfig, TargetConfig

DEFAULT_PROFILES: Mapping[LinkKind, str] = {
    "fiber": "fiber-standard",
    "wireless": "wireless-ubiquiti",
    "private_line": "private-line",
    "cabin_5g": "cabin-ups",
    "pon": "pon-huawei",
}


class MetricSpec(BaseModel):
    """One OID a profile reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    oid: str = Field(pattern=r"^\.?[0-9]+(\.[0-9]+)+$")
    table: bool = False
    scale: float = 1.0
    type: Literal["number", "text"] = "number"
    invalid: tuple[int, ...] = ()


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


@dataclass(frozen=True, slots=True)
class Profile:
    """A resolved profile: includes expanded, target overrides applied."""

    name: str
    scalars: tuple[Metric, ...]
    columns: tuple[Metric, ...]
    by_name: Mapping[str, Metric]

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
            merged[extra.name] = MetricSpec(name=_safe_name(extra.name), oid=extra.oid,
                                            table=extra.table, scale=extra.scale)
        metrics = [_resolve_metric(m) for m in merged.values()]
        return Profile(name=name,
                       scalars=tuple(m for m in metrics if not m.table),
                       columns=tuple(m for m in metrics if m.table),
                       by_name=MappingProxyType({m.name: m for m in metrics}))

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
    return "".join(c if c.isalnum() else "_" for c in name.lower()) or "extra"


def _resolve_metric(spec: MetricSpec) -> Metric:
    oid = spec.oid.lstrip(".")
    return Metric(name=spec.name, oid=oid, oid_tuple=tuple(int(p) for p in oid.split(".")),
                  table=spec.table, scale=spec.scale, text=spec.type == "text",
                  invalid=frozenset(spec.invalid))


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
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
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
