"""Entity operations over HTTP (GS CIM 009 clauses 5.6, 5.7.1 and 6.3 to 6.6), on every store."""

from __future__ import annotations

import httpx

from tests.api.helpers import (
    CORE,
    LD,
    assert_problem,
    entity,
    link,
)

E = "/ngsi-ld/v1/entities"


async def test_create_then_retrieve_normalized(client: httpx.AsyncClient) -> None:
    """5.6.1 Create Entity answers 201 with Location; 5.7.1 retrieves it normalized."""
    r = await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=203.0))
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{E}/urn:ngsi-ld:Pipe:1"
    r = await client.get(f"{E}/urn:ngsi-ld:Pipe:1")
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "urn:ngsi-ld:Pipe:1"
    assert body["type"] == "Pipe"
    assert body["diameter"] == {"type": "Property", "value": 203.0}
    assert "createdAt" not in body


async def test_create_duplicate_is_conflict(client: httpx.AsyncClient) -> None:
    """5.6.1: creating an existing id answers 409 AlreadyExists and keeps the original."""
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=1))
    r = await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=2))
    assert_problem(r, 409, "AlreadyExists")
    assert (await client.get(f"{E}/urn:ngsi-ld:Pipe:1")).json()["diameter"]["value"] == 1


async def test_retrieve_missing_is_404(client: httpx.AsyncClient) -> None:
    """5.7.1: an unknown id answers 404 ResourceNotFound."""
    assert_problem(await client.get(f"{E}/urn:ngsi-ld:Pipe:none"), 404, "ResourceNotFound")


async def test_retrieve_invalid_id_is_400(client: httpx.AsyncClient) -> None:
    """5.7.1 / 6.3: an id that is not a URI answers 400 BadRequestData."""
    assert_problem(await client.get(f"{E}/not-a-uri"), 400, "BadRequestData")


async def test_sys_attrs(client: httpx.AsyncClient) -> None:
    """4.8 / 6.3.? options=sysAttrs shows createdAt and modifiedAt on entity and attributes."""
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=1))
    body = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1?options=sysAttrs")).json()
    assert body["createdAt"].endswith("Z")
    assert body["modifiedAt"] >= body["createdAt"]
    assert "createdAt" in body["diameter"]


async def test_key_values_and_concise(client: httpx.AsyncClient) -> None:
    """4.5.4 keyValues (simplified) and 4.5.? concise representations."""
    await client.post(
        E,
        json=entity(
            "urn:ngsi-ld:Pipe:1",
            diameter={"type": "Property", "value": 203.0, "unitCode": "MMT"},
            startsAt={"type": "Relationship", "object": "urn:ngsi-ld:Junction:1"},
        ),
    )
    kv = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1?options=keyValues")).json()
    assert kv == {
        "id": "urn:ngsi-ld:Pipe:1",
        "type": "Pipe",
        "diameter": 203.0,
        "startsAt": "urn:ngsi-ld:Junction:1",
    }
    concise = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1?format=concise")).json()
    assert concise["diameter"] == {"value": 203.0, "unitCode": "MMT"}
    assert concise["startsAt"] == {"object": "urn:ngsi-ld:Junction:1"}


async def test_two_representations_is_400(client: httpx.AsyncClient) -> None:
    """6.3.? options: keyValues and concise together are contradictory."""
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=1))
    r = await client.get(f"{E}/urn:ngsi-ld:Pipe:1?options=keyValues,concise")
    assert_problem(r, 400, "BadRequestData")


async def test_unknown_option_is_400(client: httpx.AsyncClient) -> None:
    """Unknown options values are rejected rather than ignored."""
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=1))
    r = await client.get(f"{E}/urn:ngsi-ld:Pipe:1?options=fancy")
    assert_problem(r, 400, "BadRequestData")
    assert "fancy" in r.json()["detail"]


async def test_delete_entity(client: httpx.AsyncClient) -> None:
    """5.6.6 Delete Entity: 204, then 404; deleting again is 404."""
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=1))
    assert (await client.delete(f"{E}/urn:ngsi-ld:Pipe:1")).status_code == 204
    assert (await client.get(f"{E}/urn:ngsi-ld:Pipe:1")).status_code == 404
    assert_problem(await client.delete(f"{E}/urn:ngsi-ld:Pipe:1"), 404, "ResourceNotFound")


