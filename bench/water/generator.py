"""Leak scenarios on L-Town in the style of LeakDB: sensor data from a real EPANET run.

A scenario is L-Town (the BattLeDIM network EPyT's wheel ships) over ``days`` days at
5-minute steps with:

- its own weekly demand patterns (P-Residential, P-Commercial), tiled over the period,
  times a yearly season (+-10 %, peak in summer) and times a slow random noise of 5 %
  (AR(1), one-hour correlation) drawn for eight groups of junctions per pattern;
- base demands each off by a random 5 % (uniform +-5 %), which the twin's model never
  learns;
- leaks: each a demand at the midpoint of a pipe (the pipe split in two), 3 to 20 m3/h,
  abrupt or incipient (growing linearly over 1 to 5 days), repaired at ``end`` or never;
  the 14-day scenarios hold at most one, the year-long ones several;
- sensors: pressure at the chosen junctions (noise sigma 5 cm), flow at the three inlets
  p227, p235 and PUMP_1 (noise 0.5 % + 0.05 L/s), the level of tank T1 (1 cm).

The twin's model is the network as published (nominal demands, the weekly patterns
tiled, no season, no noise, no leak): what a utility's model knows.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wntr
from numpy.typing import NDArray

from cityverse.twins.water.engine import Engine
from cityverse.twins.water.model import inp_text

_EPYT = importlib.util.find_spec("epyt")
assert _EPYT is not None and _EPYT.submodule_search_locations
LTOWN = Path(next(iter(_EPYT.submodule_search_locations))) / "networks" / "L-TOWN.inp"
STEP = 300
FLOWS = ("p227", "p235", "PUMP_1")
LEVELS = ("T1",)
PRESSURE_SIGMA = 0.05
DEMAND_ERROR = 0.05
GROUPS = 8


@dataclass(frozen=True, slots=True)
class Leak:
    """A leak at the midpoint of ``pipe``: ``size`` m3/h from ``start`` s, reached at
    once (``ramp`` 0) or growing over ``ramp`` s, until ``end`` s (the repair; None:
    never)."""

    pipe: str
    size: float
    start: int
    ramp: int = 0
    end: int | None = None

    @property
    def kind(self) -> str:
        """abrupt or incipient."""
        return "incipient" if self.ramp else "abrupt"


@dataclass(slots=True)
class Data:
    """What the sensors recorded and what the model predicts, on the 5-minute grid."""

    times: NDArray[np.int64]
    pressure: NDArray[np.float64]
    flows: NDArray[np.float64]
    levels: NDArray[np.float64]
    model_pressure: NDArray[np.float64]
    model_flows: NDArray[np.float64]
    model_levels: NDArray[np.float64]


def pipes() -> list[str]:
    """The pipes a leak may be put on."""
    wn = wntr.network.WaterNetworkModel(str(LTOWN))
    return [p for p in wn.pipe_name_list if wn.get_link(p).length > 1.0]


def _tile(multipliers: list[float], rows: int) -> NDArray[np.float64]:
    base = np.asarray(multipliers, dtype=float)
    return np.asarray(np.resize(base, rows))


def _season(rows: int, start_day: int) -> NDArray[np.float64]:
    day = start_day + np.arange(rows) * STEP / 86_400
    return np.asarray(1.0 + 0.1 * np.sin(2 * np.pi * (day - 100) / 365))


def _ar1(rng: np.random.Generator, rows: int, sd: float, tau_steps: float) -> NDArray[np.float64]:
    phi = np.exp(-1 / tau_steps)
    eps = rng.normal(0, sd * np.sqrt(1 - phi * phi), rows)
    out = np.empty(rows)
    out[0] = rng.normal(0, sd)
    for i in range(1, rows):
        out[i] = phi * out[i - 1] + eps[i]
    return out


def _configure(wn: wntr.network.WaterNetworkModel, days: int) -> int:
    rows = days * 86_400 // STEP
    wn.options.time.duration = days * 86_400
    wn.options.time.hydraulic_timestep = STEP
    wn.options.time.pattern_timestep = STEP
    wn.options.time.report_timestep = STEP
    wn.options.time.quality_timestep = STEP
    return rows


def _run(
    wn: wntr.network.WaterNetworkModel, sensors: list[str], days: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    with Engine.from_text(inp_text(wn, "LPS")) as engine:
        res = engine.run(duration=days * 86_400, step=STEP)
        node = [engine.node_index(s) for s in sensors]
        link = [engine.link_index(f) for f in FLOWS]
        tank = [engine.node_index(t) for t in LEVELS]
        rows = days * 86_400 // STEP
        return (
            res.pressure[:rows, node],
            np.abs(res.flow[:rows, link]),
            res.pressure[:rows, tank],
        )


def model_run(
    sensors: list[str], days: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The twin's model prediction (pressure at ``sensors``, inlet flows, tank level)."""
    wn = wntr.network.WaterNetworkModel(str(LTOWN))
    rows = _configure(wn, days)
    for name in ("P-Residential", "P-Commercial"):
        pat = wn.get_pattern(name)
        pat.multipliers = _tile(list(pat.multipliers), rows)
    return _run(wn, sensors, days)


