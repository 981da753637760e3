"""Key performance indicators of a run, per zone and for the whole network.

The same KPIs for every run, so that scenarios compare side by side::

    kpis = compute(results, topo, zones, customers, KpiParams(min_pressure=20))
    kpis["network"]["nonRevenueWaterPercent"], kpis["zones"]["DMA-1"]["supplyHours"]

The water balance follows the IWA standard (Alegre et al., *Performance Indicators for
Water Supply Services*): system input volume = authorized consumption + water losses;
water losses = apparent + real losses; non-revenue water = system input - billed
authorized consumption. A run knows the water delivered to consumers and the water lost
through leaks (emitters, pipe leakage); customer-meter under-registration and
unauthorized use (``apparent_loss_fraction`` of consumption) and unbilled use
(``unbilled_fraction`` of authorized consumption) are parameters. Real losses are the
rest: system input - consumption. The infrastructure leakage index is
CARL / UARL with UARL = (18 Lm + 0.8 Nc + 25 Lp) x P litres per day (Lambert, 1999).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cityverse.twins.water.analyse import Topology, boundary_links, zone_members
from cityverse.twins.water.engine import LINK_PUMP, NODE_JUNCTION, Results

NETWORK = "network"


@dataclass(frozen=True, slots=True)
class KpiParams:
    """What the KPIs measure against."""

    min_pressure: float = 20.0
    """Minimum service pressure, metres."""
    supply_pressure: float = 1.0
    """Pressure above which a node counts as supplied, metres."""
    apparent_loss_fraction: float = 0.0
    """Share of consumption that meters do not register or is unauthorized."""
    unbilled_fraction: float = 0.0
    """Share of authorized consumption that is not billed (fire fighting, mains flushing)."""
    service_length_km: float = 0.0
    """Length of service pipes between the property line and the meters (Lp), km."""

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> KpiParams:
        """From API/JSON names (``minPressure``, ``apparentLossFraction``...)."""
        raw = raw or {}
        names = {
            "minPressure": "min_pressure",
            "supplyPressure": "supply_pressure",
            "apparentLossFraction": "apparent_loss_fraction",
            "unbilledFraction": "unbilled_fraction",
            "serviceLengthKm": "service_length_km",
        }
        unknown = set(raw) - set(names)
        if unknown:
            raise ValueError(f"unknown KPI parameters: {', '.join(sorted(unknown))}")
        values = {}
        for key, field in names.items():
            if key in raw:
                value = raw[key]
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"KPI parameter {key} must be a non-negative number")
                values[field] = float(value)
        for key in ("apparent_loss_fraction", "unbilled_fraction"):
            if values.get(key, 0.0) >= 1.0:
                raise ValueError("loss and unbilled fractions are shares below 1")
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each zone is in the arrays, computed once per network."""

    junctions: NDArray[np.int64]
    members: dict[str, NDArray[np.int64]]
    inlets: dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]]
    """Zone -> (boundary links, +1 where positive flow enters the zone, -1 otherwise)."""
    links: dict[str | None, NDArray[np.bool_]]
    """Zone (None: the network) -> links whose downstream node lies in it."""

    @classmethod
    def of(cls, topo: Topology, zones: dict[str, str]) -> Layout:
        """The layout of a network's zones."""
        members = zone_members(zones, topo)
        inlets = {}
        links: dict[str | None, NDArray[np.bool_]] = {None: np.ones(len(topo.link_ids), bool)}
        downstream = [zones.get(topo.node_ids[b]) for _, b in topo.ends]
        for zone in members:
            found = boundary_links(zones, topo, zone)
            signs = [
                1.0
                if zones.get(topo.node_ids[topo.ends[link][1]]) == zone
                and topo.node_types[topo.ends[link][1]] == NODE_JUNCTION
                else -1.0
                for link in found
            ]
            inlets[zone] = (np.array(found, dtype=np.int64), np.array(signs))
            links[zone] = np.array([z == zone for z in downstream], dtype=bool)
        junctions = np.flatnonzero(topo.node_types == NODE_JUNCTION)
        return cls(junctions, members, inlets, links)


def compute(
    results: Results,
    topo: Topology,
    layout: Layout,
    customers: NDArray[np.float64],
    params: KpiParams,
    pipe_length: NDArray[np.float64],
) -> dict[str, Any]:
    """KPIs of one run: ``{"network": {...}, "zones": {zone: {...}}}``.

    ``customers`` holds the service connections at each node; ``pipe_length`` the length
    of each link in metres (0 for pumps and valves).
    """
    source_outflow = -results.demand[:, topo.sources].sum(axis=1)
    out: dict[str, Any] = {
        NETWORK: _kpis(
            results,
            topo,
            layout.junctions,
            source_outflow,
            customers,
            params,
            pipe_length,
            layout.links[None],
        ),
        "zones": {},
    }
    for zone, nodes in layout.members.items():
        links, signs = layout.inlets[zone]
        # Positive flow runs from a link's start node to its end node.
        inflow = (results.flow[:, links] * signs).sum(axis=1)
        out["zones"][zone] = _kpis(
            results, topo, nodes, inflow, customers, params, pipe_length, layout.links[zone]
        )
    return out


