"""The water API: import, asynchronous runs with job status, comparisons, bad inputs.

Errors are NGSI-LD ProblemDetails (GS CIM 009 v1.8 5.5.2)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.twins.water.conftest import NET1_BROKEN, TINY

W = "/cityverse/v1/water"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


async def _import_tiny(client: httpx.AsyncClient, name: str = "tiny") -> None:
    response = await client.post(
        f"{W}/networks",
        params={"name": name, "anchor": "-2.93,35.17"},
        content=TINY,
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["counts"]["Junction"] == 4


async def _finished(client: httpx.AsyncClient, location: str) -> dict[str, Any]:
    for _ in range(400):
        job = (await client.get(location)).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        await asyncio.sleep(0.025)
    raise AssertionError(f"job {location} did not finish")


async def test_scenario_job_lifecycle_and_comparison(client: httpx.AsyncClient) -> None:
    await _import_tiny(client)
    response = await client.post(
        f"{W}/networks/tiny/scenarios",
        json=[
            {"kind": "baseline", "name": "today", "single": True},
            {"kind": "drought", "name": "cut 25%", "cuts": {"*": 25}, "single": True},
        ],
    )
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] in ("accepted", "running")
    assert len(accepted["scenarios"]) == 2
    job = await _finished(client, response.headers["Location"])
    assert job["status"] == "succeeded", job
    listed = (await client.get(f"{W}/networks/tiny/scenarios")).json()
    assert {r["status"] for r in listed} == {"succeeded"}
    ids = ",".join(accepted["scenarios"])
    table = (await client.get(f"{W}/compare", params={"scenarios": ids})).json()
    baseline, drought = accepted["scenarios"]
    consumption = table["network"]["consumption"]
    assert consumption[drought] == pytest.approx(0.75 * consumption[baseline], rel=1e-6)
    # The results are NGSI-LD entities too.
    entity = await client.get(f"/ngsi-ld/v1/entities/{drought}")
    assert entity.status_code == 200


async def test_simulation_writes_the_simulated_state(client: httpx.AsyncClient) -> None:
    await _import_tiny(client)
    response = await client.post(f"{W}/networks/tiny/simulations", json={"duration": 3600})
    assert response.status_code == 202
    job = await _finished(client, response.headers["Location"])
    assert job["status"] == "succeeded", job
    assert job["result"]["kpis"]["network"]["consumption"] > 0
    junction = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Junction:tiny:J2")
    pressure = junction.json()[
        "https://smartdatamodels.org/dataModel.WaterDistributionManagementEPANET/pressure"
    ]
    assert pressure["datasetId"] == "urn:ngsi-ld:Dataset:simulated"
    assert pressure["value"] == pytest.approx(40.0, abs=0.1)


async def test_export_round_trips(client: httpx.AsyncClient) -> None:
    await _import_tiny(client)
    exported = await client.get(f"{W}/networks/tiny/export")
    assert exported.status_code == 200
    assert "[JUNCTIONS]" in exported.text and "PRV" in exported.text
    again = await client.post(
        f"{W}/networks", params={"name": "again", "anchor": "-2.93,35.17"}, content=exported.text
    )
    assert again.status_code == 201
    assert again.json()["counts"] == (await client.get(f"{W}/networks/tiny")).json()["counts"]


async def test_a_scenario_on_an_unknown_zone_is_refused_up_front(
    client: httpx.AsyncClient,
) -> None:
    await _import_tiny(client)
    response = await client.post(
        f"{W}/networks/tiny/scenarios", json={"kind": "drought", "cuts": {"nowhere": 10}}
    )
    assert response.status_code == 400
    assert "no zone 'nowhere'" in response.json()["detail"]
    assert (await client.get(f"{W}/networks/tiny/scenarios")).json() == []


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "kind"),
    [
        ("post", "/networks/tiny/scenarios", {"json": {"kind": "flood"}}, 400, "BadRequestData"),
        (
            "post",
            "/networks/tiny/scenarios",
            {"json": {"kind": "burst", "pipe": "V1"}},
            400,
            "BadRequestData",
        ),
        (
            "post",
            "/networks/tiny/scenarios",
            {"json": {"kind": "outage", "element": "J1"}},
            400,
            "BadRequestData",
        ),
        (
            "post",
            "/networks/nope/scenarios",
            {"json": {"kind": "baseline"}},
            404,
            "ResourceNotFound",
        ),
        (
            "post",
            "/networks/tiny/simulations",
            {"json": {"demandModel": "X"}},
            400,
            "BadRequestData",
        ),
        (
            "post",
            "/networks/tiny/scenarios",
            {"content": b"{", "headers": {"Content-Type": "application/json"}},
            400,
            "InvalidRequest",
        ),
        ("get", "/jobs/0123", {}, 404, "ResourceNotFound"),
        ("get", "/networks/bad name", {}, 400, "BadRequestData"),
        ("get", "/compare?scenarios=urn:x:1", {}, 404, "ResourceNotFound"),
        (
            "post",
            "/networks/tiny/sensors",
            {"json": {"element": "J9", "property": "pressure"}},
            404,
            "ResourceNotFound",
        ),
        (
            "post",
            "/networks/tiny/sensors",
            {"json": {"element": "J1", "property": "colour"}},
            400,
            "BadRequestData",
        ),
        ("post", "/networks?name=x", {"content": TINY}, 400, "BadRequestData"),
    ],
)
async def test_bad_inputs_are_problem_details(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict, status: int, kind: str
) -> None:
    await _import_tiny(client)
    response = await getattr(client, method)(W + path, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["type"] == ERRORS + kind


async def test_a_rejected_inp_upload_names_engine_error_and_line(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{W}/networks",
        params={"name": "broken", "crs": "EPSG:26191"},
        content=NET1_BROKEN.read_bytes(),
    )
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == 200 and problem["line"] == 24
    assert "Error 215" in problem["detail"]
    # Nothing was written.
    assert (await client.get(f"{W}/networks/broken")).status_code == 404


def test_every_water_endpoint_is_documented() -> None:
    import re

    from cityverse.api.water import routes

    doc = (Path(__file__).resolve().parents[3] / "docs" / "water.md").read_text()
    documented = set(re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/cityverse/v1/water/\S*)`", doc))
    for route in routes:
        for method in route.methods or ():
            if method != "HEAD":
                assert (method, route.path) in documented, f"{method} {route.path} not in docs"
