"""Leak detection and localisation on L-Town leak scenarios (LeakDB style).

    .venv/bin/python bench/water/leaks.py            # the standard set, 14-day scenarios
    .venv/bin/python bench/water/leaks.py --quick    # a few scenarios, for a smoke run
    .venv/bin/python bench/water/leaks.py --days 365 # year-long scenarios (slow)
    .venv/bin/python bench/water/leaks.py --tune     # the tuning seeds instead

Each scenario (see ``generator.py``) is simulated by EPANET, the first ``--train`` days
leak-free; the twin's detector learns the normal on them and watches the rest. Scores:

- detection rate (within 24 h and at all) and delay, by leak size and kind;
- false alarms per week of leak-free monitoring (leak-free scenarios, and the days before
  the leak in the others);
- localisation error: network distance (m, along the pipes) from the true leak (a pipe
  midpoint) to the best candidate, median and share within 300 m, for 12 m3/h leaks,
  for CityVerse's method and for the one-snapshot sensitivity baseline.

Scored scenarios use seeds 0, 1, 2...; ``--tune`` uses seeds from 10,000 on, which is
where the detector's settings were chosen. Figures go to stdout and to
``bench/results/water-leaks.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generator import FLOWS, LTOWN, STEP, Data, Leak, model_run, pipes, scenario  # noqa: E402
from tests.twins.water.helpers import network_of  # noqa: E402

from cityverse.twins.water import leaks as lk  # noqa: E402
from cityverse.twins.water import localise as loc  # noqa: E402
from cityverse.twins.water.placement import place_sensors  # noqa: E402
from cityverse.twins.water.simulate import Simulator  # noqa: E402

NIGHT = (0, 5)


def _leak(
    rng: np.random.Generator,
    candidates: list[str],
    days: int,
    train: int,
    size: float | None,
    kind: str | None,
) -> Leak:
    pipe = str(rng.choice(candidates))
    size = float(size if size is not None else rng.uniform(3, 20))
    span = max(days - train - 4, 1) * 288
    start = int(train * 86_400 + 43_200 + rng.integers(0, span) * STEP)
    incipient = (kind == "incipient") if kind else bool(rng.random() < 0.5)
    ramp = int(rng.uniform(1, 5) * 86_400) if incipient else 0
    return Leak(pipe, size, start, ramp)


class Bench:
    """Shared state: the model, the sensors and their sensitivities."""

    def __init__(self, days: int, train: int, budget: int) -> None:
        self.days, self.train = days, train
        t = time.perf_counter()
        self.sim = Simulator(network_of(LTOWN, "ltown"))
        self.sensors = place_sensors(self.sim, budget)
        self.placement_s = time.perf_counter() - t
        t = time.perf_counter()
        self.sens = loc.sensitivity(self.sim, self.sensors, FLOWS, at=3 * 3600)
        self.sensitivity_s = time.perf_counter() - t
        self.graph = loc.Graph.of(self.sim)
        self.model = model_run(self.sensors, days)
        self.pipes = pipes()

    def analyse(self, data: Data, leak: Leak | None, settings: lk.Settings) -> dict[str, Any]:
        """Detect and localise on one scenario."""
        e = data.pressure - data.model_pressure
        f = data.flows - data.model_flows
        train = data.times < data.times[0] + self.train * 86_400
        normal = lk.fit_normal(data.times[train], e[train], f[train])
        z = normal.residuals(data.times, e, f)
        hours, means = lk.hourly_means(data.times, z)
        sig = self.sens.signatures(normal.coef)
        watch = hours >= data.times[0] + self.train * 86_400
        detector = lk.Detector(normal.cov, sig, settings)
        alarms = detector.run(hours[watch], means[watch], stop_at_leak=False)
        leak_start = data.times[0] + leak.start if leak else None
        false = [
            a for a in alarms if a.kind == "leak" and (leak_start is None or a.time <= leak_start)
        ]
        free_hours = (
            int(watch.sum())
            if leak_start is None
            else int(((hours >= data.times[0] + self.train * 86_400) & (hours < leak_start)).sum())
        )
        # What follows a detected leak is not scored: the twin re-learns after a repair.
        before = [a for a in alarms if leak_start is None or a.time <= leak_start]
        out: dict[str, Any] = {
            "false_alarms": len(false),
            "free_hours": free_hours,
            "faults": sum(a.kind == "sensorFault" for a in before),
        }
        if leak is None or leak_start is None:
            return out
        hit = next((a for a in alarms if a.kind == "leak" and a.time > leak_start), None)
        out.update(
            pipe=leak.pipe,
            size=leak.size,
            kind=leak.kind,
            detected=hit is not None,
            delay_h=(hit.time - leak_start) / 3600 if hit else None,
        )
        start = hit.start if hit else leak_start
        out["localisation_m"] = self._localise(hours, means, normal, sig, start, leak)
        out["snapshot_m"] = self._snapshot(data, leak, leak_start, None)
        out["snapshot_normal_m"] = self._snapshot(data, leak, leak_start, z)
        return out

    def _localise(
        self, hours: Any, means: Any, normal: lk.Normal, sig: Any, start: int, leak: Leak
    ) -> float:
        hod = (hours // 3600) % 24
        use = (hours >= start) & (hours < start + 3 * 86_400) & (hod >= NIGHT[0]) & (hod < NIGHT[1])
        block = means[use]
        if not len(block):
            return float("nan")
        r = np.nanmean(block, axis=0)
        keep = np.isfinite(r)
        cov = normal.cov[np.ix_(keep, keep)] / len(block)
        j, q = loc.misfit(r[keep], cov, sig[keep], common=True)
        post = loc.posterior(j)
        ranked = loc.rank_pipes(self.graph, self.sens.candidates, post, q, top=5)
        truth = self.graph.link_ids.index(leak.pipe)
        best = self.graph.link_ids.index(ranked[0].pipe)
        return float(self.graph.pipe_to_pipe(truth, [best])[0])

    def _snapshot(self, data: Data, leak: Leak, leak_start: int, z: Any) -> float:
        """The one-snapshot correlation method: the residual at one 5-minute step, against
        the model (``z`` None) or against the learned normal (``z``: a fairer variant)."""
        # The first 03:00 at least an hour after the leak started.
        at = np.flatnonzero((data.times >= leak_start + 3600) & ((data.times % 86_400) == 3 * 3600))
        if not len(at):
            return float("nan")
        k = int(at[0])
        r = data.model_pressure[k] - data.pressure[k] if z is None else -z[k]
        corr = loc.snapshot_scores(r, -self.sens.dp)
        node = self.sim.node(self.sens.candidates[int(np.argmax(corr))])
        truth = self.graph.link_ids.index(leak.pipe)
        return float(self.graph.pipe_to_nodes(truth)[node])


def _summary(rows: list[dict[str, Any]], free: list[dict[str, Any]]) -> dict[str, Any]:
    leaks = [r for r in rows if "detected" in r]
    alarms = sum(r["false_alarms"] for r in rows + free)
    hours = sum(r["free_hours"] for r in rows + free)
    out: dict[str, Any] = {
        "false_alarms": alarms,
        "leak_free_weeks": round(hours / 168, 2),
        "false_alarms_per_week": round(alarms / (hours / 168), 3) if hours else None,
        "sensor_fault_alarms": sum(r["faults"] for r in rows + free),
    }

    def rate(sel: list[dict[str, Any]]) -> dict[str, Any]:
        if not sel:
            return {"scenarios": 0}
        within = [r for r in sel if r["detected"] and r["delay_h"] <= 24]
        delays = [r["delay_h"] for r in sel if r["detected"]]
        return {
            "scenarios": len(sel),
            "detected_within_24h": round(len(within) / len(sel), 3),
            "detected": round(len(delays) / len(sel), 3),
            "median_delay_h": round(float(np.median(delays)), 1) if delays else None,
        }

    out["detection"] = {
        ">=6 m3/h": rate([r for r in leaks if r["size"] >= 6]),
        ">=6 m3/h abrupt": rate([r for r in leaks if r["size"] >= 6 and r["kind"] == "abrupt"]),
        ">=6 m3/h incipient": rate(
            [r for r in leaks if r["size"] >= 6 and r["kind"] == "incipient"]
        ),
        "3-6 m3/h": rate([r for r in leaks if r["size"] < 6]),
    }
    return out


def _loc_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def stats(key: str) -> dict[str, Any]:
        v = np.array([r[key] for r in rows if np.isfinite(r[key])])
        if not len(v):
            return {}
        return {
            "median_m": round(float(np.median(v)), 1),
            "within_300m": round(float((v <= 300).mean()), 3),
            "mean_m": round(float(v.mean()), 1),
            "scenarios": len(v),
        }

    return {
        "cityverse": stats("localisation_m"),
        "snapshot_baseline": stats("snapshot_m"),
        "snapshot_on_learned_normal": stats("snapshot_normal_m"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few short scenarios")
    parser.add_argument("--tune", action="store_true", help="the tuning seeds")
    parser.add_argument("--days", type=int, default=None, help="days per scenario")
    parser.add_argument("--train", type=int, default=7, help="leak-free days to learn from")
    parser.add_argument("--leaks", type=int, default=None, help="detection scenarios")
    parser.add_argument("--localise", type=int, default=None, help="12 m3/h scenarios")
    parser.add_argument("--free", type=int, default=None, help="leak-free scenarios")
    parser.add_argument("--sensors", type=int, default=29)
    parser.add_argument("--kappa", type=float, default=lk.Settings().kappa)
    parser.add_argument("--threshold", type=float, default=lk.Settings().threshold)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "water-leaks.json"))
    args = parser.parse_args()
    days = args.days or (11 if args.quick else 14)
    n_leaks = args.leaks if args.leaks is not None else (6 if args.quick else 40)
    n_loc = args.localise if args.localise is not None else (6 if args.quick else 40)
    n_free = args.free if args.free is not None else (2 if args.quick else 8)
    base_seed = 10_000 if args.tune else 0
    settings = lk.Settings(kappa=args.kappa, threshold=args.threshold)
    started = time.perf_counter()
    bench = Bench(days, args.train, args.sensors)
    print(
        f"{len(bench.sensors)} sensors placed in {bench.placement_s:.1f} s: "
        f"{' '.join(bench.sensors)}"
    )
    print(
        f"sensitivity of {len(bench.sens.candidates)} candidate nodes: {bench.sensitivity_s:.2f} s"
    )
    det_rows, loc_rows, free_rows = [], [], []
    seed = base_seed
    for i in range(n_leaks + n_loc + n_free):
        rng = np.random.default_rng(seed + 1_000_000)
        if i < n_leaks:
            leak: Leak | None = _leak(rng, bench.pipes, days, args.train, None, None)
        elif i < n_leaks + n_loc:
            leak = _leak(rng, bench.pipes, days, args.train, 12.0, "abrupt")
        else:
            leak = None
        t = time.perf_counter()
        data = scenario(seed, bench.sensors, days, leak, bench.model)
        sim_s = time.perf_counter() - t
        row = bench.analyse(data, leak, settings)
        row["seed"] = seed
        (det_rows if i < n_leaks else loc_rows if i < n_leaks + n_loc else free_rows).append(row)
        shown = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in row.items()}
        print(f"seed {seed}: {json.dumps(shown)} (simulated in {sim_s:.1f} s)", flush=True)
        seed += 1
    summary = _summary(det_rows + loc_rows, free_rows)
    summary["localisation_12m3h"] = _loc_summary(loc_rows)
    result = {
        "benchmark": "water-leaks",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "seeds": "tuning (10000+)" if args.tune else "scoring (0+)",
        "days_per_scenario": days,
        "training_days": args.train,
        "sensors": bench.sensors,
        "settings": {"kappa": settings.kappa, "threshold": settings.threshold},
        "summary": summary,
        "scenarios": det_rows + loc_rows + free_rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