def _volume(series: NDArray[np.float64], step: int) -> float:
    """Litres per second sampled every ``step`` seconds -> cubic metres (trapezoids)."""
    if len(series) < 2:
        return float(series.sum()) * step / 1000.0 if len(series) else 0.0
    return float(np.trapezoid(series, dx=step)) / 1000.0


def _kpis(
    results: Results,
    topo: Topology,
    nodes: NDArray[np.int64],
    inflow: NDArray[np.float64],
    customers: NDArray[np.float64],
    params: KpiParams,
    pipe_length: NDArray[np.float64],
    in_zone_links: NDArray[np.bool_],
) -> dict[str, Any]:
    step = results.step
    single = len(results.times) == 1
    # A single period stands for an hour at its demand.
    dt = 3600 if single else step
    span_s = dt if single else float(results.times[-1] - results.times[0])
    days = span_s / 86_400
    siv = _volume(inflow, dt)
    consumption = _volume(results.consumption[:, nodes].sum(axis=1), dt)
    required = _volume(results.full_demand[:, nodes].sum(axis=1), dt)
    leakage = _volume(results.leakage[:, nodes].sum(axis=1), dt)
    apparent = consumption * params.apparent_loss_fraction
    authorized = consumption - apparent
    billed = authorized * (1.0 - params.unbilled_fraction)
    real = siv - consumption
    nrw = siv - billed

    pressure = results.pressure[:, nodes]
    demand_nodes = nodes[results.full_demand[:, nodes].max(axis=0) > 0]
    dn = np.isin(nodes, demand_nodes)
    supplied = pressure >= params.supply_pressure
    low = np.where(supplied, pressure, np.inf).min(axis=0) if len(nodes) else np.array([])
    inadequate = (~supplied.any(axis=0)) | (low < params.min_pressure)
    cust = customers[nodes]
    share_steps = supplied.mean(axis=0) if len(nodes) else np.array([])
    hours_per_day = 24.0 * share_steps
    mains_km = float(pipe_length[in_zone_links].sum()) / 1000.0
    pumps = in_zone_links & (topo.link_types == LINK_PUMP)
    energy = _volume(results.energy[:, pumps].sum(axis=1), dt) * 1000.0 / 3600.0
    mean_pressure = float(pressure.mean()) if pressure.size else 0.0
    n_conn = float(cust.sum())
    uarl = (18 * mains_km + 0.8 * n_conn + 25 * params.service_length_km) * mean_pressure
    carl = real * 1000.0 / days if days > 0 else 0.0
    return {
        "systemInputVolume": round(siv, 3),
        "consumption": round(consumption, 3),
        "requiredDemand": round(required, 3),
        "unservedDemand": round(max(required - consumption, 0.0), 3),
        "authorizedConsumption": round(authorized, 3),
        "billedAuthorizedConsumption": round(billed, 3),
        "unbilledAuthorizedConsumption": round(authorized - billed, 3),
        "waterLosses": round(siv - authorized, 3),
        "apparentLosses": round(apparent, 3),
        "realLosses": round(real, 3),
        "leakage": round(leakage, 3),
        "nonRevenueWater": round(nrw, 3),
        "nonRevenueWaterPercent": _percent(nrw, siv),
        "realLossesPercent": _percent(real, siv),
        "apparentLossesPercent": _percent(apparent, siv),
        "infrastructureLeakageIndex": round(carl / uarl, 3) if uarl > 0 and real > 0 else None,
        "mainsLengthKm": round(mains_km, 3),
        "serviceConnections": int(n_conn),
        "meanPressure": round(mean_pressure, 3),
        "minimumPressure": round(float(pressure.min()), 3) if pressure.size else None,
        "nodesBelowMinPressure": int(inadequate[dn].sum()),
        "nodesBelowMinPressurePercent": _percent(float(inadequate[dn].sum()), float(dn.sum())),
        "customersBelowMinPressure": int(cust[inadequate].sum()),
        "customersBelowMinPressurePercent": _percent(float(cust[inadequate].sum()), n_conn),
        "supplyHours": round(float(np.average(hours_per_day[dn], weights=None)), 3)
        if dn.any()
        else None,
        "pumpEnergy": round(energy, 3),
        "periodHours": round(span_s / 3600.0, 3),
    }


def _percent(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 3) if whole > 0 else None


UNITS = {
    "systemInputVolume": "MTQ",
    "consumption": "MTQ",
    "pumpEnergy": "KWH",
    "meanPressure": "MTR",
    "supplyHours": "HUR",
}
"""unitCodes of the KPIs that have one (volumes in cubic metres)."""