async def test_append_attrs_and_no_overwrite(client: httpx.AsyncClient) -> None:
    """5.6.3 Append Entity Attributes: 204; with noOverwrite existing ones stay (207)."""
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=1))
    r = await client.post(
        f"{E}/urn:ngsi-ld:Pipe:1/attrs", json={"length": {"type": "Property", "value": 52.9}}
    )
    assert r.status_code == 204, r.text
    r = await client.post(
        f"{E}/urn:ngsi-ld:Pipe:1/attrs?options=noOverwrite",
        json={
            "diameter": {"type": "Property", "value": 9},
            "status": {"type": "Property", "value": "OPEN"},
        },
    )
    assert r.status_code == 207
    assert r.json()["updated"] == ["status"]
    assert r.json()["notUpdated"][0]["attributeName"] == "diameter"
    body = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1?options=keyValues")).json()
    assert body["diameter"] == 1 and body["length"] == 52.9 and body["status"] == "OPEN"


async def test_update_attrs_only_existing(client: httpx.AsyncClient) -> None:
    """5.6.2 Update Entity Attributes: existing attributes change, absent ones are notUpdated."""
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=1))
    r = await client.patch(
        f"{E}/urn:ngsi-ld:Pipe:1/attrs",
        json={
            "diameter": {"type": "Property", "value": 2},
            "ghost": {"type": "Property", "value": 3},
        },
    )
    assert r.status_code == 207
    assert r.json()["updated"] == ["diameter"]
    assert [n["attributeName"] for n in r.json()["notUpdated"]] == ["ghost"]
    body = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1?options=keyValues")).json()
    assert body == {"id": "urn:ngsi-ld:Pipe:1", "type": "Pipe", "diameter": 2}


async def test_partial_attribute_update(client: httpx.AsyncClient) -> None:
    """5.6.4 Partial Attribute Update: the fragment merges into the attribute."""
    await client.post(
        E,
        json=entity(
            "urn:ngsi-ld:Pipe:1",
            diameter={"type": "Property", "value": 1, "unitCode": "MMT"},
        ),
    )
    r = await client.patch(f"{E}/urn:ngsi-ld:Pipe:1/attrs/diameter", json={"value": 5})
    assert r.status_code == 204, r.text
    body = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1")).json()
    assert body["diameter"] == {"type": "Property", "value": 5, "unitCode": "MMT"}
    r = await client.patch(f"{E}/urn:ngsi-ld:Pipe:1/attrs/ghost", json={"value": 5})
    assert_problem(r, 404, "ResourceNotFound")


async def test_replace_attribute(client: httpx.AsyncClient) -> None:
    """5.6.19 Replace Attribute: the attribute is replaced whole; absent ones are 404."""
    await client.post(
        E,
        json=entity(
            "urn:ngsi-ld:Pipe:1", diameter={"type": "Property", "value": 1, "unitCode": "MMT"}
        ),
    )
    r = await client.put(
        f"{E}/urn:ngsi-ld:Pipe:1/attrs/diameter", json={"type": "Property", "value": 7}
    )
    assert r.status_code == 204, r.text
    body = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1")).json()
    assert body["diameter"] == {"type": "Property", "value": 7}
    r = await client.put(
        f"{E}/urn:ngsi-ld:Pipe:1/attrs/ghost", json={"type": "Property", "value": 7}
    )
    assert_problem(r, 404, "ResourceNotFound")


async def test_delete_attribute_instances(client: httpx.AsyncClient) -> None:
    """5.6.5 Delete Entity Attribute: by datasetId, the default instance, or deleteAll."""
    await client.post(
        E,
        json=entity(
            "urn:ngsi-ld:Sensor:1",
            temperature=[
                {"type": "Property", "value": 20},
                {"type": "Property", "value": 21, "datasetId": "urn:ngsi-ld:Dataset:a"},
                {"type": "Property", "value": 22, "datasetId": "urn:ngsi-ld:Dataset:b"},
            ],
        ),
    )
    url = f"{E}/urn:ngsi-ld:Sensor:1"
    r = await client.delete(f"{url}/attrs/temperature?datasetId=urn:ngsi-ld:Dataset:a")
    assert r.status_code == 204
    values = [i["value"] for i in (await client.get(url)).json()["temperature"]]
    assert sorted(values) == [20, 22]
    assert (await client.delete(f"{url}/attrs/temperature")).status_code == 204
    assert (await client.get(url)).json()["temperature"]["value"] == 22
    r = await client.delete(f"{url}/attrs/temperature?datasetId=urn:ngsi-ld:Dataset:zz")
    assert_problem(r, 404, "ResourceNotFound")
    assert (await client.delete(f"{url}/attrs/temperature?deleteAll=true")).status_code == 204
    assert "temperature" not in (await client.get(url)).json()


