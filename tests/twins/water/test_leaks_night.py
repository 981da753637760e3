"""Minimum night flow per metered area (zone inflow from flow sensors and tank balances)
and the learned-again normal, end to end through the store and the leak API."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from cityverse.core.entity import format_utc
from cityverse.twins.water import engine as en
from cityverse.twins.water.analyse import Topology, derive_zones
from cityverse.twins.water.incidents import Readings, Sensor, metered_areas
from cityverse.twins.water.model import WATER_CONTEXT, Placement, network_entities, read_inp
from cityverse.twins.water.simulate import Network, Simulator
from tests.twins.water.conftest import ANCHOR, LTOWN, NET1
from tests.twins.water.helpers import simulator_of

W = "/cityverse/v1/water"
STEP = 900
DAYS = 10
START = datetime(2026, 3, 1, tzinfo=UTC)
LEAK_AT = 7 * 86_400 + 6 * 3600
PRESSURE = ["10", "12", "21", "23", "32"]


def _zoned(path: Path, name: str) -> tuple[Network, list[dict[str, Any]]]:
    """A network with its derived zones, as the import would tag it."""
    wn = read_inp(path)
    sim = Simulator(Network.from_entities(name, network_entities(wn, name, _place())))
    try:
        zones = derive_zones(Topology.of(sim.engine))
    finally:
        sim.close()
    bodies = network_entities(wn, name, _place(), zones=zones)
    return Network.from_entities(name, bodies), bodies


def _place() -> Placement:
    return Placement.anchored(*ANCHOR)


def test_zone_inflow_from_inlet_flows_and_a_tank_balance_is_the_zone_demand() -> None:
    network, bodies = _zoned(LTOWN, "ltown")
    sim = Simulator(network)
    try:
        run = sim.run(duration=6 * 3600, step=300)
        flows = {name: run.flow[:, sim.link(name)] for name in ("p227", "p235", "PUMP_1")}
        level = run.pressure[:, sim.node("T1")]
        members = dict(sim.layout.members)
    finally:
        sim.close()
    rows = len(run.times)
    sensors = [
        Sensor(network.link_entities[n], network.link_entities[n], "flow", None) for n in flows
    ]
    tank = Sensor(network.node_entities["T1"], network.node_entities["T1"], "level", None)
    readings = Readings(
        bodies,
        np.arange(rows, dtype=np.int64) * 300,
        300,
        [],
        sensors,
        [tank],
        np.zeros((rows, 0)),
        np.zeros((rows, 3)),
        False,
    )
    readings.flow_measured = np.stack(list(flows.values()), axis=1)
    readings.level_measured = level[:, None]
    areas = {area.name: area for area in metered_areas(network, readings)}
    # p239 (from T1 into DMA-2) has no sensor: the tank's level gives it. The main area's
    # zones are joined by valves without sensors: one area, fed through p227 and p235,
    # less what PUMP_1 lifts to the tank.
    assert sorted(areas) == ["DMA-1+DMA-3+DMA-4+DMA-5", "DMA-2"]
    assert sorted(areas["DMA-1+DMA-3+DMA-4+DMA-5"].inlets) == ["PUMP_1", "p227", "p235"]
    assert areas["DMA-2"].inlets == ["p239"] and len(areas["DMA-2"].tanks) == 1
    for area in areas.values():
        inflow = area.inflow(readings)
        demand = sum(run.demand[:, members[z]].sum(axis=1) for z in area.zones)
        # Hourly means: the tank's rise is a difference of levels, the demand an instant.
        for hour in range(1, 5):
            k = slice(hour * 12, hour * 12 + 12)
            assert inflow[k].mean() == pytest.approx(demand[k].mean(), rel=0.03), area.name


def test_no_area_without_sensors_on_its_inlets() -> None:
    network, bodies = _zoned(LTOWN, "ltown")
    sensor = Sensor(network.link_entities["p227"], network.link_entities["p227"], "flow", None)
    readings = Readings(
        bodies,
        np.zeros(1, np.int64),
        300,
        [],
        [sensor],
        [],
        np.zeros((1, 0)),
        np.zeros((1, 1)),
        False,
    )
    # p235 and the tank are unmetered: no set of zones has all its inflow measured.
    assert metered_areas(network, readings) == []


# -- end to end -------------------------------------------------------------------------------


def _net1_history() -> tuple[dict[tuple[str, str, str], np.ndarray], np.ndarray]:
    """Ten days of 15-minute readings of Net1 solved by EPANET (a day's cycle repeated),
    a leak of about 10 L/s at junction 22 from day 7, 06:00: pressures at five junctions,
    the pump's flow, the tank's level; and the network's demand (L/s, the leak's
    included: EPANET counts an emitter's outflow in its node's demand) at each step."""
    sim = simulator_of(NET1)
    try:
        base = sim.run(duration=86_400, step=3600)
        k = sim.node("22")
        sim.set_node(k, en.EMITTER, 10.0 / math.sqrt(float(base.pressure[:, k].mean())))
        leaked = sim.run(duration=86_400, step=3600)
        sim.reset()
        junctions = np.flatnonzero(sim.engine.node_types == en.NODE_JUNCTION)
        rows = DAYS * 86_400 // STEP
        t = np.arange(rows) * STEP
        hour = (t % 86_400) / 3600
        after = t >= LEAK_AT
        rng = np.random.default_rng(7)

        def series(before: np.ndarray, later: np.ndarray, *, level: bool = False) -> np.ndarray:
            # EPANET holds each hour's flows and moves the tank level linearly over it.
            if level:
                one = np.interp(hour, np.arange(25), before)
                two = np.interp(hour, np.arange(25), later)
            else:
                one, two = before[hour.astype(int)], later[hour.astype(int)]
            return np.where(after, two, one)

        out = {}
        for name in PRESSURE:
            i = sim.node(name)
            values = series(base.pressure[:, i], leaked.pressure[:, i])
            out[("Junction", name, "pressure")] = values + rng.normal(0, 0.01, rows)
        pump = sim.link("9")
        values = series(base.flow[:, pump], leaked.flow[:, pump])
        out[("Pump", "9", "flow")] = values * (1 + rng.normal(0, 0.002, rows)) + rng.normal(
            0, 0.02, rows
        )
        tank = sim.node("2")
        values = series(base.pressure[:, tank], leaked.pressure[:, tank], level=True)
        out[("Tank", "2", "level")] = values + rng.normal(0, 0.002, rows)
        demand = series(
            base.demand[:, junctions].sum(axis=1), leaked.demand[:, junctions].sum(axis=1)
        )
        return out, demand
    finally:
        sim.close()


async def _setup(client: httpx.AsyncClient) -> np.ndarray:
    response = await client.post(
        f"{W}/networks",
        params={"name": "net1", "anchor": "-2.93,35.17"},
        content=NET1.read_bytes(),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 201, response.text
    history, demand = _net1_history()
    for (kind, name, prop), values in history.items():
        added = await client.post(
            f"{W}/networks/net1/sensors", json={"element": name, "property": prop}
        )
        assert added.status_code == 201, added.text
        instances = [
            {
                "type": "Property",
                "value": round(float(v), 4),
                "observedAt": format_utc(START + timedelta(seconds=k * STEP)),
            }
            for k, v in enumerate(values)
        ]
        posted = await client.post(
            f"/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:{kind}:net1:{name}/attrs",
            json={"@context": WATER_CONTEXT, prop: instances},
            headers={"Content-Type": "application/ld+json"},
        )
        assert posted.status_code == 204, posted.text
    return demand


def _window(**more: Any) -> dict[str, Any]:
    end = START + timedelta(days=DAYS)
    return {"from": format_utc(START), "to": format_utc(end), "trainingDays": 6, **more}


async def test_night_flow_per_zone_is_reported_and_raises_its_own_alert(
    client: httpx.AsyncClient,
) -> None:
    demand = await _setup(client)
    response = await client.post(f"{W}/networks/net1/leaks/detect", json=_window())
    assert response.status_code == 200, response.text
    report = response.json()
    [(name, area)] = report["nightFlow"].items()
    assert name == "DMA-1"
    assert area["zones"] == ["DMA-1"] and sorted(area["inlets"]) == ["110", "9"]
    assert area["unitCode"] == "G51" and area["hours"] == [2, 4]
    assert len(area["nights"]) == DAYS
    t = np.arange(len(demand)) * STEP
    for k, night in enumerate(area["nights"]):
        assert night["night"] == (START + timedelta(days=k)).strftime("%Y-%m-%d")
        sel = (t >= k * 86_400 + 2 * 3600) & (t < k * 86_400 + 4 * 3600)
        assert night["flow"] == pytest.approx(demand[sel].mean(), rel=0.03)
    # The nights before the leak are the normal; the leak's nights stand above it.
    assert night["flow"] - night["normal"] == pytest.approx(10.0, rel=0.3)
    nightly = [a for a in report["alerts"] if ":leak:nightflow:" in a["id"]]
    assert len(nightly) == 1 and "DMA-1" in nightly[0]["description"]
    assert nightly[0]["id"].startswith("urn:ngsi-ld:Alert:net1:leak:nightflow:DMA-1:")
    pressure = [a for a in report["alerts"] if a["id"].startswith("urn:ngsi-ld:Alert:net1:leak:1")]
    assert len(pressure) == 1


async def test_the_normal_is_learned_again_and_a_closed_alert_lets_the_watch_go_on(
    client: httpx.AsyncClient,
) -> None:
    await _setup(client)
    detect = f"{W}/networks/net1/leaks/detect"
    report = (await client.post(detect, json=_window(relearnDays=1))).json()
    first = START + timedelta(days=6)
    # Learned on days 0-6, again on day 7; the leak's alarm on day 7 stops the test.
    assert report["relearned"] == [format_utc(first), format_utc(first + timedelta(days=1))]
    [leak] = [a for a in report["alerts"] if a["id"].startswith("urn:ngsi-ld:Alert:net1:leak:1")]
    # The crew closes the alert (repair done) at day 9: the watch resumes from there,
    # with a normal that never saw the leak's hours.
    closed = START + timedelta(days=9)
    patched = await client.post(
        f"/ngsi-ld/v1/entities/{leak['id']}/attrs",
        json={
            "@context": {"validTo": "https://smartdatamodels.org/dataModel.Alert/validTo"},
            "validTo": {"type": "Property", "value": format_utc(closed)},
        },
        headers={"Content-Type": "application/ld+json"},
    )
    assert patched.status_code == 204, patched.text
    again = (await client.post(detect, json=_window(relearnDays=1))).json()
    assert format_utc(closed) in again["relearned"]
    # Detection again over the same window keeps the crew's validTo.
    stored = (await client.get(f"{W}/networks/net1/leaks")).json()
    mine = next(a for a in stored if a["id"] == leak["id"])
    assert mine["validTo"] == format_utc(closed)


async def test_bad_relearning_period_is_refused(client: httpx.AsyncClient) -> None:
    await _setup(client)
    response = await client.post(f"{W}/networks/net1/leaks/detect", json=_window(relearnDays=0))
    assert response.status_code == 400
    assert "relearnDays" in response.json()["detail"]
