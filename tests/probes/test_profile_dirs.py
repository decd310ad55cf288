"""``probes.profile_dirs``: extra vendor profiles as data, checked by ``check-config``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netguard.config import load_settings
from netguard.errors import ConfigError
from netguard.probes.profiles import ProfileLibrary, library_for

NETGUARD = str(Path(sys.executable).with_name("netguard"))

ACME = """\
name: acme-radio
kinds: [wireless]
include: [if-mib]
metrics:
  - {name: radio_signal_dbm, oid: 1.3.6.1.4.1.99999.1.0, scale: 0.1}
"""


def _config(tmp_path: Path, profile_dirs: str, profile: str = "acme-radio") -> Path:
    path = tmp_path / "netguard.yaml"
    path.write_text(
        f"probes:\n  profile_dirs: {profile_dirs}\n"
        f"targets:\n  - {{id: r1, kind: wireless, address: 127.0.0.1, profile: {profile}}}\n"
        f"store: {{path: '{tmp_path / 'n.db'}'}}\n")
    return path


def _check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NETGUARD, "check-config", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "HOME": str(config.parent)})


def test_a_relative_profile_dir_is_read_from_the_config_files_place(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "acme.yaml").write_text(ACME)
    settings = load_settings(_config(tmp_path, "[profiles]"))
    assert settings.probes.profile_dirs == (tmp_path / "profiles",)
    library = library_for(settings.probes)
    assert "acme-radio" in library.names()
    assert library.for_target(settings.targets[0]).metric("radio_signal_dbm") is not None
    result = _check(_config(tmp_path, "[profiles]"))
    assert result.returncode == 0, result.stderr
    assert ": OK" in result.stdout


def test_check_config_names_a_missing_profile_dir(tmp_path: Path) -> None:
    result = _check(_config(tmp_path, "[no-such-dir]"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert (f"probes.profile_dirs: {tmp_path / 'no-such-dir'}: profile directory does not "
            "exist") in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("content", "problem"), [
    ("name: bad\nmetrics:\n  - {name: x, oid: not-an-oid}\n", "metrics.0.oid"),
    ("name: [unclosed\n", "not a valid YAML profile"),
    (b"name: caf\xe9\n", "not a valid YAML profile"),
    ("name: acme-radio\nkinds: [submarine]\n", "kinds.0"),
])
def test_check_config_names_an_invalid_profile_file(tmp_path: Path, content: str | bytes,
                                                    problem: str) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    bad = profiles / "bad.yaml"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    result = _check(_config(tmp_path, "[profiles]"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"probes.profile_dirs: {bad}: " in result.stderr
    assert problem in result.stderr


def test_check_config_names_an_unreadable_profile_file(tmp_path: Path) -> None:
    # A directory where a file should be: unreadable even for root (chmod is not).
    profiles = tmp_path / "profiles"
    (profiles / "broken.yaml").mkdir(parents=True)
    result = _check(_config(tmp_path, "[profiles]"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{profiles / 'broken.yaml'}: cannot read profile" in result.stderr


def test_check_config_refuses_a_profile_its_dirs_do_not_define(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    result = _check(_config(tmp_path, "[profiles]", profile="acme-radio"))
    assert result.returncode == 2
    assert "targets[0].profile: unknown profile 'acme-radio'" in result.stderr


def test_two_extra_files_may_not_define_one_profile(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "acme.yaml").write_text(ACME)
    with pytest.raises(ConfigError) as caught:
        ProfileLibrary([tmp_path / "a", tmp_path / "b"])
    assert caught.value.source == str(tmp_path / "b" / "acme.yaml")
    assert caught.value.problems == [
        f"profile 'acme-radio' is already defined in {tmp_path / 'a' / 'acme.yaml'}"]


def test_an_extra_profile_replaces_a_builtin_one_of_that_name(tmp_path: Path) -> None:
    (tmp_path / "pl.yaml").write_text(
        "name: private-line\ninclude: [if-mib]\nmetrics:\n"
        "  - {name: vendor_cpu, oid: 1.3.6.1.4.1.99999.9.0}\n")
    profile = ProfileLibrary([tmp_path]).resolve("private-line")
    assert profile.metric("vendor_cpu") is not None
    assert profile.metric("dsx1_line_status") is None


def test_an_include_cycle_is_reported_on_the_target(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "a.yaml").write_text("name: loop-a\ninclude: [loop-b]\n")
    (tmp_path / "profiles" / "b.yaml").write_text("name: loop-b\ninclude: [loop-a]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(_config(tmp_path, "[profiles]", profile="loop-a"))
    assert caught.value.problems == [
        "targets[0].profile: include cycle loop-a -> loop-b -> loop-a"]
