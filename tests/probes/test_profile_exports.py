"""Profile metrics exported as Prometheus families: declaration rules and decoding (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netguard.errors import ConfigError
from netguard.probes.config import ExtraOid, TargetConfig
from netguard.probes.decode import decode_sample
from netguard.probes.profiles import ProfileLibrary
from netguard.probes.state import ExportFamily

HEAD = "name: acme-radio\nkinds: [wireless]\ninclude: [wireless-ubiquiti]\nmetrics:\n"
TEMP = ("  - {name: acme_radio_temperature_celsius, oid: 1.3.6.1.4.1.99999.1.1.0, "
        "type: gauge, scale: 0.1, help: Radio board temperature., invalid: [-32768]}\n")
RETRIES = ("  - {name: acme_radio_retries_total, oid: 1.3.6.1.4.1.99999.1.2.0, "
           "type: counter, help: ARQ retransmissions.}\n")


def _library(tmp_path: Path, *files: str) -> ProfileLibrary:
    for i, text in enumerate(files):
        (tmp_path / f"p{i}.yaml").write_text(text)
    return ProfileLibrary([tmp_path])


def test_exported_metrics_are_scalars_fetched_with_the_others(tmp_path: Path) -> None:
    profile = _library(tmp_path, HEAD + TEMP + RETRIES).resolve("acme-radio")
    assert [m.name for m in profile.exported] == ["acme_radio_temperature_celsius",
                                                  "acme_radio_retries_total"]
    # In the scalar list: the same GET as sysUpTime and the radio readings.
    assert set(profile.exported) <= set(profile.scalars)
    temp = profile.exported[0].export
    assert temp == ExportFamily("acme_radio_temperature_celsius", "gauge",
                                "Radio board temperature.")


def test_decoded_values_and_text_counted_as_decode_errors(tmp_path: Path) -> None:
    profile = _library(tmp_path, HEAD + TEMP + RETRIES).resolve("acme-radio")
    sample = decode_sample(profile, {"acme_radio_temperature_celsius": 415,
                                     "acme_radio_retries_total": 2**32 - 1}, {})
    assert [(f.name, v) for f, v in sample.exported] == [
        ("acme_radio_temperature_celsius", 41.5), ("acme_radio_retries_total", 2**32 - 1)]
    assert sample.decode_errors == 0
    assert "acme_radio_retries_total" not in dict(sample.extra)

    bad = decode_sample(profile, {"acme_radio_temperature_celsius": b"n/a",
                                  "acme_radio_retries_total": "1.3.6.1"}, {})
    assert bad.exported == ()
    assert bad.decode_errors == 2
    assert bad.problems == (
        "acme_radio_temperature_celsius: expected a number, got text 'n/a'",
        "acme_radio_retries_total: expected a number, got text '1.3.6.1'")

    absent = decode_sample(profile, {"acme_radio_temperature_celsius": -32768}, {})
    assert absent.exported == ()
    assert absent.decode_errors == 0


@pytest.mark.parametrize(("line", "problem"), [
    ("  - {name: acme_x, oid: 1.3.6.1.4.1.9.1, type: gauge, table: true, help: h}\n",
     "metrics.0: acme_x: only scalars can be exported"),
    ("  - {name: acme_x, oid: 1.3.6.1.4.1.9.1.0, type: gauge}\n",
     "acme_x: an exported gauge needs a help text"),
    ("  - {name: acme_hits, oid: 1.3.6.1.4.1.9.1.0, type: counter, help: h}\n",
     "acme_hits: a counter's name ends in _total"),
    ("  - {name: acme_x_total, oid: 1.3.6.1.4.1.9.1.0, type: gauge, help: h}\n",
     "acme_x_total: _total is for counters"),
    ("  - {name: netguard_target_up, oid: 1.3.6.1.4.1.9.1.0, type: gauge, help: h}\n",
     "exported names may not start with netguard_"),
    ("  - {name: process_open_fds, oid: 1.3.6.1.4.1.9.1.0, type: gauge, help: h}\n",
     "exported names may not start with"),
    ("  - {name: 9lives, oid: 1.3.6.1.4.1.9.1.0, type: gauge, help: h}\n",
     "metrics.0.name: String should match pattern"),
    ("  - {name: acme-x, oid: 1.3.6.1.4.1.9.1.0, type: gauge, help: h}\n",
     "metrics.0.name: String should match pattern"),
    ('  - {name: acme_x, oid: 1.3.6.1.4.1.9.1.0, type: gauge, help: "a\\nb"}\n',
     "acme_x: help must be one line of printable text"),
    ("  - {name: acme_x, oid: 1.3.6.1.4.1.9.1.0, help: h}\n",
     "acme_x: help is for exported metrics"),
])
def test_bad_export_declarations_name_the_file(tmp_path: Path, line: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _library(tmp_path, HEAD + line)
    assert caught.value.source == str(tmp_path / "p0.yaml")
    assert problem in "\n".join(caught.value.problems)


def test_one_name_one_declaration_across_profiles(tmp_path: Path) -> None:
    same = HEAD.replace("acme-radio", "acme-radio-2") + TEMP
    lib = _library(tmp_path, HEAD + TEMP, same)
    first = lib.resolve("acme-radio").exported[0].export
    assert first is lib.resolve("acme-radio-2").exported[0].export
    clash = TEMP.replace("Radio board temperature.", "Board temperature.")
    with pytest.raises(ConfigError) as caught:
        _library(tmp_path, HEAD + TEMP, HEAD.replace("acme-radio", "acme-radio-2") + clash)
    assert caught.value.source == str(tmp_path / "p1.yaml")
    assert caught.value.problems == [
        "metrics: acme_radio_temperature_celsius is exported as a gauge with help "
        "'Board temperature.' here, but as a gauge with help 'Radio board temperature.' "
        f"in {tmp_path / 'p0.yaml'}; one name, one declaration"]


def test_a_target_moving_an_exported_metric_keeps_it_exported(tmp_path: Path) -> None:
    lib = _library(tmp_path, HEAD + TEMP)
    target = TargetConfig(id="r", kind="wireless", address="127.0.0.1", profile="acme-radio",
                          oids=[ExtraOid(name="acme_radio_temperature_celsius",
                                         oid="1.3.6.1.4.1.99999.7.0", scale=1.0)])
    metric = lib.for_target(target).metric("acme_radio_temperature_celsius")
    assert metric is not None
    assert metric.oid == "1.3.6.1.4.1.99999.7.0"
    assert metric.export is not None
    assert metric.export.type == "gauge"


def test_target_oid_names_become_metric_names() -> None:
    target = TargetConfig(id="r", kind="wireless", address="127.0.0.1",
                          oids=[ExtraOid(name="5GHz température", oid="1.3.6.1.4.1.9.1.0")])
    assert ProfileLibrary().for_target(target).metric("x5ghz_temp_rature") is not None
