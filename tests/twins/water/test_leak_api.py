"""The leak API end to end on each store: sensor history in through the NGSI-LD temporal
API, Alerts out through the NGSI-LD API; bad inputs are ProblemDetails (GS CIM 009 v1.8
5.5.2)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np

from cityverse.core.entity import format_utc
from cityverse.twins.water import engine as en
from cityverse.twins.water.model import WATER_CONTEXT
from tests.twins.water.conftest import NET1
from tests.twins.water.helpers import simulator_of

W = "/cityverse/v1/water"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
SENSORS = ["10", "12", "21", "23", "32"]
LEAK_NODE = "22"
START = datetime(2026, 3, 1, tzinfo=UTC)
STEP = 900
DAYS = 9
LEAK_AT = 7 * 86_400 + 6 * 3600


def _pressures(stuck: str | None) -> tuple[dict[str, np.ndarray], set[str]]:
    """Nine days of 15-minute readings: Net1's daily cycle solved by EPANET, with a real
    leak (an emitter of about 4 L/s) at junction 22 from day 7, 06:00, and 1 cm noise."""
    sim = simulator_of(NET1)
    try:
        base = sim.run(duration=86_400, step=3600).pressure  # Net1 steps hourly
        k = sim.node(LEAK_NODE)
        sim.set_node(k, en.EMITTER, 4.0 / math.sqrt(float(base[:, k].mean())))
        leaked = sim.run(duration=86_400, step=3600).pressure
        sim.reset()
        touching = {
            sim.engine.link_ids[i] for i, (a, b) in enumerate(sim.engine.link_nodes) if k in (a, b)
        }
        rows = DAYS * 86_400 // STEP
        t = np.arange(rows) * STEP
        hour = (t % 86_400) / 3600
        rng = np.random.default_rng(42)
        out = {}
        for name in SENSORS:
            i = sim.node(name)
            before = np.interp(hour, np.arange(25), base[:, i])
            after = np.interp(hour, np.arange(25), leaked[:, i])
            series = np.where(t >= LEAK_AT, after, before)
            series = series + rng.normal(0, 0.01, rows)
            if name == stuck:
                series[-96:] = series[-97]
            out[name] = series
        return out, touching
    finally:
        sim.close()


async def _setup(client: httpx.AsyncClient, stuck: str | None = None) -> set[str]:
    response = await client.post(
        f"{W}/networks",
        params={"name": "net1", "anchor": "-2.93,35.17"},
        content=NET1.read_bytes(),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 201, response.text
    series, touching = _pressures(stuck)
    for name, values in series.items():
        added = await client.post(
            f"{W}/networks/net1/sensors", json={"element": name, "property": "pressure"}
        )
        assert added.status_code == 201, added.text
        instances = [
            {
                "type": "Property",
                "value": round(float(v), 4),
                "unitCode": "MTR",
                "observedAt": format_utc(START + timedelta(seconds=k * STEP)),
            }
            for k, v in enumerate(values)
        ]
        body = {"@context": WATER_CONTEXT, "pressure": instances}
        posted = await client.post(
            f"/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Junction:net1:{name}/attrs",
            json=body,
            headers={"Content-Type": "application/ld+json"},
        )
        assert posted.status_code == 204, posted.text
    return touching


def _window() -> dict[str, Any]:
    end = START + timedelta(days=DAYS)
    return {"from": format_utc(START), "to": format_utc(end), "trainingDays": 6}


async def test_detect_list_and_localise_a_leak(client: httpx.AsyncClient) -> None:
    touching = await _setup(client)
    response = await client.post(f"{W}/networks/net1/leaks/detect", json=_window())
    assert response.status_code == 200, response.text
    report = response.json()
    leaks = [a for a in report["alerts"] if a["subCategory"] == "leak"]
    assert len(leaks) == 1, report
    assert not [a for a in report["alerts"] if a["subCategory"] == "sensorFault"]
    listed = (await client.get(f"{W}/networks/net1/leaks")).json()
    assert [a["id"] for a in listed] == [leaks[0]["id"]]
    alert = listed[0]
    assert alert["type"] == "Alert"
    assert alert["category"] == "water"
    assert alert["alertSource"] == "urn:ngsi-ld:WaterNetwork:net1"
    issued = datetime.fromisoformat(alert["dateIssued"].replace("Z", "+00:00"))
    leak_start = START + timedelta(seconds=LEAK_AT)
    assert leak_start < issued <= leak_start + timedelta(hours=24)
    # Any NGSI-LD client sees it.
    seen = await client.get(f"/ngsi-ld/v1/entities/{alert['id']}")
    assert seen.status_code == 200
    located = await client.post(
        f"{W}/networks/net1/leaks/{alert['id']}/localise", json={"to": _window()["to"]}
    )
    assert located.status_code == 200, located.text
    result = located.json()
    assert touching & {c["pipe"] for c in result["candidates"][:3]}
    assert all(0 <= c["score"] <= 1 for c in result["candidates"])
    assert result["searchArea"]["type"] == "Polygon"
    again = (await client.get(f"/ngsi-ld/v1/entities/{alert['id']}")).json()
    assert any(k.endswith("searchArea") for k in again)


async def test_a_stuck_sensor_is_a_sensor_fault_not_a_leak(client: httpx.AsyncClient) -> None:
    await _setup(client, stuck="32")
    # A sensor that never reported: left out and said, not silently used.
    added = await client.post(
        f"{W}/networks/net1/sensors", json={"element": "31", "property": "pressure"}
    )
    assert added.status_code == 201
    window = {**_window(), "to": format_utc(START + timedelta(seconds=LEAK_AT))}
    # Stuck over the last day, before which no leak exists: only the sensor is at fault.
    window["to"] = format_utc(START + timedelta(days=DAYS))
    response = await client.post(f"{W}/networks/net1/leaks/detect", json=window)
    assert response.status_code == 200, response.text
    report = response.json()
    device = "urn:ngsi-ld:Device:net1:pressure-Junction-32"
    assert [f["kind"] for f in report["dataQuality"][device]] == ["stuck"]
    faults = [a for a in report["alerts"] if a["subCategory"] == "sensorFault"]
    assert len(faults) == 1 and "stuck" in faults[0]["description"]
    silent = "urn:ngsi-ld:Device:net1:pressure-Junction-31"
    assert [f["kind"] for f in report["dataQuality"][silent]] == ["noTrainingData"]
    flagged = (await client.get(f"/ngsi-ld/v1/entities/{device}")).json()
    assert any(k.endswith("dataQuality") for k in flagged)


async def _problem(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["type"] == ERRORS + kind


async def test_bad_inputs_are_problem_details(client: httpx.AsyncClient) -> None:
    await _problem(
        await client.post(f"{W}/networks/nowhere/leaks/detect", json={}), 404, "ResourceNotFound"
    )
    await _setup(client)
    detect = f"{W}/networks/net1/leaks/detect"
    await _problem(
        await client.post(
            detect, json={"from": "2026-03-05T00:00:00Z", "to": "2026-03-01T00:00:00Z"}
        ),
        400,
        "BadRequestData",
    )
    await _problem(await client.post(detect, json={"from": "yesterday"}), 400, "BadRequestData")
    await _problem(
        await client.post(detect, json={**_window(), "trainingDays": "x"}), 400, "BadRequestData"
    )
    # A window without history: a clear refusal, not a crash.
    empty = {"from": "2020-01-01T00:00:00Z", "to": "2020-01-10T00:00:00Z"}
    await _problem(await client.post(detect, json=empty), 400, "BadRequestData")
    # Training over the whole window leaves nothing to watch.
    await _problem(
        await client.post(detect, json={**_window(), "trainingDays": 30}), 400, "BadRequestData"
    )
    await _problem(
        await client.post(detect, content=b"[1, 2]", headers={"Content-Type": "application/json"}),
        400,
        "BadRequestData",
    )
    local = f"{W}/networks/net1/leaks/urn:ngsi-ld:Alert:net1:leak:0/localise"
    await _problem(await client.post(local, json={}), 404, "ResourceNotFound")
    placement = f"{W}/networks/net1/sensor-placement"
    await _problem(await client.post(placement, params={"budget": "abc"}), 400, "BadRequestData")
    await _problem(await client.post(placement, params={"budget": "2"}), 400, "BadRequestData")


async def test_sensor_placement_keeps_the_existing_sensors(client: httpx.AsyncClient) -> None:
    await _setup(client)
    response = await client.post(f"{W}/networks/net1/sensor-placement", params={"budget": "7"})
    assert response.status_code == 200, response.text
    body = response.json()
    chosen = [s["junction"] for s in body["sensors"]]
    assert len(chosen) == len(set(chosen)) == 7
    assert set(SENSORS) <= set(chosen)
    assert sum(s["new"] for s in body["sensors"]) == 2
