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

from netguard.metrics.detail import FULL, ExportDetail
from netguard.metrics.snapshot import ExportFamilyView, MetricsSnapshot
from netguard.metrics.specs import SPECS, TARGET_LABELS, Labels, MetricSpec, label_pairs


def _family(spec: MetricSpec, label_names: Labels) -> GaugeMetricFamily | CounterMetricFamily:
    if spec.type == "counter":
        return CounterMetricFamily(spec.name.removesuffix("_total"), spec.help,
                                   labels=list(label_names))
    return GaugeMetricFamily(spec.name, spec.help, labels=list(label_names))


def _free_family(spec: MetricSpec, snapshot: MetricsSnapshot) -> Metric:
    # Only ``target_info`` has free labels, a summary series: no interface view needed.
    # Label names vary by target, which the *MetricFamily helpers cannot express.
    family = Metric(spec.name.removesuffix("_total") if spec.type == "counter" else spec.name,
                    spec.help, spec.type)
    for target_id, status in snapshot.targets.items():
        base = dict(zip(TARGET_LABELS, (target_id, status.kind, status.site or ""),
                        strict=True))
        for extra, value in spec.read(status):
            family.add_sample(spec.name, base | dict(label_pairs(extra)), value)
    return family


def _exported_families(snapshot: MetricsSnapshot) -> list[Metric]:
    # The same selection as the text writer: first declaration of a name wins.
    families: dict[str, tuple[ExportFamilyView, Metric]] = {}
    for target_id, status in snapshot.targets.items():
        labels = dict(zip(TARGET_LABELS, (target_id, status.kind, status.site or ""),
                          strict=True))
        for declared, value in status.exported:
            if declared.name not in families:
                base = declared.name.removesuffix("_total") if declared.type == "counter" \
                    else declared.name
                families[declared.name] = (declared, Metric(base, declared.help,
                                                            declared.type))
            family, metric = families[declared.name]
            if family == declared:
                metric.add_sample(declared.name, labels, value)
    return [families[name][1] for name in sorted(families)]


def collect_families(snapshot: MetricsSnapshot,
                     detail: ExportDetail = FULL) -> Iterator[Metric]:
    """prometheus_client metric families for one snapshot.

    Args:
        snapshot: What to export.
        detail: Which families and interfaces to export (default: all of them).

    Yields:
        One family per spec, in :data:`SPECS` order, then the families that target
        profiles export (``type: gauge`` or ``counter``), by name.
    """
    for spec in detail.select(SPECS):
        if spec.free_labels:
            yield _free_family(spec, snapshot)
            continue
        if spec.per_target:
            family = _family(spec, TARGET_LABELS + spec.labels)
            for target_id, status in snapshot.targets.items():
                base = (target_id, status.kind, status.site or "")
                for extra, value in spec.read(detail.view(status)):
                    family.add_metric(base + extra, value)
        else:
            family = _family(spec, spec.labels)
            for labels, value in spec.read(snapshot):
                family.add_metric(labels, value)
        yield family
    yield from _exported_families(snapshot)


class SnapshotCollector(Collector):
    """A custom collector that exports whatever snapshot ``source`` returns at scrape time.

    Args:
        source: Returns the current immutable snapshot.
        registry: Where to register (never the global one unless you pass it).
        detail: Which families and interfaces to export (default: all of them).
    """

    def __init__(self, source: Callable[[], MetricsSnapshot],
                 registry: CollectorRegistry | None = None,
                 detail: ExportDetail = FULL) -> None:
        self._source = source
        self._detail = detail
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        return list(collect_families(self._source(), self._detail))

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
