"""What one scrape reads: structural views of the services' snapshots, and the snapshot.

The views name only the attributes the metrics read, so this package imports no service
code. Every scrape starts on the event loop by building a :class:`MetricsSnapshot`, which
only gathers references to immutable snapshots the services already hold (no I/O, no
copying); everything after that happens off the loop from the snapshot alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Protocol


class InterfaceView(Protocol):
    """One interface's readings."""

    @property
    def name(self) -> str: ...
    @property
    def oper_status(self) -> int | None: ...
    @property
    def speed_bps(self) -> int | None: ...
    @property
    def in_octets(self) -> int | None: ...
    @property
    def out_octets(self) -> int | None: ...
    @property
    def utilisation(self) -> float | None: ...
    @property
    def in_errors(self) -> int | None: ...
    @property
    def out_errors(self) -> int | None: ...
    @property
    def in_discards(self) -> int | None: ...
    @property
    def out_discards(self) -> int | None: ...


class OpticalView(Protocol):
    """One transceiver's power readings."""

    @property
    def sensor(self) -> str: ...
    @property
    def rx_dbm(self) -> float | None: ...
    @property
    def tx_dbm(self) -> float | None: ...


class RadioView(Protocol):
    """A wireless link's signal readings."""

    @property
    def signal_dbm(self) -> float | None: ...
    @property
    def noise_dbm(self) -> float | None: ...
    @property
    def snr_db(self) -> float | None: ...


class UpsView(Protocol):
    """A 5G cabin's UPS readings."""

    @property
    def battery_status(self) -> int | None: ...
    @property
    def charge_percent(self) -> float | None: ...
    @property
    def minutes_remaining(self) -> float | None: ...
    @property
    def seconds_on_battery(self) -> float | None: ...
    @property
    def on_battery(self) -> bool | None: ...
    @property
    def input_voltage(self) -> float | None: ...
    @property
    def temperature_celsius(self) -> float | None: ...


class OnuView(Protocol):
    """One ONU's optical receive power."""

    @property
    def onu(self) -> str: ...
    @property
    def rx_dbm(self) -> float | None: ...


class PonPortView(Protocol):
    """One PON port with its ONUs."""

    @property
    def port(self) -> str: ...
    @property
    def onus_online(self) -> int: ...
    @property
    def onus_total(self) -> int: ...
    @property
    def onus(self) -> Sequence[OnuView]: ...


class ExportFamilyView(Protocol):
    """A profile metric's own family (``netguard.probes.state.ExportFamily``)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def help(self) -> str: ...


class TargetView(Protocol):
    """The probes' per-target status snapshot (``netguard.probes.state.TargetStatus``)."""

    @property
    def target(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def site(self) -> str | None: ...
    @property
    def state(self) -> str | Enum: ...
    @property
    def reachable(self) -> bool: ...
    @property
    def poll_duration_seconds(self) -> float | None: ...
    @property
    def last_success_at(self) -> datetime | None: ...
    @property
    def interfaces(self) -> Sequence[InterfaceView]: ...
    @property
    def optical(self) -> Sequence[OpticalView]: ...
    @property
    def radio(self) -> RadioView | None: ...
    @property
    def ups(self) -> UpsView | None: ...
    @property
    def pon(self) -> Sequence[PonPortView]: ...
    @property
    def walk_timeouts(self) -> int: ...
    @property
    def rx_thresholds_dbm(self) -> Sequence[tuple[str, float]]: ...
    @property
    def exported(self) -> Sequence[tuple[ExportFamilyView, float]]: ...
    @property
    def labels(self) -> Sequence[tuple[str, str]]: ...
    @property
    def decode_errors(self) -> int: ...


class TicketCountsView(Protocol):
    """Open and overdue tickets by (category, severity)."""

    @property
    def open(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def overdue(self) -> Mapping[tuple[str, str], int]: ...


class IotView(Protocol):
    """Door sensors, alerts and the MQTT intake (``netguard.iot.service.IotSnapshot``)."""

    @property
    def mqtt_connected(self) -> bool: ...
    @property
    def mqtt_connect_failures(self) -> int: ...
    @property
    def door_events(self) -> Mapping[str, int]: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def dead_letters(self) -> Mapping[str, int]: ...
    @property
    def payload_field_errors(self) -> Mapping[str, int]: ...
    @property
    def store_failures(self) -> int: ...
    @property
    def sensors_online(self) -> int: ...
    @property
    def sensors_offline(self) -> int: ...
    @property
    def sensors_low_battery(self) -> int: ...
    @property
    def alerts_open(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def delivered_by(self) -> Mapping[str, int]: ...
    @property
    def failed_by(self) -> Mapping[str, int]: ...
    @property
    def delivery_send_errors(self) -> int: ...
    @property
    def deliveries_refused(self) -> int: ...
    @property
    def outbox_pending(self) -> int: ...
    @property
    def mqtt_enabled(self) -> bool: ...

    @property
    def audit_anchor_sequence(self) -> Mapping[str, int]: ...
    @property
    def audit_anchor_time(self) -> float | None: ...
    @property
    def audit_anchor_failures(self) -> int: ...

class TrapStatsView(Protocol):
    """The trap receiver's counters by type (``netguard.probes.traps.TrapStats``)."""

    @property
    def received(self) -> Mapping[str, int]: ...
    @property
    def decoded(self) -> Mapping[str, int]: ...
    @property
    def rejected(self) -> Mapping[tuple[str, str], int]: ...


@dataclass(frozen=True, slots=True)
class DaemonStats:
    """The daemon's own counters."""

    polls: Mapping[str, int] = field(default_factory=dict)
    overruns: int = 0
    misfires: int = 0
    sweep_errors: int = 0
    scheduler_running: bool = False
    targets_scheduled: int = 0
    # Configuration reloads (SIGHUP) by result, and when the config last loaded cleanly
    # (the start counts as the first successful load).
    config_reloads: Mapping[str, int] = field(default_factory=dict)
    config_last_reload_success: float = 0.0
    config_last_reload_successful: bool = True
    # Fault events waiting for the ticket store (in memory and in the journal; those in
    # the journal alone), dropped because the journal was full, and set aside because the
    # store kept refusing their content. Writes the store refused as a whole (read-only,
    # full, unreachable, timed out), and 1 while it does.
    fault_event_backlog: int = 0
    fault_event_journal: int = 0
    fault_events_dropped: int = 0
    fault_events_rejected: int = 0
    # Deliveries of fault events that failed unexpectedly (a bug: logged with a traceback
    # and retried, never dropped).
    fault_writer_errors: int = 0
    store_write_failures: int = 0
    store_refusing_writes: bool = False
    # Steps of the wall clock against the monotonic clock, by direction.
    clock_steps: Mapping[str, int] = field(default_factory=dict)
    # Requests to /ack/<token> by outcome (netguard.daemon.ackpage.OUTCOMES).
    ack_links: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything one scrape exports; immutable, safe to read from another thread."""

    targets: Mapping[str, TargetView]
    tickets: TicketCountsView | None = None
    iot: IotView | None = None
    daemon: DaemonStats = field(default_factory=DaemonStats)
    started_at: float = 0.0
    # None when no trap receiver is configured (``daemon.trap_listen`` unset).
    traps: TrapStatsView | None = None