def scenario(
    seed: int,
    sensors: list[str],
    days: int,
    leak: Leak | Sequence[Leak] | None,
    model: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
    *,
    start_day: int = 0,
) -> Data:
    """Simulate one scenario and the sensors' readings (noise drawn from ``seed``)."""
    rng = np.random.default_rng(seed)
    wn = wntr.network.WaterNetworkModel(str(LTOWN))
    rows = _configure(wn, days)
    season = _season(rows, start_day)
    names = []
    for name in ("P-Residential", "P-Commercial"):
        base = _tile(list(wn.get_pattern(name).multipliers), rows) * season
        for g in range(GROUPS):
            noisy = base * (1 + _ar1(rng, rows, DEMAND_ERROR, 3600 / STEP))
            wn.add_pattern(f"{name}-{g}", list(np.maximum(noisy, 0.0)))
        names.append(name)
    for junction in wn.junction_name_list:
        group = int(rng.integers(GROUPS))
        for demand in wn.get_node(junction).demand_timeseries_list:
            demand.base_value *= 1 + rng.uniform(-DEMAND_ERROR, DEMAND_ERROR)
            if demand.pattern_name in names:
                demand.pattern_name = f"{demand.pattern_name}-{group}"
    leaks = [leak] if isinstance(leak, Leak) else list(leak or [])
    for k, one in enumerate(leaks):
        name = "LEAK" if k == 0 else f"LEAK{k}"
        pipe = wn.get_link(one.pipe)
        a, b = pipe.start_node, pipe.end_node
        wn = wntr.morph.split_pipe(wn, one.pipe, one.pipe + "_L", name, split_at_point=0.5)
        node = wn.get_node(name)
        elev = [n.elevation for n in (a, b) if hasattr(n, "elevation")]
        node.elevation = float(np.mean(elev)) if elev else node.elevation
        t = np.arange(rows) * STEP
        shape = np.clip((t - one.start) / one.ramp, 0, 1) if one.ramp else t >= one.start
        shape = np.asarray(shape, dtype=float)
        if one.end is not None:
            shape[t >= one.end] = 0.0
        wn.add_pattern(name, list(shape))
        node.add_demand(one.size / 3600.0, name)
    p, f, lv = _run(wn, sensors, days)
    p = p + rng.normal(0, PRESSURE_SIGMA, p.shape)
    f = f * (1 + rng.normal(0, 0.005, f.shape)) + rng.normal(0, 0.05, f.shape)
    lv = lv + rng.normal(0, 0.01, lv.shape)
    times = np.arange(rows, dtype=np.int64) * STEP + start_day * 86_400
    return Data(times, p, f, lv, model[0], model[1], model[2])
