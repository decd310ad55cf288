"""Fault summaries and reasons in the message language. Pure.

The probes (:mod:`netguard.probes.assess` and the SNMP transports) write a fault's
summary as ``"<target>: <reason>"`` and each reason as one English line; the ticket store
keeps them as written (``tickets show``, exports and history read them). A ticket message
renders them here: the ``<target>: `` prefix goes (the title names the target already)
and, in zh-CN, the reason is translated by its pattern. Numbers, interface and sensor
names, addresses and units (dBm, dB, %) are kept; a line no pattern matches (a manual
ticket's summary, an older wording, an operating system's error text) is shown as stored.
"""

from __future__ import annotations

import re

from netguard.textpatterns import Pattern, compile_table, match_line

# Fullwidth punctuation of Chinese text, as escapes so that an edit does not swap them for
# ASCII ones: brackets, colon, comma, enumeration comma.
_LB, _RB, _COLON, _COMMA, _ENUM = "\uff08", "\uff09", "\uff1a", "\uff0c", "\u3001"
_NUM = r"-?[0-9.]+(?:e[+-]?\d+)?"

# The DS1-MIB alarm names of assess._DSX1_BITS.
_DSX1 = {"far-end LOF": "远端 LOF", "near-end sending LOF": "近端发送 LOF",
         "far-end AIS": "远端 AIS", "near-end sending AIS": "近端发送 AIS",
         "loss of frame": "帧丢失", "loss of signal": "信号丢失", "loopback": "环回",
         "T16 AIS": "T16 AIS", "far-end LOMF": "远端 LOMF", "near-end LOMF": "近端 LOMF",
         "near-end test code": "近端测试码", "other failure": "其他故障"}
# A fault's condition as the cleared and restored reasons spell it ("oper down").
_CONDITION = {"oper down": "接口中断", "utilisation high": "利用率过高",
              "errors high": "错包率过高", "rx power down": "无光", "rx power low": "收光功率低",
              "signal low": "信号弱", "snr low": "信噪比低", "on battery": "电池供电",
              "battery low": "电池电量低", "all onus offline": "ONU 全部离线",
              "onus offline": "ONU 离线", "onu rx power low": "ONU 收光功率低",
              "line alarm": "线路告警", "unreachable": "无法访问"}
_HINT = {" (a wrong community looks the same)": f"{_LB}团体名错误时表现相同{_RB}",
         " (a wrong SNMPv3 privacy key looks the same)": f"{_LB}SNMPv3 加密密钥错误时表现相同{_RB}",
         " (the port is closed: nothing listens there)": f"{_LB}端口已关闭{_COLON}无服务监听{_RB}",
         "": ""}
_CHECK_V3 = f"{_LB}请检查用户名{_ENUM}auth/priv 协议和密钥{_RB}"
_BATTERY_PART = re.compile(r"battery (depleted|low)|(-?\d+) min remaining|charge (-?\d+)%")


def _battery(m: re.Match[str]) -> str:
    # assess._observe_ups joins what it knows: "battery low, 12 min remaining, charge 30%".
    parts = []
    for part in m[0].split(", "):
        p = _BATTERY_PART.fullmatch(part)
        assert p is not None  # the line's pattern admits only these parts
        if p[1]:
            parts.append("电池耗尽" if p[1] == "depleted" else "电池电量低")
        elif p[2]:
            parts.append(f"剩余 {p[2]} 分钟")
        else:
            parts.append(f"电量 {p[3]}%")
    return _COMMA.join(parts)


def _dsx1(m: re.Match[str]) -> str:
    names = m["alarms"].split(", ")
    shown = _ENUM.join(_DSX1.get(n, n) for n in names)
    return f"E1/T1 线路 {m['line']} 告警{_COLON}{shown}"


def _condition(m: re.Match[str]) -> str:
    return _CONDITION[m["cond"]]


_CONDITIONS = "|".join(re.escape(c) for c in sorted(_CONDITION, key=len, reverse=True))
_BATTERY = r"(?:battery (?:depleted|low)|-?\d+ min remaining|charge -?\d+%)"

