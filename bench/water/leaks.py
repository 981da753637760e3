"""Leak detection and localisation on L-Town leak scenarios (LeakDB style).

    .venv/bin/python bench/water/leaks.py            # the standard set, 14-day scenarios
    .venv/bin/python bench/water/leaks.py --quick    # a few scenarios, for a smoke run
    .venv/bin/python bench/water/leaks.py --days 365 # year-long scenarios (slow)
    .venv/bin/python bench/water/leaks.py --year 4   # 4 years of L-Town, several leaks each
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

``--year N`` runs N year-long scenarios, each with several leaks repaired after 4 to 12
days (and one leak-free year more), through the twin's ``watch``: the normal learned
again every week on recent history free of open alerts, an alert closed at the repair
(a true one) or a day after it was raised (a false one, dismissed by the crew). The same
data are also run the old way (the normal learned once, on the first week) and through
the minimum night flow of each metered area, learned once and learned every night.
Figures go to ``bench/results/water-leaks-year.json``.
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
from cityverse.twins.water.analyse import Topology, derive_zones  # noqa: E402
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


def _regressors(data: Data) -> Any:
    """What the normal regresses the pressures on, as the twin does: the inlet flows and
    the tank level, each less the model's."""
    return np.hstack([data.flows - data.model_flows, data.levels - data.model_levels])


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
        self.zones = derive_zones(Topology.of(self.sim.engine))

    def analyse(self, data: Data, leak: Leak | None, settings: lk.Settings) -> dict[str, Any]:
        """Detect and localise on one scenario."""
        e = data.pressure - data.model_pressure
        f = _regressors(data)
        train = data.times < data.times[0] + self.train * 86_400
        normal = lk.fit_normal(data.times[train], e[train], f[train])
        z = normal.residuals(data.times, e, f)
        hours, means = lk.hourly_means(data.times, z)
        sig = self.sens.signatures(normal.coef)
        watch = hours >= data.times[0] + self.train * 86_400
        detector = lk.Detector(normal.cov, sig, settings, normal.hour_scale)
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


# -- year-long runs ---------------------------------------------------------------------


