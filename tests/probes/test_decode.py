"""Profiles as data and the pure decoder: raw values in, readings and problems out."""

from __future__ import annotations

from pathlib import Path

import pytest

from netguard.config import settings_from_data
from netguard.errors import ConfigError
from netguard.probes.config import ExtraOid, TargetConfig
from netguard.probes.decode import decode_sample
from netguard.probes.profiles import DEFAULT_PROFILES, ProfileLibrary, default_library

LIB = default_library()


def test_every_kind_has_a_default_profile_that_resolves() -> None:
    for kind, name in DEFAULT_PROFILES.items():
        profile = LIB.resolve(name)
        assert profile.metric("if_oper_status") is not None, kind
        assert profile.metric("sys_uptime") is not None
    assert {"fiber-huawei", "wireless-cambium", "entity-sensor"} <= set(LIB.names())


def test_target_oids_override_and_add() -> None:
    target = TargetConfig(id="t", kind="fiber", address="127.0.0.1:161", profile="fiber-huawei",
                          oids=[ExtraOid(name="optical_rx_dbm", oid="1.3.6.1.4.1.9.9.1",
                                         table=True, scale=0.1),
                                ExtraOid(name="cpu load", oid="1.3.6.1.4.1.9.2.1.58.0")])
    profile = LIB.for_target(target)
    rx = profile.metric("optical_rx_dbm")
    assert rx is not None
    assert rx.oid == "1.3.6.1.4.1.9.9.1"
    assert rx.scale == 0.1
    cpu = profile.metric("cpu_load")
    assert cpu is not None
    assert not cpu.table
    sample = decode_sample(profile, {"cpu_load": 42}, {"optical_rx_dbm": {(7,): -123}})
    assert dict(sample.extra) == {"cpu_load": 42.0}
    assert sample.optical[0].rx_dbm == pytest.approx(-12.3)
    assert sample.optical[0].sensor == "entity-7"


def test_targets_without_overrides_share_one_resolved_profile() -> None:
    # One resolved copy per target held about 9 KB each at 10,000 targets.
    a = TargetConfig(id="a", kind="private_line", address="127.0.0.1:161")
    b = TargetConfig(id="b", kind="private_line", address="127.0.0.1:162",
                     profile="private-line")
    custom = TargetConfig(id="c", kind="private_line", address="127.0.0.1:163",
                          oids=[ExtraOid(name="cpu", oid="1.3.6.1.4.1.9.2.1.58.0")])
    assert LIB.for_target(a) is LIB.for_target(b)
    own = LIB.for_target(custom)
    assert own is not LIB.for_target(a)
    assert own.metric("cpu") is not None
    assert LIB.for_target(a).metric("cpu") is None


def test_unknown_profile_and_bad_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        LIB.resolve("nope")
    (tmp_path / "bad.yaml").write_text("name: bad\nmetrics:\n  - {name: x, oid: not-an-oid}\n")
    with pytest.raises(ConfigError, match=r"metrics\.0\.oid"):
        ProfileLibrary([tmp_path])


