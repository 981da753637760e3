"""HTTP load benchmark of the NGSI-LD API with wrk.

Starts ``cityverse serve`` on a free loopback port with a fresh store (a temporary SQLite
file, or a PostgreSQL database created for the run and dropped after it), loads data through
the API, drives each scenario with ``wrk`` and the Lua scripts in ``bench/lua/``, then prints
the figures and writes them as JSON::

    python bench/http_load.py --store sqlite
    python bench/http_load.py --store postgres --scenarios get_entity,query_type_q

A figure is void when any request failed (a non-2xx answer, a socket error, a timeout): the
run says so loudly, the scenario does not meet its target and the exit status is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
LUA_DIR = BENCH_DIR / "lua"
HOST = "127.0.0.1"
API = "/ngsi-ld/v1"
LOOPBACK = {"127.0.0.1", "::1", "localhost", ""}

# Entities read and patched by patch_attr and get_entity.
HOT_PREFIX = "urn:ngsi-ld:Bench:"
# Entities written by batch_upsert, in their own id range so they never touch the hot ones.
UPSERT_PREFIX = "urn:ngsi-ld:Bench:u"
SENSOR_PREFIX = "urn:ngsi-ld:Sensor:"
DISTRICTS = [f"D{i}" for i in range(10)]
QUERY_Q = 'temperature>30;district=="D3"'
QUERY_LIMIT = 100


@dataclass(frozen=True)
class Target:
    """A scenario's target from DESIGN.md: ``metric op value``."""

    metric: str
    op: str
    value: float

    def met_by(self, figure: float) -> bool:
        """Whether ``figure`` meets the target."""
        return figure >= self.value if self.op == ">=" else figure <= self.value

    def as_json(self) -> dict[str, Any]:
        """The target as it appears in the results."""
        return {"metric": self.metric, "op": self.op, "value": self.value}


@dataclass(frozen=True)
class Scenario:
    """One measured operation and its defaults."""

    name: str
    summary: str
    target: Target
    connections: int
    timeout_s: int


SCENARIOS = {
    s.name: s
    for s in [
        Scenario(
            "patch_attr",
            "PATCH /entities/{id}/attrs/{attr}, one Property, random entity of the hot set",
            Target("requests_per_s", ">=", 3500),
            connections=64,
            timeout_s=10,
        ),
        Scenario(
            "get_entity",
            "GET /entities/{id}, random entity of the hot set",
            Target("requests_per_s", ">=", 7700),
            connections=64,
            timeout_s=10,
        ),
        Scenario(
            "batch_upsert",
            "POST /entityOperations/upsert, bodies of --batch-size entities of 5 attributes",
            Target("entities_per_s", ">=", 50_000),
            connections=8,
            timeout_s=60,
        ),
        Scenario(
            "query_type_q",
            f"GET /entities?type=Sensor&q={QUERY_Q}&limit={QUERY_LIMIT} over --entities Sensors",
            Target("p95_ms", "<=", 50),
            connections=4,
            timeout_s=30,
        ),
    ]
}


@dataclass
class Run:
    """What the scenarios share: the options, the server and a scratch directory."""

    args: argparse.Namespace
    client: httpx.Client
    base_url: str
    wrk: str
    tmp: Path
    hot_loaded: bool = False


