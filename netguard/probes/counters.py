"""Counter maths: deltas across wraps, reset detection, rates. Pure functions only.

A counter delta is taken modulo 2^32 or 2^64, which handles one wrap between polls.
A sample pair is *not comparable* (no rate at all, never a spike) when the agent
rebooted or the counters were reset: sysUpTime went back, snmpEngineBoots changed, or
the interface's ifCounterDiscontinuityTime changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from netguard.probes.state import InterfaceReading, LinkSample

COUNTER32_MODULUS = 1 << 32
COUNTER64_MODULUS = 1 << 64


def counter_delta(previous: int, current: int, bits: int = 64) -> int:
    """The increase of a counter between two readings, allowing one wrap.

    Args:
        previous: The earlier raw value.
        current: The later raw value.
        bits: 32 for Counter32, 64 for Counter64.

    Returns:
        ``(current - previous) mod 2**bits``.
    """
    if bits not in (32, 64):
        raise ValueError(f"counters are 32 or 64 bits, not {bits}")
    return (current - previous) % (1 << bits)


def reset_reason(previous: LinkSample, current: LinkSample,
                 wall_seconds: float | None = None) -> str | None:
    """Why two samples of a target cannot be compared, or ``None`` if they can.

    Args:
        previous: The earlier sample.
        current: The later sample.
        wall_seconds: Time between the two polls on our clock, if known. An agent that
            restarted longer ago than its previous uptime shows a *larger* sysUpTime;
            it is caught because its uptime advanced much less than our clock did.
    """
    if previous.sys_uptime_ticks is not None and current.sys_uptime_ticks is not None:
        if current.sys_uptime_ticks < previous.sys_uptime_ticks:
            return "sysUpTime went back (agent restarted)"
        advanced = (current.sys_uptime_ticks - previous.sys_uptime_ticks) / 100.0
        if wall_seconds is not None and advanced < wall_seconds - max(2.0, wall_seconds / 10):
            return "sysUpTime advanced less than the clock (agent restarted)"
    if previous.engine_boots is not None and current.engine_boots is not None \
            and current.engine_boots != previous.engine_boots:
        return "snmpEngineBoots changed (agent restarted)"
    return None


def rate(previous: int | None, current: int | None, seconds: float,
         bits: int = 64) -> float | None:
    """Per-second rate of a counter, or ``None`` when either reading is missing."""
    if previous is None or current is None or seconds <= 0:
        return None
    return counter_delta(previous, current, bits) / seconds


def _rate(previous: int | None, current: int | None, seconds: float,
          modulus: int) -> float | None:
    """``rate`` for the per-interface hot path (the width already checked)."""
    if previous is None or current is None or seconds <= 0:
        return None
    delta = (current - previous) % modulus
    # Most error and discard counters stand still: one shared 0.0 instead of a new float
    # per rate kept 28 floats (0.66 KB) a private line (bench/RESULTS.md, issue 10 sec. 8).
    return delta / seconds if delta else 0.0


def interface_rates(previous: InterfaceReading, current: InterfaceReading,
                    seconds: float) -> InterfaceReading:
    """``current`` with bps, utilisation and error/discard rates filled in.

    Rates stay ``None`` when the interface's counters were reset (its
    ifCounterDiscontinuityTime changed) or switched width (32 <-> 64 bit).
    """
    if previous.discontinuity_time != current.discontinuity_time \
            or previous.counter_bits != current.counter_bits:
        return current
    p_in, p_out, c_in, c_out = (previous.in_octets, previous.out_octets, current.in_octets,
                                current.out_octets)
    if current.counter_bits == 64 and (
            (p_in is not None and c_in is not None and c_in < p_in)
            or (p_out is not None and c_out is not None and c_out < p_out)):
        # A 64-bit octet counter needs decades to wrap: going back means a reset.
        return current
    modulus = COUNTER64_MODULUS if current.counter_bits == 64 else COUNTER32_MODULUS
    in_oct = _rate(p_in, c_in, seconds, modulus)
    out_oct = _rate(p_out, c_out, seconds, modulus)
    in_bps = None if in_oct is None else in_oct * 8
    out_bps = None if out_oct is None else out_oct * 8
    utilisation = None
    if current.speed_bps and in_bps is not None and out_bps is not None:
        utilisation = max(in_bps, out_bps) / current.speed_bps
    # Error and discard counters are Counter32 in IF-MIB whatever the octet width.
    # Built field by field: ``dataclasses.replace`` cost more than the rates themselves.
    c = current
    return InterfaceReading(
        index=c.index, name=c.name, alias=c.alias, admin_status=c.admin_status,
        oper_status=c.oper_status, in_octets=c.in_octets, out_octets=c.out_octets,
        in_errors=c.in_errors, out_errors=c.out_errors, in_discards=c.in_discards,
        out_discards=c.out_discards, speed_bps=c.speed_bps, counter_bits=c.counter_bits,
        discontinuity_time=c.discontinuity_time,
        in_bps=in_bps,
        out_bps=out_bps,
        utilisation=utilisation,
        in_error_rate=_rate(previous.in_errors, c.in_errors, seconds, COUNTER32_MODULUS),
        out_error_rate=_rate(previous.out_errors, c.out_errors, seconds, COUNTER32_MODULUS),
        in_discard_rate=_rate(previous.in_discards, c.in_discards, seconds,
                              COUNTER32_MODULUS),
        out_discard_rate=_rate(previous.out_discards, c.out_discards, seconds,
                               COUNTER32_MODULUS),
    )


def apply_rates(previous: LinkSample | None, current: LinkSample, seconds: float,
                wall_seconds: float | None = None) -> tuple[LinkSample, str | None]:
    """Fill in interface rates from the previous sample of the same target.

    Args:
        previous: The last successful sample, if any.
        current: The new sample.
        seconds: Time between the two polls, preferably from sysUpTime.
        wall_seconds: Time between the two polls on our clock (reboot detection).

    Returns:
        The sample with rates, and the reason rates were skipped (reboot) or ``None``.
    """
    if previous is None:
        return current, None
    reason = reset_reason(previous, current, wall_seconds)
    if reason is not None:
        return current, reason
    before: Mapping[int, InterfaceReading] = {i.index: i for i in previous.interfaces}
    updated = tuple(
        interface_rates(before[i.index], i, seconds) if i.index in before else i
        for i in current.interfaces
    )
    return dataclasses.replace(current, interfaces=updated), None


def elapsed_seconds(previous: LinkSample, current: LinkSample, wall_seconds: float) -> float:
    """Seconds between two samples: the agent's sysUpTime when usable, else wall time.

    sysUpTime is measured where the counters are, so network jitter does not bend
    the rates; it is in hundredths of a second.
    """
    if previous.sys_uptime_ticks is not None and current.sys_uptime_ticks is not None:
        ticks = current.sys_uptime_ticks - previous.sys_uptime_ticks
        if ticks > 0:
            return ticks / 100.0
    return wall_seconds
