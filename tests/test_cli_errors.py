"""Operational failures of CLI commands are one ``error:`` line and exit 1, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

NETGUARD = str(Path(sys.executable).with_name("netguard"))


@pytest.mark.parametrize("args", [
    ("tickets", "export"),
    ("audit", "export", "--household", "hh-1"),
])
def test_output_file_that_cannot_be_written(tmp_path: Path, args: tuple[str, ...]) -> None:
    config = tmp_path / "netguard.yaml"
    config.write_text(f"store: {{path: '{tmp_path / 'n.db'}', auto_upgrade: true}}\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run([NETGUARD, "db", "upgrade", "--config", str(config)], check=True,
                   capture_output=True, timeout=60, env=env)
    (tmp_path / "h.csv").write_text("id,community,label\nhh-1,north,1 North Road\n")
    subprocess.run([NETGUARD, "households", "import", str(tmp_path / "h.csv"),
                    "--config", str(config)], check=True, capture_output=True, timeout=60,
                   env=env)
    target = tmp_path / "no-such-dir" / "out.csv"
    result = subprocess.run([NETGUARD, *args, "--output", str(target), "--config", str(config)],
                            capture_output=True, text=True, timeout=60, check=False, env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr == f"error: {target}: No such file or directory\n"
