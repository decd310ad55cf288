"""Configuration of the MQTT intake, door-sensor rules and alert delivery."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from netguard.iot.codecs import codec_names
from netguard.names import check_name


def _known_format(value: str) -> str:
    if value not in codec_names():
        raise ValueError(f"unknown payload format {value!r}; use one of "
                         f"{', '.join(codec_names())}")
    return value


# A registered codec's name (netguard.iot.codecs): a new device family needs no edit here.
PayloadFormat = Annotated[str, AfterValidator(_known_format)]

# RFC 9110 token characters: a header name outside them is refused by any HTTP stack.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


def _topic_prefix_problem(value: str) -> str | None:
    # Every alert is published under it: a wildcard would fail every send.
    if not value or "#" in value or "+" in value or value.startswith("/") \
            or value.endswith("/") or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return ("must be a topic without wildcards (# +), control characters "
                f"or a leading/trailing '/', got {value!r}")
    return None


class TlsConfig(BaseModel):
    """TLS towards the broker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Only for test brokers with self-made certificates; never in production.
    insecure: bool = False


class Subscription(BaseModel):
    """One topic filter and the payload format expected on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    format: PayloadFormat = "native"
    qos: Literal[0, 1, 2] = 1


def _default_subscriptions() -> list[Subscription]:
    return [
        Subscription(topic="netguard/sensors/+/event", format="native"),
        Subscription(topic="zigbee2mqtt/+", format="zigbee2mqtt"),
        Subscription(topic="zigbee2mqtt/+/availability", format="zigbee2mqtt"),
        Subscription(topic="shellies/+/sensor/+", format="shelly"),
        Subscription(topic="shellies/+/online", format="shelly"),
    ]


class MqttConfig(BaseModel):
    """Broker connection and subscriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=1883, gt=0, lt=65536)
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsConfig | None = None
    # Stable id: with a persistent session the broker queues QoS1 messages while we are down.
    client_id: str = "netguard"
    protocol: Literal["3.1.1", "5"] = "5"
    session_expiry_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    keepalive_seconds: int = Field(default=30, ge=5)
    shared_group: str | None = None
    subscriptions: list[Subscription] = Field(default_factory=_default_subscriptions)
    max_payload_bytes: int = Field(default=4096, gt=0)
    reconnect_min_seconds: float = Field(default=0.5, gt=0)
    reconnect_max_seconds: float = Field(default=30.0, gt=0)
    alert_topic_prefix: str = "netguard/alerts"
    # MQTT 5 Receive Maximum: QoS1 messages the broker may have in flight towards us.
    receive_maximum: int = Field(default=1000, ge=1, le=65535)

    @field_validator("alert_topic_prefix")
    @classmethod
    def _publishable_prefix(cls, value: str) -> str:
        problem = _topic_prefix_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class NotifierConfigBase(BaseModel):
    """Options every delivery channel has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    rate_per_minute: int = Field(default=20, ge=1)
    # Bounds each send; the outbox gives up on a send a little after it.
    timeout_seconds: float = Field(default=5.0, gt=0, le=300)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "notifier name")


class UrlNotifierConfig(NotifierConfigBase):
    """A channel that POSTs to a URL."""

    # Robot and webhook URLs embed their access keys, so they are secrets.
    url: SecretStr

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        # The value is a secret: the messages describe it and never echo it.
        text = value.get_secret_value()
        if not text.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
            raise ValueError("must not contain spaces or control characters")
        if len(text) > 2048:
            raise ValueError("must be at most 2048 characters")
        return value


class WebhookNotifierConfig(UrlNotifierConfig):
    """A generic JSON webhook."""

    type: Literal["webhook"]
    # Headers usually carry tokens (Authorization), so every value is a secret:
    # masked in logs, and ``<Header>_file`` reads a value from a file.
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key, secret in value.items():
            if not _HEADER_NAME.match(key):
                raise ValueError(f"header name {key!r} is not a valid HTTP header name")
            # CR/LF would split the request (header injection); never echo the value.
            if any(c in secret.get_secret_value() for c in "\r\n\0"):
                raise ValueError(f"header {key!r}: the value contains a line break or NUL")
        return value


class WecomNotifierConfig(UrlNotifierConfig):
    """A WeCom (企业微信) group robot; the route's recipients are @-mentioned."""

    type: Literal["wecom"]
    # markdown mentions recipients by WeCom user id only; text (plain, at most 2048
    # bytes) also mentions by mobile the recipients without a user id.
    msgtype: Literal["markdown", "text"] = "markdown"


class DingtalkNotifierConfig(UrlNotifierConfig):
    """A DingTalk (钉钉) custom robot; ``secret`` turns on signed mode."""

    type: Literal["dingtalk"]
    secret: SecretStr | None = None

    @field_validator("secret")
    @classmethod
    def _non_empty_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty secret (an unset ``${VAR:-}``) would sign every message wrongly.
        if value is not None and not value.get_secret_value():
            raise ValueError("must not be empty (leave it out for an unsigned robot)")
        return value


