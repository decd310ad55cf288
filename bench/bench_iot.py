"""Door-sensor benchmarks (acceptance 7), against a private Mosquitto on loopback.

1. Throughput: a persistent-session backlog of N QoS1 messages is drained (a) by a bare
   aiomqtt subscriber (raw receive rate) and (b) by netguard's intake through parse,
   durable hash-chained store and rules. Goal: (b) >= 0.8 x (a).
2. Latency: door-open -> webhook arrival, p50/p99, while a separate process publishes a
   background load of heartbeats. Goal: p99 <= 50 ms.

Run: ``.venv/bin/python bench/bench_iot.py [--events 20000] [--load 1000] [--opens 100]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiomqtt  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from aiohttp import web  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from netguard.config import settings_from_data  # noqa: E402
from netguard.iot import registry  # noqa: E402
from netguard.iot.events import RawMessage  # noqa: E402
from netguard.iot.service import IotService  # noqa: E402
from netguard.logsetup import HumanFormatter  # noqa: E402
from netguard.store import Store  # noqa: E402
from netguard.store.config import StoreConfig  # noqa: E402
from netguard.store.db import upgrade  # noqa: E402
from tests.iot.support import shipped_broker_section  # noqa: E402
from tests.support.ports import free_tcp_port  # noqa: E402
from tests.support.servers import mosquitto  # noqa: E402

SENSORS = 200


def _native(sensor: str, seq: int, event: str = "heartbeat") -> bytes:
    return json.dumps({"v": 1, "sensor": sensor, "event": event, "seq": seq,
                       "battery": 90}).encode()


async def _publish_backlog(port: int, n: int) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-pub",
                              max_inflight_messages=200) as client:
        client.pending_calls_threshold = 10_000
        for start in range(0, n, 200):
            await asyncio.gather(*(
                client.publish(f"netguard/sensors/s{k % SENSORS}/event",
                               _native(f"s{k % SENSORS}", k), qos=1)
                for k in range(start, min(n, start + 200))))


async def _wait(pred: Callable[[], bool], limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.005)


async def raw_rate(port: int, n: int) -> float:
    """Drain rate (msgs/s) of a bare aiomqtt QoS1 subscriber over a backlog of n."""
    kwargs: dict[str, Any] = {"identifier": "bench-raw", "protocol": aiomqtt.ProtocolVersion.V5,
                              "clean_start": False}
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    async with aiomqtt.Client("127.0.0.1", port, properties=props, **kwargs) as client:
        await client.subscribe("netguard/sensors/+/event", qos=1)
    await _publish_backlog(port, n)
    async with aiomqtt.Client("127.0.0.1", port, properties=props, **kwargs) as client:
        count = 0
        t0 = 0.0
        async for message in client.messages:
            json.loads(message.payload)  # the minimum any consumer does
            count += 1
            if count == 1:
                t0 = time.perf_counter()
            if count == n:
                break
        return (n - 1) / (time.perf_counter() - t0)


def _settings(db: Path, port: int, extra: dict[str, Any] | None = None) -> Any:
    return settings_from_data({
        "store": {"path": str(db)},
        "iot": {"mqtt": {"enabled": True, "host": "127.0.0.1", "port": port,
                         "client_id": "bench-netguard"},
                "rules": {"heartbeat_timeout_seconds": 86400}, **(extra or {})},
    })


async def _estate(db: Path, quarantined: bool) -> None:
    config = StoreConfig(path=db)
    await upgrade(config)
    now = datetime.now(UTC)
    async with Store(config) as store, store.session() as s:
        await registry.add_household(s, "h1", "c1",
                                     start=now - timedelta(days=1) if quarantined else None,
                                     now=now)
        await s.flush()
        for i in range(SENSORS):
            await registry.add_sensor(s, f"s{i}", "h1", now=now)
        await s.commit()


async def netguard_rate(port: int, n: int, db: Path) -> float:
    """Drain rate (events/s) of netguard's intake: parse, durable store, rules, ack."""
    await _estate(db, quarantined=False)
    settings = _settings(db, port)
    async with Store(settings.store) as store:
        async with IotService(settings.iot, store) as service:
            await _wait(lambda: service.mqtt_connected)
        await _publish_backlog(port, n)
        async with IotService(settings.iot, store) as service:
            def stored() -> int:
                return sum(service.snapshot().door_events.values())
            await _wait(lambda: stored() >= 1)
            t0, first = time.perf_counter(), stored()
            await _wait(lambda: stored() >= n)
            return (n - first) / (time.perf_counter() - t0)


