"""Leak detection and localisation over the store: sensor history in, NGSI-LD Alerts out.

Reads the measured (default instance) and simulated (datasetId
``urn:ngsi-ld:Dataset:simulated``) history of every pressure, flow and level sensor of a
network, checks it, runs ``leaks`` and ``localise`` on it and writes what it finds with
``store.mutate``, so that subscriptions and the dashboard see it::

    report = await detect(store, "", "ltown", start_ms, end_ms, train_days=7)
    result = await localise_alert(store, "", "ltown", report.alerts[0])

Each detection is a Smart Data Models ``Alert`` (category ``water``, subCategory ``leak``
or ``sensorFault``); each sensor's data-quality findings go on its Device as the
``dataQuality`` JsonProperty.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cityverse.broker.entities import UpdateResult, appending
from cityverse.core.context import Context, ContextResolver
from cityverse.core.entity import format_utc, iso_now, parse_attributes, parse_entity, render_entity
from cityverse.core.errors import BadRequestData, OperationNotSupported, ResourceNotFound
from cityverse.core.model import Entity
from cityverse.store.base import Change, EntityFilter, EntityStore
from cityverse.store.temporal import TimeWindow
from cityverse.twins.water import leaks as lk
from cityverse.twins.water import localise as loc
from cityverse.twins.water.analyse import Topology
from cityverse.twins.water.engine import NODE_JUNCTION, Engine
from cityverse.twins.water.model import SIMULATED, WATER_CONTEXT, element_name, network_id
from cityverse.twins.water.simulate import Network, Simulator
from cityverse.twins.water.twin import load_network

ALERT = "https://smartdatamodels.org/dataModel.Alert/"
ALERT_CONTEXT: list[Any] = [
    *WATER_CONTEXT,
    {
        "Alert": ALERT + "Alert",
        "category": ALERT + "category",
        "subCategory": ALERT + "subCategory",
        "severity": ALERT + "severity",
        "dateIssued": ALERT + "dateIssued",
        "validFrom": ALERT + "validFrom",
        "validTo": ALERT + "validTo",
        "alertSource": ALERT + "alertSource",
        "description": "https://smartdatamodels.org/description",
    },
]
"""The @context of the water twin's Alerts: SDM dataModel.Alert terms."""
MAX_INSTANCES = 2_000_000
NIGHT = (0, 5)
NIGHT_FLOW_HOURS = (2, 4)
"""The minimum night flow is the mean inflow from 02:00 to 04:00 (UTC)."""

_context: Context | None = None


async def alert_context() -> Context:
    """The processed ALERT_CONTEXT (bundled parts only: no network access)."""
    global _context
    if _context is None:
        _context = await ContextResolver().resolve(ALERT_CONTEXT)
    return _context


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _iso(seconds: int) -> str:
    return format_utc(datetime.fromtimestamp(seconds, UTC))


@dataclass(slots=True)
class Sensor:
    """One sensor Device and the series it (and the model) recorded."""

    device: str
    asset: str
    prop: str
    location: dict[str, Any] | None
    times: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    values: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    model_times: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    model_values: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    flags: list[lk.Flag] = field(default_factory=list)


@dataclass(slots=True)
class Readings:
    """Every sensor of a network on one regular grid."""

    bodies: list[dict[str, Any]]
    times: NDArray[np.int64]
    step: int
    pressure: list[Sensor]
    flow: list[Sensor]
    level: list[Sensor]
    e: NDArray[np.float64]
    """(T, pressure sensors) measured pressure less the model's when every sensor has
    a simulated history, else the measured pressure."""
    f: NDArray[np.float64]
    """(T, flow sensors + level sensors) the same for the flows, then the tank levels."""
    model: bool
    left_out: list[Sensor] = field(default_factory=list)
    """Pressure sensors without enough training history (flagged ``noTrainingData``)."""
    flow_measured: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    """(T, flow sensors) the measured flows themselves, L/s (NaN: no reading)."""
    level_measured: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    """(T, level sensors) the measured tank levels, m."""


