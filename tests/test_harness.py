"""The test harness itself: tool requirements, timing slack and printed seeds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import seeds, timing, tools


def test_missing_tool_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.skip.Exception, match=r"needs promtool \(Debian: prometheus"):
        tools.check_tools(("promtool",))


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match="CI=true and a required tool is missing"):
        tools.check_tools(("snmptrap", "systemd-analyze"))


def test_present_tool_passes_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    promtool = tmp_path / "promtool"
    promtool.write_text("#!/bin/sh\n")
    promtool.chmod(0o755)
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("PATH", str(tmp_path))
    tools.check_tools(("promtool",))  # neither skips nor fails


def test_unknown_tool_names_its_missing_package() -> None:
    with pytest.raises(ValueError, match=re.escape("add ['nmap'] to tests/support/tools.py")):
        tools.require_tool("nmap")


def test_slack_scales_with_the_measured_slowdown() -> None:
    idle = timing.Calibration(timing.REFERENCE_CPU_SECONDS / 2, timing.REFERENCE_LOOP_SECONDS)
    busy = timing.Calibration(timing.REFERENCE_CPU_SECONDS * 3, timing.REFERENCE_LOOP_SECONDS)
    stalled = timing.Calibration(1000.0, 1000.0)
    assert idle.factor == 1.0  # a fast machine never tightens a bound
    assert busy.factor == pytest.approx(3.0)
    assert stalled.factor == timing.MAX_FACTOR
    assert timing.Calibration(1000.0, 1000.0, override=2.0).factor == 2.0
    assert timing.slack(1.0) == pytest.approx(timing.HEADROOM * timing.calibration().factor)
    assert timing.slack(1.0) >= timing.HEADROOM


def test_slack_override_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETGUARD_TEST_SLACK", "fast")
    with pytest.raises(ValueError, match="NETGUARD_TEST_SLACK must be a number"):
        timing.calibrate()
    monkeypatch.setenv("NETGUARD_TEST_SLACK", "4")
    assert timing.calibrate().factor == 4.0


def test_seed_is_printed_and_can_be_given_back(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NETGUARD_TEST_SEED", raising=False)
    drawn = seeds.seeded_rng("first").random()
    seed = int(capsys.readouterr().out.split("NETGUARD_TEST_SEED=")[1].rstrip(")\n"))
    monkeypatch.setenv("NETGUARD_TEST_SEED", str(seed))
    assert seeds.seeded_rng("again").random() == drawn
    assert f"again: random seed: {seed}" in capsys.readouterr().out


_GROUPED = '''
import os
from pathlib import Path

import pytest


@pytest.mark.xdist_group("heavy")
@pytest.mark.parametrize("i", range(6))
def test_heavy(i: int) -> None:
    with Path(os.environ["NG_GROUP_LOG"]).open("a") as log:
        log.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
'''


def test_the_heavy_group_runs_on_one_worker(tmp_path: Path) -> None:
    # pytest 9.2 with pytest-xdist 3.8 silently ignores xdist_group (pytest-xdist#1386):
    # the heavy tests would then run side by side on a 2-core CI machine.
    (tmp_path / "test_grouped.py").write_text(_GROUPED)
    log = tmp_path / "workers.log"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env={**os.environ, "NG_GROUP_LOG": str(log)},
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    workers = log.read_text().split()
    assert len(workers) == 6
    assert len(set(workers)) == 1, f"the heavy group was split over {sorted(set(workers))}"
