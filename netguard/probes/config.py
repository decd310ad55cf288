"""Configuration of SNMP targets: address, credentials, profile, thresholds."""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

LinkKind = Literal["fiber", "wireless", "private_line", "cabin_5g", "pon"]
LINK_KINDS: tuple[LinkKind, ...] = ("fiber", "wireless", "private_line", "cabin_5g", "pon")

AUTH_PROTOCOLS = ("none", "md5", "sha", "sha224", "sha256", "sha384", "sha512")
PRIV_PROTOCOLS = ("none", "des", "aes128", "aes192", "aes256")

TargetIdStr = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]

# Polling engines (transports), chosen by name; see netguard/probes/transport.py.
PollEngine = Literal["gufo", "pysnmp"]
POLL_ENGINES: tuple[PollEngine, ...] = ("gufo", "pysnmp")

_Frozen = TypeVar("_Frozen", bound=BaseModel)
# Equal frozen sub-models of targets, one instance each (see ``shared``): by type, field
# values and fields set; an entry goes when no target holds its model any more.
_SHARED: weakref.WeakValueDictionary[tuple[object, ...], BaseModel] = \
    weakref.WeakValueDictionary()


def shared(model: _Frozen) -> _Frozen:
    """One instance for all equal ``model``s (frozen models only: never mutated).

    Most targets of an estate have the same ``snmp:`` and no ``thresholds:``; pydantic
    builds a model for each, 0.9 KB a target (bench/RESULTS.md, issue 10 section 8).
    Which fields were set is part of the key: some settings read ``model_fields_set``.
    """
    key = (type(model), tuple(model.__dict__.values()), frozenset(model.model_fields_set))
    try:
        kept = _SHARED.get(key)
        if kept is None:
            _SHARED[key] = kept = model
    except TypeError:  # an unhashable field value: keep the model as it is
        return model
    return kept  # type: ignore[return-value]  # same key, same type