def _sensors(bodies: list[dict[str, Any]]) -> list[Sensor]:
    out = []
    for body in bodies:
        if body["type"] != "Device":
            continue
        asset = (body.get("controlledAsset") or {}).get("object")
        props = (body.get("controlledProperty") or {}).get("value") or []
        category = (body.get("deviceCategory") or {}).get("value") or []
        props = props if isinstance(props, list) else [props]
        if not isinstance(asset, str) or "sensor" not in category:
            continue
        for prop in props:
            if prop in ("pressure", "flow", "level"):
                location = (body.get("location") or {}).get("value")
                out.append(Sensor(body["id"], asset, prop, location))
    return sorted(out, key=lambda s: s.device)


async def load_readings(
    store: EntityStore, tenant: str, network: str, start_ms: int, end_ms: int
) -> Readings:
    """The history of a network's sensors in [start, end), checked and on a grid."""
    if not hasattr(store, "instances"):
        raise OperationNotSupported("this store keeps no history to detect leaks from")
    bodies = await load_network(store, tenant, network)
    ctx = await alert_context()
    sensors = _sensors(bodies)
    window = TimeWindow("observedAt", start_ms, end_ms)
    for sensor in sensors:
        name = ctx.expand(sensor.prop)
        history = await store.instances(
            tenant, sensor.asset, frozenset({name}), window, last_n=None, limit=MAX_INSTANCES
        )
        measured: list[tuple[int, float]] = []
        model: list[tuple[int, float]] = []
        found = history.get(name)
        for inst in found.instances if found is not None else []:
            value, when = inst.get("value"), inst.get("observedAt")
            if not isinstance(when, str):
                continue
            number = float(value) if isinstance(value, int | float) else math.nan
            row = (_ms(when) // 1000, number)
            if inst.get("datasetId") == SIMULATED:
                model.append(row)
            elif "datasetId" not in inst:
                measured.append(row)
        # Received order, not sorted: a clock that jumps back must show as such.
        if measured:
            sensor.times = np.array([t for t, _ in measured], dtype=np.int64)
            sensor.values = np.array([v for _, v in measured])
        if model:
            model.sort()
            sensor.model_times = np.array([t for t, _ in model], dtype=np.int64)
            sensor.model_values = np.array([v for _, v in model])
    pressure = [s for s in sensors if s.prop == "pressure"]
    if len(pressure) < 2:
        raise BadRequestData(
            f"network {network!r} needs at least two pressure sensors with history "
            f"(it has {len(pressure)})"
        )
    steps = [np.median(np.diff(np.sort(s.times))) for s in pressure if len(s.times) > 2]
    if not steps:
        raise BadRequestData("the pressure sensors have no history in this window")
    step = max(int(np.median(steps)), 1)
    for sensor in sensors:
        sensor.times, sensor.values, sensor.flags = lk.check_series(
            sensor.times, sensor.values, step
        )
    first = min(int(s.times[0]) for s in pressure if len(s.times))
    last = max(int(s.times[-1]) for s in pressure if len(s.times))
    t0 = first - first % step
    rows = (last - t0) // step + 1
    times = t0 + np.arange(rows, dtype=np.int64) * step
    flows = [s for s in sensors if s.prop == "flow"]
    level = [s for s in sensors if s.prop == "level"]
    with_model = all(_covers(s, times) for s in pressure + flows + level)

    def column(s: Sensor) -> NDArray[np.float64]:
        grid = lk.to_grid(s.times, s.values, t0, step, rows)
        if with_model:
            grid = grid - np.interp(times, s.model_times, s.model_values)
        return grid

    def raw(group: list[Sensor]) -> NDArray[np.float64]:
        if not group:
            return np.zeros((rows, 0))
        return np.stack([lk.to_grid(s.times, s.values, t0, step, rows) for s in group], axis=1)

    e = np.stack([column(s) for s in pressure], axis=1)
    # The flows, then the tank levels: a tank lower than the model's lowers the pressures
    # of the zone it feeds, which the normal then explains.
    regressors = flows + level
    f = np.stack([column(s) for s in regressors], axis=1) if regressors else np.zeros((rows, 0))
    out = Readings(bodies, times, step, pressure, flows, level, e, f, with_model)
    out.flow_measured, out.level_measured = raw(flows), raw(level)
    return out


def _covers(sensor: Sensor, times: NDArray[np.int64]) -> bool:
    if len(sensor.model_times) < 2:
        return False
    return bool(sensor.model_times[0] <= times[0] and sensor.model_times[-1] >= times[-1])


# -- detection -----------------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    """What a detection run found and wrote."""

    alerts: list[dict[str, Any]]
    flagged: dict[str, list[dict[str, Any]]]
    monitored: tuple[str, str]
    model: bool
    night_flow: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per metered area: its zones, inlets and minimum night flow each night (the KPI)."""
    relearned: list[str] = field(default_factory=list)
    """When the normal pattern was learned (again), ISO 8601."""


def _signatures(
    network: Network, readings: Readings, coef: NDArray[np.float64]
) -> tuple[loc.Sensitivity, NDArray[np.float64]]:
    sim = Simulator(network)
    try:
        sens = loc.sensitivity(
            sim,
            [element_name(s.asset) for s in readings.pressure],
            [element_name(s.asset) for s in readings.flow],
        )
    finally:
        sim.close()
    return sens, sens.signatures(coef)


def _train(readings: Readings, train_days: float) -> tuple[lk.Normal, NDArray[np.bool_]]:
    train = readings.times < readings.times[0] + int(train_days * lk.DAY)
    if not (~train).any():
        raise BadRequestData(
            f"the window holds no history after the {train_days} training days: "
            "widen it or train on fewer days"
        )
    # A sensor silent over the training days cannot be judged: leave it out, and say so.
    enough = np.isfinite(readings.e[train]).sum(axis=0) >= lk.DAY // readings.step
    for sensor in [s for s, ok in zip(readings.pressure, enough, strict=True) if not ok]:
        sensor.flags.append(
            lk.Flag("noTrainingData", int(readings.times[0]), int(readings.times[-1]), 0)
        )
        readings.left_out.append(sensor)
    if enough.sum() < 2:
        raise BadRequestData(
            "fewer than two pressure sensors have a day of history in the training days"
        )
    readings.pressure = [s for s, ok in zip(readings.pressure, enough, strict=True) if ok]
    readings.e = readings.e[:, enough]
    try:
        normal = lk.fit_normal(readings.times[train], readings.e[train], readings.f[train])
    except ValueError as exc:
        raise BadRequestData(f"cannot learn the normal pattern: {exc}") from None
    return normal, train


async def detect(
    store: EntityStore,
    tenant: str,
    network: Network,
    start_ms: int,
    end_ms: int,
    *,
    train_days: float = 7.0,
    settings: lk.Settings | None = None,
    relearn_days: float | None = 7.0,
) -> Report:
    """Learn the normal on the first ``train_days`` of [start, end), watch the rest
    (learning the normal again every ``relearn_days``, None: never), and write an Alert
    per detection and the data-quality flags of every sensor.

    Leak Alerts already stored for the network are periods the normal is never learned
    from (from ``validFrom`` to ``validTo``, or on while open); an alarm whose Alert is
    stored with a ``validTo`` (repaired, or dismissed) is followed by a new normal and
    the watch goes on from then, otherwise the pressure test stops at it.
    """
    readings = await load_readings(store, tenant, network.name, start_ms, end_ms)
    _train(readings, train_days)
    known = await _leak_periods(store, tenant, network.name)
    sens = await asyncio.to_thread(_sensitivity, network, readings)
    begin = int(readings.times[0]) + int(train_days * lk.DAY)
    plan = lk.Relearning(
        every=int(relearn_days * lk.DAY) if relearn_days else 1 << 40,
        window=int(train_days * lk.DAY),
    )

    def closed(alarm: lk.Alarm) -> int | None:
        period = known.get(_alarm_key(network.name, alarm))
        return period[1] if period is not None else None

    try:
        seen = await asyncio.to_thread(
            lk.watch,
            readings.times,
            readings.e,
            readings.f,
            sens.signatures,
            begin,
            settings=settings or lk.Settings(),
            relearning=plan,
            closed=closed,
            excluded=[(a, b if b is not None else 1 << 62) for a, b in known.values()],
        )
    except ValueError as exc:
        raise BadRequestData(f"cannot learn the normal pattern: {exc}") from None
    bodies = []
    for alarm in seen.alarms:
        bodies.append(_alarm_alert(network.name, readings, sens, alarm))
    for sensor in readings.pressure + readings.left_out + readings.flow + readings.level:
        stuck = [f for f in sensor.flags if f.kind == "stuck"]
        if stuck:
            bodies.append(_stuck_alert(network.name, sensor, stuck))
    night_flow: dict[str, dict[str, Any]] = {}
    if readings.flow:
        areas = await asyncio.to_thread(metered_areas, network, readings)
        for area in areas:
            summary, alarms = _night_flow(area, readings, begin, known, network.name)
            night_flow[area.name] = summary
            bodies.extend(_night_alert(network.name, area, night) for night in alarms)
    await _write(store, tenant, bodies)
    flagged = await _flag(store, tenant, readings)
    return Report(
        [b for b in bodies],
        flagged,
        (_iso(int(readings.times[0])), _iso(int(readings.times[-1]))),
        readings.model,
        night_flow,
        [_iso(item.start) for item in seen.learned],
    )


def _sensitivity(network: Network, readings: Readings) -> loc.Sensitivity:
    sim = Simulator(network)
    try:
        return loc.sensitivity(
            sim,
            [element_name(s.asset) for s in readings.pressure],
            [element_name(s.asset) for s in readings.flow],
        )
    finally:
        sim.close()


def _alarm_key(network: str, alarm: lk.Alarm) -> str:
    return f"urn:ngsi-ld:Alert:{network}:leak:{alarm.start}"


async def _leak_periods(
    store: EntityStore, tenant: str, network: str
) -> dict[str, tuple[int, int | None]]:
    """The network's stored leak Alerts: id -> (validFrom, validTo or None), epoch s."""
    out: dict[str, tuple[int, int | None]] = {}
    for alert in await list_alerts(store, tenant, network):
        if alert.get("subCategory") != "leak" or not isinstance(alert.get("validFrom"), str):
            continue
        until = alert.get("validTo")
        out[str(alert["id"])] = (
            _ms(str(alert["validFrom"])) // 1000,
            _ms(until) // 1000 if isinstance(until, str) else None,
        )
    return out


# -- minimum night flow per metered area ----------------------------------------------------


@dataclass(slots=True)
class Area:
    """Zones whose inflow the sensors meter: every link into them has a flow sensor, or
    is the one unmetered link of a tank whose level is measured (the tank's balance
    gives its flow)."""

    name: str
    zones: list[str]
    inlets: list[str]
    flows: list[tuple[int, float]]
    """(flow sensor column, coefficient): the inflow adds these measured flows..."""
    tanks: list[tuple[int, float]]
    """(level sensor column, m2): ...and these tanks' level rises times their area."""

    def inflow(self, readings: Readings) -> NDArray[np.float64]:
        """The area's inflow on the readings' grid, L/s (NaN where a term is missing)."""
        total = np.zeros(len(readings.times))
        for col, coef in self.flows:
            total = total + coef * readings.flow_measured[:, col]
        for col, area in self.tanks:
            # What the tank stores from one reading to the next: over a night the rises
            # add up to the change of level, whatever the pumps did in between.
            level = readings.level_measured[:, col]
            rise = np.append(np.diff(level), np.nan) / readings.step
            total = total + 1000.0 * area * rise
        return total


def metered_areas(network: Network, readings: Readings) -> list[Area]:
    """The smallest groups of zones whose inflow the flow (and tank level) sensors give:
    zones joined by a link without a sensor are one area."""
    with Engine.from_text(network.inp) as engine:
        topo = Topology.of(engine)
    link_index = {name: i for i, name in enumerate(topo.link_ids)}
    node_index = {name: i for i, name in enumerate(topo.node_ids)}
    # Each link's flow (positive from its start node to its end) as a sum of terms.
    terms: dict[int, dict[tuple[str, int], float]] = {}
    for col, sensor in enumerate(readings.flow):
        link = link_index.get(element_name(sensor.asset))
        if link is not None:
            terms[link] = {("flow", col): 1.0}
    diameters = {
        element_name(b["id"]): float((b.get("nominalDiameter") or {}).get("value") or 0.0)
        for b in readings.bodies
        if b["type"] == "Tank"
    }
    for col, sensor in enumerate(readings.level):
        name = element_name(sensor.asset)
        node = node_index.get(name)
        if node is None or diameters.get(name, 0.0) <= 0:
            continue
        touching = [i for i, (a, b) in enumerate(topo.ends) if node in (a, b)]
        unknown = [i for i in touching if i not in terms]
        if len(unknown) != 1:
            continue
        # What enters the tank through its links is what it stores: area x level rise.
        into = {i: 1.0 if topo.ends[i][1] == node else -1.0 for i in touching}
        u = unknown[0]
        derived = {("tank", col): into[u] * math.pi * diameters[name] ** 2 / 4}
        for i in touching:
            for key, c in terms.get(i, {}).items():
                if i != u:
                    derived[key] = derived.get(key, 0.0) - into[u] * into[i] * c
        terms[u] = derived
    zone_of = [
        network.zones.get(name) if topo.node_types[i] == NODE_JUNCTION else None
        for i, name in enumerate(topo.node_ids)
    ]
    parent = {z: z for z in sorted({z for z in zone_of if z})}

    def root(z: str) -> str:
        while parent[z] != z:
            z = parent[z]
        return z

    for i, (a, b) in enumerate(topo.ends):
        za, zb = zone_of[a], zone_of[b]
        if za and zb and za != zb and i not in terms:
            parent[root(za)] = root(zb)
    groups: dict[str, list[str]] = {}
    for zone in parent:
        groups.setdefault(root(zone), []).append(zone)
    out = []
    for members in sorted(groups.values(), key=lambda g: (len(g), g)):
        inside = set(members)
        total: dict[tuple[str, int], float] = {}
        inlets = []
        for i, (a, b) in enumerate(topo.ends):
            in_a, in_b = zone_of[a] in inside, zone_of[b] in inside
            if in_a == in_b:
                continue
            if i not in terms:
                break
            inlets.append(topo.link_ids[i])
            sign = 1.0 if in_b else -1.0
            for key, c in terms[i].items():
                total[key] = total.get(key, 0.0) + sign * c
        else:
            kept = {k: v for k, v in total.items() if abs(v) > 1e-9}
            if kept:
                out.append(
                    Area(
                        "+".join(members),
                        members,
                        inlets,
                        [(c, v) for (kind, c), v in kept.items() if kind == "flow"],
                        [(c, v) for (kind, c), v in kept.items() if kind == "tank"],
                    )
                )
    return out


def _night_flow(
    area: Area,
    readings: Readings,
    begin: int,
    known: dict[str, tuple[int, int | None]],
    network: str,
) -> tuple[dict[str, Any], list[lk.NightAlarm]]:
    days, values = lk.night_flows(readings.times, area.inflow(readings))
    expected = np.full(len(values), np.nan)
    trained = int((days < begin).sum())

    def closed(alarm: lk.NightAlarm) -> int | None:
        period = known.get(f"urn:ngsi-ld:Alert:{network}:{_night_key(area, alarm)}")
        return period[1] if period is not None else None

    try:
        alarms = lk.night_watch(days, values, trained, closed=closed, expected=expected)
    except ValueError:
        alarms = []  # fewer than three training nights: the pressure test still ran
    nights = [
        {
            "night": _iso(int(d))[:10],
            "flow": None if not np.isfinite(v) else round(float(v), 3),
            "normal": None if not np.isfinite(x) else round(float(x), 3),
        }
        for d, v, x in zip(days, values, expected, strict=True)
    ]
    summary = {
        "zones": area.zones,
        "inlets": area.inlets,
        "unitCode": "G51",
        "hours": list(NIGHT_FLOW_HOURS),
        "nights": nights,
        "alarms": len(alarms),
    }
    return summary, alarms


def _night_key(area: Area, night: lk.NightAlarm) -> str:
    return f"leak:nightflow:{area.name}:{night.start}"


def _severity(leak_ls: float) -> str:
    m3h = leak_ls * 3.6
    return "critical" if m3h >= 20 else "high" if m3h >= 10 else "medium" if m3h >= 3 else "low"


def _alert(
    network: str, key: str, sub: str, severity: str, issued: int, start: int, text: str
) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Alert:{network}:{key}",
        "type": "Alert",
        "category": {"type": "Property", "value": "water"},
        "subCategory": {"type": "Property", "value": sub},
        "severity": {"type": "Property", "value": severity},
        "dateIssued": {"type": "Property", "value": _iso(issued)},
        "validFrom": {"type": "Property", "value": _iso(start)},
        "alertSource": {"type": "Property", "value": network_id(network)},
        "description": {"type": "Property", "value": text},
    }


