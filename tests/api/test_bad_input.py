"""Bad input never becomes a 500 nor changes what is stored (GS CIM 009 5.5.2, 6.3)."""

from __future__ import annotations

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import assert_problem, entity

E = "/ngsi-ld/v1/entities"
PIPE = "urn:ngsi-ld:Pipe:1"


@pytest.fixture
async def stored(client: httpx.AsyncClient) -> httpx.AsyncClient:
    r = await client.post(E, json=entity(PIPE, diameter=1))
    assert r.status_code == 201
    return client


async def unchanged(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{E}/{PIPE}?options=keyValues")
    assert r.json() == {"id": PIPE, "type": "Pipe", "diameter": 1}


async def test_malformed_json(stored: httpx.AsyncClient) -> None:
    """6.3: a body that is not JSON answers 400 InvalidRequest."""
    r = await stored.patch(
        f"{E}/{PIPE}/attrs", content=b'{"diameter": ', headers={"Content-Type": "application/json"}
    )
    assert_problem(r, 400, "InvalidRequest")
    await unchanged(stored)


async def test_wrong_content_type(stored: httpx.AsyncClient) -> None:
    """6.3.4: a Content-Type other than JSON or JSON-LD answers 415."""
    r = await stored.post(
        E, content=b"id=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_problem(r, 415)
    r = await stored.post(E, content=orjson.dumps(entity("urn:ngsi-ld:Pipe:2", d=1)))
    assert_problem(r, 415)


async def test_empty_body(stored: httpx.AsyncClient) -> None:
    """6.3: a missing body answers 400."""
    r = await stored.post(E, content=b"", headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "InvalidRequest")


async def test_oversized_payload(stored: httpx.AsyncClient, app_settings: object) -> None:
    """An oversized body answers 413 and is not stored."""
    limit = app_settings.max_body_bytes  # type: ignore[attr-defined]
    big = entity("urn:ngsi-ld:Pipe:2", blob="x" * (limit + 10))
    assert_problem(await stored.post(E, json=big), 413)
    assert (await stored.get(f"{E}/urn:ngsi-ld:Pipe:2")).status_code == 404


async def test_too_deep_json(stored: httpx.AsyncClient) -> None:
    """Nesting beyond the limit answers 400 and changes nothing."""
    value: object = 1
    for _ in range(500):
        value = {"a": value}
    r = await stored.patch(
        f"{E}/{PIPE}/attrs", json={"diameter": {"type": "Property", "value": value}}
    )
    assert_problem(r, 400, "BadRequestData")
    await unchanged(stored)


async def test_invalid_geometry(stored: httpx.AsyncClient) -> None:
    """4.7 GeoProperty values: unclosed polygons and out-of-range coordinates are 400."""
    unclosed = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}
    far = {"type": "Point", "coordinates": [200, 95]}
    for geometry in (unclosed, far):
        r = await stored.post(
            f"{E}/{PIPE}/attrs", json={"location": {"type": "GeoProperty", "value": geometry}}
        )
        assert_problem(r, 400, "BadRequestData")
    await unchanged(stored)


async def test_invalid_ids_and_names(stored: httpx.AsyncClient) -> None:
    """5.6.1: ids must be URIs and attribute names valid; nothing is stored otherwise."""
    assert_problem(await stored.post(E, json={"id": "no uri", "type": "T"}), 400, "BadRequestData")
    assert_problem(await stored.post(E, json={"id": "urn:x:1", "type": 5}), 400, "BadRequestData")
    assert_problem(await stored.post(E, json=["not", "an", "object"]), 400, "BadRequestData")
    r = await stored.post(
        E, json={"id": "urn:x:1", "type": "T", "bad name": {"type": "Property", "value": 1}}
    )
    assert_problem(r, 400, "BadRequestData")
    assert (await stored.get(E + "?id=urn:x:1")).json() == []


async def test_ids_and_names_over_1024_bytes(stored: httpx.AsyncClient) -> None:
    """An id, type or attribute name too long for the stores' indexes answers 400 on
    either store (PostgreSQL used to fail with 500), alone in a batch; nothing is stored."""
    long = "urn:x:" + "7f" * 1000
    bodies = [
        {"id": long, "type": "T"},
        {"id": "urn:x:1", "type": "T" + "9e" * 1000},
        {"id": "urn:x:1", "type": "T", "n" + "3c" * 1000: {"type": "Property", "value": 1}},
    ]
    for body in bodies:
        r = await stored.post(E, json=body)
        assert_problem(r, 400, "BadRequestData")
        assert "longer than 1024 bytes" in r.json()["detail"]
    r = await stored.post(
        f"{E[: -len('/entities')]}/entityOperations/create",
        json=[bodies[0], entity("urn:ngsi-ld:Pipe:2", diameter=2)],
    )
    assert r.status_code == 207
    assert r.json()["success"] == ["urn:ngsi-ld:Pipe:2"]
    assert (await stored.get(E + "?id=urn:x:1")).json() == []
    assert_problem(await stored.get(f"{E}/{long}"), 404, "ResourceNotFound")
    r = await stored.patch(f"{E}/{long}/attrs", json={"n": {"type": "Property", "value": 1}})
    assert_problem(r, 404, "ResourceNotFound")
    # Replacing makes a document with that id: the limit answers first.
    r = await stored.put(f"{E}/{long}", json={"type": "T"})
    assert "longer than 1024 bytes" in assert_problem(r, 400, "BadRequestData")["detail"]


async def test_invalid_tenant(stored: httpx.AsyncClient) -> None:
    """A tenant name that is not a plain identifier answers 400."""
    r = await stored.get(f"{E}/{PIPE}", headers={"NGSILD-Tenant": "../../etc"})
    assert_problem(r, 400, "BadRequestData")


async def test_unknown_path_and_method(stored: httpx.AsyncClient) -> None:
    """Unknown resources answer 404 and unsupported methods 405, as ProblemDetails."""
    assert_problem(await stored.get("/ngsi-ld/v1/nothing"), 404, "ResourceNotFound")
    assert_problem(await stored.delete("/ngsi-ld/v1/entities"), 405)


async def test_multiple_context_links(stored: httpx.AsyncClient) -> None:
    """6.3.5: two JSON-LD Link headers are ambiguous: 400."""
    rel = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    headers = {"Link": f"<http://a.example/c.jsonld>; {rel}, <http://b.example/c.jsonld>; {rel}"}
    assert_problem(await stored.get(f"{E}/{PIPE}", headers=headers), 400, "BadRequestData")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=JSON_VALUES)
async def test_random_bodies_never_500(stored: httpx.AsyncClient, body: object) -> None:
    """Random JSON sent to every write operation never gets a 5xx and keeps the entity."""
    for method, url in (
        ("POST", E),
        ("PATCH", f"{E}/{PIPE}/attrs"),
        ("PATCH", f"{E}/{PIPE}/attrs/diameter"),
        ("POST", "/ngsi-ld/v1/entityOperations/upsert"),
        ("POST", "/ngsi-ld/v1/entityOperations/query"),
    ):
        r = await stored.request(
            method, url, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert r.status_code < 500, (method, url, body, r.text)
    r = await stored.get(f"{E}/{PIPE}")
    assert r.status_code == 200