LOAD_SCRIPT = """
import json, sys, time
import paho.mqtt.client as mqtt
port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-load")
c.max_inflight_messages_set(1000)
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port)
c.loop_start()
t0 = time.monotonic(); k = 0
while time.monotonic() - t0 < seconds:
    due = t0 + k / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    s = "s%d" % (k % 150 + 50)
    c.publish("netguard/sensors/%s/event" % s, json.dumps(
        {"v": 1, "sensor": s, "event": "heartbeat", "seq": 10**6 + k, "battery": 90}), qos=1)
    k += 1
print(k / (time.monotonic() - t0), flush=True)
c.loop_stop(); c.disconnect()
"""


async def latency(port: int, db: Path, load: float, opens: int) -> tuple[list[float], float]:
    """Door-open -> webhook latencies (s) under a background load; returns them and the
    achieved background rate."""
    await _estate(db, quarantined=True)
    arrived: dict[str, float] = {}

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        for alert in body["alerts"]:
            arrived.setdefault(alert["sensor"], time.time())
        return web.json_response({"ok": True})

    # The receiver runs on its own loop in its own thread, as a real one would run in its
    # own process: on netguard's loop it would wait behind netguard's own work.
    hport = free_tcp_port()
    receiver_loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: list[web.AppRunner] = []

    def serve() -> None:
        asyncio.set_event_loop(receiver_loop)

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/hook", hook)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", hport).start()
            runner_box.append(runner)
            ready.set()

        receiver_loop.run_until_complete(start())
        receiver_loop.run_forever()

    thread = threading.Thread(target=serve, name="bench-receiver", daemon=True)
    thread.start()
    ready.wait(10)
    settings = _settings(db, port, {
        "notifiers": [{"name": "hook", "type": "webhook",
                       "url": f"http://127.0.0.1:{hport}/hook", "rate_per_minute": 100000}],
        "routes": [{"community": "*", "notifiers": ["hook"]}],
        "intake_batch_max": 200,
    })
    published: dict[str, float] = {}
    duration = opens * 0.2 + 4
    try:
        async with Store(settings.store) as store, IotService(settings.iot, store) as service:
            await _wait(lambda: service.mqtt_connected)
            assert service.intake is not None
            handler = service.ingest_batch

            async def timed(messages: Any) -> Any:
                # Stage times of door openings: received by paho, batch start, committed.
                started = time.time()
                results = await handler(messages)
                done = time.time()
                for m, r in zip(messages, results, strict=True):
                    if r.kind == "open" and m.received_at is not None:
                        _STAGES[r.sensor_id] = (m.received_at.timestamp(), started, done)
                return results

            service.intake._handler = timed
            loader = await asyncio.create_subprocess_exec(
                sys.executable, "-c", LOAD_SCRIPT, str(port), str(load), str(duration),
                stdout=subprocess.PIPE)
            await asyncio.sleep(2)  # let the background load reach its rate
            async with aiomqtt.Client("127.0.0.1", port, identifier="bench-doors") as client:
                for i in range(opens):
                    sensor = f"s{i % 50}"
                    published[sensor] = time.time()
                    await client.publish(f"netguard/sensors/{sensor}/event",
                                         _native(sensor, 10**9 + i, "open"), qos=1)
                    await asyncio.sleep(0.2)
                    if i % 50 == 49:
                        await _wait(lambda: len(arrived) >= 50, limit=30)
                        for sensor_id in list(arrived):
                            published_at = published.pop(sensor_id)
                            at = arrived.pop(sensor_id)
                            _LAT.append(at - published_at)
                            received, started, done = _STAGES.pop(sensor_id)
                            _PARTS.append((received - published_at, started - received,
                                           done - started, at - done))
                        await _ack_all(store)
            out, _ = await loader.communicate()
            achieved = float(out.decode().strip() or 0)
    finally:
        asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), receiver_loop).result(10)
        receiver_loop.call_soon_threadsafe(receiver_loop.stop)
        thread.join(10)
    return list(_LAT), achieved


