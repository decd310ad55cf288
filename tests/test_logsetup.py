"""Logging: JSON and human formats, and secrets masked whatever path they take."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netguard.config import settings_from_data
from netguard.logsetup import (
    SECRETS,
    collect_secrets,
    configure_logging,
    syslog_priority,
    writes_to_journal,
)


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_secrets_from_settings_are_masked_in_json_logs() -> None:
    settings = settings_from_data({
        "targets": [{"id": "a", "kind": "fiber", "address": "h",
                     "snmp": {"version": "2c", "community": "s3cret-community"}}],
        "iot": {"mqtt": {"password": "mqtt-pass-xyz"}},
    })
    found = collect_secrets(settings)
    assert {"s3cret-community", "mqtt-pass-xyz"} <= set(found)
    SECRETS.add(found)
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    log = logging.getLogger("netguard.test")
    log.info("connecting with %s", "mqtt-pass-xyz", extra={"community": "s3cret-community"})
    try:
        raise RuntimeError("auth failed for s3cret-community")
    except RuntimeError:
        log.exception("boom")
    out = stream.getvalue()
    assert "mqtt-pass-xyz" not in out
    assert "s3cret-community" not in out
    first = json.loads(out.splitlines()[0])
    assert first["msg"] == "connecting with ***"
    assert first["community"] == "***"
    assert first["level"] == "INFO"


def test_human_format_has_level_logger_and_extras() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "human", stream)
    logging.getLogger("netguard.x").warning("link down", extra={"target": "olt-1"})
    line = stream.getvalue().strip()
    assert "WARNING" in line
    assert "netguard.x: link down" in line
    assert "target=olt-1" in line


class _Holder:
    """An object whose str() and repr() both show a secret."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __repr__(self) -> str:
        return f"_Holder(secret={self.secret!r})"


@pytest.mark.parametrize("fmt", ["json", "human"])
def test_secrets_inside_non_string_extras_are_masked(fmt: str) -> None:
    SECRETS.add(["tok-9f8e7d6c"])
    stream = io.StringIO()
    configure_logging("INFO", fmt, stream)
    logging.getLogger("netguard.test").warning(
        "request failed", extra={"headers": {"Authorization": "Bearer tok-9f8e7d6c"},
                                 "args_list": ["x", "tok-9f8e7d6c"],
                                 "holder": _Holder("tok-9f8e7d6c"),
                                 "attempt": 3, "payload": {"ok": True}})
    out = stream.getvalue()
    assert "tok-9f8e7d6c" not in out
    assert "Bearer ***" in out
    if fmt == "json":
        record = json.loads(out)
        assert record["headers"] == "{'Authorization': 'Bearer ***'}"
        assert record["args_list"] == "['x', '***']"
        assert record["holder"] == "_Holder(secret='***')"
        # Extras without a secret keep their type and value.
        assert record["attempt"] == 3
        assert record["payload"] == "{'ok': True}"


class _Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        return "broken tok-9f8e7d6c"


def test_an_extra_whose_repr_raises_is_still_masked() -> None:
    SECRETS.add(["tok-9f8e7d6c"])
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    logging.getLogger("netguard.test").warning("odd", extra={"thing": _Broken()})
    assert json.loads(stream.getvalue())["thing"] == "broken ***"


# --------------------------------------------------------------------------- journald

_LOG_EVERY_LEVEL = """
import logging, sys
from netguard.logsetup import configure_logging
configure_logging("DEBUG", sys.argv[1])
log = logging.getLogger("netguard.test")
log.debug("d")
log.info("i")
log.warning("w")
log.error("e")
log.critical("c")
try:
    raise RuntimeError("boom")
except RuntimeError:
    log.exception("x")
# Alembic's per-connection chatter is dropped at INFO; its schema changes are kept.
logging.getLogger("alembic.runtime.plugins").info("setup plugin %s", "alembic.autogenerate")
logging.getLogger("alembic.runtime.migration").info("Context impl %s.", "SQLiteImpl")
logging.getLogger("alembic.runtime.migration").info("Will assume %s DDL.", "transactional")
logging.getLogger("alembic.runtime.migration").info("Running upgrade  -> 0001_tickets")
"""


def _log_to_file(tmp_path: Path, fmt: str, journal: bool | str) -> list[str]:
    """Run a real process whose stderr is a file; JOURNAL_STREAM names that file or not."""
    path = tmp_path / f"stderr-{fmt}-{journal}.log"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with path.open("wb") as err:
        if journal is True:
            st = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        elif journal:
            env["JOURNAL_STREAM"] = journal
        subprocess.run([sys.executable, "-c", _LOG_EVERY_LEVEL, fmt], stderr=err,
                       env=env, check=True, timeout=60)
    return path.read_text().splitlines()


@pytest.mark.parametrize("fmt", ["json", "human"])
def test_journal_stream_gets_syslog_priority_prefixes(tmp_path: Path, fmt: str) -> None:
    lines = _log_to_file(tmp_path, fmt, journal=True)
    assert all(re.match(r"^<[2-7]>", line) for line in lines), lines
    firsts = [line for line in lines if "netguard.test" in line]
    assert [line[:3] for line in firsts] == ["<7>", "<6>", "<4>", "<3>", "<2>", "<3>"]
    if fmt == "json":
        assert json.loads(firsts[3][3:])["msg"] == "e"
    else:
        # Every line of a traceback keeps the record's priority.
        assert any(line.startswith("<3>RuntimeError: boom") for line in lines), lines
    alembic = [line for line in lines if "alembic" in line]
    assert len(alembic) == 1, alembic
    assert "Running upgrade" in alembic[0]


@pytest.mark.parametrize("journal", [False, "1:2", "not-a-pair"])
def test_no_prefix_unless_the_stream_is_the_journal(tmp_path: Path,
                                                    journal: bool | str) -> None:
    # An inherited JOURNAL_STREAM that names another file (our stderr was redirected)
    # must not change the output.
    lines = _log_to_file(tmp_path, "json", journal=journal)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert [r["level"] for r in records if r["logger"] == "netguard.test"] == [
        "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "ERROR"]
    assert not any(line.startswith("<") for line in lines)


def test_syslog_priorities() -> None:
    assert [syslog_priority(n) for n in (5, 10, 20, 25, 30, 40, 50, 60)] == [
        7, 7, 6, 6, 4, 3, 2, 2]


def test_writes_to_journal_matches_the_streams_own_file(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        st = os.fstat(a.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert writes_to_journal(a, env)
        assert not writes_to_journal(b, env)
        assert not writes_to_journal(a, {})
        assert not writes_to_journal(io.StringIO(), env)
