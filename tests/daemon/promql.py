"""Reading PromQL out of the dashboards and rules, and checking it with promql-parser."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import yaml

from tests.support.tools import check_tools

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "grafana" / "dashboards"
RULES_DIR = REPO / "config" / "prometheus" / "rules"

# What Grafana would put in place of its variables when "All" is selected.
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$target": ".*",
    "$kind": ".*",
    "$site": ".*",
    "$category": ".*",
    "$community": ".*",
}

_COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
_SET_OPS = {"and", "or", "unless"}


def require(tool: str) -> str:
    """The path of ``tool``; a missing one skips the test locally and fails it under CI.

    See tests/support/tools.py, which maps the tool to the package scripts/test.sh installs.
    """
    check_tools((tool,))
    path = shutil.which(tool)
    assert path is not None
    return path


@dataclass(frozen=True)
class Expression:
    """One PromQL expression and where it came from."""

    where: str
    expr: str


def substitute(expr: str) -> str:
    """``expr`` with Grafana's variables replaced as for an "All" selection."""
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTIONS[name])
    assert "$" not in expr.replace("$labels", "").replace("$value", ""), expr
    return expr


def dashboard_expressions() -> Iterator[Expression]:
    """Every panel query of every dashboard, variables substituted."""
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield Expression(f"{path.name}: {panel['title']} {target['refId']}",
                                 substitute(target["expr"]))


def variable_queries() -> Iterator[Expression]:
    """The series selector behind each ``label_values(selector, label)`` variable."""
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        board = json.loads(path.read_text())
        for var in board["templating"]["list"]:
            if var["type"] == "datasource":
                continue
            query = var["query"]["query"]
            assert query.startswith("label_values("), query
            assert query.endswith(")"), query
            selector = query.removeprefix("label_values(").removesuffix(")").rsplit(",", 1)[0]
            yield Expression(f"{path.name}: ${var['name']}", substitute(selector))


def rule_expressions() -> Iterator[Expression]:
    """Every alerting or recording rule's expression."""
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                yield Expression(f"{path.name}: {name}", rule["expr"])


def data_expressions(expr: str) -> list[str]:
    """The parts of ``expr`` that must return data for it to be meaningful.

    An alert's expression is empty while nothing is wrong, so "returns data" is checked
    on what it compares: the comparisons are cut off and each side of ``and``/``or``/
    ``unless`` is checked on its own.
    """
    return [str(node) for node in _data_nodes(promql_parser.parse(expr))]


def _data_nodes(node: object) -> list[object]:
    if isinstance(node, promql_parser.ParenExpr):
        return _data_nodes(node.expr)
    if isinstance(node, promql_parser.BinaryExpr):
        op = str(node.op)
        if op in _SET_OPS:
            return _data_nodes(node.lhs) + _data_nodes(node.rhs)
        if op in _COMPARISONS:
            return [side for side in (node.lhs, node.rhs)
                    if not isinstance(side, promql_parser.NumberLiteral)]
    return [node]


def metric_names(expr: str) -> set[str]:
    """Every metric name selected in ``expr``."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def cluster_only(expr: str) -> bool:
    """Whether ``expr`` reads only series exported with ``cluster.enabled`` (scale-out)."""
    names = metric_names(expr)
    return bool(names) and all(name.startswith("netguard_cluster_") for name in names)
