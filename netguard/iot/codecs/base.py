"""The codec registry and the checks every codec shares.

A codec turns (topic, payload bytes) into a :class:`DoorEvent` or raises
:class:`PayloadError`; it does no I/O. Each device family registers one :class:`Codec`
under the name that ``iot.mqtt.subscriptions[].format`` and ``sensors add --format`` use,
so adding a family is one :func:`register` call (see docs/iot.md).

Per-field leniency: a codec refuses a message whose *decisive* field (contact, state,
tamper, or the sensor's identity) is bad, but drops a bad *optional* field (battery,
link quality, voltage, temperature...) and names it in :attr:`DoorEvent.dropped`; the
service counts it as ``netguard_payload_field_errors_total{field}`` and stores the raw
message as received.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from netguard.errors import PayloadError
from netguard.iot.events import DoorEvent, check_sensor_id

Decoder = Callable[[str, bytes], DoorEvent]

# The values of ``netguard_payload_field_errors_total{field}``: a bounded set, so that a
# publisher cannot create series at will; any other field counts as ``other``.
FIELD_LABELS: frozenset[str] = frozenset({
    "battery", "linkquality", "voltage", "temperature", "device_temperature", "battery_low",
    "ts", "lux", "illumination", "tilt", "vibration", "error", "act_reasons", "rotation",
    "illuminance", "rssi", "other",
})


def field_label(name: str) -> str:
    """The metric label for a dropped field: its name when known, else ``other``."""
    return name if name in FIELD_LABELS else "other"


@dataclass(frozen=True, slots=True)
class Codec:
    """One payload format (device family).

    Attributes:
        name: The format name used in config and in the sensor registry.
        decode: ``(topic, payload) -> DoorEvent``; raises PayloadError.
        topics: The topic filters its devices publish on (for docs and examples).
        summary: One line for docs and ``--help``.
    """

    name: str
    decode: Decoder
    topics: tuple[str, ...]
    summary: str


_CODECS: dict[str, Codec] = {}


def register(codec: Codec) -> Codec:
    """Add a codec to the registry under ``codec.name``.

    Raises:
        ValueError: The name is taken (two families must not share a format name).
    """
    if codec.name in _CODECS:
        raise ValueError(f"payload format {codec.name!r} is already registered")
    _CODECS[codec.name] = codec
    return codec


def codec_names() -> tuple[str, ...]:
    """The registered format names, in registration order."""
    return tuple(_CODECS)


def get_codec(name: str) -> Codec:
    """The codec registered under ``name``.

    Raises:
        PayloadError: ``unsupported_topic``: no codec has that name.
    """
    codec = _CODECS.get(name)
    if codec is None:
        raise PayloadError("unsupported_topic", f"unknown payload format {name!r} "
                                                f"(known: {', '.join(_CODECS)})")
    return codec


def decode(fmt: str, topic: str, payload: bytes, *, max_bytes: int = 4096) -> DoorEvent:
    """Decode one message with the codec registered as ``fmt``.

    Args:
        fmt: A registered format name (``native``, ``zigbee2mqtt``, ``shelly``,
            ``shelly_rpc``).
        topic: The MQTT topic it arrived on.
        payload: The raw payload.
        max_bytes: Larger payloads are refused as ``oversized`` before parsing.

    Raises:
        PayloadError: The message cannot be decoded; ``reason`` says why.
    """
    codec = get_codec(fmt)
    if len(payload) > max_bytes:
        raise PayloadError("oversized", f"payload of {len(payload)} bytes exceeds {max_bytes}")
    return codec.decode(topic, payload)


# ---------------------------------------------------------------- shared checks


def short(value: Any) -> str:
    """A bounded repr for error details (a 4,000-digit number must not fill the log)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def json_value(payload: bytes) -> Any:
    """Strict JSON (no NaN/Infinity) from UTF-8 bytes, or PayloadError ``malformed``."""
    try:
        return json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError("malformed", f"not UTF-8 JSON: {exc}") from None


def json_object(payload: bytes) -> dict[str, Any]:
    """A JSON object from the payload, or PayloadError ``malformed``."""
    data = json_value(payload)
    if not isinstance(data, dict):
        raise PayloadError("malformed", f"expected a JSON object, got {type(data).__name__}")
    return data


def text(payload: bytes, what: str) -> str:
    """A UTF-8 text payload, stripped."""
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PayloadError("malformed", f"{what} payload is not UTF-8") from None


def is_number(value: Any) -> bool:
    """A finite JSON number (``true`` is not a number)."""
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value))


def number(value: Any, field: str) -> float:
    """A finite number, or PayloadError ``malformed``."""
    if not is_number(value):
        raise PayloadError("malformed", f"{field} must be a number, got {short(value)}")
    return float(value)


def valid_battery(value: Any) -> float | None:
    """A battery percentage 0-100, or None when ``value`` is not one."""
    return float(value) if is_number(value) and 0 <= value <= 100 else None


def address(value: str, what: str) -> str:
    """A bus address following the sensor-id pattern, or PayloadError ``malformed``."""
    try:
        return check_sensor_id(value, what)
    except ValueError as exc:
        raise PayloadError("malformed", str(exc)) from None


def device_time(value: Any) -> datetime:
    """Epoch milliseconds or ISO 8601 with an offset, as aware UTC; else ``malformed``."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise PayloadError("malformed", f"ts out of range: {short(value)}") from exc
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise PayloadError("malformed", f"ts is not ISO 8601: {short(value)}") from None
        if parsed.tzinfo is None:
            raise PayloadError("malformed", f"ts needs a UTC offset: {short(value)}")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is past datetime.max in UTC
            raise PayloadError("malformed", f"ts out of range: {short(value)}") from None
    raise PayloadError("malformed",
                       f"ts must be epoch milliseconds or ISO 8601, got {short(value)}")


def epoch_seconds(value: Any) -> datetime | None:
    """A Unix time in seconds (Shelly Gen2 ``ts``) as aware UTC, or None if not one."""
    if not is_number(value) or not 0 < value < 2**33:
        return None
    return datetime.fromtimestamp(float(value), UTC)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic-filter matching (``+`` one level, ``#`` the rest); ``$share/g/`` ignored."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels):
            return False
        if level not in ("+", t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)


def topic_address(fmt: str, topic: str) -> str | None:
    """The device a topic names, by the family's own topic layout (the level under its
    first ``+``): ``netguard/sensors/n1/event`` -> ``n1``, ``shellies/dw-1/online`` ->
    ``dw-1``. None for an unknown format, a topic outside the family's layout (a custom
    subscription), or a level that is not a valid address.

    A message that cannot be decoded is still a record of its household when its topic
    names a registered sensor: the dead letter is filed under it.
    """
    codec = _CODECS.get(fmt)
    if codec is None:
        return None
    levels = topic.split("/")
    for topic_filter in codec.topics:
        filter_levels = topic_filter.split("/")
        if "+" in filter_levels and topic_matches(topic_filter, topic):
            candidate = levels[filter_levels.index("+")]
            try:
                return check_sensor_id(candidate, "address")
            except ValueError:
                return None
    return None
