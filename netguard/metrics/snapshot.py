"""What one scrape reads: the services' snapshots, and the snapshot that gathers them.

Per-target readings are the probes' own frozen types (:mod:`netguard.probes.state`, pure
data); tickets, door sensors and traps are seen through small structural views naming
only what the metrics read, so this package imports none of those services. Every scrape
starts on the event loop by building a :class:`MetricsSnapshot`, which only gathers
references to immutable snapshots the services already hold (no I/O, no copying);
everything after that happens off the loop from the snapshot alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from netguard.probes.state import (
    ExportFamily,
    InterfaceReading,
    OnuReading,
    OpticalReading,
    PonPortReading,
    RadioReading,
    TargetStatus,
    UpsReading,
)

# Per-target readings are the probes' own frozen types, read directly: one definition
# (issue 12). The names below are what the specs call them.
InterfaceView = InterfaceReading
OpticalView = OpticalReading
RadioView = RadioReading
UpsView = UpsReading
OnuView = OnuReading
PonPortView = PonPortReading
ExportFamilyView = ExportFamily
TargetView = TargetStatus


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


class ClusterStatsView(Protocol):
    """This instance's part in a cluster (``netguard.cluster.node.ClusterView``)."""

    @property
    def members(self) -> int: ...
    @property
    def owned_targets(self) -> int: ...
    @property
    def leader(self) -> bool: ...
    @property
    def stale_writes_refused(self) -> Mapping[str, int]: ...


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
    # With cluster.enabled: live members, owned targets, leadership (else None).
    cluster: ClusterStatsView | None = None
    # Ticket messages queued by (route, event), and notifier passes that failed.
    ticket_notifications: Mapping[tuple[str, str], int] = field(default_factory=dict)
    ticket_notify_failures: int = 0
    # Posts to /alertmanager/webhook by outcome (netguard.daemon.amhook.OUTCOMES).
    alertmanager_webhooks: Mapping[str, int] = field(default_factory=dict)


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
