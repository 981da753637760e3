"""Discovery of types and attributes (GS CIM 009 5.7.5 to 5.7.10, 6.25 to 6.28)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cityverse.core.model import DEFAULT_CONTEXT_VOCAB
from cityverse.store.base import DEFAULT_TENANT, Change, EntityFilter, EntityStore
from cityverse.store.postgres import PostgresStore
from cityverse.store.sqlite import SqliteStore
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


async def test_answers_follow_writes_and_values_alone_read_nothing(
    town: httpx.AsyncClient, store: EntityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the entities hold is read again after a write that may change it (an
    attribute added, a kind changed, an entity deleted), not after a new value."""
    reads: list[EntityFilter] = []
    query = store.query

    async def counted(tenant: str, flt: EntityFilter, **kwargs: Any) -> Any:
        reads.append(flt)
        return await query(tenant, flt, **kwargs)

    monkeypatch.setattr(store, "query", counted)
    await town.get(f"{V1}/types?details=true")
    assert len(reads) == 1
    r = await town.patch(
        f"{V1}/entities/urn:ngsi-ld:Lamp:1/attrs", json={"power": {"type": "Property", "value": 75}}
    )
    assert r.status_code == 204, r.text
    await town.get(f"{V1}/types/Lamp")
    await town.get(f"{V1}/attributes?details=true")
    assert len(reads) == 1, "a new value does not change what discovery tells"
    r = await town.post(
        f"{V1}/entities/urn:ngsi-ld:Lamp:2/attrs",
        json={"status": {"type": "Relationship", "object": "urn:ngsi-ld:Switch:1"}},
    )
    assert r.status_code == 204, r.text
    status = (await town.get(f"{V1}/attributes/status")).json()
    assert status["attributeTypes"] == ["Property", "Relationship"]
    assert len(reads) == 2
    assert (await town.delete(f"{V1}/entities/urn:ngsi-ld:Pipe:1")).status_code == 204
    assert (await town.get(f"{V1}/types")).json()["typeList"] == ["Lamp"]


async def test_another_process_write_is_seen(town: httpx.AsyncClient, store: EntityStore) -> None:
    """A type created by another server process on the same store shows in discovery."""
    assert (await town.get(f"{V1}/types")).json()["typeList"] == ["Lamp", "Pipe"]
    other: EntityStore
    if isinstance(store, SqliteStore):
        other = SqliteStore(store.path)
    else:
        assert isinstance(store, PostgresStore)
        other = PostgresStore(store.conninfo, schema=store.schema)
    await other.open()
    try:
        tank = {
            "id": "urn:ngsi-ld:Tank:1",
            "type": [DEFAULT_CONTEXT_VOCAB + "Tank"],
            "createdAt": "2026-11-21T08:00:00.000Z",
            "modifiedAt": "2026-11-21T08:00:00.000Z",
            "attrs": {},
        }
        outcomes = await other.mutate(DEFAULT_TENANT, [Change(tank["id"], lambda _: tank)])
        assert outcomes[0].error is None
    finally:
        await other.close()
    assert (await town.get(f"{V1}/types")).json()["typeList"] == ["Lamp", "Pipe", "Tank"]