class BenchError(Exception):
    """The benchmark could not run (server did not start, data did not load, no wrk)."""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every figure is valid, 1 when any request failed."""
    args = parse_args(argv)
    # A SIGTERM unwinds like Ctrl-C, so the server and the database are always cleaned up.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return run(args)
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    p.add_argument("--duration", type=int, default=10, help="seconds of each measured run")
    p.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load first")
    p.add_argument("--connections", type=int, help="override every scenario's default")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--entities", type=int, default=100_000, help="Sensors for query_type_q")
    p.add_argument("--hot", type=int, default=1000, help="entities for patch/get")
    p.add_argument("--batch-size", type=int, default=1000, help="entities per upsert body")
    p.add_argument("--bodies", type=int, default=20, help="distinct upsert bodies in turn")
    p.add_argument("--workers", type=int, help="passed to cityverse serve")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("CITYVERSE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432"),
        help="PostgreSQL server (loopback) where the run's database is created",
    )
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/...)")
    p.add_argument("--keep-log", action="store_true", help="print the server log at the end")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        p.error(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")
    args.scenario_names = names
    if urlsplit(args.pg_url).hostname not in LOOPBACK | {None}:
        p.error("--pg-url must be a loopback address: the benchmark only talks to this machine")
    for name in ("duration", "threads", "hot", "batch_size", "bodies", "entities"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def run(args: argparse.Namespace) -> int:
    """Start the server on a fresh store, run the scenarios, report."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
    started = datetime.now(UTC)
    # Taken before the server starts, so the commit is the code that was measured.
    where = machine()
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="cityverse-bench-") as tmp,
        fresh_store(args, Path(tmp)) as store_url,
        server(args, store_url, Path(tmp)) as base_url,
        httpx.Client(base_url=base_url, timeout=120) as client,
    ):
        ctx = Run(args, client, base_url, wrk, Path(tmp))
        for name in args.scenario_names:
            scenario = SCENARIOS[name]
            print(f"\n== {name} ({args.store}): {scenario.summary}", flush=True)
            result = RUNNERS[name](ctx, scenario)
            results.append(result)
            print_result(result)
    report = {
        "benchmark": "http_load",
        "started": started.isoformat(timespec="seconds"),
        "machine": where,
        "options": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in {"scenario_names", "pg_url"}
        },
        "results": results,
    }
    out = args.out or (
        BENCH_DIR / "results" / f"http_load-{args.store}-{started:%Y%m%dT%H%M%SZ}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(results)
    print(f"\nwritten: {out}")
    void = [r["scenario"] for r in results if r["errors"] > 0]
    if void:
        print(f"\n!!! FIGURES VOID, requests failed in: {', '.join(void)}", file=sys.stderr)
        return 1
    return 0


# --- the store and the server -------------------------------------------------------------


@contextlib.contextmanager
def fresh_store(args: argparse.Namespace, tmp: Path) -> Iterator[str]:
    """A store URL nobody has used: a new SQLite file, or a new PostgreSQL database."""
    if args.store == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    import psycopg  # only the postgres run needs it

    name = f"cityverse_bench_{os.getpid()}_{random.randrange(1 << 30)}"
    admin = _with_db(args.pg_url, "postgres")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise BenchError(f"cannot create a database on {args.pg_url}: {exc}") from exc
    try:
        url = _with_db(args.pg_url, name)
        with psycopg.connect(url, autocommit=True) as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            except psycopg.Error as exc:
                print(f"warning: PostGIS not available: {exc}", file=sys.stderr)
        print(f"database {name} created", flush=True)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"database {name} dropped", flush=True)


def _with_db(url: str, db: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + db, parts.query, ""))


@contextlib.contextmanager
def server(args: argparse.Namespace, store_url: str, tmp: Path) -> Iterator[str]:
    """``cityverse serve`` on a free loopback port, killed (with its workers) on the way out."""
    port = free_port()
    cmd = [*cityverse_command(), "serve", "--insecure-open", "--host", HOST, "--port", str(port)]
    cmd += ["--store", store_url]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    env = dict(os.environ, CITYVERSE_LOG_LEVEL="warning", CITYVERSE_DATA_DIR=str(tmp))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(REPO_DIR / "src"), env.get("PYTHONPATH", "")] if p
    )
    log_path = tmp / "server.log"
    print("starting:", " ".join(cmd), flush=True)
    with open(log_path, "wb") as log:
        # A new session, so the whole group (uvicorn and its workers) is killed at the end.
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            base_url = f"http://{HOST}:{port}"
            wait_ready(proc, base_url, log_path)
            yield base_url
        finally:
            stop(proc)
            if args.keep_log:
                print("\n--- server log ---\n" + log_path.read_text(errors="replace"))


