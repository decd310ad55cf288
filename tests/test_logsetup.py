"""Logging: JSON and human formats, and secrets masked whatever path they take."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from netguard.config import settings_from_data
from netguard.logsetup import SECRETS, collect_secrets, configure_logging


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