def _alarm_alert(
    network: str, readings: Readings, sens: loc.Sensitivity, alarm: lk.Alarm
) -> dict[str, Any]:
    if alarm.kind == "sensorFault" and alarm.sensor is not None:
        sensor = readings.pressure[alarm.sensor]
        offset = float(alarm.residual[alarm.sensor])
        body = _alert(
            network,
            f"sensorFault:{element_name(sensor.device)}:{alarm.start}",
            "sensorFault",
            "medium",
            alarm.time,
            alarm.start,
            f"{sensor.device} reads {offset:+.2f} m off its normal since {_iso(alarm.start)} "
            "while its neighbours do not: a faulty or drifting sensor, not a leak",
        )
        body["alertSource"]["value"] = sensor.device
        if sensor.location:
            body["location"] = {"type": "GeoProperty", "value": sensor.location}
        return body
    leak = alarm.leak or 0.0
    drop = np.nan_to_num(alarm.residual, nan=0.0)
    nearest = readings.pressure[int(np.argmin(drop))]
    body = _alert(
        network,
        f"leak:{alarm.start}",
        "leak",
        _severity(leak),
        alarm.time,
        alarm.start,
        f"a new leak of about {leak * 3.6:.1f} m3/h since about {_iso(alarm.start)}; "
        f"largest pressure drop {-drop.min():.2f} m at {element_name(nearest.asset)}",
    )
    if nearest.location:
        body["location"] = {"type": "GeoProperty", "value": nearest.location}
    body["leakEvidence"] = {
        "type": "JsonProperty",
        "json": {
            "start": _iso(alarm.start),
            "raisedAt": _iso(alarm.time),
            "estimatedFlow": round(leak, 3),
            "statistic": round(alarm.statistic, 2),
            "hours": alarm.hours,
            "residuals": {
                element_name(s.asset): (None if not np.isfinite(v) else round(float(v), 4))
                for s, v in zip(readings.pressure, alarm.residual, strict=True)
            },
        },
    }
    return body


