"""MQTT measures into the twin: throughput, latency, and a broker restart that loses nothing.

Starts a private Mosquitto on a free loopback port (its own configuration, persistence
and data in a temporary directory, so that restarting it disturbs no one else) and
``cityverse serve`` with a fresh store and the IoT agent subscribed to that broker, then:

- ``throughput``: JSON measures of 5 attributes from 10,000 devices, published with QoS 1
  as fast as one publisher can; the figure is messages written per second, end to end
  (first publish to last message written, read from ``GET /iot/stats``), checked by
  reading the entities back. Target: >= 20,000 measures/s.
- ``latency``: once every device's entity exists (one measure each, written before the
  clock starts), 5,000 measures/s paced; every 100th message is a probe; every 2 ms one
  GET of the probes' entities not yet seen (Query Entities by id, one request at a time,
  so that the measurement's own load does not grow with the latency) until each shows
  its probe's value; p95 publish -> readable.
  Target: <= 200 ms.
- ``restart``: 100,000 QoS 1 messages (10 per device, each leaving its own marker
  attribute); the broker is stopped (SIGTERM) and started again while they flow; every
  marker must be in the twin at the end. Target: 0 lost.

    python bench/iot.py                       # every scenario on SQLite
    python bench/iot.py --store postgres --scenarios throughput --measures 100000

Results go to bench/results/iot-<store>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_load as hl

HOST = "127.0.0.1"
APIKEY = "benchkey"
TYPE = "BenchMeter"
ATTRS = ["a0", "a1", "a2", "a3", "a4"]
_HTTP = httpx.Client()
"""One client for the polling of /iot/stats: a new one per call builds a TLS context each
time, which costs the machine more CPU than the server's answer."""
PROBE_EVERY = 100
"""Latency: every so many messages, one is a probe (on a device of its own)."""
TARGETS = {"throughput": 20_000.0, "latency_p95_ms": 200.0, "restart_lost": 0}


class Broker:
    """A Mosquitto of our own: started, stopped (SIGTERM) and restarted by its pid."""

    def __init__(self, tmp: Path) -> None:
        self.port = hl.free_port()
        self.dir = tmp / "mosquitto"
        self.dir.mkdir()
        self.conf = self.dir / "mosquitto.conf"
        # The persistent session must be able to hold a backlog: Mosquitto keeps only
        # 1000 queued messages per client by default. Started as root, Mosquitto would
        # switch to its own user, which cannot write the persistence file here.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} {HOST}\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.dir}/\nmax_queued_messages 1000000\n"
            f"log_dest file {self.dir}/mosquitto.log\n{user}"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            time.sleep(0.05)
        raise hl.BenchError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None


@contextlib.contextmanager
def serve(store_url: str, tmp: Path, broker: Broker, args: argparse.Namespace) -> Iterator[str]:
    """``cityverse serve`` with the IoT agent on the private broker."""
    port = hl.free_port()
    cmd = [*hl.cityverse_command(), "serve", "--insecure-open", "--host", HOST, "--port", str(port)]
    cmd += ["--store", store_url]
    env = dict(
        os.environ,
        CITYVERSE_LOG_LEVEL="warning",
        CITYVERSE_DATA_DIR=str(tmp),
        CITYVERSE_IOT_MQTT_URL=broker.url,
        CITYVERSE_IOT_MQTT_CLIENT_ID="cityverse-bench",
        CITYVERSE_IOT_RATE_LIMIT="0",
        CITYVERSE_IOT_BATCH_MS=str(args.batch_ms),
    )
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            base = f"http://{HOST}:{port}"
            hl.wait_ready(proc, base, log_path)
            yield base
        finally:
            hl.stop(proc)


def provision(base: str) -> None:
    group = {
        "apikey": APIKEY,
        "resource": "/iot/json",
        "entity_type": TYPE,
        "attributes": [{"object_id": a, "name": a, "type": "Number"} for a in ATTRS],
    }
    r = httpx.post(f"{base}/iot/services", json={"services": [group]}, timeout=10)
    if r.status_code not in (201, 409):
        raise hl.BenchError(f"provisioning failed: {r.status_code} {r.text}")


def stats(base: str) -> dict[str, Any]:
    try:
        response = _HTTP.get(f"{base}/iot/stats", timeout=10)
    except httpx.TransportError:
        # A kept-alive connection the server closed as it was reused: ask again once.
        response = _HTTP.get(f"{base}/iot/stats", timeout=10)
    body: dict[str, Any] = response.json()
    return body