class SnmpConfig(BaseModel):
    """SNMP credentials for one target (v1, v2c or v3 USM)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal["1", "2c", "3"] = "2c"
    community: SecretStr | None = None
    user: str | None = None
    auth_protocol: str = "none"
    auth_key: SecretStr | None = None
    priv_protocol: str = "none"
    priv_key: SecretStr | None = None
    context_name: str = ""
    # Needed only to accept v3 traps from this agent (pysnmp drops them otherwise).
    engine_id: str | None = None
    max_repetitions: int = Field(default=25, ge=1, le=200)
    # Overrides ``probes.engine`` for this target (a v3 context needs ``pysnmp``).
    engine: PollEngine | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        # YAML reads `version: 3` as an int and `version: 2c` as a string.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(int(value))
        return value

    @field_validator("auth_protocol")
    @classmethod
    def _known_auth(cls, value: str) -> str:
        value = value.lower()
        if value not in AUTH_PROTOCOLS:
            raise ValueError(f"unknown protocol {value!r} (one of {', '.join(AUTH_PROTOCOLS)})")
        return value

    @field_validator("priv_protocol")
    @classmethod
    def _known_priv(cls, value: str) -> str:
        value = value.lower()
        if value not in PRIV_PROTOCOLS:
            raise ValueError(f"unknown protocol {value!r} (one of {', '.join(PRIV_PROTOCOLS)})")
        return value

    @field_validator("engine_id")
    @classmethod
    def _hex_engine_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.lower().removeprefix("0x").replace(":", "")
        try:
            bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"engine id {value!r} is not hexadecimal") from None
        return text

    @model_validator(mode="after")
    def _consistent(self) -> SnmpConfig:
        if self.version in ("1", "2c"):
            if self.community is None:
                raise ValueError(f"SNMPv{self.version} needs a community")
            return self
        if not self.user:
            raise ValueError("SNMPv3 needs a user")
        if self.auth_protocol != "none" and not self.auth_key:
            raise ValueError(f"auth_protocol {self.auth_protocol} needs an auth_key")
        if self.priv_protocol != "none":
            if self.auth_protocol == "none":
                raise ValueError("privacy (priv_protocol) needs authentication too")
            if not self.priv_key:
                raise ValueError(f"priv_protocol {self.priv_protocol} needs a priv_key")
        for name in ("auth_key", "priv_key"):
            key = getattr(self, name)
            if key is not None and len(key.get_secret_value()) < 8:
                # RFC 3414 requires at least 8 characters; agents reject shorter keys.
                raise ValueError(f"{name} must be at least 8 characters")
        return self


class ProbesConfig(BaseModel):
    """The ``probes:`` section: how targets are polled.

    Attributes:
        engine: The polling transport: ``gufo`` (gufo-snmp, the default) or ``pysnmp``.
            A target may override it with ``snmp.engine``; pysnmp is needed only for
            SNMPv3 context names (see docs/probes.md).
        max_open_sockets: Idle gufo-snmp sessions (one UDP socket each) kept open; the
            least recently used are closed beyond it. Polls in flight hold theirs too,
            so at most ``max_open_sockets + daemon.max_concurrent_polls`` are open.
        profile_dirs: Directories of extra vendor profiles (``*.yaml``), read after the
            built-in ones; a relative path is taken from the config file's directory.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: PollEngine = "gufo"
    max_open_sockets: int = Field(default=512, ge=1, le=60000)
    profile_dirs: tuple[Path, ...] = Field(default=(), max_length=64)

    @field_validator("profile_dirs")
    @classmethod
    def _from_config_dir(cls, value: tuple[Path, ...], info: ValidationInfo
                         ) -> tuple[Path, ...]:
        base = (info.context or {}).get("base_dir") if isinstance(info.context, dict) else None
        if base is None:
            return value
        return tuple(p if p.is_absolute() else Path(base) / p for p in value)

    @field_validator("engine", mode="before")
    @classmethod
    def _known_engine(cls, value: object) -> object:
        if isinstance(value, str) and value not in POLL_ENGINES:
            raise ValueError(f"unknown engine {value!r} (one of {', '.join(POLL_ENGINES)})")
        return value

    def engine_of(self, target: TargetConfig) -> PollEngine:
        """The engine that polls ``target`` (its own ``snmp.engine``, else this one)."""
        return target.snmp.engine or self.engine


def engine_problems(probes: ProbesConfig, targets: Sequence[TargetConfig]) -> list[str]:
    """What an engine cannot do for these targets, as ``targets[i].path: message`` lines.

    - gufo-snmp has no SNMPv3 context names: such a target needs ``snmp.engine: pysnmp``.
    - pysnmp keeps one USM table per engine keyed by user name and engine id, so targets
      that share a v3 user name with different keys overwrite each other's keys
      mid-poll (issue 14: about 23% of polls failed). That combination is refused.
    """
    problems: list[str] = []
    seen_keys: dict[str, tuple[int, tuple[object, ...]]] = {}
    for i, target in enumerate(targets):
        snmp = target.snmp
        engine = probes.engine_of(target)
        if engine == "gufo" and snmp.version == "3" and snmp.context_name:
            problems.append(
                f"targets[{i}].snmp.context_name: the gufo engine has no SNMPv3 context "
                "names; set snmp.engine: pysnmp on this target")
        if engine != "pysnmp" or snmp.version != "3" or snmp.user is None:
            continue
        keys = (snmp.auth_protocol, _secret(snmp.auth_key), snmp.priv_protocol,
                _secret(snmp.priv_key))
        first = seen_keys.setdefault(snmp.user, (i, keys))
        if first[1] != keys:
            problems.append(
                f"targets[{i}].snmp.user: SNMPv3 user {snmp.user!r} has other keys on "
                f"targets[{first[0]}] ({targets[first[0]].id}); the pysnmp engine mixes "
                "up keys shared under one user name, so poll these targets with the "
                "gufo engine")
    return problems


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


