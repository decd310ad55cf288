"""The shipped Prometheus config and alert rules, checked and unit-tested by real promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "config" / "prometheus"

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")


def _promtool(*args: str) -> str:
    result = subprocess.run(["promtool", *args], cwd=PROM_DIR, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_prometheus_yml_is_valid() -> None:
    out = _promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in out


def test_rules_are_valid() -> None:
    out = _promtool("check", "rules", *[str(p) for p in sorted((PROM_DIR / "rules").glob("*.yml"))])
    assert "SUCCESS: 12 rules found" in out


def test_rule_unit_tests_pass() -> None:
    out = _promtool("test", "rules", *[str(p) for p in sorted((PROM_DIR / "tests").glob("*.yml"))])
    assert "SUCCESS" in out


def test_every_alert_has_a_unit_test() -> None:
    import yaml

    rules = yaml.safe_load((PROM_DIR / "rules" / "netguard.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tested: set[str] = set()
    for path in (PROM_DIR / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    tested.add(check["alertname"])
    assert alerts - tested == set()
