"""What targets share instead of holding each their own copy (issue 10, memory)."""

from __future__ import annotations

import gc
import weakref

from netguard.probes.config import TargetConfig, Thresholds, shared
from netguard.probes.counters import interface_rates
from netguard.probes.decode import decode_sample
from netguard.probes.profiles import default_library
from netguard.probes.state import InterfaceReading


def _target(n: int, **extra: object) -> TargetConfig:
    return TargetConfig.model_validate({"id": f"t{n}", "kind": "fiber",
                                        "address": f"192.0.2.{n}", **extra})


def test_equal_snmp_and_default_thresholds_are_one_instance() -> None:
    a = _target(1, snmp={"community": "c-shared"})
    b = _target(2, snmp={"community": "c-shared"})
    c = _target(3, snmp={"community": "c-other"}, thresholds={"raise_after": 3})
    assert a.snmp is b.snmp
    assert a.snmp is not c.snmp
    assert c.snmp.community is not None
    assert c.snmp.community.get_secret_value() == "c-other"
    assert a.thresholds is b.thresholds
    assert c.thresholds is not a.thresholds
    assert c.thresholds.raise_after == 3


def test_sharing_keeps_which_fields_were_set() -> None:
    # Equal values, but one target wrote them: a kind's default must not replace them.
    written = _target(1, thresholds={"raise_after": 2})
    defaulted = _target(2)
    assert written.thresholds is not defaulted.thresholds
    assert written.thresholds.model_fields_set == {"raise_after"}
    assert defaulted.thresholds.model_fields_set == set()


def test_a_shared_model_goes_when_no_target_holds_it() -> None:
    first = shared(Thresholds(raise_after=7))
    assert shared(Thresholds(raise_after=7)) is first
    held = weakref.ref(first)
    del first
    gc.collect()
    assert held() is None  # the table does not keep it (nor its secrets) alive
    again = Thresholds(raise_after=7)
    assert shared(again) is again


def test_standing_counters_rate_zero() -> None:
    before = InterfaceReading(index=1, name="a", in_octets=10, out_octets=10, in_errors=4,
                              out_errors=0, in_discards=9, out_discards=3)
    after = InterfaceReading(index=1, name="a", in_octets=70, out_octets=10, in_errors=4,
                             out_errors=2, in_discards=9, out_discards=3)
    rated = interface_rates(before, after, 2.0)
    assert (rated.in_bps, rated.out_bps) == (240.0, 0.0)
    assert (rated.in_error_rate, rated.out_error_rate) == (0.0, 1.0)
    assert (rated.in_discard_rate, rated.out_discard_rate) == (0.0, 0.0)


def test_decoded_names_are_interned_across_samples() -> None:
    profile = default_library().resolve("private-line")

    def columns() -> dict[str, dict[tuple[int, ...], object]]:
        # Built anew each time, as each poll's answer is.
        return {"if_name": {(1,): b"GigabitEthernet0/0/1"},
                "if_alias": {(1,): b"uplink to core"},
                "if_high_speed": {(1,): 10000}}
    one = decode_sample(profile, {"sys_name": b"olt-1"}, columns())  # type: ignore[arg-type]
    two = decode_sample(profile, {"sys_name": b"olt-1"}, columns())  # type: ignore[arg-type]
    assert one.interfaces[0].name == "GigabitEthernet0/0/1"
    assert one.interfaces[0].name is two.interfaces[0].name
    assert one.interfaces[0].alias is two.interfaces[0].alias
    assert one.sys_name is two.sys_name == "olt-1"
    assert one.interfaces[0].speed_bps is two.interfaces[0].speed_bps == 10_000_000_000
