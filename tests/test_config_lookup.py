"""Where the CLI finds its config: --config, $NETGUARD_CONFIG, ./netguard.yaml, /etc/netguard.

The pure lookup is tested with injected places; the real command is run as a subprocess
from an empty directory to show that it refuses to invent a database there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netguard.config import DEFAULT_CONFIG_FILES, find_config
from netguard.errors import ConfigError, ConfigNotFoundError

NETGUARD = str(Path(sys.executable).with_name("netguard"))
SYSTEM_CONFIG = Path("/etc/netguard/netguard.yaml")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NETGUARD_CONFIG"}
    env.update(extra)
    return env


def _run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NETGUARD, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def _write_config(path: Path, db: Path) -> Path:
    path.write_text(yaml.safe_dump({"store": {"path": str(db), "auto_upgrade": True}}))
    return path


# --------------------------------------------------------------------------- pure lookup


def test_lookup_order(tmp_path: Path) -> None:
    local = tmp_path / "cwd"
    local.mkdir()
    system = tmp_path / "etc" / "netguard.yaml"
    defaults = (Path("netguard.yaml"), system)
    given = tmp_path / "given.yaml"
    from_env = tmp_path / "env.yaml"
    env = {"NETGUARD_CONFIG": str(from_env)}

    # --config wins over everything, even over a file that does not exist (loading then
    # names it) -- an explicit choice is never silently replaced.
    chosen = find_config(given, env=env, defaults=defaults, cwd=local)
    assert (chosen.path, chosen.found_by) == (given, "--config")
    chosen = find_config(None, env=env, defaults=defaults, cwd=local)
    assert (chosen.path, chosen.found_by) == (from_env, "NETGUARD_CONFIG")

    system.parent.mkdir()
    system.write_text("{}\n")
    chosen = find_config(None, env={}, defaults=defaults, cwd=local)
    assert (chosen.path, chosen.found_by) == (system, "default")
    (local / "netguard.yaml").write_text("{}\n")
    chosen = find_config(None, env={"NETGUARD_CONFIG": " "}, defaults=defaults, cwd=local)
    assert (chosen.path, chosen.found_by) == (local / "netguard.yaml", "default")
    assert chosen.describe() == f"config: {local / 'netguard.yaml'} (from default)"


def test_lookup_with_nothing_names_every_place_searched(tmp_path: Path) -> None:
    defaults = (Path("netguard.yaml"), tmp_path / "etc" / "netguard.yaml")
    with pytest.raises(ConfigNotFoundError) as info:
        find_config(None, env={}, defaults=defaults, cwd=tmp_path)
    assert isinstance(info.value, ConfigError)  # so the CLI maps it to exit 2
    message = str(info.value)
    for place in ("--config", "$NETGUARD_CONFIG", str(tmp_path / "netguard.yaml"),
                  str(tmp_path / "etc" / "netguard.yaml")):
        assert place in message, message
    assert "\n" not in message


def test_the_shipped_places() -> None:
    assert (Path("netguard.yaml"), SYSTEM_CONFIG) == DEFAULT_CONFIG_FILES


# --------------------------------------------------------------------------- the command


def _require_no_system_config() -> None:
    # The subprocess tests below look where an operator's shell would; a machine with a
    # real /etc/netguard config would answer differently, so say so instead of failing
    # obscurely.
    assert not SYSTEM_CONFIG.exists(), f"{SYSTEM_CONFIG} exists on this machine"


@pytest.mark.parametrize("args", [["tickets", "list"], ["tickets", "list", "--json"],
                                  ["check-config"], ["db", "current"], ["run"]])
def test_no_config_anywhere_exits_2_and_creates_nothing(tmp_path: Path,
                                                         args: list[str]) -> None:
    _require_no_system_config()
    result = _run(*args, cwd=tmp_path, env=_env())
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: no configuration file found"), result.stderr
    assert str(tmp_path / "netguard.yaml") in result.stderr
    assert str(SYSTEM_CONFIG) in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "no database may be invented in the cwd"


def test_env_and_working_directory_files_are_used_and_named_on_stderr(tmp_path: Path
                                                                      ) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env_config = _write_config(tmp_path / "from-env.yaml", tmp_path / "env.db")
    result = _run("tickets", "list", "--json", cwd=work,
                  env=_env(NETGUARD_CONFIG=str(env_config)))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []  # stdout stays pure JSON
    assert result.stderr.strip() == f"config: {env_config} (from NETGUARD_CONFIG)"
    assert (tmp_path / "env.db").exists()

    local = _write_config(work / "netguard.yaml", tmp_path / "local.db")
    result = _run("tickets", "list", "--json", cwd=work, env=_env())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert result.stderr.strip() == f"config: {local} (from default)"
    assert (tmp_path / "local.db").exists()

    # --config is what the operator typed: nothing extra is said.
    result = _run("tickets", "list", "--json", "--config", str(env_config), cwd=work,
                  env=_env(NETGUARD_CONFIG=str(local)))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_check_config_says_where_the_file_came_from(tmp_path: Path) -> None:
    config = _write_config(tmp_path / "netguard.yaml", tmp_path / "n.db")
    result = _run("check-config", cwd=tmp_path, env=_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{config}: OK (from default)"
    result = _run("check-config", "--config", str(config), cwd=tmp_path, env=_env())
    assert result.stdout.splitlines()[0] == f"{config}: OK (from --config)"


# --------------------------------------------------------------------------- -h, completion


@pytest.mark.parametrize("args", [[], ["tickets"], ["tickets", "ack"], ["db", "upgrade"],
                                  ["check-config"], ["run"], ["sensors", "list"]])
def test_short_help_works_everywhere(tmp_path: Path, args: list[str]) -> None:
    short = _run(*args, "-h", cwd=tmp_path, env=_env())
    long = _run(*args, "--help", cwd=tmp_path, env=_env())
    assert short.returncode == 0, short.stderr
    assert "Usage: netguard" in short.stdout
    assert short.stdout == long.stdout


def test_shell_completion_is_offered(tmp_path: Path) -> None:
    # With shellingham installed, typer guesses the shell from the parent processes, which
    # differ between a terminal, CI and an xdist worker; typer's own switch makes the shell
    # an argument instead.
    env = _env(_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    result = _run("--show-completion", "bash", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "_netguard_completion" in result.stdout
    assert "--install-completion" in _run("--help", cwd=tmp_path, env=_env()).stdout