def _stuck_alert(network: str, sensor: Sensor, stuck: list[lk.Flag]) -> dict[str, Any]:
    first = stuck[0]
    count = sum(f.count for f in stuck)
    body = _alert(
        network,
        f"sensorFault:{element_name(sensor.device)}:stuck:{first.start}",
        "sensorFault",
        "medium",
        stuck[-1].end,
        first.start,
        f"{sensor.device} repeated the same value {count} times from {_iso(first.start)}: "
        "a stuck sensor (its readings are left out of leak detection)",
    )
    body["alertSource"]["value"] = sensor.device
    if sensor.location:
        body["location"] = {"type": "GeoProperty", "value": sensor.location}
    return body


def _night_alert(network: str, area: Area, night: lk.NightAlarm) -> dict[str, Any]:
    zones = ", ".join(area.zones)
    return _alert(
        network,
        _night_key(area, night),
        "leak",
        _severity(night.excess),
        night.time,
        night.start,
        f"the minimum night flow of {zones} is {night.excess:.2f} L/s above its normal "
        f"({night.baseline:.2f} L/s) since the night of {_iso(night.start)[:10]}",
    )


async def _write(store: EntityStore, tenant: str, bodies: list[dict[str, Any]]) -> None:
    if not bodies:
        return
    ctx = await alert_context()
    now = iso_now()
    changes = []
    for body in bodies:
        entity = parse_entity(body, ctx, now=now)
        changes.append(Change(entity["id"], _upsert(entity)))
    for outcome in await store.mutate(tenant, changes):
        if outcome.error is not None:
            raise outcome.error


