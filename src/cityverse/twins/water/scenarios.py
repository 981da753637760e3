"""What-if scenarios on an open network, one at a time or by the thousand.

A scenario is a plain JSON object (it is stored as the ``inputParameters`` of a
``SimulationScenario`` entity)::

    {"kind": "drought", "cuts": {"DMA-1": 20, "*": 10}}          # % demand cut per zone
    {"kind": "intermittent", "supplyHours": {"DMA-2": 8}, "start": 6}
    {"kind": "pressure", "valves": {"PRV-1": 30},
     "leakage": {"coefficient": 0.02, "exponent": 1.0, "zones": ["*"]}}
    {"kind": "burst", "pipe": "p227"}
    {"kind": "outage", "element": "PUMP_1", "from": 2, "to": 8}   # hours; tank or pump
    {"kind": "baseline"}

and may add ``demandModel`` (DDA or PDA), ``duration`` (s), ``single`` (one period
at ``at`` s) and ``kpi`` (see ``KpiParams.from_dict``). Each run applies its changes to
the simulator, runs, computes the KPIs and undoes the changes::

    outcome = run_scenario(sim, parse_scenario({"kind": "burst", "pipe": "p227"}))
    outcomes = run_batch(network, specs)        # local cores, or Dask when configured
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cityverse.twins.water import engine as en
from cityverse.twins.water.engine import EngineError, NotConverged
from cityverse.twins.water.kpis import KpiParams
from cityverse.twins.water.simulate import Network, Simulator

KINDS = ("baseline", "drought", "intermittent", "pressure", "burst", "outage")
_COMMON = {"kind", "name", "description", "demandModel", "duration", "single", "at", "kpi"}
_FIELDS = {
    "baseline": set(),
    "drought": {"cuts"},
    "intermittent": {"supplyHours", "start"},
    "pressure": {"valves", "leakage"},
    "burst": {"pipe"},
    "outage": {"element", "from", "to"},
}
_DEFAULT_MODEL = {"intermittent": "PDA", "burst": "PDA", "outage": "PDA"}


class ScenarioError(ValueError):
    """A scenario that cannot run on this network: bad parameters, unknown zone or
    element."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed scenario: its kind, own parameters and run options."""

    kind: str
    params: dict[str, Any]
    demand_model: str | None = None
    duration: int | None = None
    single: bool = False
    at: int = 0
    kpi: KpiParams = field(default_factory=KpiParams)
    spec: dict[str, Any] = field(default_factory=dict)


def _number(value: Any, where: str, low: float = 0.0, high: float | None = None) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ScenarioError(f"{where} must be a number, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ScenarioError(f"{where} must be {bound}, not {value!r}")
    return float(value)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise ScenarioError(f"{where} must be a non-empty object")
    return value


def parse_scenario(raw: Any) -> Scenario:
    """Check a scenario object; ScenarioError says what is wrong."""
    if not isinstance(raw, dict):
        raise ScenarioError("a scenario is a JSON object with a 'kind'")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ScenarioError(f"scenario kind must be one of {', '.join(KINDS)}, not {kind!r}")
    unknown = set(raw) - _COMMON - _FIELDS[kind]
    if unknown:
        raise ScenarioError(f"unknown {kind} scenario parameters: {', '.join(sorted(unknown))}")
    params = {k: v for k, v in raw.items() if k in _FIELDS[kind]}
    if kind == "drought":
        for zone, cut in _mapping(params.get("cuts"), "cuts").items():
            _number(cut, f"cuts[{zone!r}]", 0, 100)
    elif kind == "intermittent":
        for zone, hours in _mapping(params.get("supplyHours"), "supplyHours").items():
            _number(hours, f"supplyHours[{zone!r}]", 0, 24)
        _number(params.get("start", 6), "start", 0, 24)
    elif kind == "pressure":
        if "valves" not in params and "leakage" not in params:
            raise ScenarioError("a pressure scenario sets 'valves' and/or 'leakage'")
        for valve, setting in (params.get("valves") or {}).items():
            _number(setting, f"valves[{valve!r}]")
        leak = params.get("leakage")
        if leak is not None:
            leak = _mapping(leak, "leakage")
            _number(leak.get("coefficient"), "leakage.coefficient")
            _number(leak.get("exponent", 1.0), "leakage.exponent", 0.5, 2.5)
            zones = leak.get("zones", ["*"])
            if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones):
                raise ScenarioError("leakage.zones must be a list of zone names")
    elif kind == "burst":
        if not isinstance(params.get("pipe"), str):
            raise ScenarioError("a burst scenario names its 'pipe'")
    elif kind == "outage":
        if not isinstance(params.get("element"), str):
            raise ScenarioError("an outage scenario names its 'element' (a tank or a pump)")
        start = _number(params.get("from", 0), "from", 0)
        if "to" in params and _number(params["to"], "to", 0) <= start:
            raise ScenarioError("an outage ends ('to') after it starts ('from')")
    model = raw.get("demandModel", _DEFAULT_MODEL.get(kind))
    if model not in (None, "DDA", "PDA"):
        raise ScenarioError(f"demandModel must be DDA or PDA, not {model!r}")
    duration = raw.get("duration")
    if duration is not None:
        duration = int(_number(duration, "duration", 0, 366 * 86_400))
    at = int(_number(raw.get("at", 0), "at", 0))
    single = raw.get("single", False)
    if not isinstance(single, bool):
        raise ScenarioError("single must be true or false")
    try:
        kpi = KpiParams.from_dict(raw.get("kpi"))
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    return Scenario(kind, params, model, duration, single, at, kpi, dict(raw))