_LAT: list[float] = []
_STAGES: dict[str, tuple[float, float, float]] = {}
# publish->paho receive, wait for the batch, batch commit, commit->webhook arrival
_PARTS: list[tuple[float, float, float, float]] = []


async def _ack_all(store: Store) -> None:
    """Acknowledge open door alerts so that the next opening of a sensor alerts again."""
    async with store.session() as s:
        await s.exec(sa.text(  # type: ignore[call-overload]
            "UPDATE iot_alert SET acked_at = CURRENT_TIMESTAMP, acked_by = 'bench', "
            "closed_at = CURRENT_TIMESTAMP WHERE closed_at IS NULL"))
        await s.commit()


async def pipeline(db: Path, n: int = 300) -> dict[str, list[float]]:
    """In-process cost of one message through ingest_batch (no broker, no network)."""
    await _estate(db, quarantined=True)
    settings = _settings(db, 1, {"mqtt": {"enabled": False}})
    out: dict[str, list[float]] = {"heartbeat": [], "open": []}
    async with Store(settings.store) as store, IotService(settings.iot, store) as service:
        for kind, times in out.items():
            for i in range(n):
                sensor = f"s{i % SENSORS}"
                message = RawMessage(f"netguard/sensors/{sensor}/event",
                                     _native(sensor, 10**7 * (kind == "open") + i, kind),
                                     qos=1, mid=i % 60000 + 1)
                t0 = time.perf_counter()
                await service.ingest_batch([message])
                times.append(time.perf_counter() - t0)
                if kind == "open" and i % SENSORS == SENSORS - 1:
                    await _ack_all(store)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(args: argparse.Namespace) -> None:
    if os.environ.get("BENCH_VERBOSE"):
        handler = logging.FileHandler("/tmp/bench_iot_debug.log")
        handler.setFormatter(HumanFormatter())
        logging.getLogger("netguard").addHandler(handler)
        logging.getLogger("netguard").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if args.only == "pipeline":
            for kind, times in (await pipeline(d / "pipe.db")).items():
                ms = [t * 1000 for t in times]
                print(f"pipeline, one {kind} per transaction: p50 {statistics.median(ms):.2f} ms,"
                      f" p99 {_pct(ms, 0.99):.2f} ms, n={len(ms)}, "
                      f"load average {os.getloadavg()[0]:.1f}")
            return
        if args.only in (None, "throughput"):
            with mosquitto(d / "broker", base=shipped_broker_section(d)) as broker:
                raw = await raw_rate(broker.port, args.events)
                ng = await netguard_rate(broker.port, args.events, d / "rate.db")
            print(f"throughput: raw aiomqtt {raw:,.0f} msg/s, netguard {ng:,.0f} events/s, "
                  f"ratio {ng / raw:.2f} (goal >= 0.8), n={args.events}")
        if args.only == "throughput":
            return
        with mosquitto(d / "broker2", base=shipped_broker_section(d)) as broker:
            lat, achieved = await latency(broker.port, d / "lat.db", args.load, args.opens)
        ms = [x * 1000 for x in lat]
        print(f"latency door-open -> webhook under {achieved:,.0f} ev/s background: "
              f"p50 {statistics.median(ms):.1f} ms, p99 {_pct(ms, 0.99):.1f} ms, "
              f"max {max(ms):.1f} ms, n={len(ms)} (goal p99 <= 50 ms)")
        for name, i in (("broker->intake", 0), ("queue wait", 1), ("batch commit", 2),
                         ("commit->webhook", 3)):
            part = [p[i] * 1000 for p in _PARTS]
            print(f"  {name:>16}: p50 {statistics.median(part):.1f} ms, "
                  f"p99 {_pct(part, 0.99):.1f} ms")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, aiomqtt {version('aiomqtt')}, "
          f"paho-mqtt {version('paho-mqtt')}, mosquitto 2.0 (Debian), "
          f"load average {os.getloadavg()[0]:.1f}")
    if os.environ.get("BENCH_VERBOSE"):
        print("latencies ms in order:", [round(x) for x in ms])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--load", type=float, default=1000.0)
    parser.add_argument("--opens", type=int, default=100)
    parser.add_argument("--only", choices=["throughput", "latency", "pipeline"])
    asyncio.run(main(parser.parse_args()))

