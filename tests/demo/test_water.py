"""The water twin's API over the demo city: the network the demo loads is the twin's own,
with its zones, and runs, scenarios and KPIs work on it. Errors would be NGSI-LD
ProblemDetails (GS CIM 009 v1.8 5.5.2)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cityverse.api.app import create_app
from cityverse.demo import iot
from cityverse.demo.devices import Devices
from cityverse.demo.hydraulics import simulate
from cityverse.demo.load import load_city
from cityverse.demo.story import LEAK_PIPE, Story
from cityverse.demo.water import NETWORK, ltown_path
from cityverse.settings import Settings
from cityverse.store.base import EntityStore
from cityverse.twins.water import model
from tests.demo.conftest import serving

W = "/cityverse/v1/water"


@pytest.fixture
async def client(
    store: EntityStore, tmp_path: Path, city: list[dict[str, Any]]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process over a store the demo city was loaded into."""
    result = await load_city(store, city)
    assert result.errors == []
    app = create_app(Settings(data_dir=str(tmp_path), auth="off"), store=store)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://cityverse.test") as c:
        yield c


async def _finished(client: httpx.AsyncClient, location: str) -> dict[str, Any]:
    for _ in range(2000):
        job = (await client.get(location)).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        await asyncio.sleep(0.025)
    raise AssertionError(f"job {location} did not finish")


def test_the_demo_network_is_the_twins_import(city: list[dict[str, Any]]) -> None:
    """Element for element what the twin's importer makes of L-Town, placed on Berkane."""
    wn = model.read_inp(ltown_path())
    bodies = model.network_entities(wn, NETWORK, model.Placement("EPSG:4326"))
    expected = {b["id"] for b in bodies}
    demo = {e["id"] for e in city if e["type"] in (*model.ELEMENT_TYPES, "WaterNetwork")}
    assert demo == expected
    junctions = [e for e in city if e["type"] == "Junction"]
    assert all(e["tag"]["value"].startswith("DMA-") for e in junctions)


async def test_the_water_api_reads_the_demo_network(client: httpx.AsyncClient) -> None:
    listed = await client.get(f"{W}/networks")
    assert listed.status_code == 200
    assert [n["name"] for n in listed.json()] == [NETWORK]
    response = await client.get(f"{W}/networks/{NETWORK}")
    assert response.status_code == 200, response.text
    summary = response.json()
    counts = summary["counts"]
    assert (counts["Junction"], counts["Pipe"], counts["Valve"], counts["Pump"]) == (782, 905, 3, 1)
    assert counts["Device"] == 119  # 37 sensors and 82 customer meters (AMR)
    zones = summary["zones"]
    assert sum(zones.values()) == 782
    assert max(zones, key=zones.__getitem__) == "DMA-1"
    assert len(zones) >= 3


async def test_scenarios_and_kpis_run_on_the_demo_network(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{W}/networks/{NETWORK}/scenarios",
        json=[
            {"kind": "baseline", "name": "today", "single": True, "at": 8 * 3600},
            {"kind": "drought", "name": "DMA-1 -20%", "cuts": {"DMA-1": 20}, "single": True,
             "at": 8 * 3600},
            {"kind": "burst", "name": "the story's burst", "pipe": LEAK_PIPE, "single": True,
             "at": 8 * 3600},
        ],
    )  # fmt: skip
    assert response.status_code == 202, response.text
    baseline, drought, burst = response.json()["scenarios"]
    job = await _finished(client, response.headers["Location"])
    assert job["status"] == "succeeded", job
    table = await client.get(f"{W}/compare", params={"scenarios": f"{baseline},{drought},{burst}"})
    assert table.status_code == 200
    kpis = table.json()["network"]
    assert kpis["consumption"][drought] < kpis["consumption"][baseline]
    columns = {c["id"]: c for c in table.json()["scenarios"]}
    assert "DMA-1" in columns[baseline]["kpis"]["zones"]
    # Isolating the story's pipe for repair: the valves around it close.
    listed = (await client.get(f"{W}/networks/{NETWORK}/scenarios")).json()
    details = next(r["outcome"]["details"] for r in listed if r["id"] == burst)
    assert details["linksClosed"] == [LEAK_PIPE]
    assert details["customersCutOff"] > 0
    assert kpis["consumption"][burst] < kpis["consumption"][baseline]


async def test_a_simulation_and_the_demo_readings_side_by_side(
    store: EntityStore, tmp_path: Path, city: list[dict[str, Any]]
) -> None:
    result = await load_city(store, city)
    assert result.errors == []
    async with serving(store, tmp_path) as server:
        client = server.client
        response = await client.post(f"{W}/networks/{NETWORK}/simulations", json={"duration": 3600})
        assert response.status_code == 202, response.text
        job = await _finished(client, response.headers["Location"])
        assert job["status"] == "succeeded", job
        assert job["result"]["kpis"]["network"]["consumption"] > 0
        # One round of the demo's sensor readings, sent as the demo sends them: through
        # the IoT agent, by the devices it provisions.
        publisher = server.publisher()
        await publisher.provision(*iot.provisioning(city))
        story = Story(start=datetime(2026, 6, 21, 4, 30, tzinfo=UTC))
        devices = Devices(city, simulate(LEAK_PIPE), story, seed=1)
        await publisher.send([m for m in devices.step(story.start) if m.kind == "water"])
        assert publisher.failures == 0
        state = await client.get(f"{W}/networks/{NETWORK}/state")
        assert state.status_code == 200
        rows = {(r["entity"], r["attribute"]): r for r in state.json()}
        assert len(rows) == 37
        n1 = rows[("urn:ngsi-ld:Junction:L-Town:n1", "pressure")]
        assert n1["observedBy"] == "urn:ngsi-ld:Device:L-Town:pressure-Junction-n1"
        # The demo's EPANET run and the twin's agree on the same network (a few metres
        # apart at most: the twin's run starts at midnight, the reading is at 05:30).
        assert abs(n1["difference"]) < 10
