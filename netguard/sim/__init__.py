"""Simulated SNMP agents for the demo and tests (needs the ``demo`` extra: snmpsim, pysmi).

Build agents as data, serve them with snmpsim on free loopback ports, flip values at
runtime, or run a real net-snmp ``snmpd``::

    from netguard.sim import SnmpSim, build_agent

    fiber = build_agent("fiber-1", "fiber", vendor="huawei")        # normal scenario
    cabin = build_agent("cabin-1", "cabin_5g", scenario="degraded")  # starts on battery
    with SnmpSim([fiber, cabin], tmp_path / "sim") as sim:           # one process, one port
        target = sim.target("fiber-1")           # dict for netguard config (v2c)
        sim.set_knob("fiber-1", "rx_dbm", -27.4)  # rx power falls ...
        sim.set_knob("fiber-1", "rx_dbm", -8.5)   # ... and recovers
        sim.apply_scenario("cabin-1", "normal")  # mains back
        sim.kill()                                # every agent in this process dies
        sim.start()                               # back on the same port (a reboot)

Agents (:func:`build_agent`), kinds and vendor presets (:data:`VENDORS`):
``fiber`` (``standard`` ENTITY-SENSOR-MIB, ``huawei``), ``wireless`` (``ubiquiti``,
``cambium``), ``private_line`` (``standard``), ``cabin_5g`` (``ups``), ``pon``
(``huawei``). Scenarios: ``normal``, ``degraded``, ``down``. Counters move by
themselves (snmpsim ``numeric``); sysUpTime counts from the simulator's start.

Knobs (:meth:`SnmpSim.set_knob`, engineering units):

- fiber: ``rx_dbm``, ``tx_dbm`` (every optic), ``oper_status`` (uplink, 1 up / 2 down)
- wireless: ``signal_dbm``, ``noise_dbm`` (ubiquiti) or ``snr_db`` (cambium), ``oper_status``
- private_line: ``oper_status``, ``dsx1_line_status`` (the error rate is fixed per
  scenario when the data is written)
- cabin_5g: ``output_source`` (3 mains, 5 battery), ``seconds_on_battery``,
  ``minutes_remaining``, ``charge_percent``, ``battery_status`` (2 normal, 3 low,
  4 depleted), ``input_voltage``, ``temperature_celsius``
- pon: ``onus_online:<port>`` (the first N ONUs online), ``onu_rx_dbm:<port>``

Each agent is one data file (community = agent name; v3 context name = agent name).
One :class:`SnmpSim` is one process; to kill one agent alone, give it its own
``SnmpSim``. ``SnmpSim(..., v3=V3User(auth_proto="SHA256", priv_proto="AES128"))`` also
accepts that SNMPv3 user, and ``sim.target(name, v3=True)`` polls with it.
:class:`SimFleet` starts several for load. Edit ``agent.records`` before starting to
make an odd agent: ``SimRecord(oid, 4, "full")`` (a value of the wrong type),
``SimRecord(oid, 4, "op=any,status=genError", "error")`` (an object that fails),
``SimRecord(oid, 4, "wait=100000", "delay")`` (the agent never answers a request that
touches it: it stops answering mid-walk; a shorter ``wait`` in ms blocks the whole
simulator, so give such an agent its own ``SnmpSim``) or ``SimRecord(oid, 4, "x" * 3000)``
(long values: snmpsim silently drops a response above 65,507 bytes, so a GETBULK of 25
such rows times out while 12 fit).

:class:`Snmpd` runs net-snmp ``snmpd`` (the host's real interfaces) on a free port, with
optional v3 users (``v3=SnmpdUser()`` for SHA-256/AES-128 authPriv, ``users=[...]`` for
more at any level); ``snmpd.target("id", v3=True)`` or ``target("id", user="name")``.
``Snmpd(..., overrides={oid: text})`` serves extra OctetString objects (snmpd
``override``), e.g. long values: over SNMPv3 with a small ``msgMaxSize`` (netguard's
``SnmpTransport(max_message_size=...)``) snmpd answers a GET that does not fit with
``tooBig`` and a GETBULK with ``genErr``.
Every process is started with ``start_new_session`` and stopped by its own pid.
"""

from netguard.sim.agents import SCENARIOS, VENDORS, Knob, Scenario, SimAgent, SimRecord, build_agent
from netguard.sim.process import ChildProcess, answers_snmp, free_udp_port
from netguard.sim.snmpd import Snmpd, SnmpdUser
from netguard.sim.snmpsim import SimFleet, SnmpSim, V3User

__all__ = [
    "SCENARIOS",
    "VENDORS",
    "ChildProcess",
    "Knob",
    "Scenario",
    "SimAgent",
    "SimFleet",
    "SimRecord",
    "SnmpSim",
    "Snmpd",
    "SnmpdUser",
    "V3User",
    "answers_snmp",
    "build_agent",
    "free_udp_port",
]