class Thresholds(BaseModel):
    """Raise/clear thresholds: a target's overrides, and the effective values.

    The one declaration of the threshold fields (issue 12): a target's ``thresholds:``
    section parses into this model, and the assessment reads the effective values from it
    too (``netguard.probes.assess.limits_for`` fills what the target did not set from its
    kind's defaults, which differ from the defaults below for a few kinds). Which fields a
    target set is ``model_fields_set``; writing ``null`` means "not set".

    Power values are in dBm, ratios in 0..1. Each bad condition is raised after
    ``raise_after`` consecutive bad polls and cleared after ``clear_after`` good ones,
    judged against the separate ``*_clear`` threshold (hysteresis).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rx_power_low_dbm: float = -25.0
    rx_power_low_clear_dbm: float = -24.0
    rx_power_down_dbm: float = -30.0
    signal_low_dbm: float = -75.0
    signal_low_clear_dbm: float = -72.0
    snr_low_db: float = 15.0
    snr_low_clear_db: float = 18.0
    utilisation_high_ratio: float = 0.9
    utilisation_high_clear_ratio: float = 0.8
    error_rate_high_per_s: float = 1.0
    error_rate_high_clear_per_s: float = 0.5
    battery_runtime_low_minutes: float = 15.0
    battery_runtime_low_clear_minutes: float = 20.0
    battery_charge_low_percent: float = 30.0
    battery_charge_low_clear_percent: float = 40.0
    onu_offline_ratio: float = 0.2
    onu_offline_clear_ratio: float = 0.1
    raise_after: int = Field(default=2, ge=1)
    clear_after: int = Field(default=2, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: object) -> object:
        # ``rx_power_low_dbm: null`` has always meant "the kind's default".
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    def __eq__(self, other: object) -> bool:
        # Which fields were set is part of the meaning: ``{}`` on a pon target keeps its
        # -27 dBm default, ``{rx_power_low_dbm: -25}`` does not (a reload must see that).
        if not isinstance(other, Thresholds):
            return NotImplemented
        return super().__eq__(other) and self.model_fields_set == other.model_fields_set

    def __hash__(self) -> int:
        return hash((tuple(self.__dict__.values()), frozenset(self.model_fields_set)))

    def overridden_by(self, overrides: Thresholds) -> Thresholds:
        """These thresholds with the fields ``overrides`` set replaced."""
        if not overrides.model_fields_set:
            return self
        return self.model_copy(update=overrides.model_dump(include=overrides.model_fields_set))

    @property
    def rx_thresholds_dbm(self) -> tuple[tuple[str, float], ...]:
        """The optical receive thresholds by level, as exported to Prometheus."""
        return _rx_thresholds(self.rx_power_low_dbm, self.rx_power_low_clear_dbm,
                              self.rx_power_down_dbm)


@lru_cache(maxsize=256)
def _rx_thresholds(low: float, low_clear: float, down: float
                   ) -> tuple[tuple[str, float], ...]:
    # Every status holds these; one tuple for equal thresholds instead of a new one per
    # poll (0.17 KB a target; bench/RESULTS.md, issue 10 section 8).
    return (("low", low), ("low_clear", low_clear), ("down", down))


class ExtraOid(BaseModel):
    """An OID a target adds to (or overrides in) its profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    oid: str = Field(pattern=r"^\.?[0-9]+(\.[0-9]+)*$")
    scale: float = 1.0
    table: bool = False


# Target labels become Prometheus label names on netguard_target_info, beside these: the
# target labels every series has, the per-target families' own labels (so that a join
# never overwrites one), and names Prometheus itself gives meaning.
RESERVED_LABELS = frozenset({
    "target", "kind", "site",
    "interface", "direction", "sensor", "level", "state", "status", "port", "onu",
    "job", "instance", "le", "quantile",
})
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
MAX_LABELS = 16
MAX_LABEL_NAME = 64
MAX_LABEL_VALUE = 256


