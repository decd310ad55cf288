"""The demo's estate: which links and sites exist, their vendors, sites and upstreams.

Kept as data so the scripted timeline, the simulated agents and the generated config all
read the same list. Sites are chosen to look like an emergency network: a field hospital,
a quarantine hotel, a stadium test site, relief camps.
"""

from __future__ import annotations

from dataclasses import dataclass

from netguard.demo.sensors import Household
from netguard.probes.config import LinkKind


@dataclass(frozen=True, slots=True)
class FleetTarget:
    """One simulated link or site.

    Attributes:
        id: Target id (also the simulated agent's name).
        kind: Link kind.
        vendor: Vendor preset of the simulated data (and the probe profile).
        site: Site id.
        upstream: Target whose outage explains this one's, if any.
        label: Human description.
    """

    id: str
    kind: LinkKind
    vendor: str
    site: str
    upstream: str | None
    label: str


FLEET: tuple[FleetTarget, ...] = (
    # The east district hangs off one leased line: when it fails, both east sites go dark
    # and their tickets become children of the uplink's root ticket.
    FleetTarget("pl-east-uplink", "private_line", "cisco", "east-pop", None,
                "Leased line to the east district POP"),
    FleetTarget("fib-east-clinic", "fiber", "huawei", "east-clinic", "pl-east-uplink",
                "Fiber to the east fever clinic"),
    FleetTarget("cab-east-school", "cabin_5g", "generic", "east-school", "pl-east-uplink",
                "5G cabin at the east school shelter"),
    FleetTarget("fib-hq-core", "fiber", "cisco", "hq", None, "HQ core fiber ring"),
    FleetTarget("fib-field-hospital", "fiber", "huawei", "field-hospital", "fib-hq-core",
                "Fiber to the field hospital"),
    FleetTarget("wl-ridge-relay", "wireless", "ubiquiti", "ridge", "fib-hq-core",
                "airMAX relay to the ridge camp"),
    FleetTarget("wl-lake-camp", "wireless", "cambium", "lake-camp", "wl-ridge-relay",
                "ePMP link to the lake relief camp"),
    FleetTarget("wl-valley-school", "wireless", "ubiquiti", "valley-school", "fib-hq-core",
                "airMAX link to the valley school"),
    FleetTarget("pl-city-hall", "private_line", "generic", "city-hall", None,
                "Leased line to the city hall command post"),
    FleetTarget("pl-quarantine-hotel", "private_line", "juniper", "quarantine-hotel", None,
                "Leased line to the quarantine hotel"),
    FleetTarget("cab-stadium", "cabin_5g", "generic", "stadium-testsite", None,
                "5G cabin at the stadium test site"),
    FleetTarget("pon-riverside", "pon", "huawei", "riverside", "fib-hq-core",
                "Riverside OLT (quarantine compound)"),
    FleetTarget("pon-hillview", "pon", "huawei", "hillview", "fib-hq-core",
                "Hillview OLT"),
)

# Criticality of the sites that are more than "normal" (raises ticket severity).
SITE_CRITICALITY: dict[str, str] = {
    "field-hospital": "hospital",
    "east-clinic": "hospital",
    "quarantine-hotel": "quarantine_hotel",
    "stadium-testsite": "test_site",
    "city-hall": "government",
}

COMMUNITIES: tuple[str, ...] = ("riverside", "hillview", "old-town")

HOUSEHOLDS: tuple[Household, ...] = tuple(
    Household(
        household_id=f"hh-{community}-{n:02d}",
        community=community,
        address=f"{n * 3 + 1} {community.replace('-', ' ').title()} Road",
        sensor_id=f"door-{community}-{n:02d}",
        # Alternate formats so both decoders are exercised.
        format="zigbee2mqtt" if (i + n) % 2 else "native",
    )
    for i, community in enumerate(COMMUNITIES)
    for n in range(1, 5)
)


def fleet_target(target_id: str) -> FleetTarget:
    """The fleet entry with this id.

    Raises:
        KeyError: No such target.
    """
    for target in FLEET:
        if target.id == target_id:
            return target
    raise KeyError(target_id)