def test_vendor_profile_added_as_data(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(
        "name: acme-radio\nkinds: [wireless]\ninclude: [if-mib]\nmetrics:\n"
        "  - {name: radio_signal_dbm, oid: 1.3.6.1.4.1.99999.1.0, scale: 0.1}\n")
    lib = ProfileLibrary([tmp_path])
    sample = decode_sample(lib.resolve("acme-radio"), {"radio_signal_dbm": -612}, {})
    assert sample.radio is not None
    assert sample.radio.signal_dbm == pytest.approx(-61.2)


def test_interfaces_prefer_hc_counters_and_high_speed() -> None:
    profile = LIB.resolve("private-line")
    cols = {
        "if_descr": {(1,): b"Serial0/0", (2,): b"Gi0/1"},
        "if_name": {(1,): b"Se0/0"},
        "if_admin_status": {(1,): 1, (2,): 2},
        "if_oper_status": {(1,): 1, (2,): 2},
        "if_in_octets": {(1,): 5, (2,): 6},
        "if_out_octets": {(1,): 7, (2,): 8},
        "if_hc_in_octets": {(1,): 2**40},
        "if_hc_out_octets": {(1,): 2**41},
        "if_speed": {(1,): 4294967295, (2,): 100_000_000},
        "if_high_speed": {(1,): 10000, (2,): 0},
    }
    sample = decode_sample(profile, {"sys_uptime": 123}, cols)
    first, second = sample.interfaces
    assert (first.name, first.in_octets, first.counter_bits) == ("Se0/0", 2**40, 64)
    assert first.speed_bps == 10_000_000_000
    assert (second.name, second.in_octets, second.counter_bits) == ("Gi0/1", 6, 32)
    assert second.speed_bps == 100_000_000
    assert decode_sample(profile, {}, cols, interfaces=["Gi0/1"]).interfaces[0].index == 2


def test_wrong_type_is_a_problem_not_a_crash() -> None:
    profile = LIB.resolve("cabin-ups")
    sample = decode_sample(profile, {"ups_charge_percent": b"abc", "ups_battery_status": 2,
                                     "sys_uptime": b"x"}, {})
    assert sample.ups is not None
    assert sample.ups.charge_percent is None
    assert sample.ups.battery_status == 2
    assert sample.sys_uptime_ticks is None
    assert any("ups_charge_percent: expected a number, got text 'abc'" in p
               for p in sample.problems)


def test_text_in_an_interface_column_is_a_problem_and_the_rest_is_kept() -> None:
    profile = LIB.resolve("private-line")
    cols = {
        "if_descr": {(1,): b"Gi0/1", (2,): b"Gi0/2"},
        "if_oper_status": {(1,): b"up", (2,): 1},
        "if_in_errors": {(1,): 4, (2,): "1.3.6"},
        "if_hc_in_octets": {(1,): 10, (2,): 20},
        "if_hc_out_octets": {(1,): 11, (2,): 21},
        # Not read while the 64-bit counters are there: no problem for it.
        "if_in_octets": {(1,): b"junk"},
        "if_speed": {(1,): True},
    }
    sample = decode_sample(profile, {}, cols)
    first, second = sample.interfaces
    assert (first.oper_status, first.in_errors, first.in_octets, first.speed_bps) == \
        (None, 4, 10, None)
    assert (second.oper_status, second.in_errors, second.in_octets) == (1, None, 20)
    assert sample.problems == (
        "if_speed[Gi0/1]: expected a number, got text True",
        "if_oper_status[Gi0/1]: expected a number, got text 'up'",
        "if_in_errors[Gi0/2]: expected a number, got text '1.3.6'",
    )
    assert sample.decode_errors == 3


def test_entity_sensor_scale_precision_and_pairing() -> None:
    profile = LIB.resolve("fiber-standard")
    cols = {
        "ent_physical_name": {(11,): b"Te1/1 Rx Power", (12,): b"Te1/1 Tx Power",
                              (13,): b"Chassis Temperature"},
        "ent_sensor_type": {(11,): 14, (12,): 14, (13,): 8},
        "ent_sensor_scale": {(11,): 9, (12,): 8, (13,): 9},
        "ent_sensor_precision": {(11,): 1, (12,): 0, (13,): 0},
        "ent_sensor_value": {(11,): -274, (12,): -2300, (13,): 40},
    }
    sample = decode_sample(profile, {}, cols)
    assert len(sample.optical) == 1
    optic = sample.optical[0]
    assert optic.sensor == "Te1/1"
    assert optic.rx_dbm == pytest.approx(-27.4)
    assert optic.tx_dbm == pytest.approx(-2.3)


def test_huawei_invalid_optical_reading_is_absent() -> None:
    profile = LIB.resolve("fiber-huawei")
    sample = decode_sample(profile, {}, {"optical_rx_dbm": {(5,): 2147483647},
                                         "optical_tx_dbm": {(5,): -230},
                                         "ent_physical_name": {(5,): b"GE0/0/1"}})
    assert sample.optical[0].rx_dbm is None
    assert sample.optical[0].tx_dbm == pytest.approx(-2.3)


def test_pon_ports_named_by_ifname_with_onu_power() -> None:
    profile = LIB.resolve("pon-huawei")
    port = 4194304000
    cols = {
        "if_name": {(port,): b"GPON 0/1/0"},
        "pon_ont_status": {(port, 0): 1, (port, 1): 2, (port, 2): 1, (99,): 1},
        "pon_ont_rx_dbm": {(port, 0): -1850, (port, 1): 2147483647, (port, 2): -2790},
    }
    sample = decode_sample(profile, {}, cols)
    (p,) = sample.pon
    assert (p.port, p.onus_online, p.onus_total) == ("GPON 0/1/0", 2, 3)
    assert p.onu_rx_dbm == {"0": -18.5, "1": None, "2": -27.9}
    assert any("index is not port.onu" in x for x in sample.problems)


def test_radio_snr_computed_from_signal_and_noise() -> None:
    sample = decode_sample(LIB.resolve("wireless-ubiquiti"),
                           {"radio_signal_dbm": -60, "radio_noise_dbm": -92}, {})
    assert sample.radio is not None
    assert sample.radio.snr_db == 32


def test_config_rejects_unknown_profile_with_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_data({"targets": [{"id": "a", "kind": "fiber", "address": "127.0.0.1",
                                         "profile": "fiber-cisco"}]})
    assert caught.value.problems[0].startswith(
        "targets[0].profile: unknown profile 'fiber-cisco' (one of cabin-ups,")
