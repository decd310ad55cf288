"""Fault summaries and reasons in the message language: every wording the real probe code
writes (the assessor's checks, its cleared/pending/restored lines, the SNMP transports'
unreachable texts) is translated in zh-CN, unknown text passes unchanged, the title drops
the summary's ``"<target>: "`` prefix, and a grouped root renders as its snapshot."""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from netguard.faults import FaultCleared, FaultKey, FaultOpened
from netguard.notify.summaries import title_summary, translate
from netguard.notify.texts import TicketFacts, TicketTexts
from netguard.probes.assess import ActiveFault, Assessor, observe, reasons_text
from netguard.probes.config import TargetConfig, Thresholds
from netguard.probes.gufo_transport import GufoAgentSession, GufoTransport
from netguard.probes.service import ProbeService
from netguard.probes.state import (
    InterfaceReading,
    LinkSample,
    OnuReading,
    OpticalReading,
    PonPortReading,
    RadioReading,
    UpsReading,
)
from tests.probes.conftest import targets

EXPECTED = Path(__file__).resolve().parent / "expected" / "ticket_opened_probe.zh-CN.md"
NOW = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
V3 = {"version": "3", "user": "ng", "auth_protocol": "sha256", "auth_key": "ng-auth-key-1",
      "priv_protocol": "aes128", "priv_key": "ng-priv-key-1"}
# What may stay Latin in a zh-CN line: identifiers the probes took from the device or the
# config (interface, sensor, port and target names, addresses) and units and acronyms.
IDENTIFIERS = ("GigabitEthernet0/0/1", "Te1/1", "GPON 0/1/0", "GPON 0/1/1",
               "127.0.0.1:39758", "wl-lake-camp", "sensor:Te1/1", "if:GigabitEthernet0/0/1",
               "sensor:GigabitEthernet0/0/1", "pon:GPON 0/1/0", "pon:GPON 0/1/1",
               "dsx1:1", "ups", "radio", "agent", "auth/priv")
ALLOWED = {"dBm", "dB", "PON", "ONU", "E1", "T1", "LOF", "AIS", "LOMF", "T16", "SNMPv3",
           "GET", "GETBULK"}


def _target(kind: str = "fiber", **extra: object) -> TargetConfig:
    return TargetConfig.model_validate({"id": "wl-lake-camp", "kind": kind,
                                        "address": "127.0.0.1:39758", **extra})


def _bad_sample() -> LinkSample:
    """One sample that fails every check of every kind at once."""
    iface = InterfaceReading(1, "GigabitEthernet0/0/1", admin_status=1, oper_status=2,
                             utilisation=0.97, in_error_rate=3.5, out_error_rate=0.0)
    onus = (OnuReading("1", True, -29.5), *(OnuReading(str(i), False) for i in range(2, 9)))
    return LinkSample(
        sys_uptime_ticks=1, interfaces=(iface,),
        optical=(OpticalReading("Te1/1", -28.5), OpticalReading("GigabitEthernet0/0/1", -45.0)),
        radio=RadioReading(signal_dbm=-80.0, snr_db=9.0),
        ups=UpsReading(battery_status=3, charge_percent=30, minutes_remaining=12,
                       seconds_on_battery=240, on_battery=True),
        pon=(PonPortReading("GPON 0/1/0", 1, 8, onus), PonPortReading("GPON 0/1/1", 0, 4)),
        extra=(("dsx1_line_status.1", 2 | 32 | 64 | 4096), ("dsx1_line_status.2", 1)))


def _observed() -> list[str]:
    lines = [ob.reason for ob in observe("fiber", _bad_sample(), _assessor().limits)]
    for ups in (UpsReading(battery_status=4), UpsReading(minutes_remaining=5),
                UpsReading(charge_percent=10, minutes_remaining=30)):
        lines += [ob.reason for ob in observe("cabin", LinkSample(1, ups=ups),
                                              _assessor().limits)]
    return [line for line in lines if line]


def _assessor() -> Assessor:
    return Assessor.for_target(_target(thresholds=Thresholds(raise_after=2, clear_after=1)))


def _assessed() -> list[str]:
    """What the assessor writes around the checks: summaries, pending, cleared, restored."""
    a = _assessor()
    lines = list(a.assess(_bad_sample(), now=NOW).reasons)  # pending 1/2
    opened = a.assess(_bad_sample(), now=NOW)
    lines += [e.summary for e in opened.events if isinstance(e, FaultOpened)]
    healthy = LinkSample(1, interfaces=(InterfaceReading(
        1, "GigabitEthernet0/0/1", admin_status=1, oper_status=1),))
    lines += [r for e in a.assess(healthy, now=NOW).events if isinstance(e, FaultCleared)
              for r in e.reasons]  # cleared (also of what is no longer reported)
    lines += a.assess(None, now=NOW).reasons  # agent did not answer (pending)
    lines.append(reasons_text(()))
    b = _assessor()
    b.restore(ActiveFault(FaultKey("wl-lake-camp", "radio", "snr_low")))
    lines += [f.reason for f in b.active_faults()]
    return lines


