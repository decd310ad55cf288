"""prometheus_client collectors: the snapshot's families, and the process's own runtime.

:class:`SnapshotCollector` exports :data:`~netguard.metrics.specs.SPECS` through
prometheus_client, for tests (``registry.get_sample_value``) and for embedding in another
registry. ``/metrics`` uses the faster text writer in :mod:`netguard.metrics.exposition`,
which must agree with this collector (a test checks it).

No ``_created`` series are emitted: the collectors never pass a creation time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import GCCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from netguard.metrics.snapshot import MetricsSnapshot
from netguard.metrics.specs import SPECS, TARGET_LABELS, Labels, MetricSpec


def _family(spec: MetricSpec, label_names: Labels) -> GaugeMetricFamily | CounterMetricFamily:
    if spec.type == "counter":
        return CounterMetricFamily(spec.name.removesuffix("_total"), spec.help,
                                   labels=list(label_names))
    return GaugeMetricFamily(spec.name, spec.help, labels=list(label_names))


def collect_families(snapshot: MetricsSnapshot) -> Iterator[Metric]:
    """prometheus_client metric families for one snapshot.

    Args:
        snapshot: What to export.

    Yields:
        One family per spec, in :data:`SPECS` order.
    """
    for spec in SPECS:
        if spec.per_target:
            family = _family(spec, TARGET_LABELS + spec.labels)
            for target_id, status in snapshot.targets.items():
                base = (target_id, status.kind, status.site or "")
                for extra, value in spec.read(status):
                    family.add_metric(base + extra, value)
        else:
            family = _family(spec, spec.labels)
            for labels, value in spec.read(snapshot):
                family.add_metric(labels, value)
        yield family


class SnapshotCollector(Collector):
    """A custom collector that exports whatever snapshot ``source`` returns at scrape time.

    Args:
        source: Returns the current immutable snapshot.
        registry: Where to register (never the global one unless you pass it).
    """

    def __init__(self, source: Callable[[], MetricsSnapshot],
                 registry: CollectorRegistry | None = None) -> None:
        self._source = source
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        return list(collect_families(self._source()))

    def describe(self) -> Iterable[Metric]:
        # Empty on purpose: describing would call collect() at registration time.
        return []


def runtime_registry() -> CollectorRegistry:
    """A private registry with prometheus_client's process and GC collectors.

    They export the standard ``process_*`` series (CPU, resident memory, open file
    descriptors, start time, read from ``/proc``) and ``python_gc_*``. The registry is
    new on each call, so nothing is shared with prometheus_client's global one.

    Returns:
        The registry, for :class:`~netguard.metrics.exposition.Renderer`.
    """
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
