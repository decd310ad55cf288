"""An unusable database is a one-line error with a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from netguard.errors import StoreError, StoreUnavailableError
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import create_engine, current_revision, downgrade, upgrade
from tests.support.ports import free_tcp_port

NETGUARD = str(Path(sys.executable).with_name("netguard"))


def _under_a_file(tmp_path: Path) -> StoreConfig:
    # A regular file where the database directory should be: mkdir fails even as root.
    (tmp_path / "a-file").write_text("")
    return StoreConfig(path=tmp_path / "a-file" / "netguard.db")


def _unreachable_pg() -> StoreConfig:
    return StoreConfig(url=SecretStr(
        f"postgresql+asyncpg://ng:s3cret-pw@127.0.0.1:{free_tcp_port()}/netguard"))


def test_sqlite_directory_that_cannot_be_created(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="cannot create the database directory"):
        create_engine(_under_a_file(tmp_path))


async def test_unreachable_postgresql() -> None:
    config = _unreachable_pg()
    engine = create_engine(config)
    try:
        with pytest.raises(StoreUnavailableError, match="cannot reach the database") as err:
            await current_revision(engine)
    finally:
        await engine.dispose()
    assert "s3cret-pw" not in str(err.value)
    with pytest.raises(StoreUnavailableError):
        await upgrade(config)
    with pytest.raises(StoreUnavailableError):
        async with Store(config):
            pass


async def test_unknown_revision(tmp_path: Path) -> None:
    config = StoreConfig(path=tmp_path / "n.db")
    with pytest.raises(StoreError, match="'nosuch'"):
        await upgrade(config, "nosuch")
    with pytest.raises(StoreError, match="'nosuch'"):
        await downgrade(config, "nosuch")


@pytest.mark.parametrize("args", [("db", "upgrade"), ("db", "current"),
                                  ("db", "downgrade", "nosuch", "--yes"),
                                  ("tickets", "list"), ("run",)])
@pytest.mark.parametrize("where", ["under-a-file", "unreachable-pg"])
def test_cli_one_line_error(tmp_path: Path, args: tuple[str, ...], where: str) -> None:
    store = _under_a_file(tmp_path) if where == "under-a-file" else _unreachable_pg()
    store_yaml = (f"{{path: '{store.path}', auto_upgrade: true}}" if store.url is None
                  else f"{{url: '{store.url.get_secret_value()}'}}")
    config = tmp_path / "netguard.yaml"
    config.write_text(f"store: {store_yaml}\nmetrics: {{listen: '127.0.0.1:0'}}\n")
    result = subprocess.run([NETGUARD, *args, "--config", str(config)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    # `run` logs which configuration it loaded first; the failure is one error line.
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip("\n").endswith(errors[0]), result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