class MqttNotifierConfig(NotifierConfigBase):
    """Publishes alerts to the intake's broker."""

    type: Literal["mqtt"]
    # None publishes under ``iot.mqtt.alert_topic_prefix``.
    topic_prefix: str | None = None

    @field_validator("topic_prefix")
    @classmethod
    def _publishable_prefix(cls, value: str | None) -> str | None:
        problem = None if value is None else _topic_prefix_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class ConsoleNotifierConfig(NotifierConfigBase):
    """Logs alerts (the demo, and sites without a chat robot)."""

    type: Literal["console"]


# One delivery channel; ``type`` picks the model, so each type validates its own fields
# and an error names them (``iot.notifiers[2].url: ...``).
NotifierConfig = Annotated[
    WebhookNotifierConfig | WecomNotifierConfig | DingtalkNotifierConfig
    | MqttNotifierConfig | ConsoleNotifierConfig,
    Field(discriminator="type"),
]
# The ``type`` values, in the order the docs list them.
NOTIFIER_TYPES: tuple[str, ...] = ("webhook", "wecom", "dingtalk", "mqtt", "console")


# A mobile number in mainland China, as DingTalk's atMobiles and WeCom's
# mentioned_mobile_list take it.
_MOBILE = re.compile(r"1[0-9]{10}\Z")
# WeCom and DingTalk user ids: letters, digits and a few separators, never markup that
# could break out of ``<@...>`` or the message text.
_MENTION_ID = re.compile(r"[A-Za-z0-9_.@\-]{1,64}\Z")


class Recipient(BaseModel):
    """One person a route's messages mention, with an identifier per robot.

    WeCom mentions ``wecom`` (a user id), else nobody in markdown messages (the text
    format can mention ``mobile``); DingTalk mentions ``dingtalk_user``, else ``mobile``.
    A plain string in config is a mobile (the old form).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, max_length=64)
    wecom: str | None = None
    dingtalk_user: str | None = None
    mobile: str | None = None

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("must not contain control characters")
        return value

    @field_validator("wecom", "dingtalk_user")
    @classmethod
    def _mention_id(cls, value: str | None) -> str | None:
        if value is not None and not _MENTION_ID.match(value):
            raise ValueError(f"{value[:70]!r} is not a user id (1-64 letters, digits or "
                             "_ . @ -)")
        return value

    @field_validator("mobile")
    @classmethod
    def _mobile(cls, value: str | None) -> str | None:
        if value is not None and not _MOBILE.match(value):
            raise ValueError(f"{value[:70]!r} is not a mobile number (11 digits starting "
                             "with 1)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _plain_mobile(cls, value: object) -> object:
        if isinstance(value, str):
            if not _MOBILE.match(value):
                raise ValueError(
                    f"{value[:70]!r}: a plain recipient is a mobile number (11 digits "
                    "starting with 1); write {name: ..., wecom: ..., dingtalk_user: ..., "
                    "mobile: ...} for anything else")
            return {"mobile": value}
        return value

    @model_validator(mode="after")
    def _someone(self) -> Recipient:
        if not (self.name or self.wecom or self.dingtalk_user or self.mobile):
            raise ValueError("give at least one of name, wecom, dingtalk_user, mobile")
        return self

    def label(self) -> str:
        """How the person is named in records and webhooks."""
        return self.name or self.mobile or self.wecom or self.dingtalk_user or ""


class CommunityRoute(BaseModel):
    """Which notifiers (and which staff) a community's alerts go to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # ``*`` is the route for communities without their own.
    community: str
    notifiers: list[str]
    # Staff @-mentioned in the robots' messages (see :class:`Recipient`).
    recipients: list[Recipient] = Field(default_factory=list)
    # Also send "sensor back online after 3 h 12 min" when an offline alert clears
    # because the sensor is heard again.
    notify_recovery: bool = False

    @field_validator("community")
    @classmethod
    def _community(cls, value: str) -> str:
        return value if value == "*" else check_name(value, "community")


