"""Discovery of types and attributes (GS CIM 009 5.7.5 to 5.7.10, 6.25 to 6.28)."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import assert_problem, entity

V1 = "/ngsi-ld/v1"


@pytest.fixture
async def town(client: httpx.AsyncClient) -> httpx.AsyncClient:
    batch = [
        entity("urn:ngsi-ld:Lamp:1", power=60, status="on"),
        entity("urn:ngsi-ld:Lamp:2", power=100),
        entity(
            "urn:ngsi-ld:Pipe:1",
            diameter=200,
            startsAt={"type": "Relationship", "object": "urn:a:b"},
        ),
    ]
    r = await client.post(f"{V1}/entityOperations/create", json=batch)
    assert r.status_code == 201, r.text
    return client


async def test_types(town: httpx.AsyncClient) -> None:
    """5.7.5: EntityTypeList of the types in use."""
    body = (await town.get(f"{V1}/types")).json()
    assert body["type"] == "EntityTypeList"
    assert body["id"].startswith("urn:ngsi-ld:EntityTypeList:")
    assert body["typeList"] == ["Lamp", "Pipe"]


async def test_types_details(town: httpx.AsyncClient) -> None:
    """5.7.6: details=true gives EntityType items with their attribute names."""
    body = (await town.get(f"{V1}/types?details=true")).json()
    lamp = next(t for t in body if t["typeName"] == "Lamp")
    assert lamp["type"] == "EntityType"
    assert lamp["attributeNames"] == ["power", "status"]


async def test_type_info(town: httpx.AsyncClient) -> None:
    """5.7.7: EntityTypeInfo with the entity count and attribute details."""
    body = (await town.get(f"{V1}/types/Lamp")).json()
    assert body["type"] == "EntityTypeInfo"
    assert body["entityCount"] == 2
    assert {a["attributeName"] for a in body["attributeDetails"]} == {"power", "status"}
    assert_problem(await town.get(f"{V1}/types/Nothing"), 404, "ResourceNotFound")


async def test_attributes(town: httpx.AsyncClient) -> None:
    """5.7.8 and 5.7.9: AttributeList, and Attribute items with details."""
    body = (await town.get(f"{V1}/attributes")).json()
    assert body["type"] == "AttributeList"
    assert body["attributeList"] == ["diameter", "power", "startsAt", "status"]
    details = (await town.get(f"{V1}/attributes?details=true")).json()
    starts = next(a for a in details if a["attributeName"] == "startsAt")
    assert starts["attributeTypes"] == ["Relationship"]
    assert starts["typeNames"] == ["Pipe"]


async def test_attribute_info(town: httpx.AsyncClient) -> None:
    """5.7.10: one attribute's count, kinds and the types that use it."""
    body = (await town.get(f"{V1}/attributes/power")).json()
    assert body["attributeCount"] == 2
    assert body["typeNames"] == ["Lamp"]
    assert_problem(await town.get(f"{V1}/attributes/nothing"), 404, "ResourceNotFound")
