"""The security administration API, under ``/cityverse/v1/security``.

Keys, the policy and the personal-data inventory of the request's tenant (a tenant's
admin manages its own tenant; a key of tenant ``*`` manages any tenant, named in the
body or the ``tenant`` parameter). ``whoami`` answers anyone.

    POST   /keys             {"role": "operator", "name": "pumping station"} -> the key, once
    GET    /keys             the tenant's keys (never their secrets)
    DELETE /keys/{id}        revoke
    GET    /policy           the tenant's effective policy
    PUT    /policy           replace it (validated: a bad policy changes nothing)
    GET    /inventory        the personal-data inventory
    GET    /whoami           the caller's identity and roles in the tenant
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cityverse.api.http import JSON, read_json
from cityverse.broker.request import Broker, parse_tenant
from cityverse.core.errors import BadRequestData, Forbidden
from cityverse.security.guard import Access, Guard
from cityverse.security.middleware import ACCESS
from cityverse.security.policy import ALL
from cityverse.security.privacy import inventory

PREFIX = "/cityverse/v1/security"


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _guard(request: Request) -> Guard:
    guard: Guard = request.app.state.guard
    return guard


def _access(request: Request) -> Access:
    access: Access = request.scope[ACCESS]
    return access


def _target_tenant(request: Request, asked: Any = None) -> str:
    """The tenant an admin acts on: its own, or any for a key of every tenant."""
    access = _access(request)
    raw = asked if asked is not None else request.query_params.get("tenant")
    if raw is None:
        return access.tenant
    if not isinstance(raw, str):
        raise BadRequestData("'tenant' must be a string")
    tenant = raw if raw == ALL else parse_tenant(raw)
    if tenant != access.tenant and "admin" not in access.identity.roles.get(ALL, frozenset()):
        raise Forbidden("only an admin of every tenant may act on another tenant")
    return tenant


async def create_key(request: Request) -> Response:
    body = await read_json(request, request.app.state.broker)
    if not isinstance(body, dict):
        raise BadRequestData('the body must be an object such as {"role": "operator"}')
    unknown = sorted(set(body) - {"role", "name", "tenant"})
    if unknown:
        raise BadRequestData(f"unknown member(s) {', '.join(unknown)}")
    tenant = _target_tenant(request, body.get("tenant"))
    token, record = await _guard(request).keys.create(
        tenant, str(body.get("role")), body.get("name", "")
    )
    return _json({**record.document(), "key": token}, 201)


async def list_keys(request: Request) -> Response:
    tenant = _target_tenant(request)
    records = await _guard(request).keys.list(tenant)
    return _json([r.document() for r in records])


async def revoke_key(request: Request) -> Response:
    tenant = _target_tenant(request)
    await _guard(request).keys.revoke(tenant, request.path_params["key_id"])
    return Response(status_code=204)


async def get_policy(request: Request) -> Response:
    tenant = _target_tenant(request)
    policy = await _guard(request).policy(tenant)
    roles = {
        role: {op: sorted(types.names) for op, types in ops.items() if types.names}
        for role, ops in policy.roles.items()
    }
    return _json({"roles": roles, "personal": inventory(policy)})


async def put_policy(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    body = await read_json(request, broker)
    tenant = _target_tenant(request)
    await _guard(request).set_policy(tenant, body)
    return Response(status_code=204)


async def get_inventory(request: Request) -> Response:
    tenant = _target_tenant(request)
    return _json(inventory(await _guard(request).policy(tenant)))


async def whoami(request: Request) -> Response:
    access = _access(request)
    identity = access.identity
    return _json(
        {
            "subject": identity.subject,
            "kind": identity.kind,
            "name": identity.name,
            "tenant": access.tenant,
            "roles": sorted(access.roles),
            "auth": "on" if _guard(request).enabled else "off",
        }
    )


routes = [
    Route(PREFIX + "/keys", create_key, methods=["POST"]),
    Route(PREFIX + "/keys", list_keys, methods=["GET"]),
    Route(PREFIX + "/keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route(PREFIX + "/policy", get_policy, methods=["GET"]),
    Route(PREFIX + "/policy", put_policy, methods=["PUT"]),
    Route(PREFIX + "/inventory", get_inventory, methods=["GET"]),
    Route(PREFIX + "/whoami", whoami, methods=["GET"]),
]