def cityverse_command() -> list[str]:
    """The server command: the installed script next to this Python, else the module."""
    script = Path(sys.executable).parent / "cityverse"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "cityverse.cli"]


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(proc: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    """Poll a GET until the server answers 200; fail if it exits or takes a minute."""
    deadline = time.monotonic() + 60
    url = f"{base_url}{API}/entities?type=Bench&limit=1"
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with status {proc.returncode}:\n{tail(log_path)}")
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise BenchError(f"server not ready after 60 s (last: {last}):\n{tail(log_path)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server's process group, then kill it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- loading data through the API ---------------------------------------------------------


def bench_entity(entity_id: str, n: int) -> dict[str, Any]:
    """A ``Bench`` entity of five attributes."""
    return {
        "id": entity_id,
        "type": "Bench",
        "a1": {"type": "Property", "value": n},
        "a2": {"type": "Property", "value": n * 0.5},
        "a3": {"type": "Property", "value": f"text {n}"},
        "a4": {"type": "Property", "value": n % 2 == 0},
        "a5": {"type": "Property", "value": n % 40, "unitCode": "CEL"},
    }


def sensor_entity(n: int, rng: random.Random) -> dict[str, Any]:
    """A ``Sensor`` with a temperature uniform in 0..40 and one of ten districts."""
    return {
        "id": f"{SENSOR_PREFIX}{n}",
        "type": "Sensor",
        "temperature": {"type": "Property", "value": round(rng.uniform(0, 40), 2)},
        "district": {"type": "Property", "value": rng.choice(DISTRICTS)},
    }


def upsert_all(client: httpx.Client, batches: list[list[dict[str, Any]]], what: str) -> None:
    """Upsert the batches through the API with a few concurrent clients; fail on any error."""
    t0 = time.monotonic()

    def post(batch: list[dict[str, Any]]) -> None:
        r = client.post(
            f"{API}/entityOperations/upsert",
            content=json.dumps(batch),
            headers={"Content-Type": "application/json"},
        )
        if r.status_code not in (201, 204):
            raise BenchError(f"loading {what}: upsert answered {r.status_code}: {r.text[:500]}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(post, batches))
    count = sum(len(b) for b in batches)
    print(f"loaded {count} {what} in {time.monotonic() - t0:.1f} s", flush=True)


def ensure_hot(ctx: Run) -> None:
    """Create the hot set of ``Bench`` entities once per run."""
    if ctx.hot_loaded:
        return
    entities = [bench_entity(f"{HOT_PREFIX}{n}", n) for n in range(ctx.args.hot)]
    upsert_all(ctx.client, list(_chunks(entities, ctx.args.batch_size)), "hot Bench entities")
    ctx.hot_loaded = True


def _chunks(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- the scenarios ------------------------------------------------------------------------


def check(cond: bool, message: str) -> None:
    """Stop before measuring when an answer is not what the scenario expects."""
    if not cond:
        raise BenchError(message)


def run_patch_attr(ctx: Run, sc: Scenario) -> dict[str, Any]:
    """PATCH one attribute of a random hot entity."""
    args, client = ctx.args, ctx.client
    ensure_hot(ctx)
    r = client.patch(
        f"{API}/entities/{HOT_PREFIX}0/attrs/a1",
        content=b'{"type":"Property","value":-1}',
        headers={"Content-Type": "application/json"},
    )
    check(r.status_code == 204, f"PATCH answered {r.status_code}: {r.text[:300]}")
    got = client.get(f"{API}/entities/{HOT_PREFIX}0").json()
    check(got.get("a1", {}).get("value") == -1, f"PATCH not visible in GET: {got}")
    figures = wrk_run(ctx, sc, "patch_attr.lua", [str(args.hot), HOT_PREFIX, "a1"])
    return result(args, sc, figures, hot_entities=args.hot)


def run_get_entity(ctx: Run, sc: Scenario) -> dict[str, Any]:
    """GET a random hot entity by id."""
    args, client = ctx.args, ctx.client
    ensure_hot(ctx)
    r = client.get(f"{API}/entities/{HOT_PREFIX}1")
    check(r.status_code == 200, f"GET answered {r.status_code}: {r.text[:300]}")
    check(r.json().get("id") == f"{HOT_PREFIX}1", f"GET returned {r.text[:300]}")
    figures = wrk_run(ctx, sc, "get_entity.lua", [str(args.hot), HOT_PREFIX])
    return result(args, sc, figures, hot_entities=args.hot)


def run_batch_upsert(ctx: Run, sc: Scenario) -> dict[str, Any]:
    """Upsert bodies of ``--batch-size`` entities, taken in turn from ``--bodies`` bodies."""
    args, client = ctx.args, ctx.client
    bodies_path = ctx.tmp / "upsert-bodies.jsonl"
    with open(bodies_path, "w") as f:
        for b in range(args.bodies):
            start = b * args.batch_size
            batch = [
                bench_entity(f"{UPSERT_PREFIX}{n}", n)
                for n in range(start, start + args.batch_size)
            ]
            f.write(json.dumps(batch, separators=(",", ":")) + "\n")
    size = bodies_path.stat().st_size // args.bodies
    print(f"{args.bodies} bodies of {args.batch_size} entities, ~{size // 1024} KiB each")
    with open(bodies_path) as f:
        first = f.readline()
    r = client.post(
        f"{API}/entityOperations/upsert",
        content=first,
        headers={"Content-Type": "application/json"},
    )
    check(r.status_code in (201, 204), f"upsert answered {r.status_code}: {r.text[:300]}")
    figures = wrk_run(ctx, sc, "batch_upsert.lua", [str(bodies_path)])
    entities_per_s = figures["requests_per_s"] * args.batch_size
    return result(
        args,
        sc,
        figures,
        entities_per_s=round(entities_per_s, 1),
        batch_size=args.batch_size,
        distinct_bodies=args.bodies,
        body_bytes=size,
    )


def run_query_type_q(ctx: Run, sc: Scenario) -> dict[str, Any]:
    """Query Sensors by type and q over ``--entities`` of them, ``limit=100``."""
    args, client = ctx.args, ctx.client
    rng = random.Random(42)  # the same data set on every run
    sensors = [sensor_entity(n, rng) for n in range(args.entities)]
    matching = sum(
        1 for s in sensors if s["temperature"]["value"] > 30 and s["district"]["value"] == "D3"
    )
    upsert_all(client, list(_chunks(sensors, args.batch_size)), "Sensor entities")
    del sensors
    path = f"{API}/entities?type=Sensor&q={quote(QUERY_Q, safe='')}&limit={QUERY_LIMIT}"
    r = client.get(path)
    check(r.status_code == 200, f"query answered {r.status_code}: {r.text[:300]}")
    page = r.json()
    check(isinstance(page, list), f"query did not return an array: {r.text[:300]}")
    check(
        len(page) == min(QUERY_LIMIT, matching),
        f"query returned {len(page)} entities, {min(QUERY_LIMIT, matching)} expected",
    )
    for e in page:
        check(
            e["type"] == "Sensor"
            and e["temperature"]["value"] > 30
            and e["district"]["value"] == "D3",
            f"query returned an entity that does not match: {e}",
        )
    figures = wrk_run(ctx, sc, "query_type_q.lua", [path])
    return result(args, sc, figures, entities=args.entities, matching=matching, url=path)


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "patch_attr": run_patch_attr,
    "get_entity": run_get_entity,
    "batch_upsert": run_batch_upsert,
    "query_type_q": run_query_type_q,
}


# --- wrk ----------------------------------------------------------------------------------


def wrk_run(ctx: Run, sc: Scenario, script: str, script_args: list[str]) -> dict[str, Any]:
    """Warm up, then one measured wrk run; the figures its Lua ``done()`` printed."""
    args, wrk, url = ctx.args, ctx.wrk, ctx.base_url
    connections = args.connections or sc.connections
    threads = min(args.threads, connections)
    if args.warmup > 0:
        _wrk(wrk, url, script, script_args, threads, connections, args.warmup, sc.timeout_s)
    figures = _wrk(wrk, url, script, script_args, threads, connections, args.duration, sc.timeout_s)
    figures.update(connections=connections, threads=threads)
    return figures


def _wrk(
    wrk: str,
    url: str,
    script: str,
    script_args: list[str],
    threads: int,
    connections: int,
    duration: int,
    timeout_s: int,
) -> dict[str, Any]:
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(LUA_DIR / script),
        url,
        "--",
        *script_args,
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=duration + timeout_s + 60
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish: {' '.join(cmd)}") from exc
    for line in proc.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            figures: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
            return figures
    raise BenchError(f"wrk exited {proc.returncode} without figures:\n{proc.stdout}\n{proc.stderr}")


# --- results ------------------------------------------------------------------------------


def result(
    args: argparse.Namespace, sc: Scenario, figures: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """One scenario's figures, its target and whether it is met (never when requests failed)."""
    e = figures["errors"]
    socket_errors = e["connect"] + e["read"] + e["write"] + e["timeout"]
    errors = e["unexpected_status"] + socket_errors
    lat = figures["latency_ms"]
    out: dict[str, Any] = {
        "scenario": sc.name,
        "store": args.store,
        "requests_per_s": round(figures["requests_per_s"], 1),
        "p50_ms": lat["p50"],
        "p95_ms": lat["p95"],
        "p99_ms": lat["p99"],
        "errors": errors,
        **extra,
    }
    out.update(
        target=sc.target.as_json(),
        meets_target=errors == 0 and sc.target.met_by(out[sc.target.metric]),
        valid=errors == 0,
        requests=figures["requests"],
        duration_s=round(figures["duration_s"], 3),
        connections=figures["connections"],
        threads=figures["threads"],
        workers=args.workers or 1,
        latency_ms=lat,
        statuses=figures["statuses"],
        socket_errors={k: e[k] for k in ("connect", "read", "write", "timeout")},
    )
    return out


def print_result(r: dict[str, Any]) -> None:
    """The scenario's figures, with a loud warning when they are void."""
    t = r["target"]
    line = (
        f"{r['requests_per_s']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, "
        f"p99 {r['p99_ms']:.1f} ms, {r['requests']} requests, statuses {r['statuses']}"
    )
    if "entities_per_s" in r:
        line = f"{r['entities_per_s']:.0f} entities/s, " + line
    print(line)
    print(
        f"target {t['metric']} {t['op']} {t['value']:g}: "
        + ("met" if r["meets_target"] else "NOT met")
    )
    if r["errors"]:
        print(
            f"!!! {r['errors']} FAILED REQUESTS (statuses {r['statuses']}, "
            f"socket errors {r['socket_errors']}): THIS FIGURE IS VOID",
            file=sys.stderr,
        )


def print_table(results: list[dict[str, Any]]) -> None:
    """A summary table of the run."""
    print(
        f"\n{'scenario':<14} {'store':<9} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'errors':>7}  figure vs target"
    )
    for r in results:
        t = r["target"]
        figure = r[t["metric"]]
        verdict = "VOID" if r["errors"] else ("met" if r["meets_target"] else "NOT met")
        print(
            f"{r['scenario']:<14} {r['store']:<9} {r['requests_per_s']:>9.0f} "
            f"{r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7}  "
            f"{t['metric']} {figure:g} {t['op']} {t['value']:g}: {verdict}"
        )


def machine() -> dict[str, Any]:
    """Where the figures come from."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "uname": _output(["uname", "-a"]),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "wrk": _output(["wrk", "-v"], any_status=True).partition("\n")[0],
        "git_commit": _output(["git", "-C", str(REPO_DIR), "rev-parse", "--verify", "-q", "HEAD"])
        or "none",
        "git_dirty": bool(_output(["git", "-C", str(REPO_DIR), "status", "--porcelain"])),
    }


def _output(cmd: list[str], any_status: bool = False) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    # `wrk -v` prints its version and exits 1, hence any_status.
    return proc.stdout.strip() if proc.returncode == 0 or any_status else ""


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