def _upsert(entity: Entity) -> Any:
    def apply(current: Entity | None) -> Entity:
        if current is None:
            return entity
        # What others wrote on the Alert stays: its validTo (closed by the crew), the
        # candidates and search area of a localisation.
        attrs = {**current.get("attrs", {}), **entity.get("attrs", {})}
        return {**entity, "attrs": attrs, "createdAt": current["createdAt"]}

    return apply


async def _flag(
    store: EntityStore, tenant: str, readings: Readings
) -> dict[str, list[dict[str, Any]]]:
    ctx = await alert_context()
    stamp = iso_now()
    flagged: dict[str, list[dict[str, Any]]] = {}
    changes = []
    for sensor in readings.pressure + readings.left_out + readings.flow + readings.level:
        flags = [{**f.render(), "start": _iso(f.start), "end": _iso(f.end)} for f in sensor.flags]
        flagged[sensor.device] = flags
        compact = {
            "dataQuality": {
                "type": "JsonProperty",
                "json": {
                    "checkedFrom": _iso(int(readings.times[0])),
                    "checkedTo": _iso(int(readings.times[-1])),
                    "flags": flags,
                },
            }
        }
        patch = parse_attributes(compact, ctx, now=stamp)
        changes.append(
            Change(
                sensor.device,
                appending(sensor.device, patch, stamp, overwrite=True, result=UpdateResult()),
            )
        )
    await store.mutate(tenant, changes)
    return {k: v for k, v in flagged.items() if v}