def wait_connected(base: str) -> None:
    deadline = time.monotonic() + 30
    while not stats(base)["mqttConnected"]:
        if time.monotonic() > deadline:
            raise hl.BenchError("the IoT agent did not connect to the broker")
        time.sleep(0.1)


def publisher(broker: Broker) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(0.2, 2)
    client.connect(HOST, broker.port)
    client.loop_start()
    return client


class RawPublisher:
    """A bare MQTT 3.1.1 publisher on one socket: QoS 1 PUBLISH packets encoded ahead and
    written in large chunks, PUBACKs counted by a reader thread. It costs the machine a
    small fraction of what a general-purpose client does per message, so that on a
    2-core machine the publisher does not take the CPU the server is measured on."""

    WINDOW = 30_000
    """Most unacknowledged messages (packet ids are 16-bit)."""

    def __init__(self, broker: Broker) -> None:
        self.sock = socket.create_connection((HOST, broker.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client_id = f"bench-raw-{os.getpid()}".encode()
        # CONNECT: protocol MQTT level 4, clean session, keepalive off.
        variable = b"\x00\x04MQTT\x04\x02\x00\x00" + len(client_id).to_bytes(2, "big") + client_id
        self.sock.sendall(b"\x10" + _length(len(variable)) + variable)
        connack = self.sock.recv(4)
        if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
            raise hl.BenchError(f"the broker refused the publisher: {connack!r}")
        self.acked = 0
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        pending = 0
        while True:
            data = self.sock.recv(1 << 16)
            if not data:
                return
            # Only PUBACKs (4 bytes each) come back to a publisher that subscribes to nothing.
            pending += len(data)
            self.acked += pending // 4
            pending %= 4

    def publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        """Send every message with QoS 1 and return once all are acknowledged."""
        chunk: list[bytes] = []
        for n, (topic, body) in enumerate(messages):
            name = topic.encode()
            variable = len(name).to_bytes(2, "big") + name + (n % 65535 + 1).to_bytes(2, "big")
            chunk.append(b"\x32" + _length(len(variable) + len(body)) + variable + body)
            if len(chunk) == 1000:
                self._send(chunk, n + 1)
                chunk = []
        if chunk:
            self._send(chunk, len(messages))
        deadline = time.monotonic() + 300
        while self.acked < len(messages) and time.monotonic() < deadline:
            time.sleep(0.001)

    def _send(self, chunk: list[bytes], sent: int) -> None:
        while sent - self.acked > self.WINDOW:
            time.sleep(0.0005)
        self.sock.sendall(b"".join(chunk))

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


def _length(n: int) -> bytes:
    """MQTT's variable-length encoding of a remaining length."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(client: paho.Client, topic: str, body: bytes) -> None:
    """Publish with QoS 1, waiting while too many are unacknowledged (message ids are 16-bit)."""
    while len(client._out_messages) > 20_000:
        time.sleep(0.001)
    client.publish(topic, body, qos=1)


def payload(device: int, seq: int, marker: str | None = None) -> bytes:
    body: dict[str, Any] = {a: (device * 7 + seq * 3 + i) % 1000 for i, a in enumerate(ATTRS)}
    body["TimeInstant"] = f"2026-01-01T00:{seq // 60 % 60:02d}:{seq % 60:02d}.{device % 1000:03d}Z"
    if marker:
        body[marker] = seq
    return json.dumps(body).encode()


def wait_messages(base: str, target: int, timeout: float) -> tuple[float, dict[str, Any]]:
    """Poll /iot/stats until ``target`` messages are written; (time reached, stats)."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = stats(base)
        if last["counts"].get("messages", 0) >= target and last["backlog"] == 0:
            return time.monotonic(), last
        time.sleep(0.02)
    return time.monotonic(), last


# -- scenarios ---------------------------------------------------------------------------


def run_throughput(base: str, broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
    before = stats(base)["counts"].get("messages", 0)
    client = RawPublisher(broker)
    messages = [
        (f"/{APIKEY}/d{d}/attrs", payload(d, s))
        for s in range(args.measures // args.devices)
        for d in range(args.devices)
    ]
    print(
        f"throughput: publishing {len(messages)} measures from {args.devices} devices", flush=True
    )
    start = time.monotonic()
    client.publish_all(messages)
    published = time.monotonic()
    end, final = wait_messages(base, before + len(messages), timeout=300)
    client.close()
    written = final["counts"].get("messages", 0) - before
    rate = written / (end - start)
    # The figure is void unless the twin holds the last measure of every device sampled.
    last_seq = args.measures // args.devices - 1
    check = httpx.get(
        f"{base}/ngsi-ld/v1/entities/urn:ngsi-ld:{TYPE}:d{args.devices - 1}", timeout=10
    ).json()
    valid = (
        written == len(messages)
        and check.get("a0", {}).get("value") == ((args.devices - 1) * 7 + last_seq * 3) % 1000
    )
    return {
        "scenario": "throughput",
        "measures": len(messages),
        "written": written,
        "devices": args.devices,
        "attributes_per_measure": len(ATTRS),
        "publish_seconds": round(published - start, 3),
        "seconds": round(end - start, 3),
        "measures_per_s": round(rate),
        "attribute_values_per_s": round(rate * len(ATTRS)),
        "rejected": final["rejected"],
        "valid": valid,
        "target": TARGETS["throughput"],
        "meets_target": valid and rate >= TARGETS["throughput"],
    }


async def _latency(base: str, broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
    client = publisher(broker)
    rate, seconds = args.rate, args.seconds
    latencies: list[float] = []
    lost = 0
    probes = 0
    # Probes not yet seen: per device, (value, time sent). One poller reads them all in
    # one query at a time, so that the measurement's own load on the server does not grow
    # with the latency it measures.
    waiting: dict[int, list[tuple[int, float]]] = {}
    sending = True
    # Every device and probe entity exists before the clock starts: the figure is that of
    # a running twin, not of the creation of 10,000 entities (a device's first measure
    # creates its entity, which costs several times an update).
    first = stats(base)["counts"].get("messages", 0)
    sent = int(args.rate * args.seconds) + 1
    probed = sorted({n % args.devices for n in range(0, sent, PROBE_EVERY)})
    for device in range(args.devices):
        publish(client, f"/{APIKEY}/d{device}/attrs", payload(device, 0))
    for device in probed:
        publish(client, f"/{APIKEY}/p{device}/attrs", json.dumps({a: 0 for a in ATTRS}).encode())
    wait_messages(base, first + args.devices + len(probed), timeout=300)
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30.0)) as http:

        async def poll() -> None:
            nonlocal lost
            while sending or waiting:
                await asyncio.sleep(0.002)
                if not waiting:
                    continue
                # Query Entities (GET) by id; at most 300 ids, so that the URL stays short.
                ids = ",".join(f"urn:ngsi-ld:{TYPE}:p{d}" for d in list(waiting)[:300])
                try:
                    r = await http.get(
                        "/ngsi-ld/v1/entities",
                        params={"id": ids, "attrs": "a4", "options": "keyValues", "limit": 1000},
                    )
                except httpx.TransportError:
                    continue  # a kept-alive connection the server closed as it was reused
                now = time.monotonic()
                shown = {e["id"]: e.get("a4") for e in r.json()} if r.status_code == 200 else {}
                for device in list(waiting):
                    value = shown.get(f"urn:ngsi-ld:{TYPE}:p{device}")
                    left = []
                    for wanted, sent in waiting[device]:
                        # A later probe of the same device may have overwritten it: that
                        # counts too.
                        if isinstance(value, int) and value >= wanted:
                            latencies.append((now - sent) * 1000)
                        elif now - sent > 60.0:
                            lost += 1
                        else:
                            left.append((wanted, sent))
                    if left:
                        waiting[device] = left
                    else:
                        del waiting[device]

        poller = asyncio.create_task(poll())
        n = 0
        start = time.monotonic()
        tick = 0.01
        while time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * rate)
            while n < due:
                device = n % args.devices
                if n % PROBE_EVERY == 0:
                    value = 1000 + n  # outside the range of ordinary values
                    body = {a: 0 for a in ATTRS} | {"a4": value}
                    client.publish(f"/{APIKEY}/p{device}/attrs", json.dumps(body), qos=1)
                    waiting.setdefault(device, []).append((value, time.monotonic()))
                    probes += 1
                else:
                    client.publish(f"/{APIKEY}/d{device}/attrs", payload(device, n), qos=1)
                n += 1
            await asyncio.sleep(tick)
        elapsed = time.monotonic() - start
        sending = False
        await poller
    client.loop_stop()
    client.disconnect()
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("inf")
    return {
        "scenario": "latency",
        "rate_asked": rate,
        "rate_sent": round(n / elapsed),
        "probes": probes,
        "probes_not_seen_in_60s": lost,
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(p95, 1),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "valid": lost == 0,
        "target": TARGETS["latency_p95_ms"],
        "meets_target": lost == 0 and p95 <= TARGETS["latency_p95_ms"],
    }


def run_latency(base: str, broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(_latency(base, broker, args))


def run_restart(base: str, broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
    before = stats(base)["counts"]
    devices, per_device = args.devices, 10
    total = devices * per_device
    client = publisher(broker)
    restarted = threading.Event()

    def restart() -> None:
        broker.stop()
        time.sleep(0.5)
        broker.start()
        restarted.set()

    print(f"restart: publishing {total} QoS 1 messages, restarting the broker midway", flush=True)
    start = time.monotonic()
    worker = None
    for k in range(per_device):
        for d in range(devices):
            publish(client, f"/{APIKEY}/r{d}/attrs", payload(d, k, f"m{k}"))
            if worker is None and k * devices + d == total * 4 // 10:
                worker = threading.Thread(target=restart)
                worker.start()
        time.sleep(0.05)
    if worker is not None:
        worker.join()
    # Everything the publisher holds is acknowledged by the broker in the end.
    deadline = time.monotonic() + 300
    while client.want_write() or len(client._out_messages) > 0:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    end, final = wait_messages(base, before.get("messages", 0) + total, timeout=300)
    client.loop_stop()
    client.disconnect()
    missing = 0
    by_marker: dict[int, int] = {}
    page = 1000
    seen = 0
    for offset in range(0, devices, page):
        r = httpx.get(
            f"{base}/ngsi-ld/v1/entities",
            params={
                "type": TYPE,
                "q": "m0",
                "limit": page,
                "offset": offset,
                "options": "keyValues",
            },
            timeout=60,
        )
        for entity in r.json():
            if not entity["id"].startswith(f"urn:ngsi-ld:{TYPE}:r"):
                continue
            seen += 1
            gaps = [k for k in range(per_device) if f"m{k}" not in entity]
            missing += len(gaps)
            for k in gaps:
                by_marker[k] = by_marker.get(k, 0) + 1
    missing += (devices - seen) * per_device
    counts = final["counts"]
    return {
        "scenario": "restart",
        "messages": total,
        "seconds": round(end - start, 1),
        "broker_restarted": restarted.is_set(),
        "messages_received": counts.get("messages", 0) - before.get("messages", 0),
        "duplicates_ignored": counts.get("duplicatesIgnored", 0)
        - before.get("duplicatesIgnored", 0),
        "lost": missing,
        "lost_by_message_of_device": by_marker,
        "valid": restarted.is_set(),
        "target": TARGETS["restart_lost"],
        "meets_target": restarted.is_set() and missing == 0,
    }


SCENARIOS = {"throughput": run_throughput, "latency": run_latency, "restart": run_restart}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--measures", type=int, default=200_000, help="throughput messages")
    parser.add_argument("--rate", type=int, default=5000, help="latency: measures per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency: duration")
    parser.add_argument("--batch-ms", type=float, default=5.0)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CITYVERSE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432"),
    )
    parser.add_argument("--out", help="JSON output (default bench/results/iot-<store>.json)")
    args = parser.parse_args(argv)
    chosen = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="cityverse-iot-bench-") as name:
        tmp = Path(name)
        broker = Broker(tmp)
        broker.start()
        try:
            with (
                hl.fresh_store(args, tmp) as store_url,
                serve(store_url, tmp, broker, args) as base,
            ):
                provision(base)
                wait_connected(base)
                for scenario in chosen:
                    result = SCENARIOS[scenario](base, broker, args)
                    print(json.dumps(result), flush=True)
                    results.append(result)
        finally:
            broker.stop()
    out = Path(args.out or Path(__file__).parent / "results" / f"iot-{args.store}.json")
    # A run of some scenarios keeps the recorded figures of the others.
    kept = []
    with contextlib.suppress(OSError, ValueError, KeyError):
        kept = [
            r
            for r in json.loads(out.read_text())["results"]
            if r["scenario"] not in {n["scenario"] for n in results}
        ]
    run = {"machine": hl.machine(), "args": vars(args)}
    for r in results:
        r["run"] = run
    out.write_text(json.dumps({"store": args.store, "results": [*kept, *results]}, indent=2) + "\n")
    print(f"written to {out}")
    return 0 if all(r["meets_target"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
