"""Acceptance 6: TLS with test-made certificates plus username/password, and no secrets in
logs."""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import json
import logging
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from netguard.iot.service import IotService
from netguard.logsetup import SECRETS, collect_secrets, configure_logging
from netguard.store import Store
from tests.iot.conftest import T0, make_settings, register_estate
from tests.support.ports import free_tcp_port, tcp_accepts
from tests.support.procs import ServerProcess
from tests.support.servers import MOSQUITTO
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

USER = "netguard"
PASSWORD = "Pa55-quarantine-s3cret"
WEBHOOK_KEY = "hook-key-0f9e8d7c6b5a"
DING_SECRET = "SECding-secret-1a2b3c4d"


@dataclass
class TlsBroker:
    port: int
    ca: Path
    client_cert: Path | None = None
    client_key: Path | None = None


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_certs(d: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(_name("netguard test CA"))
               .issuer_name(_name("netguard test CA")).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("localhost"))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = d / "ca.crt", d / "broker.crt", d / "broker.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_pair(cert, key, cert_path, key_path)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (x509.CertificateBuilder().subject_name(_name(USER))
              .issuer_name(ca_cert.subject).public_key(client_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5))
              .not_valid_after(now + dt.timedelta(days=1))
              .sign(ca_key, hashes.SHA256()))
    _write_pair(client, client_key, d / "client.crt", d / "client.key")
    os.chmod(ca_path, 0o644)
    return ca_path, cert_path, key_path


def _write_pair(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path,
                key_path: Path) -> None:
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    for p in (cert_path, key_path):
        os.chmod(p, 0o644)


@pytest.fixture(params=[False, True], ids=["password", "password+client-cert"])
def tls_broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TlsBroker]:
    require_cert = bool(request.param)
    d = tmp_path / "tls-broker"
    d.mkdir()
    os.chmod(d, 0o755)
    ca, cert, key = _write_certs(d)
    passwd = d / "passwd"
    mosquitto_passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([mosquitto_passwd, "-b", "-c", str(passwd), USER, PASSWORD], check=True,
                   capture_output=True)
    os.chmod(passwd, 0o644)
    port = free_tcp_port()
    conf = d / "mosquitto.conf"
    conf.write_text("\n".join([
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {passwd}",
        f"listener {port} 127.0.0.1",
        f"cafile {ca}", f"certfile {cert}", f"keyfile {key}",
        f"require_certificate {'true' if require_cert else 'false'}",
        "persistence false", "log_dest stdout",
        "user root" if os.geteuid() == 0 else "",
    ]) + "\n")
    proc = ServerProcess([MOSQUITTO, "-c", str(conf)], d / "mosquitto.log",
                         ready=lambda: tcp_accepts(port))
    proc.start()
    try:
        yield TlsBroker(port, ca, d / "client.crt" if require_cert else None,
                        d / "client.key" if require_cert else None)
    finally:
        proc.stop()


def _iot(broker: TlsBroker, password: str, receiver_port: int) -> dict[str, Any]:
    return {
        "mqtt": {"enabled": True, "host": "localhost", "port": broker.port,
                 "username": USER, "password": password, "client_id": "netguard-tls",
                 "tls": {"ca_file": str(broker.ca),
                         **({"cert_file": str(broker.client_cert),
                             "key_file": str(broker.client_key)} if broker.client_cert else {})},
                 "reconnect_min_seconds": 0.1, "reconnect_max_seconds": 0.5},
        "notifiers": [
            {"name": "hook", "type": "webhook",
             "url": f"http://127.0.0.1:{receiver_port}/hook?key={WEBHOOK_KEY}"},
            {"name": "ding", "type": "dingtalk",
             "url": f"http://127.0.0.1:{receiver_port}/ding?access_token={WEBHOOK_KEY}x",
             "secret": DING_SECRET},
        ],
        "routes": [{"community": "*", "notifiers": ["hook", "ding"]}],
        "outbox_backoff_min_seconds": 0.1, "outbox_backoff_max_seconds": 0.5,
    }


async def _publish_tls(broker: TlsBroker, topic: str, payload: bytes) -> None:
    ctx = ssl.create_default_context(cafile=str(broker.ca))
    if broker.client_cert is not None:
        ctx.load_cert_chain(str(broker.client_cert), str(broker.client_key))
    async with aiomqtt.Client("localhost", broker.port, username=USER, password=PASSWORD,
                              tls_context=ctx, identifier="tls-publisher") as client:
        await client.publish(topic, payload, qos=1)


async def test_tls_with_password_delivers_and_logs_no_secret(
        tls_broker: TlsBroker, sqlite_store: Store) -> None:
    await register_estate(sqlite_store, T0)
    receiver_port = free_tcp_port()  # nothing listens: deliveries fail and get logged
    good = make_settings(sqlite_store.config, _iot(tls_broker, PASSWORD, receiver_port))
    bad = make_settings(sqlite_store.config, _iot(tls_broker, PASSWORD + "-wrong",
                                                  receiver_port))
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    SECRETS.add(collect_secrets(good))
    SECRETS.add(collect_secrets(bad))
    configure_logging("DEBUG", "json", stream=stream)
    try:
        # Wrong password: refused, logged, retried; the service keeps running.
        async with IotService(bad.iot, sqlite_store) as service:
            await async_wait_until(lambda: _logged(stream, "MQTT connect failed"),
                                   what="a refused connection")
            assert not service.mqtt_connected
            assert service.snapshot().mqtt_connect_failures >= 1
            assert not await service.ready()
        async with IotService(good.iot, sqlite_store) as service:
            await async_wait_until(_connected(service), what="TLS connection")
            assert await service.ready()
            await _publish_tls(tls_broker, "netguard/sensors/n1/event",
                               json.dumps({"sensor": "n1", "seq": 1, "event": "open"}).encode())
            await async_wait_until(lambda: _stored(service), what="event stored")
            await async_wait_until(lambda: _logged(stream, "alert delivery via"),
                                   what="a failed delivery logged")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    text = stream.getvalue()
    assert "MQTT connected" in text
    for secret in (PASSWORD, WEBHOOK_KEY, DING_SECRET):
        assert secret not in text


def _logged(stream: io.StringIO, words: str) -> Any:
    async def check() -> bool:
        return words in stream.getvalue()
    return check()


def _connected(service: IotService) -> Any:
    async def check() -> bool:
        return service.mqtt_connected
    return check


def _stored(service: IotService) -> Any:
    async def check() -> bool:
        return service.snapshot().door_events.get("open", 0) == 1
    return check()
