"""The Grafana dashboards and provisioning, checked without Grafana."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import promql_parser
import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from netguard.metrics import SPECS
from tests.daemon.promql import (
    DASHBOARD_DIR,
    REPO,
    dashboard_expressions,
    data_expressions,
    metric_names,
    rule_expressions,
    variable_queries,
)

EXPORTED = {spec.name for spec in SPECS} | {"up"}
# Panel and query types decode into their own models (timeseries, stat, prometheus, ...).
register_default_plugins()
UIDS = {
    "overview.json": "netguard-overview",
    "link-detail.json": "netguard-link-detail",
    "emergency-sites.json": "netguard-emergency-sites",
    "tickets.json": "netguard-tickets",
    "quarantine.json": "netguard-quarantine",
}


def test_checked_in_dashboards_match_the_generator() -> None:
    result = subprocess.run([sys.executable, str(REPO / "grafana" / "generate.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _boards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def test_dashboards_have_stable_uids_and_a_datasource_variable_used_everywhere() -> None:
    found = {}
    for name, board in _boards().items():
        found[name] = board["uid"]
        variables = board["templating"]["list"]
        first = variables[0]
        assert (first["name"], first["type"], first["query"]) == \
            ("datasource", "datasource", "prometheus"), name
        # Every panel, every query and every query variable read the chosen datasource,
        # so the board imports into any Grafana with a Prometheus, provisioned or not.
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, \
                (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", (name, panel["title"])
        for var in variables[1:]:
            assert var["datasource"]["uid"] == "${datasource}", (name, var["name"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        assert board["schemaVersion"] == Dashboard().schema_version == 41, name
    assert found == UIDS
    text = json.dumps(_boards())
    # No board names the provisioned datasource's uid: that would break an import.
    provisioned = yaml.safe_load(
        (REPO / "grafana/provisioning/datasources/netguard.yaml").read_text())
    assert provisioned["datasources"][0]["uid"] not in text
    provider = yaml.safe_load(
        (REPO / "grafana/provisioning/dashboards/netguard.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"


@pytest.mark.parametrize("name", sorted(UIDS))
def test_dashboard_round_trips_through_the_grafana_sdk(name: str) -> None:
    """grafana-foundation-sdk 11.6 reads every field we write, and writes it back unchanged."""
    board = _boards()[name]
    model = Dashboard.from_json(board)
    back = json.loads(json.dumps(model, cls=JSONEncoder))
    assert _lost(board, back) == []
    assert len(model.panels or []) == len(board["panels"])
    assert model.templating is not None
    assert [v.name for v in model.templating.list_val or []] == \
        [v["name"] for v in board["templating"]["list"]]


def _lost(original: Any, back: Any, path: str = "$") -> list[str]:
    """Where ``back`` lacks or changed something of ``original`` (added defaults are fine)."""
    if isinstance(original, dict):
        if not isinstance(back, dict):
            return [f"{path}: became {type(back).__name__}"]
        return [lost for key, value in original.items()
                for lost in ([f"{path}.{key}: missing"] if key not in back
                             else _lost(value, back[key], f"{path}.{key}"))]
    if isinstance(original, list):
        if not isinstance(back, list) or len(back) != len(original):
            return [f"{path}: list changed"]
        return [lost for i, (a, b) in enumerate(zip(original, back, strict=True))
                for lost in _lost(a, b, f"{path}[{i}]")]
    return [] if original == back else [f"{path}: {original!r} became {back!r}"]


def test_round_trip_check_sees_a_lost_field() -> None:
    assert _lost({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 1, "c": [1, 2], "d": 0}}) == []
    assert _lost({"a": {"b": 1}}, {"a": {}}) == ["$.a.b: missing"]
    assert _lost({"a": [1]}, {"a": [2]}) == ["$.a[0]: 1 became 2"]


def test_link_detail_is_templated_by_target_kind_and_site() -> None:
    board = _boards()["link-detail.json"]
    assert [v["name"] for v in board["templating"]["list"]] == \
        ["datasource", "kind", "site", "target"]


def test_quarantine_board_filters_alerts_by_community() -> None:
    board = _boards()["quarantine.json"]
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "community"]
    alert_queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])
                     if "netguard_alerts_open" in t["expr"]]
    assert alert_queries
    assert all('community=~"$community"' in expr for expr in alert_queries)


@pytest.mark.parametrize("expression", [*dashboard_expressions(), *variable_queries(),
                                        *rule_expressions()], ids=lambda e: e.where)
def test_expression_parses_and_uses_only_exported_metrics(expression: object) -> None:
    expr = expression.expr  # type: ignore[attr-defined]
    promql_parser.parse(expr)
    for part in data_expressions(expr):
        promql_parser.parse(part)
    unknown = metric_names(expr) - EXPORTED
    assert not unknown, f"{expression}: not exported by netguard: {unknown}"


def test_data_expressions_cut_comparisons() -> None:
    assert data_expressions("a > 1") == ["a{}"]
    assert data_expressions("(a - b) >= 1 and c / d > 0.1") == ["(a{} - b{})", "c{} / d{}"]
    assert data_expressions("sum(x)") == ["sum(x{})"]


def test_operations_doc_lists_every_metric() -> None:
    text = (REPO / "docs" / "operations.md").read_text()
    missing = [spec.name for spec in SPECS if f"`{spec.name}`" not in text]
    assert not missing
