"""Water twin speed on L-Town (785 nodes, 909 links), the network EPyT's wheel ships.

Measures, in one process with the modules already loaded:

- ``eps_24h``: a 24 h extended-period run at 5-minute hydraulic steps, every step's
  pressure, head, demand, flow, velocity, status and pump power collected (target <= 100 ms);
- ``single_solves``: single-period scenario solves on one core with the model kept open:
  change the demand of a zone, solve, undo (target >= 500/s); with KPIs as a second figure;
- ``criticality``: a burst on every pipe, ranked, on the local cores (target <= 60 s);
- ``import``: the .inp into a fresh SQLite store as entities (target <= 2 s).

    .venv/bin/python bench/water.py
    .venv/bin/python bench/water.py --repeat 20 --out /tmp/water.json

Figures go to stdout and to ``bench/results/water.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.twins.water.conftest import ANCHOR, LTOWN  # noqa: E402

from cityverse.store.sqlite import SqliteStore  # noqa: E402
from cityverse.twins.water import engine as en  # noqa: E402
from cityverse.twins.water.model import Placement  # noqa: E402
from cityverse.twins.water.scenarios import criticality  # noqa: E402
from cityverse.twins.water.simulate import Simulator  # noqa: E402
from cityverse.twins.water.twin import import_network, open_network  # noqa: E402


def _ms(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples) * 1000, 2),
        "min_ms": round(min(samples) * 1000, 2),
        "max_ms": round(max(samples) * 1000, 2),
    }


async def _import(repeat: int) -> tuple[dict[str, Any], Any]:
    samples = []
    network = None
    for i in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteStore(Path(tmp) / "bench.db")
            await store.open()
            start = time.perf_counter()
            report = await import_network(store, "", LTOWN, "ltown", Placement.anchored(*ANCHOR))
            samples.append(time.perf_counter() - start)
            if i == repeat - 1:
                network = await open_network(store, "", "ltown")
            await store.close()
    entities = sum(report.counts.values())
    return {**_ms(samples), "entities": entities, "target_ms": 2000}, network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="runs per timed figure")
    parser.add_argument("--solves", type=int, default=2000, help="single-period solves timed")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-criticality", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "water.json"))
    args = parser.parse_args()

    # The first import pays for loading WNTR and PROJ; it is reported apart.
    cold_start = time.perf_counter()
    imported, network = asyncio.run(_import(1))
    cold = time.perf_counter() - cold_start
    imported, network = asyncio.run(_import(args.repeat))
    imported["first_in_process_ms"] = round(cold * 1000, 1)
    print(f"import L-Town: {imported['median_ms']} ms median ({imported['entities']} entities)")

    sim = Simulator(network)
    sim.run(duration=86_400, step=300)
    samples = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        results = sim.run(duration=86_400, step=300)
        samples.append(time.perf_counter() - start)
    eps = {**_ms(samples), "steps": len(results.times), "target_ms": 100}
    print(f"24 h at 5 min: {eps['median_ms']} ms median ({eps['steps']} reported steps)")

    # A scenario per solve: close one pipe (a burst), or cut every demand (a drought).
    pipes = [i for i in range(len(sim.engine.link_ids)) if sim.topo.is_pipe(i)]

    def burst(i: int) -> None:
        sim.set_link(pipes[i % len(pipes)], en.INITSTATUS, 0)

    def drought(i: int) -> None:
        sim.scale_demand(sim.layout.junctions, 0.5 + (i % 10) / 10)

    zone = sim.zone_nodes("DMA-1")

    def zone_cut(i: int) -> None:
        sim.scale_demand(zone, 0.5 + (i % 10) / 10)

    def rate(change: Any, count: int, kpis: bool = False) -> float:
        start = time.perf_counter()
        for i in range(count):
            change(i)
            results = sim.run(single=True)
            if kpis:
                sim.kpis(results)
            sim.reset()
        return round(count / (time.perf_counter() - start), 1)

    solves = {
        "burst_per_second": rate(burst, args.solves),
        "drought_per_second": rate(drought, args.solves),
        "zone_cut_per_second": rate(zone_cut, args.solves // 4),
        "burst_with_kpis_per_second": rate(burst, args.solves // 4, kpis=True),
        "target_per_second": 500,
    }
    print(
        "single-period scenario solves: "
        + ", ".join(f"{k.removesuffix('_per_second')} {v}/s" for k, v in solves.items())
    )
    sim.close()

    crit: dict[str, Any] = {"skipped": True}
    if not args.skip_criticality:
        start = time.perf_counter()
        ranking = criticality(network, workers=args.workers)
        seconds = time.perf_counter() - start
        crit = {
            "seconds": round(seconds, 2),
            "pipes": len(ranking),
            "workers": args.workers,
            "failed": sum(1 for r in ranking if r["status"] != "succeeded"),
            "top": [r["pipe"] for r in ranking[:5]],
            "target_seconds": 60,
        }
        print(f"criticality of {len(ranking)} pipes on {args.workers} workers: {seconds:.1f} s")

    out = {
        "benchmark": "water",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "network": "L-TOWN (EPyT wheel)",
        "import": imported,
        "eps_24h": eps,
        "single_solves": solves,
        "criticality": crit,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
