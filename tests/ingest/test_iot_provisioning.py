"""The FIWARE provisioning API (iotagent-node-lib): service groups and devices, per tenant.

Status codes and error names are those of iotagent-node-lib: 201 on creation, 204 on
update and removal, 409 DUPLICATE_GROUP / DUPLICATE_DEVICE_ID, 404 DEVICE_GROUP_NOT_FOUND /
DEVICE_NOT_FOUND, 400 WRONG_SYNTAX; lists are ``{"count": N, "services"|"devices": [...]}``.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from cityverse.store.base import EntityStore
from tests.ingest.iot_support import FIWARE, running

GROUP = {
    "apikey": "4jggokgpepnvsb2uv4s40d59ov",
    "resource": "/iot/d",
    "entity_type": "Streetlight",
    "attributes": [{"object_id": "l", "name": "illuminanceLevel", "type": "Number"}],
    "commands": [{"name": "dim", "type": "command"}],
    "static_attributes": [{"name": "category", "type": "Text", "value": "street"}],
}
DEVICE = {
    "device_id": "lamp001",
    "entity_name": "urn:ngsi-ld:Streetlight:lamp001",
    "entity_type": "Streetlight",
    "protocol": "PDI-IoTA-UltraLight",
    "transport": "MQTT",
    "attributes": [{"object_id": "p", "name": "powerState", "type": "Text"}],
}


def _error(response: httpx.Response, status: int, name: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["name"] == name
    assert response.json()["message"]


async def test_service_group_crud(store: EntityStore, tmp_path: Path) -> None:
    async with running(store, tmp_path) as app:
        c = app.client
        r = await c.post("/iot/services", headers=FIWARE, json={"services": [GROUP]})
        assert r.status_code == 201
        _error(
            await c.post("/iot/services", headers=FIWARE, json={"services": [GROUP]}),
            409,
            "DUPLICATE_GROUP",
        )
        r = await c.get("/iot/services", headers=FIWARE)
        assert r.status_code == 200
        body = r.json()
        assert body["count"] == 1
        [group] = body["services"]
        assert group["apikey"] == GROUP["apikey"] and group["entity_type"] == "Streetlight"
        assert group["service"] == "openiot" and group["subservice"] == "/"
        assert group["attributes"] == GROUP["attributes"]
        # Another tenant sees none of it.
        r = await c.get(
            "/iot/services", headers={"fiware-service": "other", "fiware-servicepath": "/"}
        )
        assert r.json() == {"count": 0, "services": []}
        # The newer path and key name show the same groups.
        assert (await c.get("/iot/groups", headers=FIWARE)).json()["groups"] == body["services"]

        query = {"resource": "/iot/d", "apikey": GROUP["apikey"]}
        r = await c.put("/iot/services", params=query, headers=FIWARE, json={"entity_type": "Lamp"})
        assert r.status_code == 204
        assert (await c.get("/iot/services", headers=FIWARE)).json()["services"][0][
            "entity_type"
        ] == "Lamp"
        _error(
            await c.put(
                "/iot/services", params={**query, "apikey": "nope"}, headers=FIWARE, json={}
            ),
            404,
            "DEVICE_GROUP_NOT_FOUND",
        )
        _error(await c.put("/iot/services", headers=FIWARE, json={}), 400, "MISSING_HEADERS")

        assert (await c.delete("/iot/services", params=query, headers=FIWARE)).status_code == 204
        assert (await c.get("/iot/services", headers=FIWARE)).json()["count"] == 0
        _error(
            await c.delete("/iot/services", params=query, headers=FIWARE),
            404,
            "DEVICE_GROUP_NOT_FOUND",
        )


async def test_device_crud_with_limit_and_offset(store: EntityStore, tmp_path: Path) -> None:
    async with running(store, tmp_path) as app:
        c = app.client
        devices = [
            {
                **DEVICE,
                "device_id": f"lamp{i:03d}",
                "entity_name": f"urn:ngsi-ld:Streetlight:lamp{i:03d}",
            }
            for i in range(5)
        ]
        assert (
            await c.post("/iot/devices", headers=FIWARE, json={"devices": devices})
        ).status_code == 201
        _error(
            await c.post("/iot/devices", headers=FIWARE, json={"devices": [devices[0]]}),
            409,
            "DUPLICATE_DEVICE_ID",
        )

        r = await c.get("/iot/devices", headers=FIWARE, params={"limit": 2, "offset": 1})
        body = r.json()
        assert r.status_code == 200 and body["count"] == 5
        assert [d["device_id"] for d in body["devices"]] == ["lamp001", "lamp002"]

        r = await c.get("/iot/devices/lamp003", headers=FIWARE)
        assert r.status_code == 200
        device = r.json()
        assert device["entity_name"] == "urn:ngsi-ld:Streetlight:lamp003"
        assert device["service"] == "openiot" and device["service_path"] == "/"
        assert device["attributes"] == DEVICE["attributes"]
        _error(await c.get("/iot/devices/nope", headers=FIWARE), 404, "DEVICE_NOT_FOUND")
        _error(
            await c.get(
                "/iot/devices/lamp003", headers={**FIWARE, "fiware-servicepath": "/elsewhere"}
            ),
            404,
            "DEVICE_NOT_FOUND",
        )

        r = await c.put(
            "/iot/devices/lamp003",
            headers=FIWARE,
            json={"attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}]},
        )
        assert r.status_code == 204
        assert (await c.get("/iot/devices/lamp003", headers=FIWARE)).json()["attributes"][0][
            "name"
        ] == "temperature"
        _error(
            await c.put("/iot/devices/lamp003", headers=FIWARE, json={"device_id": "x"}),
            400,
            "BAD_REQUEST",
        )

        assert (await c.delete("/iot/devices/lamp003", headers=FIWARE)).status_code == 204
        _error(await c.delete("/iot/devices/lamp003", headers=FIWARE), 404, "DEVICE_NOT_FOUND")
        r = await c.post(
            "/iot/op/delete",
            headers=FIWARE,
            json={"devices": [{"deviceId": "lamp000", "apikey": ""}, {"deviceId": "lamp004"}]},
        )
        assert r.status_code == 204
        assert (await c.get("/iot/devices", headers=FIWARE)).json()["count"] == 2


async def test_ngsild_tenant_header_and_default_tenant(store: EntityStore, tmp_path: Path) -> None:
    async with running(store, tmp_path) as app:
        c = app.client
        r = await c.post(
            "/iot/devices", headers={"NGSILD-Tenant": "openiot"}, json={"devices": [DEVICE]}
        )
        assert r.status_code == 201
        assert (await c.get("/iot/devices", headers=FIWARE)).json()["count"] == 1
        assert (await c.get("/iot/devices")).json()["count"] == 0
        r = await c.get("/iot/devices", headers={"fiware-service": "a", "NGSILD-Tenant": "b"})
        _error(r, 400, "BAD_REQUEST")
        _error(
            await c.get("/iot/devices", headers={"fiware-service": "bad tenant!"}),
            400,
            "WRONG_SYNTAX",
        )


async def test_bad_bodies_are_wrong_syntax(store: EntityStore, tmp_path: Path) -> None:
    async with running(store, tmp_path) as app:
        c = app.client
        for body in (b"{", b"[]", b'{"devices": {}}', b'{"devices": [{"entity_type": "x"}]}'):
            _error(await c.post("/iot/devices", headers=FIWARE, content=body), 400, "WRONG_SYNTAX")
        _error(
            await c.post("/iot/services", headers=FIWARE, json={"services": [{"apikey": "k"}]}),
            400,
            "WRONG_SYNTAX",
        )


async def test_provisioning_survives_a_restart(store: EntityStore, tmp_path: Path) -> None:
    async with running(store, tmp_path) as app:
        await app.client.post("/iot/services", headers=FIWARE, json={"services": [GROUP]})
        await app.client.post("/iot/devices", headers=FIWARE, json={"devices": [DEVICE]})
    async with running(store, tmp_path) as app:
        assert (await app.client.get("/iot/services", headers=FIWARE)).json()["count"] == 1
        assert (await app.client.get("/iot/devices/lamp001", headers=FIWARE)).status_code == 200
        # The registry's tenant cannot be named through the NGSI-LD API.
        r = await app.client.get(
            "/ngsi-ld/v1/entities", params={"type": "Device"}, headers={"NGSILD-Tenant": "@iot"}
        )
        assert r.status_code == 400


def test_every_route_is_documented() -> None:
    """docs/iot.md lists every IoT route as `METHOD /iot/path`."""
    import re

    from cityverse.api.iot import routes

    doc = (Path(__file__).resolve().parents[2] / "docs" / "iot.md").read_text()
    documented = set(re.findall(r"`(GET|POST|PUT|DELETE) (/iot/\S*)`", doc))
    for route in routes:
        path = route.path.replace("{device_id}", "{deviceId}")
        for method in route.methods or ():
            if method != "HEAD":
                assert (method, path) in documented, f"{method} {path} not in docs/iot.md"
