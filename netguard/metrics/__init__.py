"""Prometheus metrics read at scrape time from immutable snapshots.

* :mod:`~netguard.metrics.snapshot`: what a scrape reads (views of the services' snapshots);
* :mod:`~netguard.metrics.specs`: every exported family, declared once;
* :mod:`~netguard.metrics.detail`: which families and interfaces ``metrics.detail`` exports;
* :mod:`~netguard.metrics.collectors`: prometheus_client collectors (snapshot, process, GC);
* :mod:`~netguard.metrics.exposition`: the text writer behind ``/metrics``.
"""

from netguard.metrics.collectors import SnapshotCollector, collect_families, runtime_registry
from netguard.metrics.detail import ExportDetail
from netguard.metrics.exposition import CONTENT_TYPE, Renderer, render
from netguard.metrics.snapshot import (
    DaemonStats,
    IotView,
    MetricsSnapshot,
    TargetView,
    TicketCountsView,
    TrapStatsView,
)
from netguard.metrics.specs import SPECS, MetricSpec

__all__ = [
    "CONTENT_TYPE",
    "SPECS",
    "DaemonStats",
    "ExportDetail",
    "IotView",
    "MetricSpec",
    "MetricsSnapshot",
    "Renderer",
    "SnapshotCollector",
    "TargetView",
    "TicketCountsView",
    "TrapStatsView",
    "collect_families",
    "render",
    "runtime_registry",
]