def check(network: Network, scenario: Scenario) -> None:
    """Refuse a scenario that names a zone or element the network does not have, before
    anything runs."""
    zones = set(network.zones.values())

    def zone(name: str) -> None:
        if name != "*" and name not in zones:
            known = ", ".join(sorted(zones)) or "none"
            raise ScenarioError(f"no zone {name!r} in network {network.name!r} (zones: {known})")

    def element(name: str, kinds: tuple[str, ...], links: bool) -> None:
        found = (network.link_entities if links else network.node_entities).get(name)
        if found is None or found.split(":")[2] not in kinds:
            raise ScenarioError(f"no {' or '.join(kinds)} {name!r} in network {network.name!r}")

    p = scenario.params
    for name in list(p.get("cuts") or {}) + list(p.get("supplyHours") or {}):
        zone(name)
    for name in (p.get("leakage") or {}).get("zones", []):
        zone(name)
    for name in p.get("valves") or {}:
        element(name, ("Valve",), True)
    if scenario.kind == "burst":
        element(p["pipe"], ("Pipe",), True)
    if scenario.kind == "outage" and p["element"] not in network.link_entities:
        element(p["element"], ("Tank",), False)
    elif scenario.kind == "outage":
        element(p["element"], ("Pump",), True)


# -- applying a scenario ---------------------------------------------------------------


def _zone(sim: Simulator, zone: str) -> Any:
    try:
        return sim.zone_nodes(zone)
    except KeyError as exc:
        raise ScenarioError(exc.args[0]) from None


def _lookup(fn: Any, name: str) -> int:
    try:
        return int(fn(name))
    except KeyError as exc:
        raise ScenarioError(exc.args[0]) from None


def apply(sim: Simulator, scenario: Scenario) -> dict[str, Any]:
    """Change the open network as the scenario says; returns what it did."""
    kind, p = scenario.kind, scenario.params
    if kind == "drought":
        done = {}
        for zone, cut in p["cuts"].items():
            nodes = _zone(sim, zone)
            sim.scale_demand(nodes, 1.0 - float(cut) / 100.0)
            done[zone] = {"cutPercent": float(cut), "junctions": len(nodes)}
        return {"cuts": done}
    if kind == "intermittent":
        return {"supplyHours": _intermittent(sim, p["supplyHours"], float(p.get("start", 6)))}
    if kind == "pressure":
        return _pressure(sim, p)
    if kind == "burst":
        return _burst(sim, p["pipe"])
    if kind == "outage":
        return _outage(sim, p)
    return {}


def _close_at(sim: Simulator, link: int, start_s: float, end_s: float, daily: bool) -> None:
    """Close ``link`` from start to end (seconds; clock of day when ``daily``)."""
    kind = en.CONTROL_TIMEOFDAY if daily else en.CONTROL_TIMER
    is_valve = int(sim.topo.link_types[link]) >= en.LINK_PRV
    reopen = float(sim.engine.link_values(en.INITSETTING)[link]) if is_valve else 1.0
    sim.add_control(kind, link, en.SET_CLOSED, -1, start_s)
    sim.add_control(kind, link, reopen if is_valve else en.SET_OPEN, -1, end_s)
    closed_at_zero = start_s == 0 or (daily and end_s < start_s)
    if closed_at_zero:
        sim.set_link(link, en.INITSTATUS, 0)