def _transport() -> list[str]:
    """The unreachable and refused texts the gufo transport writes, without the target."""
    transport = GufoTransport()
    v2 = GufoAgentSession(transport, _target())
    v3 = GufoAgentSession(transport, _target(snmp=V3))
    errors = [v2._timeout_error(), v2._timeout_error(refused=True), v3._timeout_error(),
              v3._auth_error()]
    return [str(e).removeprefix("wl-lake-camp: ") for e in errors]


def _every_line() -> list[str]:
    lines = [*_observed(), *_assessed(), *_transport()]
    return list(dict.fromkeys(line.removeprefix("wl-lake-camp: ") for line in lines))


def _left_english(text: str) -> list[str]:
    for name in sorted(IDENTIFIERS, key=len, reverse=True):
        text = text.replace(name, "")
    return [w for w in re.findall(r"[A-Za-z][A-Za-z0-9]*", text) if w not in ALLOWED]


def test_the_probe_code_writes_every_wording_the_test_expects() -> None:
    # A guard on the collection itself: a check that stops firing would hide a wording.
    lines = _every_line()
    for needle in ("oper-down", "utilisation", "errors", "(no light)", "rx power -28.5",
                   "radio signal", "radio SNR", "cabin on battery", "battery low",
                   "battery depleted", "min remaining", "charge", "all 4 ONUs",
                   "of 8 ONUs", "ONUs with rx power", "E1/T1 line 1", "pending 1/2",
                   "cleared after", "agent did not answer",
                   "all checks pass", "(restored)", "wrong community", "privacy key",
                   "port is closed", "authentication failed"):
        assert any(needle in line for line in lines), needle


@pytest.mark.parametrize("line", _every_line())
def test_every_probe_wording_is_translated(line: str) -> None:
    shown = translate(line, "zh-CN")
    assert shown != line
    assert _left_english(shown) == [], shown
    assert translate(line, "en") == line


@pytest.mark.parametrize("line", ["专线中断", "cabin flooded (operator note)", "",
                                  "interface x is very slow"])
def test_unknown_text_passes_unchanged(line: str) -> None:
    assert translate(line, "zh-CN") == line


def test_numbers_names_and_addresses_are_kept() -> None:
    assert translate("GigabitEthernet0/0/1 rx power -28.5 dBm below -25.0", "zh-CN") == \
        "GigabitEthernet0/0/1 收光功率 -28.5 dBm\uff0c低于 -25.0 dBm"
    assert translate("no response from 127.0.0.1:39758 within 1.5 s x 1 tries "
                     "(a wrong community looks the same)", "zh-CN") == \
        "127.0.0.1:39758 在 1.5 秒内无响应\uff08共尝试 1 次\uff09\uff08团体名错误时表现相同\uff09"


def test_the_title_drops_the_target_prefix_in_both_languages() -> None:
    summary = "pon-riverside: PON GPON 0/1/0: 4 of 8 ONUs offline"
    assert title_summary(summary, "pon-riverside", "en") == "PON GPON 0/1/0: 4 of 8 ONUs offline"
    assert title_summary(summary, "pon-riverside", "zh-CN") == \
        "PON GPON 0/1/0\uff1a8 个 ONU 中 4 个离线"
    # Another target's name, or none, is the summary's own text.
    assert title_summary(summary, "other", "en") == summary
    assert title_summary("manual: check the cabin", None, "zh-CN") == "manual: check the cabin"


def test_a_grouped_root_renders_in_chinese_as_the_snapshot() -> None:
    facts = TicketFacts(
        ref="DEMO-000006", severity="critical", site="东区", target="pl-east-uplink",
        summary="pl-east-uplink: no response from 127.0.0.1:39758 within 1.5 s x 1 tries "
                "(a wrong community looks the same)",
        category="private_line", opened_at=NOW,
        children=("fib-field-hospital", "cab-stadium"), route="noc")
    text = TicketTexts("zh-CN").render("ticket_opened", facts, NOW + timedelta(minutes=1))
    if os.environ.get("NETGUARD_UPDATE_SNAPSHOTS"):
        EXPECTED.write_text(text + "\n", encoding="utf-8")
    assert text == EXPECTED.read_text(encoding="utf-8").rstrip("\n")
    assert "pl-east-uplink\uff1apl-east-uplink" not in text
    en = TicketTexts("en").render("ticket_opened", facts, NOW)
    assert en.startswith("### [critical] DEMO-000006 pl-east-uplink: no response from")


async def test_a_real_failed_poll_reads_in_chinese() -> None:
    # The service's own unreachable reasons, from a name that never resolves (RFC 6761) and
    # from a port nothing listens on.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configs = [{"id": "typo", "kind": "fiber", "address": "no-such-host.invalid:161",
                "timeout_seconds": 0.2, "retries": 0},
               {"id": "closed", "kind": "fiber", "address": f"127.0.0.1:{port}",
                "timeout_seconds": 0.2, "retries": 0}]
    async with ProbeService(targets(*configs)) as probes:
        typo = (await probes.poll("typo")).status.reasons
        closed = (await probes.poll("closed")).status.reasons
    assert translate(typo[0], "zh-CN").startswith("无法解析 no-such-host.invalid\uff1a"), typo
    shown = translate(closed[0], "zh-CN")
    assert shown != closed[0]
    assert _left_english(shown.replace(f"127.0.0.1:{port}", "")) == [], shown
