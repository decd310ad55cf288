"""What ``/metrics`` exports: how fine-grained, and which interfaces.

Both renderers (:mod:`~netguard.metrics.exposition` and
:mod:`~netguard.metrics.collectors`) take an :class:`ExportDetail` and ask it which specs
to export and which of a target's interfaces to read, so they cannot disagree.

A spec's grain is derived from its labels rather than declared again: a family labelled
``interface`` is per-interface, one labelled ``onu`` is per-ONU, anything else is a
per-target (or estate-wide) summary.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from netguard.metrics.snapshot import TargetView
from netguard.metrics.specs import MetricSpec

DetailLevel = Literal["summary", "interfaces", "full"]
Grain = Literal["summary", "interface", "onu"]

# The grains each level exports, coarsest level first.
_LEVEL_GRAINS: dict[DetailLevel, frozenset[Grain]] = {
    "summary": frozenset({"summary"}),
    "interfaces": frozenset({"summary", "interface"}),
    "full": frozenset({"summary", "interface", "onu"}),
}


def spec_grain(spec: MetricSpec) -> Grain:
    """How fine-grained ``spec``'s series are, from its label names."""
    if "onu" in spec.labels:
        return "onu"
    if "interface" in spec.labels:
        return "interface"
    return "summary"


@dataclass(frozen=True, slots=True)
class ExportDetail:
    """The export selection; the default exports everything, as before it existed.

    Attributes:
        level: ``summary`` (per-target and estate series only), ``interfaces`` (plus
            per-interface series) or ``full`` (plus per-ONU series).
        include: Export only the interfaces whose name this matches (``re.search``).
        exclude: Then leave out the interfaces whose name this matches.
    """

    level: DetailLevel = "full"
    include: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None

    def select(self, specs: Iterable[MetricSpec]) -> tuple[MetricSpec, ...]:
        """The specs this level exports, in their given order."""
        grains = _LEVEL_GRAINS[self.level]
        return tuple(spec for spec in specs if spec_grain(spec) in grains)

    @property
    def filters_interfaces(self) -> bool:
        """Whether :meth:`view` can drop interfaces (it is the identity otherwise)."""
        return self.include is not None or self.exclude is not None

    def keeps(self, interface: str) -> bool:
        """Whether the interface named ``interface`` is exported."""
        if self.include is not None and self.include.search(interface) is None:
            return False
        return self.exclude is None or self.exclude.search(interface) is None

    def view(self, status: TargetView) -> TargetView:
        """``status`` with only the exported interfaces (``status`` itself when all are).

        Target statuses are frozen dataclasses; a status of another type is used as it is
        when nothing is filtered, which is the default.
        """
        if not self.filters_interfaces or not status.interfaces:
            return status
        kept = tuple(itf for itf in status.interfaces if self.keeps(itf.name))
        if len(kept) == len(status.interfaces):
            return status
        return dataclasses.replace(status, interfaces=kept)


FULL = ExportDetail()