def _intermittent(sim: Simulator, hours: dict[str, Any], start: float) -> dict[str, Any]:
    from cityverse.twins.water.analyse import boundary_links

    done = {}
    for zone, supply in hours.items():
        sim_nodes = len(_zone(sim, zone))
        links = boundary_links(sim.zones, sim.topo, zone)
        supply = float(supply)
        for link in links:
            sim.hold_link(link)
            if supply <= 0:
                sim.set_link(link, en.INITSTATUS, 0)
            elif supply < 24:
                # Supplied from ``start`` for ``supply`` hours each day, closed otherwise.
                close = ((start + supply) % 24) * 3600
                _close_at(sim, link, close, (start % 24) * 3600, daily=True)
        done[zone] = {
            "hours": supply,
            "start": start,
            "junctions": sim_nodes,
            "inletsClosed": [sim.engine.link_ids[i] for i in links],
        }
    return done


def _pressure(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    done: dict[str, Any] = {}
    for name, setting in (p.get("valves") or {}).items():
        link = _lookup(sim.link, name)
        if int(sim.topo.link_types[link]) < en.LINK_PRV:
            raise ScenarioError(f"{name!r} is not a valve: a pressure setting needs a PRV")
        sim.set_link(link, en.INITSETTING, float(setting))
        done.setdefault("valves", {})[name] = float(setting)
    leak = p.get("leakage")
    if leak is not None:
        coefficient = float(leak["coefficient"])
        sim.set_option(en.EMITEXPON, float(leak.get("exponent", 1.0)))
        zones = leak.get("zones", ["*"])
        count = 0
        for zone in zones:
            nodes = _zone(sim, zone)
            for node in nodes:
                sim.set_node(int(node), en.EMITTER, coefficient)
            count += len(nodes)
        done["leakage"] = {
            "coefficient": coefficient,
            "exponent": float(leak.get("exponent", 1.0)),
            "junctions": count,
        }
    return done


def _burst(sim: Simulator, pipe: str) -> dict[str, Any]:
    link = _lookup(sim.link, pipe)
    valves = None
    if sim.network.valves is not None:
        valves = [(_lookup(sim.link, a), _lookup(sim.node, b)) for a, b in sim.network.valves]
    try:
        segment = sim.topo.segment(link, valves)
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    closed = [sim.engine.link_index(name) for name in segment.links_closed]
    for index in closed:
        sim.hold_link(index)
        sim.set_link(index, en.INITSTATUS, 0)
    cut = set(sim.topo.unreachable(closed).tolist())
    cut |= {sim.engine.node_index(n) for n in segment.nodes}
    cut_nodes = sorted(cut)
    base = sum(
        sim.engine.base_demand(n, c)
        for n in cut_nodes
        for c in range(sim.engine.demand_count(n))
        if sim.topo.node_types[n] == en.NODE_JUNCTION
    )
    sim.scale_demand([n for n in cut_nodes if sim.topo.node_types[n] == en.NODE_JUNCTION], 0.0)
    return {
        "pipe": pipe,
        "segmentPipes": segment.pipes,
        "segmentNodes": segment.nodes,
        "valvesToClose": [{"pipe": a, "node": b} for a, b in segment.valves],
        "linksClosed": segment.links_closed,
        "nodesCutOff": [sim.engine.node_ids[n] for n in cut_nodes],
        "customersCutOff": int(sim.customers[cut_nodes].sum()) if cut_nodes else 0,
        "baseDemandCutOff": round(base, 6),
    }


def _outage(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    name = p["element"]
    if name in sim.engine.link_ids:
        link = sim.engine.link_index(name)
        if int(sim.topo.link_types[link]) != en.LINK_PUMP:
            raise ScenarioError(f"{name!r} is not a pump or a tank")
        links = [link]
    else:
        node = _lookup(sim.node, name)
        if int(sim.topo.node_types[node]) != en.NODE_TANK:
            raise ScenarioError(f"{name!r} is not a pump or a tank")
        links = [i for i, (a, b) in enumerate(sim.topo.ends) if node in (a, b)]
    start = float(p.get("from", 0)) * 3600
    end = float(p["to"]) * 3600 if "to" in p else None
    for link in links:
        sim.hold_link(link)
        if end is None:
            if start == 0:
                sim.set_link(link, en.INITSTATUS, 0)
            else:
                sim.add_control(en.CONTROL_TIMER, link, en.SET_CLOSED, -1, start)
        else:
            _close_at(sim, link, start, end, daily=False)
    return {
        "element": name,
        "linksClosed": [sim.engine.link_ids[i] for i in links],
        "fromHours": start / 3600,
        "toHours": None if end is None else end / 3600,
    }


# -- running ---------------------------------------------------------------------------


def run_scenario(sim: Simulator, scenario: Scenario, *, summary: bool = False) -> dict[str, Any]:
    """Apply, run, measure and undo one scenario: ``{"status", "details", "kpis"...}``.

    A run that fails (no convergence, engine error) comes back with ``status`` failed and
    an ``error``; the simulator is reset either way.
    """
    try:
        details = apply(sim, scenario)
        results = sim.run(
            duration=scenario.duration,
            demand_model=scenario.demand_model,
            single=scenario.single,
            at=scenario.at,
        )
        kpis = sim.kpis(results, scenario.kpi)
        out: dict[str, Any] = {
            "status": "succeeded",
            "details": details,
            "kpis": kpis["network"] if summary else kpis,
            "warnings": results.warnings,
        }
        return out
    except NotConverged as exc:
        return {
            "status": "failed",
            "error": str(exc),
            "time": exc.time,
            "element": exc.element,
        }
    except EngineError as exc:
        return {"status": "failed", "error": str(exc), "code": exc.code}
    finally:
        sim.reset()


_WORKER: dict[str, Simulator] = {}


def _worker_init(network: Network) -> None:
    _WORKER["sim"] = Simulator(network)


def attempt(sim: Simulator, spec: dict[str, Any], summary: bool = False) -> dict[str, Any]:
    """``run_scenario`` that reports a refused scenario as a failed outcome."""
    try:
        return run_scenario(sim, parse_scenario(spec), summary=summary)
    except ScenarioError as exc:
        return {"status": "failed", "error": str(exc)}


def _worker_run(spec: dict[str, Any], summary: bool) -> dict[str, Any]:
    return attempt(_WORKER["sim"], spec, summary)


def _dask_run(network: Network, spec: dict[str, Any], summary: bool) -> dict[str, Any]:
    # One open simulator per Dask worker process and network, reused across tasks.
    key = f"{network.name}:{hash(network.inp)}"
    sim = _WORKER.get(key)
    if sim is None:
        sim = _WORKER[key] = Simulator(network)
    return attempt(sim, spec, summary)


def run_batch(
    network: Network,
    specs: list[dict[str, Any]],
    *,
    workers: int | None = None,
    scheduler: str = "",
    summary: bool = False,
) -> list[dict[str, Any]]:
    """Run many scenarios in parallel: on a Dask cluster when ``scheduler`` names one,
    else on ``workers`` local processes (default: every core), each keeping its network
    open. Results come back in the order of ``specs``."""
    for spec in specs:
        parse_scenario(spec)
    if scheduler:
        from distributed import Client

        with Client(scheduler) as client:
            shared = client.scatter(network, broadcast=True)
            futures = client.map(
                _dask_run, [shared] * len(specs), specs, [summary] * len(specs), pure=False
            )
            return list(client.gather(futures))
    count = workers or os.cpu_count() or 1
    if count == 1 or len(specs) < 4:
        sim = Simulator(network)
        try:
            return [attempt(sim, s, summary) for s in specs]
        finally:
            sim.close()
    chunk = max(1, len(specs) // (count * 8))
    with ProcessPoolExecutor(count, initializer=_worker_init, initargs=(network,)) as pool:
        return list(pool.map(_worker_run, specs, [summary] * len(specs), chunksize=chunk))


def criticality(
    network: Network,
    *,
    at: int = 0,
    workers: int | None = None,
    scheduler: str = "",
    pipes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Every pipe burst at one period, ranked by the demand left unserved (L/s), then by
    the customers cut off."""
    if pipes is None:
        with Simulator(network).engine as engine:
            pipes = [
                name
                for name, kind in zip(engine.link_ids, engine.link_types, strict=True)
                if int(kind) in (en.LINK_PIPE, en.LINK_CVPIPE)
            ]
    specs = [{"kind": "burst", "pipe": p, "single": True, "at": at} for p in pipes]
    outcomes = run_batch(network, specs, workers=workers, scheduler=scheduler, summary=True)
    ranked = []
    for pipe, outcome in zip(pipes, outcomes, strict=True):
        row: dict[str, Any] = {"pipe": pipe, "status": outcome["status"]}
        if outcome["status"] == "succeeded":
            k, d = outcome["kpis"], outcome["details"]
            row.update(
                unservedDemand=round(
                    d["baseDemandCutOff"] + k["unservedDemand"] * 1000.0 / 3600.0, 6
                ),
                customersCutOff=d["customersCutOff"],
                customersBelowMinPressure=k["customersBelowMinPressure"],
                valvesToClose=len(d["valvesToClose"]),
            )
        else:
            row["error"] = outcome.get("error")
        ranked.append(row)
    ranked.sort(
        key=lambda r: (-r.get("unservedDemand", -1), -r.get("customersCutOff", 0), r["pipe"])
    )
    for rank, row in enumerate(ranked, start=1):
        row["rank"] = rank
    return ranked
