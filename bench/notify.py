"""Notification benchmark: none lost, and how fast they arrive.

Starts ``cityverse serve`` with a fresh store, a receiver process (a small asyncio HTTP
server that records each notification and when it arrived) and drives updates through
the NGSI-LD API at a steady rate, each update's value unique so that its notification
can be told apart. Scenarios, in order:

- ``steady``: ``--subscriptions`` subscriptions (one per entity), ``--updates``
  Partial Attribute Updates at ``--rate``/s; delivered/expected (must be 100 %) and the
  latency from the update's acknowledgement to the notification's arrival.
- ``dead``: the same, plus one subscription to every entity whose endpoint accepts
  connections and never answers; the other subscribers' latency, against ``steady``'s.
- ``kill``: with the receiver down, ``--pending`` updates are acknowledged; the server
  is killed with SIGKILL, the receiver and the server are started again, and every one
  of those notifications must arrive.

    python bench/notify.py --store sqlite
    python bench/notify.py --store postgres --updates 20000 --scenarios steady,kill

Figures print and go to ``bench/results/notify-<store>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_load import (  # the sibling benchmark's helpers
    HOST,
    REPO_DIR,
    BenchError,
    cityverse_command,
    free_port,
    fresh_store,
    machine,
)

API = "/ngsi-ld/v1"
RESULTS = Path(__file__).resolve().parent / "results"
PREFIX = "urn:ngsi-ld:Meter:"
TARGET_P95_MS = 100.0


# --- the receiver -------------------------------------------------------------------------


async def receive(port: int, hang: bool) -> None:
    """Serve until killed: record (value, arrival time) of each notification; ``GET``
    answers the records so far as JSON. With ``hang``, never answer a POST."""
    records: list[tuple[int, str, float]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                if head.startswith(b"GET"):
                    out = orjson.dumps(records)
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(out))
                    writer.write(out)
                    await writer.drain()
                    continue
                if hang:
                    await asyncio.Event().wait()
                now = time.time()
                note = orjson.loads(body)
                for item in note["data"]:
                    records.append((item["reading"], note["subscriptionId"], now))
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, HOST, port, backlog=1024)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def receiver(port: int, *, hang: bool = False) -> Iterator[str]:
    """A receiver process on ``port``; its notification URL."""
    cmd = [sys.executable, __file__, "--receiver", str(port)] + (["--hang"] if hang else [])
    proc = subprocess.Popen(cmd, start_new_session=True)
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise BenchError("the receiver did not start") from None
            time.sleep(0.05)
    try:
        yield url + "/notify"
    finally:
        proc.kill()
        proc.wait()


def records(port: int) -> list[tuple[int, str, float]]:
    """What the receiver on ``port`` recorded so far."""
    return [tuple(r) for r in httpx.get(f"http://{HOST}:{port}", timeout=60).json()]  # type: ignore[misc]


# --- the server ---------------------------------------------------------------------------


class Server:
    """``cityverse serve`` over one store, which can be killed and started again."""

    def __init__(self, store_url: str, tmp: Path, env: dict[str, str]) -> None:
        self.store_url = store_url
        self.tmp = tmp
        self.env = env
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            *cityverse_command(),
            "serve",
            "--insecure-open",
            "--host",
            HOST,
            "--port",
            str(self.port),
        ]
        cmd += ["--store", self.store_url]
        env = dict(os.environ, CITYVERSE_LOG_LEVEL="warning", CITYVERSE_DATA_DIR=str(self.tmp))
        env.update(self.env)
        env["PYTHONPATH"] = str(REPO_DIR / "src")
        log = open(self.tmp / "server.log", "ab")  # noqa: SIM115 (the process keeps it)
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"server exited: {(self.tmp / 'server.log').read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + API + "/subscriptions", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise BenchError("server not ready after 60 s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)


# --- load ---------------------------------------------------------------------------------


def setup(base: str, entities: int, subscriptions: int, url: str) -> None:
    """``entities`` meters, and one subscription per meter (the first ``subscriptions``)."""
    with httpx.Client(base_url=base, timeout=120) as client:
        batch = [
            {"id": f"{PREFIX}{i}", "type": "Meter", "reading": {"type": "Property", "value": -1}}
            for i in range(entities)
        ]
        for start in range(0, len(batch), 1000):
            r = client.post(API + "/entityOperations/upsert", json=batch[start : start + 1000])
            if r.status_code not in (201, 204):
                raise BenchError(f"upsert: {r.status_code} {r.text[:200]}")
        for i in range(subscriptions):
            body = {
                "type": "Subscription",
                "id": f"urn:ngsi-ld:Subscription:meter:{i}",
                "entities": [{"type": "Meter", "id": f"{PREFIX}{i}"}],
                "watchedAttributes": ["reading"],
                "notification": {"format": "keyValues", "endpoint": {"uri": url}},
            }
            r = client.post(API + "/subscriptions", json=body)
            if r.status_code != 201:
                raise BenchError(f"subscription: {r.status_code} {r.text[:200]}")


async def drive(
    base: str, first: int, count: int, rate: float, entities: int
) -> tuple[dict[int, float], dict[int, float]]:
    """Send updates ``first .. first+count-1`` at ``rate``/s; value -> time sent, and
    value -> time acknowledged (the answer read by this client).

    A small HTTP/1.1 client over raw asyncio streams, one request at a time per
    connection: a general-purpose client costs more CPU per request than the server."""
    sends: dict[int, float] = {}
    acks: dict[int, float] = {}
    errors: list[str] = []
    host, port = base.removeprefix("http://").split(":")
    start = time.monotonic() + 0.2
    next_value = first

    async def connection() -> None:
        nonlocal next_value
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while next_value < first + count:
                value = next_value
                next_value += 1
                delay = start + (value - first) / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                body = b'{"type":"Property","value":%d}' % value
                path = f"{API}/entities/{PREFIX}{value % entities}/attrs/reading"
                sends[value] = time.time()
                writer.write(
                    b"PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s"
                    % (path.encode(), host.encode(), len(body), body)
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                answer = await reader.readexactly(length) if length else b""
                if head[9:12] != b"204":
                    errors.append(f"{head[:12]!r} {answer[:100]!r}")
                else:
                    acks[value] = time.time()
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(32)))
    if errors:
        raise BenchError(f"{len(errors)} updates failed, e.g. {errors[0]}")
    return sends, acks


def collect(port: int, expected: set[int], timeout: float) -> dict[int, float]:
    """Wait for the expected values at the receiver; value -> first arrival time."""
    deadline = time.monotonic() + timeout
    while True:
        arrived: dict[int, float] = {}
        for value, _, at in records(port):
            if value in expected and value not in arrived:
                arrived[value] = at
        if len(arrived) == len(expected) or time.monotonic() > deadline:
            return arrived
        time.sleep(1.0)


def latency(
    since: dict[int, float], arrived: dict[int, float], suffix: str = ""
) -> dict[str, float]:
    """Percentiles of arrival - ``since``, in milliseconds. From the acknowledgement a
    gap may be negative: the notification can arrive before the load generator, busy
    with other requests, has read the answer."""
    gaps = sorted((arrived[v] - since[v]) * 1000 for v in arrived if v in since)
    if not gaps:
        return {}

    def pct(p: float) -> float:
        return round(gaps[min(len(gaps) - 1, int(p / 100 * len(gaps)))], 1)

    return {
        f"p50_ms{suffix}": pct(50),
        f"p95_ms{suffix}": pct(95),
        f"p99_ms{suffix}": pct(99),
        f"max_ms{suffix}": round(gaps[-1], 1),
    }


# --- scenarios ----------------------------------------------------------------------------


def steady(args: argparse.Namespace, server: Server, port: int, first: int) -> dict[str, Any]:
    expected = set(range(first, first + args.updates))
    t0 = time.monotonic()
    sends, acks = asyncio.run(
        drive(server.base, first, args.updates, args.rate, args.subscriptions)
    )
    sent = time.monotonic() - t0
    arrived = collect(port, expected, timeout=max(60.0, args.updates / args.rate))
    result = {
        "updates": args.updates,
        "rate_asked": args.rate,
        "rate_achieved": round(args.updates / sent, 1),
        "delivered": len(arrived),
        "expected": len(expected),
        "delivered_ratio": len(arrived) / len(expected),
        **latency(acks, arrived),
        **latency(sends, arrived, "_from_send"),
    }
    return result


def run(args: argparse.Namespace) -> int:
    RESULTS.mkdir(exist_ok=True)
    env = {
        "CITYVERSE_NOTIFY_RETRY_MAX": "1.0",
        "CITYVERSE_NOTIFY_LEASE": "5.0",
        "CITYVERSE_NOTIFY_TIMEOUT": "2.0",
    }
    out: dict[str, Any] = {
        "benchmark": "notify",
        "store": args.store,
        "machine": machine(),
        "load_average_before": os.getloadavg()[0],
        "settings": env,
        "subscriptions": args.subscriptions,
        "scenarios": {},
    }
    scenarios = args.scenarios.split(",")
    with tempfile.TemporaryDirectory(prefix="cityverse-notify-") as tmp_dir:
        tmp = Path(tmp_dir)
        with fresh_store(args, tmp) as store_url:
            port = free_port()
            server = Server(store_url, tmp, env)
            with receiver(port) as url:
                server.start()
                try:
                    setup(server.base, args.subscriptions, args.subscriptions, url)
                    first = 0
                    if "steady" in scenarios:
                        print(f"steady: {args.updates} updates at {args.rate}/s", flush=True)
                        r = steady(args, server, port, first)
                        first += args.updates
                        out["scenarios"]["steady"] = r
                        print(json.dumps(r), flush=True)
                    if "dead" in scenarios:
                        with receiver(free_port(), hang=True) as dead_url:
                            body = {
                                "type": "Subscription",
                                "id": "urn:ngsi-ld:Subscription:dead",
                                "entities": [{"type": "Meter"}],
                                "notification": {"endpoint": {"uri": dead_url}},
                            }
                            httpx.post(server.base + API + "/subscriptions", json=body)
                            n = args.dead_updates
                            print(f"dead: {n} updates with a silent subscriber", flush=True)
                            r = steady(
                                argparse.Namespace(**{**vars(args), "updates": n}),
                                server,
                                port,
                                first,
                            )
                            first += n
                            httpx.delete(
                                server.base + API + "/subscriptions/urn:ngsi-ld:Subscription:dead"
                            )
                        base = out["scenarios"].get("steady", {}).get("p95_ms")
                        if base:
                            r["p95_vs_steady"] = round(r["p95_ms"] / base, 3)
                        out["scenarios"]["dead"] = r
                        print(json.dumps(r), flush=True)
                finally:
                    if "kill" not in scenarios:
                        server.kill(signal.SIGTERM)
            if "kill" in scenarios:
                out["scenarios"]["kill"] = kill(args, server, port, first)
                print(json.dumps(out["scenarios"]["kill"]), flush=True)
                server.kill(signal.SIGTERM)
    out["load_average_after"] = os.getloadavg()[0]
    path = Path(args.out or RESULTS / f"notify-{args.store}.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {path}")
    return 0 if all_met(out) else 1


def kill(args: argparse.Namespace, server: Server, port: int, first: int) -> dict[str, Any]:
    """Updates acknowledged while the receiver is down; SIGKILL; all must arrive after."""
    n = args.pending
    print(f"kill: {n} updates while the receiver is down, then SIGKILL", flush=True)
    _, acks = asyncio.run(drive(server.base, first, n, args.rate, args.subscriptions))
    time.sleep(1.0)
    server.kill(signal.SIGKILL)
    killed_at = time.time()
    with receiver(port):
        server.start()
        arrived = collect(port, set(range(first, first + n)), timeout=300)
    took = max(arrived.values(), default=killed_at) - killed_at
    return {
        "acknowledged": len(acks),
        "delivered": len(arrived),
        "delivered_ratio": len(arrived) / n,
        "seconds_from_kill_to_last": round(took, 1),
    }


def all_met(out: dict[str, Any]) -> bool:
    ok = True
    for name, r in out["scenarios"].items():
        if r.get("delivered_ratio") != 1.0:
            print(f"FAILED {name}: {r.get('delivered')} of {r.get('expected', '?')} delivered")
            ok = False
    steady_p95 = out["scenarios"].get("steady", {}).get("p95_ms")
    if steady_p95 is not None and steady_p95 > TARGET_P95_MS:
        print(f"target missed: steady p95 {steady_p95} ms > {TARGET_P95_MS} ms")
        ok = False
    ratio = out["scenarios"].get("dead", {}).get("p95_vs_steady")
    if ratio is not None and ratio > 1.10:
        print(f"target missed: with a dead endpoint p95 is {ratio:.2f}x steady's")
        ok = False
    return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--scenarios", default="steady,dead,kill")
    p.add_argument("--subscriptions", type=int, default=1000)
    p.add_argument("--updates", type=int, default=100_000)
    p.add_argument("--dead-updates", type=int, default=20_000)
    p.add_argument("--pending", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument(
        "--pg-url",
        default=os.environ.get("CITYVERSE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432"),
    )
    p.add_argument("--out")
    p.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    p.add_argument("--hang", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.receiver:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(receive(args.receiver, args.hang))
        return 0
    try:
        return run(args)
    except BenchError as exc:
        print(f"notify benchmark failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
