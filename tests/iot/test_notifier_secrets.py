"""Issue 14: webhook ``headers`` are secrets (``<Header>_file``, masked in logs)."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import aiohttp
import pytest

from netguard.config import load_settings
from netguard.errors import ConfigError
from netguard.iot.notifiers import build_notifier
from netguard.iot.notifiers.base import Notification
from netguard.logsetup import SECRETS, collect_secrets, configure_logging
from tests.iot.conftest import T0
from tests.iot.receiver import Receiver

TOKEN = "Bearer hdr-5e1f0c9a7b"


def _config(tmp_path: Path, url: str, headers: str) -> Path:
    path = tmp_path / "netguard.yaml"
    path.write_text(f"""
iot:
  notifiers:
    - name: hook
      type: webhook
      url: {url}
      headers: {headers}
""")
    return path


async def test_header_from_file_is_sent_and_masked_in_logs(tmp_path: Path,
                                                           receiver: Receiver) -> None:
    (tmp_path / "hook-token").write_text(TOKEN + "\n")
    settings = load_settings(_config(tmp_path, receiver.url("/hook"),
                                     "{Authorization_file: hook-token, X-Team: ng}"))
    [hook] = settings.iot.notifiers
    assert TOKEN not in repr(settings)
    assert TOKEN in collect_secrets(settings)

    async with aiohttp.ClientSession() as http:
        await build_notifier(hook, http, settings.iot.mqtt).send([Notification(
            alert_id=1, reason="raised", type="door_open", severity="critical",
            community="c1", household="h1", sensor="n1", reasons=(), count=1,
            first_seen=T0.isoformat())])
    [request] = receiver.on("/hook")
    assert request.headers["Authorization"] == TOKEN
    assert request.headers["X-Team"] == "ng"

    # What the daemon and the CLI do at start: register every secret of the settings.
    SECRETS.add(collect_secrets(settings))
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    logging.getLogger("netguard.test").warning(
        "webhook said %s", f"bad token {TOKEN}",
        extra={"headers": {"Authorization": TOKEN}})
    record = json.loads(stream.getvalue())
    assert TOKEN not in stream.getvalue()
    assert record["msg"] == "webhook said bad token ***"


@pytest.mark.parametrize(("headers", "expected"), [
    ("{Authorization: x, Authorization_file: hook-token}",
     "iot.notifiers[0].headers.Authorization_file: give either Authorization or "
     "Authorization_file, not both"),
    ("{Authorization_file: missing-file}",
     "iot.notifiers[0].headers.Authorization_file: cannot read secret file"),
    ('{"X-Evil": "a\\r\\nHost: elsewhere"}',
     "iot.notifiers[0].headers: Value error, header 'X-Evil': the value contains a line break"),
    ('{"Bad Name": "x"}',
     "iot.notifiers[0].headers: Value error, header name 'Bad Name' is not a valid"),
])
def test_bad_headers_name_the_path(tmp_path: Path, headers: str, expected: str) -> None:
    (tmp_path / "hook-token").write_text(TOKEN)
    with pytest.raises(ConfigError) as info:
        load_settings(_config(tmp_path, "http://127.0.0.1:9/hook", headers))
    assert any(p.startswith(expected.replace("Value error, ", ""))
               for p in info.value.problems), info.value.problems
    assert TOKEN not in str(info.value)