async def test_replace_entity(client: httpx.AsyncClient) -> None:
    """5.6.18 Replace Entity: every attribute replaced, createdAt kept."""
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=1, length=2))
    before = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1?options=sysAttrs")).json()
    r = await client.put(
        f"{E}/urn:ngsi-ld:Pipe:1",
        json={"type": "Pipe", "status": {"type": "Property", "value": "OPEN"}},
    )
    assert r.status_code == 204, r.text
    after = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1?options=sysAttrs")).json()
    assert "diameter" not in after and after["status"]["value"] == "OPEN"
    assert after["createdAt"] == before["createdAt"]


async def test_replace_entity_id_mismatch(client: httpx.AsyncClient) -> None:
    """5.6.18: a body id that differs from the URL's is rejected, the entity unchanged."""
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=1))
    r = await client.put(f"{E}/urn:ngsi-ld:Pipe:1", json=entity("urn:ngsi-ld:Pipe:2", diameter=9))
    assert_problem(r, 400, "BadRequestData")
    assert (await client.get(f"{E}/urn:ngsi-ld:Pipe:1?options=keyValues")).json()["diameter"] == 1


async def test_merge_entity(client: httpx.AsyncClient) -> None:
    """5.6.17 Merge Entity: new attributes added, existing merged, urn:ngsi-ld:null deletes."""
    await client.post(
        E,
        json=entity(
            "urn:ngsi-ld:Pipe:1",
            diameter={"type": "Property", "value": 1, "unitCode": "MMT"},
            length=3,
        ),
    )
    r = await client.patch(
        f"{E}/urn:ngsi-ld:Pipe:1",
        json={
            "diameter": {"type": "Property", "value": 2},
            "length": "urn:ngsi-ld:null",
            "tag": "DMA1",
        },
    )
    assert r.status_code == 204, r.text
    body = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1")).json()
    assert body["diameter"] == {"type": "Property", "value": 2, "unitCode": "MMT"}
    assert "length" not in body
    assert body["tag"] == {"type": "Property", "value": "DMA1"}


async def test_merge_missing_entity_is_404(client: httpx.AsyncClient) -> None:
    """5.6.17: merging into an unknown entity answers 404."""
    r = await client.patch(f"{E}/urn:ngsi-ld:Pipe:9", json={"tag": "x"})
    assert_problem(r, 404, "ResourceNotFound")


async def test_attribute_kinds_round_trip(client: httpx.AsyncClient) -> None:
    """4.5 / 5.2: every attribute kind is stored and returned as given (normalized)."""
    attrs = {
        "name": {"type": "LanguageProperty", "languageMap": {"fr": "Berkane", "ar": "بركان"}},
        "category": {"type": "VocabProperty", "vocab": "residential"},
        "readings": {"type": "ListProperty", "valueList": [1, 2, 3]},
        "config": {"type": "JsonProperty", "json": {"a": [1, {"b": None}]}},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [-2.32, 34.92]},
        },
        "observedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Device:1"},
        "temperature": {
            "type": "Property",
            "value": 21.5,
            "observedAt": "2026-11-21T08:00:00.000Z",
            "unitCode": "CEL",
            "accuracy": {"type": "Property", "value": 0.1},
        },
    }
    await client.post(E, json={"id": "urn:ngsi-ld:Thing:1", "type": "Thing", **attrs})
    body = (await client.get(f"{E}/urn:ngsi-ld:Thing:1")).json()
    for name, value in attrs.items():
        assert body[name] == value, name


async def test_context_from_link_header(client: httpx.AsyncClient) -> None:
    """6.3.5: names are expanded with the Link @context and compacted back with it."""
    ctx = await client.post(
        "/ngsi-ld/v1/jsonldContexts",
        json={
            "@context": {
                "diameter": "https://example.org/water#diameter",
                "Pipe": "https://example.org/water#Pipe",
            }
        },
    )
    assert ctx.status_code == 201, ctx.text
    url = ctx.headers["location"]
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=1), headers=link(url))
    with_ctx = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1", headers=link(url))).json()
    assert with_ctx["type"] == "Pipe" and "diameter" in with_ctx
    core_only = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1")).json()
    assert core_only["type"] == "https://example.org/water#Pipe"
    assert "https://example.org/water#diameter" in core_only