# -- alerts and localisation ----------------------------------------------------------------


async def list_alerts(store: EntityStore, tenant: str, network: str) -> list[dict[str, Any]]:
    """The network's water Alerts, newest first, as keyValues."""
    import re

    ctx = await alert_context()
    flt = EntityFilter(
        type_names=frozenset({ctx.expand("Alert")}),
        id_pattern=re.compile(rf"urn:ngsi-ld:Alert:{re.escape(network)}:.+"),
    )
    page = await store.query(tenant, flt, limit=None)
    rows = [render_entity(e, ctx, fmt="keyValues") for e in page.entities]
    return sorted(rows, key=lambda r: str(r.get("dateIssued")), reverse=True)


async def localise_alert(
    store: EntityStore,
    tenant: str,
    network: Network,
    alert_id: str,
    *,
    train_days: float = 7.0,
    end_ms: int | None = None,
    top: int = 10,
) -> dict[str, Any]:
    """Rank candidate pipes for a leak Alert, draw the search area and write both on it.

    The normal is learned on the ``train_days`` before the leak's estimated start; the
    residual is averaged over the night hours (00:00-05:00) from the start to ``end``
    (default now), or over every hour when no night is there yet.
    """
    if not alert_id.startswith(f"urn:ngsi-ld:Alert:{network.name}:"):
        raise ResourceNotFound(f"no alert {alert_id!r} on network {network.name!r}")
    ctx = await alert_context()
    stored = await store.get(tenant, alert_id)
    if stored is None:
        raise ResourceNotFound(f"no alert {alert_id!r}", instance=alert_id)
    alert = render_entity(stored, ctx, fmt="keyValues")
    evidence = alert.get("leakEvidence")
    if isinstance(evidence, dict) and isinstance(evidence.get("json"), dict):
        evidence = evidence["json"]  # keyValues keeps a JsonProperty's value wrapped
    if alert.get("subCategory") != "leak" or not isinstance(evidence, dict):
        raise BadRequestData(f"{alert_id} is not a leak alert from the pressure test")
    start = _ms(str(evidence["start"])) // 1000
    end = end_ms if end_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
    readings = await load_readings(
        store, tenant, network.name, (start - int(train_days * lk.DAY)) * 1000, end
    )
    normal, _ = _train(readings, train_days)
    sens, sig = await asyncio.to_thread(_signatures, network, readings, normal.coef)
    z = normal.residuals(readings.times, readings.e, readings.f)
    after = readings.times >= start
    hours, means = lk.hourly_means(readings.times[after], z[after])
    hod = (hours // 3600) % 24
    night = (hod >= NIGHT[0]) & (hod < NIGHT[1])
    block = means[night] if night.any() else means
    if not len(block):
        raise BadRequestData("no history after the leak's start to localise it with")
    with np.errstate(all="ignore"):
        r = np.nanmean(block, axis=0)
    keep = np.isfinite(r)
    j, q = loc.misfit(r[keep], normal.cov[np.ix_(keep, keep)] / len(block), sig[keep], common=True)
    post = loc.posterior(j)
    sim = Simulator(network)
    try:
        graph = loc.Graph.of(sim)
    finally:
        sim.close()
    ranked = loc.rank_pipes(graph, sens.candidates, post, q, top=top)
    lines = _pipe_lines(readings.bodies)
    mass, area_pipes = 0.0, []
    for pipe in ranked:
        area_pipes.append(pipe.pipe)
        mass += pipe.score
        if mass >= 0.9:
            break
    area = loc.search_area([lines[p] for p in area_pipes if p in lines])
    candidates = [
        {
            "pipe": p.pipe,
            "id": network.link_entities.get(p.pipe),
            "score": round(p.score, 4),
            "estimatedFlow": round(p.leak, 3),
        }
        for p in ranked
    ]
    result = {
        "alert": alert_id,
        "candidates": candidates,
        "searchArea": area,
        "searchAreaScore": round(min(mass, 1.0), 4),
        "hoursUsed": len(block),
        "nightOnly": bool(night.any()),
    }
    compact = {
        "leakCandidates": {"type": "JsonProperty", "json": candidates},
        "searchArea": {"type": "GeoProperty", "value": area},
    }
    stamp = iso_now()
    patch = parse_attributes(compact, ctx, now=stamp)
    [outcome] = await store.mutate(
        tenant,
        [
            Change(
                alert_id, appending(alert_id, patch, stamp, overwrite=True, result=UpdateResult())
            )
        ],
    )
    if outcome.error is not None:
        raise outcome.error
    return result


def _pipe_lines(bodies: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    out = {}
    for body in bodies:
        geometry = (body.get("location") or {}).get("value")
        if body["type"] in ("Pipe", "Valve", "Pump") and isinstance(geometry, dict):
            coords = geometry.get("coordinates") or []
            if geometry.get("type") == "LineString":
                out[element_name(body["id"])] = [(float(x), float(y)) for x, y in coords]
    return out
