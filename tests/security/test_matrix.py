"""The authorisation matrix: for each role and each operation, allowed or refused.

Allowed means the request reached its route (any answer but 401 and 403); refused
means 401 without credentials and 403 with them, as ProblemDetails.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.security.conftest import Secured

_ids = itertools.count()

Request = Callable[[Secured, dict[str, str]], Awaitable[httpx.Response]]


def _entity(kind: str = "Building") -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:{kind}:m{next(_ids)}",
        "type": kind,
        "name": {"type": "Property", "value": "x"},
    }


async def _seeded(s: Secured, kind: str = "Building") -> str:
    entity = _entity(kind)
    r = await s.client.post("/ngsi-ld/v1/entities", json=entity, headers=s.headers("admin"))
    assert r.status_code == 201, r.text
    return str(entity["id"])


async def read(s: Secured, h: dict[str, str]) -> httpx.Response:
    return await s.client.get("/ngsi-ld/v1/entities", params={"type": "Building"}, headers=h)


async def read_temporal(s: Secured, h: dict[str, str]) -> httpx.Response:
    return await s.client.get(
        "/ngsi-ld/v1/temporal/entities", params={"type": "Building"}, headers=h
    )


async def write(s: Secured, h: dict[str, str]) -> httpx.Response:
    return await s.client.post("/ngsi-ld/v1/entities", json=_entity(), headers=h)


async def write_report(s: Secured, h: dict[str, str]) -> httpx.Response:
    return await s.client.post("/ngsi-ld/v1/entities", json=_entity("ServiceRequest"), headers=h)


async def update(s: Secured, h: dict[str, str]) -> httpx.Response:
    entity_id = await _seeded(s)
    body = {"name": {"type": "Property", "value": "y"}}
    return await s.client.patch(f"/ngsi-ld/v1/entities/{entity_id}/attrs", json=body, headers=h)


async def delete(s: Secured, h: dict[str, str]) -> httpx.Response:
    entity_id = await _seeded(s)
    return await s.client.delete(f"/ngsi-ld/v1/entities/{entity_id}", headers=h)


async def batch_upsert(s: Secured, h: dict[str, str]) -> httpx.Response:
    return await s.client.post(
        "/ngsi-ld/v1/entityOperations/upsert", json=[_entity(), _entity()], headers=h
    )


async def subscribe(s: Secured, h: dict[str, str]) -> httpx.Response:
    body = {
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/none"}},
    }
    return await s.client.post("/ngsi-ld/v1/subscriptions", json=body, headers=h)


async def scenario(s: Secured, h: dict[str, str]) -> httpx.Response:
    return await s.client.post("/cityverse/v1/water/networks/none/simulations", json={}, headers=h)


async def devices(s: Secured, h: dict[str, str]) -> httpx.Response:
    body = {
        "services": [{"apikey": f"k{next(_ids)}", "entity_type": "Thing", "resource": "/iot/d"}]
    }
    return await s.client.post("/iot/services", json=body, headers=h)


async def admin(s: Secured, h: dict[str, str]) -> httpx.Response:
    return await s.client.get("/cityverse/v1/security/keys", headers=h)


OPERATIONS: dict[str, Request] = {
    "read": read,
    "read temporal": read_temporal,
    "write": write,
    "write a citizen report": write_report,
    "update": update,
    "delete": delete,
    "batch upsert": batch_upsert,
    "subscribe": subscribe,
    "run a scenario": scenario,
    "manage devices": devices,
    "administer": admin,
}

Y, N = True, False
#                       read  temp  write report update delete batch  sub  scen  dev  admin
MATRIX: dict[str, tuple[bool, ...]] = {
    "admin": (Y, Y, Y, Y, Y, Y, Y, Y, Y, Y, Y),
    "operator": (Y, Y, Y, Y, Y, Y, Y, Y, Y, Y, N),
    "analyst": (Y, Y, N, N, N, N, N, Y, Y, N, N),
    "developer": (Y, Y, Y, Y, Y, N, Y, Y, N, Y, N),
    "citizen": (Y, Y, N, Y, N, N, N, Y, N, N, N),
    "public": (N, N, N, N, N, N, N, N, N, N, N),
}
CASES = [
    (role, operation, allowed)
    for role, row in MATRIX.items()
    for operation, allowed in zip(OPERATIONS, row, strict=True)
]


def _refused(response: httpx.Response) -> bool:
    if response.status_code in (401, 403):
        body = response.json()
        # ProblemDetails, or the IoT agent API's own error shape on /iot.
        assert body.get("status") == response.status_code or body["name"] in (
            "UNAUTHORIZED",
            "ACCESS_FORBIDDEN",
        )
        return True
    # A batch refuses per entity: 207 with 403 errors, or nothing done at all.
    if response.status_code == 207:
        return all(e["error"]["status"] == 403 for e in response.json()["errors"])
    return False


@pytest.mark.parametrize(("role", "operation", "allowed"), CASES)
async def test_authorisation_matrix(
    secured: Secured, role: str, operation: str, allowed: bool
) -> None:
    response = await OPERATIONS[operation](secured, secured.headers(role))
    assert response.status_code < 500, response.text
    if allowed:
        assert not _refused(response), f"{role} refused {operation}: {response.text}"
    else:
        assert _refused(response), f"{role} allowed {operation}: {response.status_code}"
        if role == "public":
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_every_route_of_the_app_is_classified(secured: Secured) -> None:
    from starlette.routing import Mount, Route

    from cityverse.security.routes import is_classified

    for route in secured.app.routes:
        if isinstance(route, Mount):
            assert is_classified("GET", route.path + "/x.js")
            continue
        assert isinstance(route, Route)
        path = route.path.replace("{", "").replace("}", "")
        for method in route.methods or ():
            assert is_classified(method, path), f"{method} {route.path} is not classified"