async def test_ld_json_body_context(client: httpx.AsyncClient) -> None:
    """6.3.5: with application/ld+json the @context is in the body; the answer carries it."""
    body = {**entity("urn:ngsi-ld:Pipe:1", diameter=1), "@context": [CORE]}
    r = await client.post(E, content=_json(body), headers={"Content-Type": LD})
    assert r.status_code == 201, r.text
    r = await client.get(f"{E}/urn:ngsi-ld:Pipe:1", headers={"Accept": LD})
    assert r.headers["content-type"].startswith(LD)
    assert "@context" in r.json()


async def test_ld_json_without_context_is_400(client: httpx.AsyncClient) -> None:
    """6.3.5: an application/ld+json body without @context is rejected."""
    r = await client.post(
        E, content=_json(entity("urn:ngsi-ld:Pipe:1", diameter=1)), headers={"Content-Type": LD}
    )
    assert_problem(r, 400, "BadRequestData")


async def test_json_body_with_context_is_400(client: httpx.AsyncClient) -> None:
    """6.3.5: an application/json body must not carry an @context."""
    body = {**entity("urn:ngsi-ld:Pipe:1", diameter=1), "@context": [CORE]}
    assert_problem(await client.post(E, json=body), 400, "BadRequestData")


async def test_unreachable_context_is_503(client: httpx.AsyncClient) -> None:
    """6.3.5 / 5.5.? an @context that cannot be fetched answers 503 LdContextNotAvailable."""
    r = await client.post(
        E,
        json=entity("urn:ngsi-ld:Pipe:1", diameter=1),
        headers=link("http://127.0.0.1:9/nothing-here.jsonld"),
    )
    assert_problem(r, 503, "LdContextNotAvailable")
    assert (await client.get(f"{E}/urn:ngsi-ld:Pipe:1")).status_code == 404


async def test_geojson_representation(client: httpx.AsyncClient) -> None:
    """4.5.? / 6.3.15: Accept application/geo+json gives a GeoJSON Feature."""
    point = {"type": "Point", "coordinates": [-2.32, 34.92]}
    await client.post(
        E,
        json=entity(
            "urn:ngsi-ld:Lamp:1", location={"type": "GeoProperty", "value": point}, power=60
        ),
    )
    r = await client.get(f"{E}/urn:ngsi-ld:Lamp:1", headers={"Accept": "application/geo+json"})
    assert r.status_code == 200
    feature = r.json()
    assert feature["type"] == "Feature"
    assert feature["id"] == "urn:ngsi-ld:Lamp:1"
    assert feature["geometry"] == point


async def test_not_acceptable(client: httpx.AsyncClient) -> None:
    """6.3.4: an Accept the broker cannot serve answers 406."""
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=1))
    r = await client.get(f"{E}/urn:ngsi-ld:Pipe:1", headers={"Accept": "text/csv"})
    assert r.status_code == 406


async def test_tenants_isolate(client: httpx.AsyncClient) -> None:
    """5.5.? / 6.3.? NGSILD-Tenant: data in one tenant is invisible from another."""
    t1 = {"NGSILD-Tenant": "berkane"}
    t2 = {"NGSILD-Tenant": "oujda"}
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=1), headers=t1)
    await client.post(E, json=entity("urn:ngsi-ld:Pipe:1", diameter=2), headers=t2)
    one = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1?options=keyValues", headers=t1)).json()
    two = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1?options=keyValues", headers=t2)).json()
    assert (one["diameter"], two["diameter"]) == (1, 2)
    assert (await client.get(f"{E}/urn:ngsi-ld:Pipe:1")).status_code == 404


async def test_unknown_tenant_read_is_404(client: httpx.AsyncClient) -> None:
    """An unknown tenant on a read answers 404 NonexistentTenant."""
    r = await client.get(f"{E}/urn:ngsi-ld:Pipe:1", headers={"NGSILD-Tenant": "nowhere"})
    assert_problem(r, 404, "NonexistentTenant")
    r = await client.get(f"{E}?type=Pipe", headers={"NGSILD-Tenant": "nowhere"})
    assert_problem(r, 404, "NonexistentTenant")


def _json(body: object) -> bytes:
    import orjson

    return orjson.dumps(body)