class DeviceRule(BaseModel):
    """How the rules treat a device model (an address pattern) or one sensor.

    ``sleeping: true`` is for battery devices that drop off the bus between wake-ups
    (the Shelly Door/Window 2): their last will (``online false``) then fires on every
    sleep, so it is recorded but raises no offline alert; offline comes from the
    heartbeat timeout instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A shell-style pattern on the bus address (``shellydw2-*`` is a model; an exact
    # address is one device) ...
    address: str | None = Field(default=None, min_length=1, max_length=128)
    # ... or one registered sensor id.
    sensor: str | None = None
    # Only messages in this payload format (any when None).
    format: PayloadFormat | None = None
    sleeping: bool = False
    # Silence after which the device is offline, instead of the rules' global
    # heartbeat_timeout_seconds: a sleeping device that wakes every 12 h needs more than a
    # door sensor that reports every minute (Zigbee2MQTT's availability does the same).
    heartbeat_timeout_seconds: float | None = Field(default=None, gt=0)

    @field_validator("sensor")
    @classmethod
    def _sensor(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "sensor id")

    @model_validator(mode="after")
    def _one_selector(self) -> DeviceRule:
        if (self.address is None) == (self.sensor is None):
            raise ValueError("give address (a pattern) or sensor (an id), exactly one")
        return self

    def matches(self, fmt: str, address: str, sensor_id: str) -> bool:
        """True when this rule covers the sensor (format, bus address, sensor id)."""
        if self.format is not None and self.format != fmt:
            return False
        if self.sensor is not None:
            return self.sensor == sensor_id
        return self.address is not None and fnmatch.fnmatchcase(address, self.address)


class RulesConfig(BaseModel):
    """Door-sensor alert rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    heartbeat_timeout_seconds: float = Field(default=3600.0, gt=0)
    battery_low_percent: float = Field(default=20.0, ge=0, le=100)
    battery_clear_percent: float = Field(default=30.0, ge=0, le=100)
    renotify_minutes: list[float] = Field(default_factory=lambda: [5.0, 15.0, 30.0])
    # A door that opens again while its alert is unacknowledged gets a "door opened
    # again" message, at most one per sensor per this many seconds; the openings in
    # between are folded into the next message.
    min_repeat_interval: float = Field(default=120.0, ge=0)

    # Per model or per sensor; the first rule that matches applies.
    devices: list[DeviceRule] = Field(default_factory=list)

    def _device(self, fmt: str, address: str, sensor_id: str) -> DeviceRule | None:
        return next((r for r in self.devices if r.matches(fmt, address, sensor_id)), None)

    def sleeping(self, fmt: str, address: str, sensor_id: str) -> bool:
        """True when the sensor is a sleeping device (see :class:`DeviceRule`)."""
        rule = self._device(fmt, address, sensor_id)
        return rule is not None and rule.sleeping

    def heartbeat_timeout(self, fmt: str, address: str, sensor_id: str) -> float:
        """Seconds of silence after which this sensor is offline: its device rule's
        ``heartbeat_timeout_seconds`` when the first matching rule sets one, else
        ``heartbeat_timeout_seconds``."""
        rule = self._device(fmt, address, sensor_id)
        if rule is not None and rule.heartbeat_timeout_seconds is not None:
            return rule.heartbeat_timeout_seconds
        return self.heartbeat_timeout_seconds


class AuditAnchorConfig(BaseModel):
    """Where and how often the event log's chain heads are anchored outside the database
    (see ``netguard.iot.anchor``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # An append-only JSON-lines file the database account cannot write; None keeps only
    # the journal line and the metric (and start-up cannot check the heads).
    file: Path | None = None
    interval_seconds: float = Field(default=60.0, gt=0)


class IotConfig(BaseModel):
    """Everything about door sensors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mqtt: MqttConfig = Field(default_factory=lambda: MqttConfig(enabled=False))
    rules: RulesConfig = Field(default_factory=RulesConfig)
    notifiers: list[NotifierConfig] = Field(default_factory=list)
    routes: list[CommunityRoute] = Field(default_factory=list)
    retention_days: float = Field(default=180.0, gt=0)
    outbox_max_attempts: int = Field(default=50, ge=1)
    outbox_backoff_min_seconds: float = Field(default=1.0, gt=0)
    outbox_backoff_max_seconds: float = Field(default=60.0, gt=0)
    # Alerts that go into one robot message when a channel is at its rate limit.
    outbox_batch_max: int = Field(default=20, ge=1)
    # Sends in flight at once across all channels (each channel has at most one), so a
    # hung receiver holds one slot, not the whole outbox.
    outbox_max_concurrent_sends: int = Field(default=16, ge=1, le=1024)
    # Optional HMAC key for the event log's hash chain: without it anyone with write
    # access to the database could recompute the chain after forging a row.
    audit_key: SecretStr | None = None
    audit_anchor: AuditAnchorConfig = Field(default_factory=AuditAnchorConfig)
    # Messages committed (and then acknowledged) together; bounds unacknowledged ones.
    intake_batch_max: int = Field(default=500, ge=1)
    # Bytes of each raw payload kept in the event log (its full size and SHA-256 are kept
    # too): any client allowed to publish could otherwise fill the disk with dead letters.
    raw_keep_bytes: int = Field(default=4096, ge=0)
    # A device timestamp is used as the event's time when it is at most this far behind
    # the first receipt (a sensor's queue, a broker outage) ...
    device_time_max_delay_seconds: float = Field(default=24 * 3600.0, ge=0)
    # ... and at most this far ahead of it (clock skew); otherwise the receipt time is.
    device_time_max_ahead_seconds: float = Field(default=120.0, ge=0)

    @model_validator(mode="after")
    def _routes_name_notifiers(self) -> IotConfig:
        names = {n.name for n in self.notifiers}
        if len(names) != len(self.notifiers):
            raise ValueError("iot.notifiers: notifier names must be unique")
        known = ", ".join(sorted(names)) or "none configured"
        for i, route in enumerate(self.routes):
            for name in route.notifiers:
                if name not in names:
                    raise ValueError(f"iot.routes[{i}].notifiers: unknown notifier {name!r} "
                                     f"in the route for community {route.community!r} "
                                     f"(known: {known})")
        return self
