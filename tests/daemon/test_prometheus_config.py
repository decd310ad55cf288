"""The shipped Prometheus config and alert rules, checked and unit-tested by real promtool.

promtool is required: a missing one skips these tests locally and fails them when CI=true.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.daemon.promql import require

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "config" / "prometheus"
RUNBOOKS = REPO / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://netguard.example.org/docs/runbooks.md"


def _promtool(*args: str) -> str:
    result = subprocess.run([require("promtool"), *args], cwd=PROM_DIR, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _alerts() -> list[dict[str, object]]:
    rules = yaml.safe_load((PROM_DIR / "rules" / "netguard.yml").read_text())
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def test_prometheus_yml_is_valid() -> None:
    out = _promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in out


def test_the_cluster_scrape_config_is_valid() -> None:
    out = _promtool("check", "config", "prometheus-cluster.yml")
    assert "SUCCESS" in out
    # promtool does not read the file_sd files: check the shipped one's shape here.
    for path in (PROM_DIR / "netguard-instances").glob("*.json"):
        for group in json.loads(path.read_text()):
            assert set(group) <= {"targets", "labels"}
            assert all(re.fullmatch(r"[\w.-]+:\d+", t) for t in group["targets"])


def test_the_kubernetes_scrape_config_is_valid(tmp_path: Path) -> None:
    """prometheus-kubernetes.yml (deploy/kubernetes/), checked by promtool.

    Debian's promtool is built without Kubernetes service discovery and refuses the
    ``kubernetes_sd_configs`` key itself. Then the rest of the file (relabelling, rules)
    is checked with that block swapped for a static target; the pod discovery block is
    checked by the real promtool only where it has it. The keep rule is matched against
    the manifests' pod labels in tests/deploy/test_kubernetes.py.
    """
    name = "prometheus-kubernetes.yml"
    result = subprocess.run([require("promtool"), "check", "config", name], cwd=PROM_DIR,
                            capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    if result.returncode == 0:
        assert "SUCCESS" in output
        return
    assert "field kubernetes_sd_configs not found" in output, output
    data = yaml.safe_load((PROM_DIR / name).read_text())
    (job,) = data["scrape_configs"]
    (discovery,) = job.pop("kubernetes_sd_configs")
    assert discovery["role"] == "pod"
    job["static_configs"] = [{"targets": ["netguard-0.netguard.netguard.svc:9108"]}]
    shutil.copytree(PROM_DIR / "rules", tmp_path / "rules")  # rule_files are relative
    (tmp_path / name).write_text(yaml.safe_dump(data))
    checked = subprocess.run([require("promtool"), "check", "config", name], cwd=tmp_path,
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


def test_rules_are_valid() -> None:
    out = _promtool("check", "rules", *[str(p) for p in sorted((PROM_DIR / "rules").glob("*.yml"))])
    assert f"SUCCESS: {len(_alerts())} rules found" in out
    assert len(_alerts()) == 25


def test_rule_unit_tests_pass() -> None:
    out = _promtool("test", "rules", *[str(p) for p in sorted((PROM_DIR / "tests").glob("*.yml"))])
    assert "SUCCESS" in out
    assert "FAILED" not in out


def test_every_alert_has_a_unit_test() -> None:
    alerts = {str(r["alert"]) for r in _alerts()}
    tested: set[str] = set()
    for path in (PROM_DIR / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    tested.add(check["alertname"])
    assert alerts - tested == set()


def test_every_alert_links_its_own_runbook_section() -> None:
    # GitHub-style anchors of the runbook's second-level headings.
    anchors = {m.group(1).strip().lower().replace(" ", "-")
               for m in re.finditer(r"^## (.+)$", RUNBOOKS.read_text(), re.MULTILINE)}
    for rule in _alerts():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        name = str(rule["alert"])
        assert annotations.get("runbook_url") == f"{RUNBOOK_BASE}#{name.lower()}", name
        assert name.lower() in anchors, f"docs/runbooks.md has no section for {name}"
    # One section a rule, and none for a rule that no longer exists.
    assert anchors == {str(r["alert"]).lower() for r in _alerts()}
