"""Query Entity (GS CIM 009 5.7.2, 6.4.3.2) and POST entityOperations/query (5.7.?, 6.23)."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.api.helpers import assert_problem, entity

E = "/ngsi-ld/v1/entities"


@pytest.fixture
async def city(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Ten sensors in two districts, two lamps, one pipe."""
    batch = [
        entity(
            f"urn:ngsi-ld:Sensor:{i}",
            temperature={
                "type": "Property",
                "value": 10 + 3 * i,
                "observedAt": f"2026-11-2{i % 10}T00:00:00Z",
                "accuracy": {"type": "Property", "value": 0.1 * i},
            },
            district=f"D{i % 2}",
            meta={"type": "Property", "value": {"vendor": {"name": "acme" if i < 5 else "other"}}},
            location={
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [-2.32 + 0.001 * i, 34.92]},
            },
        )
        for i in range(10)
    ]
    batch += [
        entity("urn:ngsi-ld:Lamp:1", power=60, status="on"),
        entity("urn:ngsi-ld:Lamp:2", power=100, status="off"),
        entity(
            "urn:ngsi-ld:Pipe:1",
            startsAt={"type": "Relationship", "object": "urn:ngsi-ld:Junction:7"},
        ),
    ]
    r = await client.post("/ngsi-ld/v1/entityOperations/create", json=batch)
    assert r.status_code == 201, r.text
    return client


async def ids(
    client: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None
) -> list[str]:
    r = await client.get(f"{E}?{query}", headers=headers)
    assert r.status_code == 200, r.text
    return [e["id"] for e in r.json()]


def n(*numbers: int) -> list[str]:
    return [f"urn:ngsi-ld:Sensor:{i}" for i in numbers]


async def test_by_type(city: httpx.AsyncClient) -> None:
    """5.7.2: type selects entities; results come in creation order."""
    assert await ids(city, "type=Lamp") == ["urn:ngsi-ld:Lamp:1", "urn:ngsi-ld:Lamp:2"]


async def test_type_expressions(city: httpx.AsyncClient) -> None:
    """4.17 entity type selection: ',' and '|' are or."""
    assert len(await ids(city, "type=Lamp,Pipe")) == 3
    assert len(await ids(city, "type=" + quote("Lamp|Pipe"))) == 3
    assert await ids(city, "type=" + quote("Lamp;Pipe")) == []


async def test_by_id_and_pattern(city: httpx.AsyncClient) -> None:
    """5.7.2: id lists and idPattern regular expressions."""
    assert await ids(city, "id=urn:ngsi-ld:Lamp:2,urn:ngsi-ld:Pipe:1") == [
        "urn:ngsi-ld:Lamp:2",
        "urn:ngsi-ld:Pipe:1",
    ]
    assert await ids(city, "idPattern=" + quote("urn:ngsi-ld:Sensor:[12]")) == n(1, 2)


async def test_q_comparisons(city: httpx.AsyncClient) -> None:
    """4.9 q: comparison operators, ranges, lists, and ';' / '|' with parentheses."""
    assert await ids(city, "type=Sensor&q=" + quote("temperature>30")) == n(7, 8, 9)
    assert await ids(city, "type=Sensor&q=" + quote("temperature==13..19")) == n(1, 2, 3)
    assert await ids(city, "type=Sensor&q=" + quote("temperature==10,13")) == n(0, 1)
    q = quote('(temperature<14|temperature>35);district=="D1"')
    assert await ids(city, f"type=Sensor&q={q}") == n(1, 9)


async def test_q_paths_and_metadata(city: httpx.AsyncClient) -> None:
    """4.9 q: sub-attributes (a.b), paths into values (a[b.c]) and observedAt."""
    assert await ids(city, "type=Sensor&q=" + quote("temperature.accuracy>0.75")) == n(8, 9)
    assert await ids(city, "type=Sensor&q=" + quote('meta[vendor.name]=="other"')) == n(
        5, 6, 7, 8, 9
    )
    q = quote("temperature.observedAt>=2026-11-28T00:00:00Z")
    assert await ids(city, f"type=Sensor&q={q}") == n(8, 9)


async def test_q_relationship_and_absence(city: httpx.AsyncClient) -> None:
    """4.9 q: relationships compare their object; '!' selects entities lacking an attribute."""
    assert await ids(city, "q=" + quote('startsAt=="urn:ngsi-ld:Junction:7"')) == [
        "urn:ngsi-ld:Pipe:1"
    ]
    assert await ids(city, "type=Lamp,Pipe&q=" + quote("!power")) == ["urn:ngsi-ld:Pipe:1"]


async def test_q_regex(city: httpx.AsyncClient) -> None:
    """4.9 q: ~= matches a regular expression."""
    assert await ids(city, "type=Lamp&q=" + quote('status~="o[n]"')) == ["urn:ngsi-ld:Lamp:1"]


async def test_q_syntax_error_is_400(city: httpx.AsyncClient) -> None:
    """4.9 / 6.4.3.2: a q that does not parse answers 400 with a detail."""
    r = await city.get(f"{E}?type=Sensor&q=" + quote("temperature>>3"))
    assert_problem(r, 400)


async def test_attrs_projection_and_filter(city: httpx.AsyncClient) -> None:
    """5.7.2 attrs: only entities with one of the attributes, and only those attributes."""
    r = await city.get(f"{E}?attrs=power")
    body = r.json()
    assert [e["id"] for e in body] == ["urn:ngsi-ld:Lamp:1", "urn:ngsi-ld:Lamp:2"]
    assert all(set(e) == {"id", "type", "power"} for e in body)


