"""Batch entity operations (GS CIM 009 5.6.7 to 5.6.10, 5.6.20; 6.14 to 6.18, 6.31)."""

from __future__ import annotations

import httpx

from tests.api.helpers import assert_problem, entity

OPS = "/ngsi-ld/v1/entityOperations"
E = "/ngsi-ld/v1/entities"


async def kv(client: httpx.AsyncClient, entity_id: str) -> dict[str, object]:
    r = await client.get(f"{E}/{entity_id}?options=keyValues")
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def test_batch_create_all_ok(client: httpx.AsyncClient) -> None:
    """5.6.7: 201 with the created ids when every entity is created."""
    batch = [entity(f"urn:ngsi-ld:Bin:{i}", fill=i) for i in range(5)]
    r = await client.post(f"{OPS}/create", json=batch)
    assert r.status_code == 201
    assert r.json() == [f"urn:ngsi-ld:Bin:{i}" for i in range(5)]


async def test_batch_create_partial(client: httpx.AsyncClient) -> None:
    """5.6.7: 207 BatchOperationResult naming each failure; the others are created."""
    await client.post(E, json=entity("urn:ngsi-ld:Bin:1", fill=1))
    batch = [
        entity("urn:ngsi-ld:Bin:1", fill=9),
        entity("urn:ngsi-ld:Bin:2", fill=2),
        {"id": "urn:ngsi-ld:Bin:3"},
        {"id": "not a uri", "type": "Bin"},
    ]
    r = await client.post(f"{OPS}/create", json=batch)
    assert r.status_code == 207
    body = r.json()
    assert body["success"] == ["urn:ngsi-ld:Bin:2"]
    errors = {e["entityId"]: e["error"] for e in body["errors"]}
    assert errors["urn:ngsi-ld:Bin:1"]["type"].endswith("AlreadyExists")
    assert errors["urn:ngsi-ld:Bin:3"]["type"].endswith("BadRequestData")
    assert errors["not a uri"]["status"] == 400
    assert (await kv(client, "urn:ngsi-ld:Bin:1"))["fill"] == 1


async def test_batch_upsert_replace_and_update(client: httpx.AsyncClient) -> None:
    """5.6.8: upsert creates (201 with new ids) or replaces; options=update merges."""
    r = await client.post(f"{OPS}/upsert", json=[entity("urn:ngsi-ld:Bin:1", fill=1, temp=20)])
    assert r.status_code == 201 and r.json() == ["urn:ngsi-ld:Bin:1"]
    r = await client.post(f"{OPS}/upsert", json=[entity("urn:ngsi-ld:Bin:1", fill=2)])
    assert r.status_code == 204
    assert await kv(client, "urn:ngsi-ld:Bin:1") == {
        "id": "urn:ngsi-ld:Bin:1",
        "type": "Bin",
        "fill": 2,
    }
    r = await client.post(
        f"{OPS}/upsert?options=update", json=[entity("urn:ngsi-ld:Bin:1", temp=25)]
    )
    assert r.status_code == 204
    assert await kv(client, "urn:ngsi-ld:Bin:1") == {
        "id": "urn:ngsi-ld:Bin:1",
        "type": "Bin",
        "fill": 2,
        "temp": 25,
    }


async def test_batch_upsert_conflicting_options(client: httpx.AsyncClient) -> None:
    """5.6.8: update and replace together are rejected."""
    r = await client.post(
        f"{OPS}/upsert?options=update,replace", json=[entity("urn:ngsi-ld:Bin:1", fill=1)]
    )
    assert_problem(r, 400, "BadRequestData")


async def test_batch_update(client: httpx.AsyncClient) -> None:
    """5.6.9: existing entities get the attributes; missing ones are errors."""
    await client.post(E, json=entity("urn:ngsi-ld:Bin:1", fill=1))
    r = await client.post(
        f"{OPS}/update",
        json=[entity("urn:ngsi-ld:Bin:1", fill=5, temp=30), entity("urn:ngsi-ld:Bin:9", fill=1)],
    )
    assert r.status_code == 207
    assert r.json()["success"] == ["urn:ngsi-ld:Bin:1"]
    assert r.json()["errors"][0]["entityId"] == "urn:ngsi-ld:Bin:9"
    assert await kv(client, "urn:ngsi-ld:Bin:1") == {
        "id": "urn:ngsi-ld:Bin:1",
        "type": "Bin",
        "fill": 5,
        "temp": 30,
    }
    r = await client.post(
        f"{OPS}/update?options=noOverwrite", json=[entity("urn:ngsi-ld:Bin:1", fill=7)]
    )
    assert r.status_code == 207
    assert (await kv(client, "urn:ngsi-ld:Bin:1"))["fill"] == 5


async def test_batch_merge(client: httpx.AsyncClient) -> None:
    """5.6.20: each entity is merge-patched."""
    await client.post(E, json=entity("urn:ngsi-ld:Bin:1", fill=1, temp=3))
    r = await client.post(
        f"{OPS}/merge", json=[{"id": "urn:ngsi-ld:Bin:1", "fill": 2, "temp": "urn:ngsi-ld:null"}]
    )
    assert r.status_code == 204, r.text
    assert await kv(client, "urn:ngsi-ld:Bin:1") == {
        "id": "urn:ngsi-ld:Bin:1",
        "type": "Bin",
        "fill": 2,
    }


async def test_batch_delete(client: httpx.AsyncClient) -> None:
    """5.6.10: ids are deleted; unknown ids are reported."""
    await client.post(
        f"{OPS}/create", json=[entity(f"urn:ngsi-ld:Bin:{i}", fill=i) for i in range(3)]
    )
    r = await client.post(f"{OPS}/delete", json=["urn:ngsi-ld:Bin:0", "urn:ngsi-ld:Bin:1"])
    assert r.status_code == 204
    r = await client.post(f"{OPS}/delete", json=["urn:ngsi-ld:Bin:2", "urn:ngsi-ld:Bin:7"])
    assert r.status_code == 207
    assert r.json()["success"] == ["urn:ngsi-ld:Bin:2"]
    assert r.json()["errors"][0]["error"]["type"].endswith("ResourceNotFound")


async def test_batch_bodies_must_be_arrays(client: httpx.AsyncClient) -> None:
    """5.6.7-5.6.10: a body that is not a non-empty array answers 400."""
    for op in ("create", "upsert", "update", "delete", "merge"):
        assert_problem(await client.post(f"{OPS}/{op}", json={"id": "x"}), 400, "BadRequestData")
        assert_problem(await client.post(f"{OPS}/{op}", json=[]), 400, "BadRequestData")


async def test_same_id_twice_in_one_batch(client: httpx.AsyncClient) -> None:
    """5.6.8: the second occurrence of an id in an upsert sees the first."""
    r = await client.post(
        f"{OPS}/upsert?options=update",
        json=[entity("urn:ngsi-ld:Bin:1", fill=1), entity("urn:ngsi-ld:Bin:1", temp=2)],
    )
    assert r.status_code == 201
    assert await kv(client, "urn:ngsi-ld:Bin:1") == {
        "id": "urn:ngsi-ld:Bin:1",
        "type": "Bin",
        "fill": 1,
        "temp": 2,
    }