_ZH: tuple[Pattern, ...] = compile_table((
    (r"(?P<r>.+) \(pending (?P<n>\d+)/(?P<of>\d+)\)",
     lambda m: f"{translate(m['r'], 'zh-CN')}{_LB}待确认 {m['n']}/{m['of']}{_RB}"),
    (r"E1/T1 line (?P<line>.+?) alarm: (?P<alarms>.+)", _dsx1),
    (r"interface (?P<i>.+) is oper-down", lambda m: f"接口 {m['i']} 中断"),
    (rf"interface (?P<i>.+) utilisation (?P<v>{_NUM})% above (?P<lim>{_NUM})%",
     lambda m: f"接口 {m['i']} 利用率 {m['v']}%{_COMMA}高于 {m['lim']}%"),
    (rf"interface (?P<i>.+) errors (?P<v>{_NUM})/s above (?P<lim>{_NUM})/s",
     lambda m: f"接口 {m['i']} 错包 {m['v']} 个/秒{_COMMA}高于 {m['lim']} 个/秒"),
    (rf"(?P<s>.+) rx power (?P<v>{_NUM}) dBm below (?P<lim>{_NUM}) \(no light\)",
     lambda m: f"{m['s']} 收光功率 {m['v']} dBm{_COMMA}低于 {m['lim']} dBm{_LB}无光{_RB}"),
    (rf"(?P<s>.+) rx power (?P<v>{_NUM}) dBm below (?P<lim>{_NUM})",
     lambda m: f"{m['s']} 收光功率 {m['v']} dBm{_COMMA}低于 {m['lim']} dBm"),
    (rf"radio signal (?P<v>{_NUM}) dBm below (?P<lim>{_NUM})",
     lambda m: f"无线信号 {m['v']} dBm{_COMMA}低于 {m['lim']} dBm"),
    (rf"radio SNR (?P<v>{_NUM}) dB below (?P<lim>{_NUM})",
     lambda m: f"无线信噪比 {m['v']} dB{_COMMA}低于 {m['lim']} dB"),
    (r"cabin on battery for (?P<n>\d+) s", lambda m: f"机柜由电池供电已 {m['n']} 秒"),
    (rf"{_BATTERY}(?:, {_BATTERY})*", _battery),
    (r"PON (?P<p>.+?): all (?P<n>\d+) ONUs offline",
     lambda m: f"PON {m['p']}{_COLON}全部 {m['n']} 个 ONU 离线"),
    (r"PON (?P<p>.+?): (?P<o>\d+) of (?P<n>\d+) ONUs offline",
     lambda m: f"PON {m['p']}{_COLON}{m['n']} 个 ONU 中 {m['o']} 个离线"),
    (rf"PON (?P<p>.+?): (?P<k>\d+) ONUs with rx power below (?P<lim>{_NUM}) dBm "
     rf"\(worst (?P<w>{_NUM})\)",
     lambda m: f"PON {m['p']}{_COLON}{m['k']} 个 ONU 收光功率低于 {m['lim']} dBm"
               f"{_LB}最低 {m['w']} dBm{_RB}"),
    (r"agent did not answer", lambda m: "设备无响应"),
    (r"agent answers", lambda m: "设备有响应"),
    (r"all checks pass", lambda m: "全部检查通过"),
    (r"(?P<c>.+) no longer reported", lambda m: f"{m['c']} 不再上报"),
    (rf"(?P<c>.+?) (?P<cond>{_CONDITIONS}) cleared after (?P<n>\d+) good polls",
     lambda m: f"{m['c']} {_condition(m)}已恢复{_LB}连续 {m['n']} 次轮询正常{_RB}"),
    (rf"(?P<c>.+?) (?P<cond>{_CONDITIONS}) \(restored\)",
     lambda m: f"{m['c']} {_condition(m)}{_LB}重启前已存在{_RB}"),
    (rf"no response from (?P<a>.+) within (?P<t>{_NUM}) s x (?P<n>\d+) tries"
     rf"(?P<hint>{'|'.join(re.escape(h) for h in _HINT if h)})?",
     lambda m: f"{m['a']} 在 {m['t']} 秒内无响应{_LB}共尝试 {m['n']} 次{_RB}"
               f"{_HINT[m['hint'] or '']}"),
    (r"cannot resolve (?P<h>.+?): (?P<why>.*)",
     lambda m: f"无法解析 {m['h']}{_COLON}{m['why']}"),
    (r"cannot reach (?P<a>.+?): (?P<why>.*)",
     lambda m: f"无法连接 {m['a']}{_COLON}{m['why']}"),
    (r"SNMPv3 authentication failed \(check user, auth/priv protocols and keys\)",
     lambda m: f"SNMPv3 认证失败{_CHECK_V3}"),
    (r"SNMPv3 (?P<x>.+) \(check user, auth/priv protocols and keys\)",
     lambda m: f"SNMPv3 {m['x']}{_CHECK_V3}"),
    (r"(?P<op>GET|GETBULK) failed: (?P<x>.*)", lambda m: f"{m['op']} 失败{_COLON}{m['x']}"),
    (r"bad answer: (?P<x>.*)", lambda m: f"应答无法解析{_COLON}{m['x']}"),
    (r"poll failed: (?P<x>.*)", lambda m: f"轮询失败{_COLON}{m['x']}"),
))

_TABLES: dict[str, tuple[Pattern, ...]] = {"zh-CN": _ZH}


def translate(line: str, language: str) -> str:
    """``line`` (one reason as the probes write it) in ``language``; unchanged when the
    language is English or no pattern matches."""
    shown = match_line(_TABLES.get(language, ()), line)
    return line if shown is None else shown


def title_summary(summary: str, target: str | None, language: str) -> str:
    """A ticket's stored ``summary`` as a message title shows it after the target: without
    the ``"<target>: "`` the probes put in front, and in ``language``."""
    if target and summary.startswith(f"{target}: "):
        summary = summary[len(target) + 2:]
    return translate(summary, language)


__all__ = ["title_summary", "translate"]
