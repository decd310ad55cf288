"""The Grafana dashboards and provisioning, checked without Grafana."""

from __future__ import annotations

import json
import subprocess
import sys

import promql_parser
import pytest
import yaml

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


def test_dashboards_have_stable_uids_and_use_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (REPO / "grafana/provisioning/datasources/netguard.yaml").read_text())
    ds_uid = provisioned["datasources"][0]["uid"]
    found = {}
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        board = json.loads(path.read_text())
        found[path.name] = board["uid"]
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == ds_uid, (path.name, panel["title"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
    assert found == UIDS
    provider = yaml.safe_load(
        (REPO / "grafana/provisioning/dashboards/netguard.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"


def test_link_detail_is_templated_by_target_kind_and_site() -> None:
    board = json.loads((DASHBOARD_DIR / "link-detail.json").read_text())
    assert [v["name"] for v in board["templating"]["list"]] == ["kind", "site", "target"]


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