def _year_leaks(
    rng: np.random.Generator, candidates: list[str], days: int, train: int, count: int
) -> list[Leak]:
    """``count`` leaks over the monitored days, one per equal slot, each repaired 4 to
    12 days after it starts: leak-free weeks in between."""
    slot = (days - train) * 86_400 // count
    out = []
    pipes_left = list(candidates)
    for k in range(count):
        pipe = str(rng.choice(pipes_left))
        pipes_left.remove(pipe)
        lasting = int(rng.uniform(4, 12) * 86_400)
        begin = train * 86_400 + k * slot + 43_200
        start = begin + int(rng.integers(0, max((slot - lasting - 86_400) // STEP, 1))) * STEP
        incipient = bool(rng.random() < 0.5)
        ramp = int(rng.uniform(1, 4) * 86_400) if incipient else 0
        out.append(Leak(pipe, float(rng.uniform(3, 20)), start, ramp, start + lasting))
    return out


def _areas(data: Data) -> dict[str, tuple[list[str], Any]]:
    """The metered areas' inflow (L/s): what enters through the inlets p227 and p235 less
    what PUMP_1 lifts to tank T1; and T1's zone, fed by the tank: PUMP_1's flow less what
    the tank stores (its area times the rise of its level)."""
    import wntr

    wn = wntr.network.WaterNetworkModel(str(LTOWN))
    area = np.pi * wn.get_node("T1").diameter ** 2 / 4
    q = {name: data.flows[:, k] for k, name in enumerate(FLOWS)}
    rise = np.append(np.diff(data.levels[:, 0]), np.nan) / STEP
    return {
        "main": (["DMA-1", "DMA-3", "DMA-4", "DMA-5"], q["p227"] + q["p235"] - q["PUMP_1"]),
        "T1": (["DMA-2"], q["PUMP_1"] - 1000 * area * rise),
    }


def _zone_of(bench: Bench, pipe: str) -> str:
    a, b = (int(x) for x in bench.graph.ends[bench.graph.link_ids.index(pipe)])
    for node in (a, b):
        zone = bench.zones.get(bench.graph.node_ids[node])
        if zone:
            return zone
    return ""


class Year:
    """One year-long scenario through the learned-once detector and the weekly watch."""

    def __init__(self, bench: Bench, settings: lk.Settings, plan: lk.Relearning) -> None:
        self.bench, self.settings, self.plan = bench, settings, plan

    def analyse(self, data: Data, leaks: list[Leak]) -> dict[str, Any]:
        """Both detectors and the night flow on one year."""
        b = self.bench
        t0 = int(data.times[0])
        e = data.pressure - data.model_pressure
        f = _regressors(data)
        start = t0 + b.train * 86_400
        windows = [(t0 + k.start, t0 + (k.end or 10**12)) for k in leaks]

        def leak_at(time: int) -> int | None:
            for n, (a, z) in enumerate(windows):
                if a < time <= z:
                    return n
            return None

        def closed(alarm: lk.Alarm) -> int:
            n = leak_at(alarm.time)
            return windows[n][1] if n is not None else alarm.time + 86_400

        t = time.perf_counter()
        seen = lk.watch(
            data.times,
            e,
            f,
            b.sens.signatures,
            start,
            settings=self.settings,
            relearning=self.plan,
            closed=closed,
        )
        watch_s = time.perf_counter() - t
        weekly = self._score(seen.alarms, seen.hours, seen.paused, start, windows, leak_at)
        weekly["relearnings"] = len(seen.learned)
        weekly["seconds"] = round(watch_s, 1)
        weekly["leaks"] = []
        for n, leak in enumerate(leaks):
            hit = next((a for a in seen.alarms if a.kind == "leak" and leak_at(a.time) == n), None)
            row: dict[str, Any] = {
                "pipe": leak.pipe,
                "size": round(leak.size, 2),
                "kind": leak.kind,
                "days": round(((leak.end or 0) - leak.start) / 86_400, 1),
                "detected": hit is not None,
                "delay_h": round((hit.time - windows[n][0]) / 3600, 1) if hit else None,
            }
            if hit is not None:
                row["localisation_m"] = round(self._localise(seen, hit, leak, windows[n][1]), 1)
            weekly["leaks"].append(row)
        # The old way: learned once on the first week, the sums restarting after each alarm.
        train = data.times < start
        normal = lk.fit_normal(data.times[train], e[train], f[train])
        z = normal.residuals(data.times, e, f)
        hours, means = lk.hourly_means(data.times, z)
        watch = hours >= start
        detector = lk.Detector(
            normal.cov, b.sens.signatures(normal.coef), self.settings, normal.hour_scale
        )
        alarms = detector.run(hours[watch], means[watch], stop_at_leak=False)
        once = self._score(alarms, hours, [], start, windows, leak_at)
        once["detected"] = sum(
            any(a.kind == "leak" and leak_at(a.time) == n for a in alarms)
            for n in range(len(leaks))
        )
        nights = self._nights(data, leaks, windows, start)
        return {"weekly": weekly, "once": once, "night_flow": nights}

    def _score(
        self,
        alarms: list[lk.Alarm],
        hours: Any,
        paused: list[tuple[int, int]],
        start: int,
        windows: list[tuple[int, int]],
        leak_at: Any,
    ) -> dict[str, Any]:
        free = hours >= start
        for a, z in windows + paused:
            free &= ~((hours + 3600 > a) & (hours < z))
        false = [a for a in alarms if a.kind == "leak" and leak_at(a.time) is None]
        return {
            "false_alarms": len(false),
            "free_hours": int(free.sum()),
            "faults": sum(a.kind == "sensorFault" for a in alarms),
        }

    def _localise(self, seen: lk.Watch, hit: lk.Alarm, leak: Leak, repaired: int) -> float:
        b = self.bench
        learned = seen.learned_at(hit.time)
        hod = (seen.hours // 3600) % 24
        use = (
            (seen.hours >= hit.start)
            & (seen.hours < min(hit.start + 3 * 86_400, repaired))
            & (hod >= NIGHT[0])
            & (hod < NIGHT[1])
        )
        block = seen.means[use]
        if not len(block):
            block = seen.means[(seen.hours >= hit.start) & (seen.hours < hit.time)]
        with np.errstate(all="ignore"):
            r = np.nanmean(block, axis=0)
        keep = np.isfinite(r)
        cov = learned.normal.cov[np.ix_(keep, keep)] / len(block)
        j, q = loc.misfit(r[keep], cov, learned.signatures[keep], common=True)
        ranked = loc.rank_pipes(b.graph, b.sens.candidates, loc.posterior(j), q, top=5)
        truth = b.graph.link_ids.index(leak.pipe)
        best = b.graph.link_ids.index(ranked[0].pipe)
        return float(b.graph.pipe_to_pipe(truth, [best])[0])

    def _nights(
        self, data: Data, leaks: list[Leak], windows: list[tuple[int, int]], start: int
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        zones = [_zone_of(self.bench, k.pipe) for k in leaks]
        train = self.bench.train
        for name, (members, flow) in _areas(data).items():
            days, values = lk.night_flows(data.times, flow)
            mine = [n for n, z in enumerate(zones) if z in members]

            def ours(time: int, mine: list[int] = mine) -> int | None:
                return next((n for n in mine if windows[n][0] < time <= windows[n][1]), None)

            def closed(alarm: lk.NightAlarm, ours: Any = ours) -> int:
                n = ours(alarm.time)
                return windows[n][1] if n is not None else alarm.time + 86_400

            row: dict[str, Any] = {"zones": members, "leaks": len(mine)}
            for label, alarms in (
                ("once", lk.night_flow_alarms(days, values, train)),
                ("nightly", lk.night_watch(days, values, train, closed=closed)),
            ):
                false = [a for a in alarms if ours(a.time) is None]
                hits = {}
                for a in alarms:
                    n = ours(a.time)
                    if n is not None and n not in hits:
                        hits[n] = (a.time - windows[n][0]) / 3600
                free = (days >= start) & np.ones(len(days), bool)
                for a, z in windows:
                    free &= ~((days + 86_400 > a) & (days < z))
                row[label] = {
                    "false_alarms": len(false),
                    "free_nights": int(free.sum()),
                    "detected": len(hits),
                    "delays_h": [round(d, 1) for d in hits.values()],
                    "sizes_detected": [round(leaks[n].size, 1) for n in hits],
                }
            row["night_flow_median"] = round(float(np.nanmedian(values)), 2)
            out[name] = row
        return out


def _year_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    leaks = [k for r in rows for k in r["weekly"]["leaks"]]

    def per_week(key: str) -> dict[str, Any]:
        alarms = sum(r[key]["false_alarms"] for r in rows)
        hours = sum(r[key]["free_hours"] for r in rows)
        return {
            "false_alarms": alarms,
            "leak_free_weeks": round(hours / 168, 1),
            "false_alarms_per_week": round(alarms / (hours / 168), 3) if hours else None,
            "sensor_fault_alarms": sum(r[key]["faults"] for r in rows),
        }

    def rate(sel: list[dict[str, Any]]) -> dict[str, Any]:
        if not sel:
            return {"leaks": 0}
        delays = [k["delay_h"] for k in sel if k["detected"]]
        return {
            "leaks": len(sel),
            "detected": round(len(delays) / len(sel), 3),
            "detected_within_24h": round(sum(d <= 24 for d in delays) / len(sel), 3),
            "median_delay_h": round(float(np.median(delays)), 1) if delays else None,
        }

    loc_m = np.array([k["localisation_m"] for k in leaks if k.get("localisation_m") is not None])
    big = [k for k in leaks if k["size"] >= 6]
    nights: dict[str, Any] = {}
    for label in ("once", "nightly"):
        false = sum(a[label]["false_alarms"] for r in rows for a in r["night_flow"].values())
        free = sum(a[label]["free_nights"] for r in rows for a in r["night_flow"].values())
        total = sum(a["leaks"] for r in rows for a in r["night_flow"].values())
        found = sum(a[label]["detected"] for r in rows for a in r["night_flow"].values())
        delays = [d for r in rows for a in r["night_flow"].values() for d in a[label]["delays_h"]]
        nights[label] = {
            "leaks": total,
            "detected": found,
            "median_delay_h": round(float(np.median(delays)), 1) if delays else None,
            "false_alarms": false,
            "false_alarms_per_week": round(false / (free / 7), 3) if free else None,
        }
    return {
        "weekly_relearning": {
            **per_week("weekly"),
            "detection": {
                ">=6 m3/h": rate(big),
                ">=6 m3/h abrupt": rate([k for k in big if k["kind"] == "abrupt"]),
                ">=6 m3/h incipient": rate([k for k in big if k["kind"] == "incipient"]),
                "3-6 m3/h": rate([k for k in leaks if k["size"] < 6]),
                "all": rate(leaks),
            },
            "localisation": {
                "median_m": round(float(np.median(loc_m)), 1) if len(loc_m) else None,
                "within_300m": round(float((loc_m <= 300).mean()), 3) if len(loc_m) else None,
                "leaks": len(loc_m),
            },
        },
        "learned_once": {
            **per_week("once"),
            "detected": sum(r["once"]["detected"] for r in rows),
            "leaks": len(leaks),
        },
        "night_flow": nights,
    }


def year(args: argparse.Namespace, settings: lk.Settings) -> None:
    """The year-long runs."""
    days = args.days or 365
    started = time.perf_counter()
    bench = Bench(days, args.train, args.sensors)
    plan = lk.Relearning(every=args.every * 86_400, window=args.window * 86_400)
    print(f"{len(bench.sensors)} sensors: {' '.join(bench.sensors)}", flush=True)
    runner = Year(bench, settings, plan)
    base_seed = 20_000 if args.tune else 500
    rows = []
    for n in range(args.year + 1):
        seed = base_seed + n
        rng = np.random.default_rng(seed + 1_000_000)
        leaks = (
            _year_leaks(rng, bench.pipes, days, args.train, args.per_year) if n < args.year else []
        )
        t = time.perf_counter()
        data = scenario(seed, bench.sensors, days, leaks, bench.model)
        sim_s = time.perf_counter() - t
        row = runner.analyse(data, leaks)
        row["seed"] = seed
        rows.append(row)
        print(
            f"seed {seed} ({len(leaks)} leaks, simulated in {sim_s:.0f} s): "
            f"{json.dumps({k: v for k, v in row['weekly'].items() if k != 'leaks'})} "
            f"once {json.dumps(row['once'])}",
            flush=True,
        )
        for leak in row["weekly"]["leaks"]:
            print(f"    {json.dumps(leak)}", flush=True)
    summary = _year_summary(rows)
    result = {
        "benchmark": "water-leaks-year",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "seeds": "tuning (20000+)" if args.tune else "scoring (500+)",
        "days_per_scenario": days,
        "training_days": args.train,
        "relearning": {"every_days": args.every, "window_days": args.window},
        "settings": {"kappa": settings.kappa, "threshold": settings.threshold},
        "sensors": bench.sensors,
        "summary": summary,
        "scenarios": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    out = Path(
        args.out if args.out_given else str(ROOT / "bench" / "results" / "water-leaks-year.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


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
    parser.add_argument("--year", type=int, default=0, help="year-long scenarios with leaks")
    parser.add_argument("--per-year", type=int, default=6, help="leaks in each year")
    parser.add_argument("--every", type=int, default=7, help="days between re-learnings")
    parser.add_argument("--window", type=int, default=7, help="days each re-learning uses")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.out_given = args.out is not None
    if args.year:
        year(args, lk.Settings(kappa=args.kappa, threshold=args.threshold))
        return
    args.out = args.out or str(ROOT / "bench" / "results" / "water-leaks.json")
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
