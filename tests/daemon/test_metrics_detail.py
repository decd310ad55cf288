"""``metrics.detail``: what /metrics exports, in both renderers, validated at load."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError

from netguard.config import load_settings
from netguard.daemon.config import MetricsConfig
from netguard.errors import ConfigError
from netguard.metrics import SPECS, ExportDetail, Renderer, SnapshotCollector, render
from netguard.metrics.detail import spec_grain
from tests.daemon.test_metrics import _samples, _snapshot

GOLDEN = Path(__file__).parent / "data" / "exposition_default.prom"


def _detail(raw: dict[str, object]) -> ExportDetail:
    return MetricsConfig.model_validate({"detail": raw}).detail.export()


def _both(detail: ExportDetail) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The fast renderer's samples, after checking the collector path yields the same."""
    snap = _snapshot()
    registry = CollectorRegistry()
    SnapshotCollector(lambda: snap, registry, detail)
    fast = _samples(render(snap, detail=detail).decode())
    assert fast == _samples(generate_latest(registry).decode())
    return fast


def _names(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> set[str]:
    return {name for name, _ in samples}


def test_the_default_keeps_the_exposition_byte_for_byte() -> None:
    # The golden file is the per-target lines that the sample snapshot rendered to before
    # metrics.detail existed (regenerate it only for a deliberate change of the output).
    default = MetricsConfig().detail.export()
    assert default == ExportDetail()
    text = render(_snapshot(), detail=default).decode()
    per_target = "".join(line for line in text.splitlines(keepends=True) if 'target="' in line)
    assert per_target == GOLDEN.read_text()
    assert text == render(_snapshot()).decode()


def test_each_level_exports_its_grains_in_both_renderers() -> None:
    full = _both(_detail({}))
    interfaces = _both(_detail({"level": "interfaces"}))
    summary = _both(_detail({"level": "summary"}))
    onu = {s.name for s in SPECS if spec_grain(s) == "onu"}
    per_interface = {s.name for s in SPECS if spec_grain(s) == "interface"}
    assert onu == {"netguard_pon_onu_rx_power_dbm"}
    assert "netguard_interface_oper_up" in per_interface
    assert onu | per_interface <= _names(full)
    assert _names(interfaces) == _names(full) - onu
    assert _names(summary) == _names(full) - onu - per_interface
    # Coarser levels only drop series; the rest keep their values.
    assert summary.items() <= interfaces.items() <= full.items()
    assert "netguard_pon_onus_online" in _names(summary)


def test_interface_regexes_select_series_by_interface_name() -> None:
    def interfaces(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> set[str]:
        return {value for _, labels in samples for key, value in labels if key == "interface"}

    assert interfaces(_both(_detail({}))) == {"ge-0/0/0", "ge-0/0/1", "ge-0/0/2", "ge-0/0/3",
                                              "uplink"}
    assert interfaces(_both(_detail({"interfaces": {"include_regex": "^ge-"}}))) == {
        "ge-0/0/0", "ge-0/0/1", "ge-0/0/2", "ge-0/0/3"}
    chosen = _both(_detail({"interfaces": {"include_regex": "^ge-",
                                           "exclude_regex": "/[23]$"}}))
    assert interfaces(chosen) == {"ge-0/0/0", "ge-0/0/1"}
    # Other families are untouched by an interface selection.
    assert {k: v for k, v in chosen.items() if spec_name_grain(k[0]) == "summary"} == {
        k: v for k, v in _both(_detail({})).items() if spec_name_grain(k[0]) == "summary"}


def spec_name_grain(sample_name: str) -> str:
    for spec in SPECS:
        if sample_name == spec.name:
            return spec_grain(spec)
    return "summary"  # profile-exported families: per-target


def test_a_cached_target_is_rendered_with_the_selection() -> None:
    # The cache keys on the unfiltered status; what it holds must be the filtered lines.
    renderer = Renderer(detail=_detail({"interfaces": {"exclude_regex": "uplink"}}))
    snap = _snapshot()
    first = renderer.render(snap)
    assert b'interface="uplink"' not in first
    assert b'interface="ge-0/0/0"' in first
    assert renderer.render(snap) == first


@pytest.mark.parametrize("option", ["include_regex", "exclude_regex"])
def test_a_bad_regex_is_a_config_error_naming_the_option(option: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MetricsConfig.model_validate({"detail": {"interfaces": {option: "ge-(0"}}})
    [error] = caught.value.errors()
    assert error["loc"] == ("detail", "interfaces", option)
    assert "not a regular expression" in error["msg"]


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        MetricsConfig.model_validate({"detail": {"level": "everything"}})
    assert caught.value.errors()[0]["loc"] == ("detail", "level")


def test_check_config_names_the_bad_regex_option(tmp_path: Path) -> None:
    path = tmp_path / "netguard.yaml"
    path.write_text("metrics:\n  detail:\n    interfaces:\n      exclude_regex: 'ge-(0'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert "metrics.detail.interfaces.exclude_regex: not a regular expression" in str(
        caught.value)
