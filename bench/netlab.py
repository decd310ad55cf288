"""A throw-away network namespace with net-snmp agents, for the polling benches.

The bench scripts run in two halves:

- the *outer* half (``run_in_netns``) creates a namespace ``ngbench-<pid>`` with its own
  loopback and some veth pairs (the kernel here has no dummy links; both ends of each pair
  stay inside the namespace, with no address, so ``snmpd`` simply sees more interfaces),
  then runs the script again inside it and waits;
- the *inner* half does the work on 127.0.0.x inside the namespace.

Whatever happens (normal end, failure, Ctrl-C, SIGTERM, the time limit), the outer half
kills every process left in the namespace (by pid, from ``ip netns pids``) and deletes
the namespace, which deletes its links. No address outside the namespace is touched.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")
INNER_ENV = "NG_BENCH_NETNS"
V3_USER = "benchuser"
V3_AUTH = "benchauth123"
V3_PRIV = "benchpriv123"
COMMUNITY = "public"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _netns_pids(name: str) -> list[int]:
    out = _ip("netns", "pids", name, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def _kill_netns_processes(name: str) -> None:
    me = os.getpid()
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        pids = [p for p in _netns_pids(name) if p != me]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(
                p != me for p in _netns_pids(name)):
            time.sleep(0.05)


@contextlib.contextmanager
def netns(veth_pairs: int) -> Iterator[str]:
    """A fresh namespace with ``lo`` up and ``veth_pairs`` veth pairs (2 links each)."""
    name = f"ngbench-{os.getpid()}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        for i in range(veth_pairs):
            _ip("-n", name, "link", "add", f"ngv{i}a", "type", "veth", "peer", "name",
                f"ngv{i}b")
        yield name
    finally:
        _kill_netns_processes(name)
        _ip("netns", "del", name, check=False)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_in_netns(veth_pairs: int, max_seconds: float) -> int:
    """Re-run this script inside a fresh namespace; clean up whatever happens.

    Returns:
        The inner run's exit code (124 if it hit ``max_seconds``).
    """
    if os.geteuid() != 0:
        sys.exit("the bench needs root (ip netns); run it as root")
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with netns(veth_pairs) as name:
            env = {**os.environ, INNER_ENV: name}
            proc = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, *sys.argv],
                                    env=env)
            try:
                return proc.wait(timeout=max_seconds)
            except subprocess.TimeoutExpired:
                print(f"bench: time limit {max_seconds:.0f} s reached; stopping",
                      file=sys.stderr)
                return 124
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=5)
    finally:
        signal.signal(signal.SIGTERM, previous)


def inside_netns() -> str | None:
    """The namespace name when running as the inner half, else None."""
    return os.environ.get(INNER_ENV)


def snmpd_config(port: int, address: str = "127.0.0.1") -> str:
    """net-snmp agent config: v2c community and one authPriv (SHA/AES) v3 user."""
    return (f"agentAddress udp:{address}:{port}\n"
            f"rocommunity {COMMUNITY} 127.0.0.0/8\n"
            f'createUser {V3_USER} SHA "{V3_AUTH}" AES "{V3_PRIV}"\n'
            f"rouser {V3_USER} priv\n")


def start_snmpd(workdir: Path, port: int, address: str = "127.0.0.1"
                ) -> subprocess.Popen[bytes]:
    """Start ``snmpd`` in the foreground on ``address:port`` and wait until it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "snmpd.conf"
    conf.write_text(snmpd_config(port, address))
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(workdir), "MIBS": ""}
    proc = subprocess.Popen(["snmpd", "-f", "-C", "-c", str(conf), "-Lf",
                             str(workdir / "snmpd.log")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["snmpget", "-v2c", "-c", COMMUNITY, "-m", "", "-On", "-t", "0.5", "-r", "0",
             f"{address}:{port}", "1.3.6.1.2.1.1.3.0"], capture_output=True, env=env,
            check=False)
        if probe.returncode == 0:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"snmpd on {address}:{port} did not start; see {workdir}/snmpd.log")


def stop(procs: Sequence[subprocess.Popen[Any]]) -> None:
    """Terminate processes we started, by their own handles."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_rss(pid: int, field: str = "VmRSS") -> int:
    """Resident set size in bytes (``field="VmHWM"``: its peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def machine() -> dict[str, Any]:
    """What the run ran on, for bench/RESULTS.md."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    snmpd = subprocess.run(["snmpd", "-v"], capture_output=True, text=True, check=False)
    snmpd_version = next((ln.split(":", 1)[1].strip() for ln in snmpd.stdout.splitlines()
                          if "version" in ln.lower()), "?")
    versions: dict[str, str] = {"python": platform.python_version(), "net-snmp": snmpd_version}
    for pkg in ("gufo_snmp", "pysnmp", "netguard"):
        with contextlib.suppress(Exception):
            versions[pkg] = version(pkg)
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "versions": versions}
