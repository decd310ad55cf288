"""External tools a test needs: skipped locally when missing, a failure under CI.

A CI machine without ``promtool`` would otherwise go green having checked nothing.
``scripts/test.sh`` installs every tool listed here, so a CI run never lacks one.
"""

from __future__ import annotations

import os
import shutil

import pytest

# Tool -> the Debian package that ships it (scripts/test.sh installs these).
PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "snmptrap": "snmp",
    "snmpget": "snmp",
    "snmpd": "snmpd",
    "mosquitto": "mosquitto",
    "systemd-analyze": "systemd",
}


def in_ci() -> bool:
    """True when the environment says this is a CI run (``CI=true``, as CI services set)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_tool(*names: str) -> pytest.MarkDecorator:
    """Mark a test (or a module, via ``pytestmark``) as needing the tools ``names``.

    The check runs at set-up (tests/conftest.py): a missing tool skips the test on a
    developer machine and fails it when ``CI=true``.
    """
    unknown = [n for n in names if n not in PACKAGES]
    if unknown:
        # Every tool must have a package in scripts/test.sh, or CI would fail on it.
        raise ValueError(f"add {unknown} to tests/support/tools.py PACKAGES and scripts/test.sh")
    return pytest.mark.requires_tool(*names)


def check_tools(names: tuple[str, ...]) -> None:
    """Skip (locally) or fail (under CI) when a tool of ``names`` is not on PATH."""
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    packages = sorted({PACKAGES.get(n, n) for n in missing})
    message = (f"needs {', '.join(missing)} (Debian: {' '.join(packages)}; "
               "bash scripts/test.sh installs it)")
    if in_ci():
        pytest.fail(f"CI=true and a required tool is missing: {message}", pytrace=False)
    pytest.skip(message)