async def test_pick_and_omit(city: httpx.AsyncClient) -> None:
    """4.21 (v1.8) pick and omit project entity members."""
    r = await city.get(f"{E}?type=Lamp&pick=id,power")
    assert r.json() == [
        {"id": "urn:ngsi-ld:Lamp:1", "power": {"type": "Property", "value": 60}},
        {"id": "urn:ngsi-ld:Lamp:2", "power": {"type": "Property", "value": 100}},
    ]
    r = await city.get(f"{E}?type=Lamp&omit=status,type&options=keyValues")
    assert r.json()[0] == {"id": "urn:ngsi-ld:Lamp:1", "power": 60}


async def test_geo_query_near(city: httpx.AsyncClient) -> None:
    """4.10 geo-query: near;maxDistance in metres around a point."""
    coords = quote("[-2.32,34.92]")
    found = await ids(
        city, f"type=Sensor&georel=near;maxDistance==250&geometry=Point&coordinates={coords}"
    )
    # 0.001 degree of longitude at 34.92 N is about 91 m.
    assert found == n(0, 1, 2)


async def test_geo_query_within(city: httpx.AsyncClient) -> None:
    """4.10 geo-query: within a polygon."""
    poly = quote("[[[-2.3195,34.9],[-2.31,34.9],[-2.31,34.95],[-2.3195,34.95],[-2.3195,34.9]]]")
    found = await ids(city, f"type=Sensor&georel=within&geometry=Polygon&coordinates={poly}")
    assert found == n(1, 2, 3, 4, 5, 6, 7, 8, 9)


async def test_geo_query_invalid_is_400(city: httpx.AsyncClient) -> None:
    """4.10: a geo-query with an unclosed polygon or no distance answers 400."""
    poly = quote("[[[-2.33,34.9],[-2.31,34.9],[-2.31,34.95]]]")
    r = await city.get(f"{E}?type=Sensor&georel=within&geometry=Polygon&coordinates={poly}")
    assert_problem(r, 400)
    r = await city.get(f"{E}?type=Sensor&georel=near&geometry=Point&coordinates=[0,0]")
    assert_problem(r, 400)


async def test_paging_and_count(city: httpx.AsyncClient) -> None:
    """5.5.9 pagination: limit, offset, and count=true with NGSILD-Results-Count."""
    r = await city.get(f"{E}?type=Sensor&limit=3&offset=2&count=true")
    assert [e["id"] for e in r.json()] == n(2, 3, 4)
    assert r.headers["NGSILD-Results-Count"] == "10"
    r = await city.get(f"{E}?type=Sensor&limit=0&count=true")
    assert r.json() == [] and r.headers["NGSILD-Results-Count"] == "10"


async def test_limit_above_maximum(city: httpx.AsyncClient) -> None:
    """5.5.9: a limit above the broker's maximum answers 403 TooManyResults."""
    assert_problem(await city.get(f"{E}?type=Sensor&limit=100000"), 403, "TooManyResults")
    assert_problem(await city.get(f"{E}?type=Sensor&limit=-1"), 400, "BadRequestData")
    assert_problem(await city.get(f"{E}?type=Sensor&limit=ten"), 400, "BadRequestData")


async def test_query_needs_a_filter(city: httpx.AsyncClient) -> None:
    """5.7.2: a query without type, id, attrs, q or geo-query is rejected."""
    assert_problem(await city.get(E), 400, "BadRequestData")
    assert len(await ids(city, "local=true&limit=100")) == 13


async def test_geojson_collection(city: httpx.AsyncClient) -> None:
    """6.3.15: application/geo+json answers a FeatureCollection."""
    r = await city.get(f"{E}?type=Sensor&limit=2", headers={"Accept": "application/geo+json"})
    body = r.json()
    assert body["type"] == "FeatureCollection"
    assert [f["id"] for f in body["features"]] == n(0, 1)
    assert body["features"][0]["geometry"]["type"] == "Point"


async def test_post_query(city: httpx.AsyncClient) -> None:
    """5.7.? Query Entities via POST with a Query body (entities, attrs, q, geoQ)."""
    body = {
        "type": "Query",
        "entities": [{"type": "Lamp"}, {"id": "urn:ngsi-ld:Sensor:3"}],
        "attrs": ["power", "temperature"],
    }
    r = await city.post("/ngsi-ld/v1/entityOperations/query", json=body)
    assert r.status_code == 200, r.text
    assert [e["id"] for e in r.json()] == [
        "urn:ngsi-ld:Sensor:3",
        "urn:ngsi-ld:Lamp:1",
        "urn:ngsi-ld:Lamp:2",
    ]
    body = {
        "type": "Query",
        "entities": [{"type": "Sensor"}],
        "q": "temperature>30",
        "geoQ": {
            "georel": "near;maxDistance==700",
            "geometry": "Point",
            "coordinates": [-2.32, 34.92],
        },
    }
    r = await city.post("/ngsi-ld/v1/entityOperations/query?count=true", json=body)
    assert [e["id"] for e in r.json()] == n(7)
    assert r.headers["NGSILD-Results-Count"] == "1"


async def test_post_query_bad_body(city: httpx.AsyncClient) -> None:
    """5.7.?: a Query body of the wrong type answers 400."""
    r = await city.post("/ngsi-ld/v1/entityOperations/query", json={"type": "Nope"})
    assert_problem(r, 400, "BadRequestData")
    r = await city.post("/ngsi-ld/v1/entityOperations/query", json=[1, 2])
    assert_problem(r, 400, "BadRequestData")
