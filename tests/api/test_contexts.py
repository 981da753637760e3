"""@context management (GS CIM 009 5.13, 6.30)."""

from __future__ import annotations

import httpx

from tests.api.helpers import assert_problem, entity, link

C = "/ngsi-ld/v1/jsonldContexts"


async def test_add_serve_list_delete(client: httpx.AsyncClient) -> None:
    """5.13.2 to 5.13.5: a hosted @context is added, served, listed and deleted."""
    doc = {"@context": {"fill": "https://example.org/waste#fillingLevel"}}
    r = await client.post(C, json=doc)
    assert r.status_code == 201, r.text
    url = r.headers["location"]
    local_id = url.rsplit("/", 1)[1]
    served = await client.get(f"{C}/{local_id}")
    assert served.status_code == 200 and served.json() == doc
    assert url in (await client.get(C)).json()
    details = (await client.get(f"{C}?details=true&kind=Hosted")).json()
    assert details[0]["kind"] == "Hosted" and details[0]["localId"] == local_id
    assert (await client.delete(f"{C}/{local_id}")).status_code == 204
    assert_problem(await client.get(f"{C}/{local_id}"), 404, "ResourceNotFound")


async def test_hosted_context_expands_requests(client: httpx.AsyncClient) -> None:
    """5.13: a hosted @context URL works in Link headers with no network."""
    r = await client.post(C, json={"@context": {"fill": "https://example.org/waste#fillingLevel"}})
    url = r.headers["location"]
    await client.post(
        "/ngsi-ld/v1/entities", json=entity("urn:ngsi-ld:Bin:1", fill=80), headers=link(url)
    )
    body = (await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Bin:1")).json()
    assert "https://example.org/waste#fillingLevel" in body


async def test_add_invalid_context(client: httpx.AsyncClient) -> None:
    """5.13.2: a body without @context, or with a malformed one, answers 400."""
    assert_problem(await client.post(C, json={"x": 1}), 400)
    assert_problem(await client.post(C, json={"@context": 42}), 400)
    assert_problem(await client.get(f"{C}?kind=Strange"), 400, "BadRequestData")


async def test_sdm_contexts_are_bundled(client: httpx.AsyncClient) -> None:
    """The Smart Data Models @contexts resolve without network (the broker runs offline)."""
    url = "https://raw.githubusercontent.com/smart-data-models/dataModel.WasteManagement/master/context.jsonld"
    r = await client.post(
        "/ngsi-ld/v1/entities",
        json={
            "id": "urn:ngsi-ld:WasteContainer:1",
            "type": "WasteContainer",
            "fillingLevel": {"type": "Property", "value": 0.5},
        },
        headers=link(url),
    )
    assert r.status_code == 201, r.text
    body = (await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:WasteContainer:1")).json()
    assert body["type"].startswith("https://smartdatamodels.org/")