def label_problems(labels: Mapping[str, str]) -> list[str]:
    """Why ``labels`` cannot be exported as Prometheus labels (empty when they can)."""
    problems: list[str] = []
    if len(labels) > MAX_LABELS:
        problems.append(f"at most {MAX_LABELS} labels per target, not {len(labels)}")
    for name, value in labels.items():
        if not LABEL_NAME.match(name) or len(name) > MAX_LABEL_NAME:
            problems.append(f"{name!r}: a label name is a letter or _, then letters, digits "
                            f"or _ (at most {MAX_LABEL_NAME} characters)")
        elif name.startswith("__"):
            problems.append(f"{name!r}: names starting with __ are reserved by Prometheus")
        elif name in RESERVED_LABELS:
            problems.append(f"{name!r}: reserved (one of {', '.join(sorted(RESERVED_LABELS))})")
        if not value:
            problems.append(f"{name!r}: the value is empty (Prometheus reads that as no label)")
        elif len(value) > MAX_LABEL_VALUE or not value.isprintable():
            problems.append(f"{name!r}: the value must be printable text of at most "
                            f"{MAX_LABEL_VALUE} characters")
    return problems


class TargetConfig(BaseModel):
    """One polled link or site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: TargetIdStr
    kind: LinkKind
    address: str
    # The tickets' site column holds 128 characters; a longer one would be refused there.
    site: str | None = Field(default=None, max_length=128)
    upstream: str | None = None
    # Checked against the profile library by ``netguard.config.Settings``, which knows
    # ``probes.profile_dirs``; this module does not import the profiles (no cycle).
    profile: str | None = None
    snmp: SnmpConfig = Field(
        default_factory=lambda: shared(SnmpConfig(community=SecretStr("public"))))
    interval_seconds: float = Field(default=60.0, gt=0)
    timeout_seconds: float = Field(default=2.0, gt=0)
    retries: int = Field(default=1, ge=0, le=10)
    thresholds: Thresholds = Field(default_factory=lambda: shared(Thresholds()))
    oids: list[ExtraOid] = Field(default_factory=list)
    interfaces: list[str] | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels", mode="before")
    @classmethod
    def _exportable_labels(cls, value: object) -> object:
        if isinstance(value, dict):
            # YAML reads `rack: 12` as a number; a label value is text either way.
            value = {k: str(v) if isinstance(v, int | float) and not isinstance(v, bool)
                     else v for k, v in value.items()}
            problems = label_problems({str(k): v for k, v in value.items()
                                       if isinstance(v, str)})
            if problems:
                raise ValueError("; ".join(problems))
        return value

    @field_validator("snmp", "thresholds")
    @classmethod
    def _shared(cls, value: _Frozen) -> _Frozen:
        return shared(value)

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: object) -> object:
        if isinstance(value, str) and value not in LINK_KINDS:
            raise ValueError(f"unknown kind {value!r} (one of {', '.join(LINK_KINDS)})")
        return value

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, port = split_address(value)
        if not host:
            raise ValueError(f"address {value!r} has no host")
        if not 0 < port < 65536:
            raise ValueError(f"address {value!r}: port out of range")
        return value

    @property
    def label_pairs(self) -> tuple[tuple[str, str], ...]:
        """The labels as sorted (name, value) pairs, as exported."""
        return tuple(sorted(self.labels.items()))

    @property
    def host(self) -> str:
        """The agent's host name or IP address."""
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        """The agent's UDP port (161 unless given)."""
        return split_address(self.address)[1]


def split_address(address: str) -> tuple[str, int]:
    """Split ``host[:port]`` (or ``[v6]:port``) into host and port; the port defaults to 161.

    Raises:
        ValueError: The port is not a number.
    """
    text = address.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") or "161"
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, "161"
    try:
        return host, int(port_text)
    except ValueError:
        raise ValueError(f"address {address!r}: port {port_text!r} is not a number") from None
