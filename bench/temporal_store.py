"""Temporal store figures: bulk import speed and aggregation / lastN latency, in process.

    .venv/bin/python bench/temporal_store.py                    # SQLite, 100 sensors x 1 year
    .venv/bin/python bench/temporal_store.py --store postgres --sensors 10
    .venv/bin/python bench/temporal_store.py --sensors 10 --days 30   # a quick look

What it measures, on a fresh store (a temporary SQLite file, or a PostgreSQL database
created for the run and dropped after it):

- ``import``: ``import_history`` of ``sensors x days`` of 5-minute readings (one
  ``temperature`` instance each, with a unitCode), in time order as a data logger exports
  them; instances/s (wall clock) and the CPU seconds the process used.
- ``import_csv``: the ``cityverse import history`` path for ``--csv-rows`` of them: a CSV
  file parsed, checked, expanded and imported, in this process.
- ``import_command``: the ``cityverse import history`` command itself, run as a user runs
  it, on a CSV file of ``--command-rows`` readings (100 sensors) into a fresh store (a new
  SQLite file; on PostgreSQL, tenant ``command`` of the run's database): its parser
  processes (``--workers``, default one per core) read the file while it writes. The
  figure is instances/s over the command's whole run, process start included.
- ``aggregate_100k``: per-day avg/min/max over 100,000 instances of one attribute
  (1-minute readings for ~69 days), from the rollups; ``aggregate_100k_raw`` the same
  with distinctCount added, which rollups cannot answer, so every instance is read.
- ``aggregate_sensor_year``: per-day avg/min/max over one sensor's year inside the
  big import; ``last_n``: its 100 newest instances (lastN=100).
- ``history_q_none`` / ``history_q_some``: the sensors whose temperature was above 30
  (none) / above 27.95 (some) at some moment of one day (a temporal query's ``q`` with
  a one-day window, matched on the states the sensors held that day), ``limit=100``.

Latencies are p50/p95/max over ``--repeat`` calls after one warm-up. The figures are
printed and written as JSON to ``bench/results/temporal-store-<store>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cityverse.core.context import ContextResolver
from cityverse.core.query import parse_q
from cityverse.ingest.history import HistoryReport, csv_rows
from cityverse.store.base import EntityFilter, open_store
from cityverse.store.history import ms_of, utc_of
from cityverse.store.temporal import ImportRow, Period, TimeWindow

REPO = Path(__file__).resolve().parents[1]
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
TYPE = VOCAB + "WaterQualityObserved"
TEMP = VOCAB + "temperature"
START = ms_of("2025-01-01T00:00:00.000Z")
STEP = 5 * 60_000
DAY = 86_400_000
TARGETS = {"import": 200_000, "import_command": 200_000, "aggregate_100k_p95_ms": 50.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--sensors", type=int, default=100, help="sensors imported (default 100)")
    p.add_argument("--days", type=int, default=365, help="days of 5-minute readings (365)")
    p.add_argument("--csv-rows", type=int, default=1_000_000, help="rows of the CSV run (1e6)")
    p.add_argument(
        "--command-rows",
        type=int,
        default=4_000_000,
        help="rows of the CSV file given to the command (4e6; 0: skip it)",
    )
    p.add_argument("--workers", type=int, help="the command's --workers (default: its own)")
    p.add_argument("--repeat", type=int, default=30, help="calls per latency figure (30)")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("CITYVERSE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432"),
        help="PostgreSQL server where the run's database is created",
    )
    p.add_argument("--out", help="JSON output (default bench/results/temporal-store-<store>.json)")
    return p.parse_args(argv)


def readings(sensors: int, count: int, rng: random.Random) -> Iterator[ImportRow]:
    """``count`` 5-minute readings of each sensor, in time order across sensors."""
    ids = [f"urn:ngsi-ld:WaterQualityObserved:s{n:03d}" for n in range(sensors)]
    types = (TYPE,)
    uniform = rng.uniform
    for k in range(count):
        t = START + k * STEP
        for entity_id in ids:
            value = round(uniform(12.0, 28.0), 2)
            yield ImportRow(
                entity_id, types, TEMP, t, {"type": "Property", "value": value, "unitCode": "CEL"}
            )


def import_command(args: argparse.Namespace, url: str, tmp: Path) -> dict[str, Any]:
    """``cityverse import history`` on a CSV file, timed from outside."""
    path = tmp / "command.csv"
    write_csv(path, args.command_rows, random.Random(11))
    if args.store == "sqlite":
        url = f"sqlite:///{tmp / 'command.db'}"
    argv = [str(REPO / ".venv" / "bin" / "cityverse"), "import", "history", str(path)]
    argv += ["--store", url, "--tenant", "command"]
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    size = path.stat().st_size
    print(f"import command: {args.command_rows:,} rows, {size:,} bytes", flush=True)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the import command failed: {done.stderr or done.stdout}")
    print(
        f"  {args.command_rows / wall:,.0f} instances/s ({wall:.1f} s): {done.stdout}", flush=True
    )
    path.unlink()
    return {
        "instances": args.command_rows,
        "bytes": size,
        "seconds": round(wall, 2),
        "instances_per_s": round(args.command_rows / wall),
        "output": done.stdout.strip(),
        "workers": args.workers,
    }


def write_csv(path: Path, rows: int, rng: random.Random) -> None:
    with path.open("w") as out:
        out.write("id,type,attribute,observedAt,value,unitCode\n")
        for n in range(rows):
            t = utc_of(START + (n // 100) * STEP)
            out.write(
                f"urn:ngsi-ld:WaterQualityObserved:c{n % 100:03d},WaterQualityObserved,"
                f"temperature,{t},{rng.uniform(12, 28):.2f},CEL\n"
            )


async def latency(call: Callable[[], Awaitable[Any]], repeat: int) -> dict[str, float]:
    await call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 3),
        "max_ms": round(times[-1], 3),
        "calls": repeat,
    }


async def run(args: argparse.Namespace, url: str, tmp: Path) -> dict[str, Any]:
    rng = random.Random(7)
    store: Any = open_store(url)
    await store.open()
    figures: dict[str, Any] = {}
    try:
        count = args.days * DAY // STEP
        total = count * args.sensors
        print(f"importing {total:,} instances ({args.sensors} sensors x {count:,})", flush=True)
        cpu, wall = time.process_time(), time.perf_counter()
        added = await store.import_history("", readings(args.sensors, count, rng))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert added == total, (added, total)
        figures["import"] = {
            "instances": added,
            "seconds": round(wall, 2),
            "instances_per_s": round(added / wall),
            "cpu_seconds": round(cpu, 2),
            "instances_per_cpu_s": round(added / cpu),
            "note": "ImportRows generated in the same process (about 1 us each); the CPU "
            "figure counts every thread of the process, so it stands for an idle machine",
        }
        print(f"  {added / wall:,.0f} instances/s ({wall:.1f} s, {cpu:.1f} s CPU)", flush=True)

        csv_path = tmp / "readings.csv"
        write_csv(csv_path, args.csv_rows, rng)
        report = HistoryReport()
        wall = time.perf_counter()
        with csv_path.open(newline="") as stream:
            added = await store.import_history("", csv_rows(stream, ContextResolver().core, report))
        wall = time.perf_counter() - wall
        figures["import_csv"] = {
            "instances": added,
            "rejected": report.rejected,
            "seconds": round(wall, 2),
            "instances_per_s": round(added / wall),
        }
        print(f"CSV import: {added / wall:,.0f} instances/s over {added:,} rows", flush=True)

        one = "urn:ngsi-ld:WaterQualityObserved:single"
        minute = [
            ImportRow(
                one,
                (TYPE,),
                TEMP,
                START + n * 60_000,
                {"type": "Property", "value": round(rng.uniform(12, 28), 2)},
            )
            for n in range(100_000)
        ]
        await store.import_history("", minute)
        whole = TimeWindow("observedAt", START, START + 70 * DAY)
        daily = Period(millis=DAY)
        basic = frozenset({"avg", "min", "max"})

        async def agg_100k() -> Any:
            return await store.aggregate("", one, None, whole, daily, basic)

        async def agg_100k_raw() -> Any:
            return await store.aggregate("", one, None, whole, daily, basic | {"distinctCount"})

        buckets = (await agg_100k())[TEMP]
        assert sum(1 for _ in buckets) == 70 and len(buckets) == 70
        figures["aggregate_100k"] = await latency(agg_100k, args.repeat)
        figures["aggregate_100k_raw"] = await latency(agg_100k_raw, args.repeat)

        sensor = (
            "urn:ngsi-ld:WaterQualityObserved:s042"
            if args.sensors > 42
            else ("urn:ngsi-ld:WaterQualityObserved:s000")
        )
        year = TimeWindow("observedAt", START, START + args.days * DAY)

        async def agg_year() -> Any:
            return await store.aggregate("", sensor, None, year, daily, basic)

        async def last_n() -> Any:
            return await store.instances("", sensor, None, TimeWindow(), last_n=100, limit=1000)

        assert len((await agg_year())[TEMP]) == args.days
        assert len((await last_n())[TEMP].instances) == 100
        figures["aggregate_sensor_year"] = await latency(agg_year, args.repeat)
        figures["last_n"] = await latency(last_n, args.repeat)

        # q over what the sensors were during one day (5.7.4): every sensor's states that
        # day are its 288 readings and the one before the day began.
        day = TimeWindow("observedAt", START + 200 * DAY, START + 201 * DAY)

        def history_q(text: str) -> Callable[[], Awaitable[Any]]:
            flt = EntityFilter(
                type_names=frozenset({TYPE}), predicates=(parse_q(text, lambda n: VOCAB + n),)
            )
            return lambda: store.history_entities("", flt, limit=100, window=day)

        none, some = history_q("temperature>30"), history_q("temperature>27.95")
        assert not (await none()).entities and (await some()).entities
        figures["history_q_none"] = await latency(none, args.repeat)
        figures["history_q_some"] = await latency(some, args.repeat)
        figures["history_q_some"]["matched"] = len((await some()).entities)
        for name in (
            "aggregate_100k",
            "aggregate_100k_raw",
            "aggregate_sensor_year",
            "last_n",
            "history_q_none",
            "history_q_some",
        ):
            f = figures[name]
            print(f"{name}: p50 {f['p50_ms']} ms, p95 {f['p95_ms']} ms", flush=True)
    finally:
        await store.close()
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///") :])
        figures["sqlite_file_mb"] = round(db.stat().st_size / 1e6, 1)
    return figures


@contextlib.contextmanager
def fresh_store(args: argparse.Namespace, tmp: Path) -> Iterator[str]:
    """A store URL nobody has used: a new SQLite file, or a new PostgreSQL database."""
    if args.store == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    import psycopg

    name = f"cityverse_bench_{os.getpid()}_{random.randrange(1 << 30)}"
    parts = urlsplit(args.pg_url)
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine() -> dict[str, Any]:
    """Where the figures come from."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", "-q", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
        "git_commit": commit or "none",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    where = machine()
    with (
        tempfile.TemporaryDirectory(prefix="cityverse-temporal-") as tmp,
        fresh_store(args, Path(tmp)) as url,
    ):
        figures = asyncio.run(run(args, url, Path(tmp)))
        if args.command_rows:
            figures["import_command"] = import_command(args, url, Path(tmp))
    where["load_average_after"] = list(os.getloadavg())
    result = {
        "store": args.store,
        "sensors": args.sensors,
        "days": args.days,
        "machine": where,
        "figures": figures,
        "targets": TARGETS,
    }
    out = (
        Path(args.out)
        if args.out
        else REPO / "bench" / "results" / (f"temporal-store-{args.store}.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
