"""The IoT agent's HTTP routes under /iot: FIWARE provisioning, HTTP devices, commands.

Provisioning follows iotagent-node-lib: the tenant comes from ``Fiware-Service`` (or
``NGSILD-Tenant``; neither means the default tenant), the service path from
``Fiware-ServicePath`` (default ``/``), and errors are ``{"name": ..., "message": ...}``
with the library's status codes. Devices send measures to ``/iot/d`` (UltraLight 2.0)
and ``/iot/json`` (JSON) with ``k`` (apikey) and ``i`` (device id). docs/iot.md lists
every route.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cityverse.broker.request import parse_tenant
from cityverse.core.entity import normalise_datetime
from cityverse.core.errors import BadRequestData
from cityverse.ingest.iot import ultralight
from cityverse.ingest.iot.agent import IotAgent
from cityverse.ingest.iot.pipeline import Outcome
from cityverse.ingest.iot.provisioning import (
    Device,
    Group,
    IotError,
    parse_device,
    parse_group,
    updated_doc,
    wrong_syntax,
)

JSON = "application/json"

Handler = Callable[[Request], Awaitable[Response]]

_REJECTION_STATUS = {
    "unknown-apikey": (404, "DEVICE_GROUP_NOT_FOUND"),
    "unknown-device": (404, "DEVICE_NOT_FOUND"),
    "malformed": (400, "PARSE_ERROR"),
    "bad-topic": (400, "PARSE_ERROR"),
    "wrong-type": (400, "WRONG_TYPE"),
    "bad-timestamp": (400, "BAD_TIMESTAMP"),
    "bad-attribute": (400, "WRONG_SYNTAX"),
    "rate-limited": (429, "TOO_MANY_REQUESTS"),
    "unknown-command": (400, "COMMAND_NOT_FOUND"),
    "store-error": (500, "INTERNAL_DB_ERROR"),
}
_UL_RESULT = re.compile(rb"^\s*[^|@#\s]+@[^|#]+(\||$)")


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _iot(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except IotError as exc:
            return _json(exc.body(), exc.status)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def _agent(request: Request) -> IotAgent:
    for service in request.app.state.services:
        if isinstance(service, IotAgent):
            return service
    raise IotError(503, "SERVICE_UNAVAILABLE", "the IoT agent is not running")


def _scope(request: Request, *, listing: bool = False) -> tuple[str, str | None]:
    """(tenant, service path) of a provisioning request; a listing's ``/*`` is every path."""
    service = request.headers.get("fiware-service")
    ld_tenant = request.headers.get("ngsild-tenant")
    if service is not None and ld_tenant is not None and service != ld_tenant:
        raise IotError(
            400, "BAD_REQUEST", "Fiware-Service and NGSILD-Tenant name different tenants"
        )
    try:
        tenant = parse_tenant(service if service is not None else ld_tenant)
    except BadRequestData as exc:
        raise IotError(400, "WRONG_SYNTAX", f"Wrong syntax in request: {exc.detail}") from None
    path = request.headers.get("fiware-servicepath") or "/"
    if listing and path in ("/*", "/#"):
        return tenant, None
    if not path.startswith("/") or len(path) > 256:
        raise IotError(400, "WRONG_SYNTAX", f"Wrong syntax in request: service path {path!r}")
    return tenant, path


async def _body(request: Request, agent: IotAgent) -> Any:
    raw = await _raw(request, agent)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise wrong_syntax(f"the body is not valid JSON: {exc}") from None


async def _raw(request: Request, agent: IotAgent) -> bytes:
    limit = agent.settings.max_body_bytes
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise IotError(413, "PAYLOAD_TOO_LARGE", f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _items(body: Any, *keys: str) -> list[Any]:
    if isinstance(body, dict):
        for key in keys:
            if isinstance(body.get(key), list):
                return list(body[key])
    raise wrong_syntax(f"the body must be an object with a '{keys[0]}' array")


def _page(request: Request) -> tuple[int | None, int]:
    def number(name: str) -> int | None:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return None
        if not raw.isdigit():
            raise IotError(400, "BAD_REQUEST", f"{name} must be a non-negative integer")
        return int(raw)

    return number("limit"), number("offset") or 0


# -- service groups ------------------------------------------------------------------------


def _group_routes(path: str, key: str) -> list[Route]:
    @_iot
    async def create_groups(request: Request) -> Response:
        agent = _agent(request)
        tenant, subservice = _scope(request)
        assert subservice is not None
        body = await _body(request, agent)
        groups = [parse_group(item, tenant, subservice) for item in _items(body, key, "services")]
        if not groups:
            raise wrong_syntax(f"'{key}' is empty")
        await agent.registry.add_groups(groups)
        return _json({}, 201)

    @_iot
    async def list_groups(request: Request) -> Response:
        agent = _agent(request)
        tenant, subservice = _scope(request, listing=True)
        limit, offset = _page(request)
        groups = agent.registry.list_groups(tenant, subservice)
        page = groups[offset : None if limit is None else offset + limit]
        return _json({"count": len(groups), key: [g.api() for g in page]})

    @_iot
    async def update_group(request: Request) -> Response:
        agent = _agent(request)
        tenant, subservice = _scope(request)
        assert subservice is not None
        group = _one_group(request, agent, tenant, subservice)
        body = await _body(request, agent)
        doc = updated_doc(group.doc, body, fixed=("apikey", "resource"))
        await agent.registry.replace_group(group, parse_group(doc, tenant, subservice))
        return Response(status_code=204)

    @_iot
    async def delete_group(request: Request) -> Response:
        agent = _agent(request)
        tenant, subservice = _scope(request)
        assert subservice is not None
        group = _one_group(request, agent, tenant, subservice)
        with_devices = request.query_params.get("device") == "true"
        await agent.registry.delete_group(group, with_devices=with_devices)
        return Response(status_code=204)

    return [
        Route(path, create_groups, methods=["POST"]),
        Route(path, list_groups, methods=["GET"]),
        Route(path, update_group, methods=["PUT"]),
        Route(path, delete_group, methods=["DELETE"]),
    ]


def _one_group(request: Request, agent: IotAgent, tenant: str, subservice: str) -> Group:
    params = request.query_params
    missing = [name for name in ("resource", "apikey") if params.get(name) is None]
    if missing:
        raise IotError(
            400,
            "MISSING_HEADERS",
            f"Some headers were missing from the request: {orjson.dumps(missing).decode()}",
        )
    return agent.registry.get_group(tenant, subservice, params["resource"], params["apikey"])


# -- devices ---------------------------------------------------------------------------------


@_iot
async def create_devices(request: Request) -> Response:
    """POST /iot/devices: provision devices (201; 409 DUPLICATE_DEVICE_ID)."""
    agent = _agent(request)
    tenant, subservice = _scope(request)
    assert subservice is not None
    body = await _body(request, agent)
    devices = [parse_device(item, tenant, subservice) for item in _items(body, "devices")]
    if not devices:
        raise wrong_syntax("'devices' is empty")
    await agent.registry.add_devices(devices)
    return _json({}, 201)


@_iot
async def list_devices(request: Request) -> Response:
    """GET /iot/devices: the devices of the tenant and service path, with count."""
    agent = _agent(request)
    tenant, subservice = _scope(request, listing=True)
    limit, offset = _page(request)
    devices = agent.registry.list_devices(tenant, subservice)
    page = devices[offset : None if limit is None else offset + limit]
    return _json({"count": len(devices), "devices": [d.api() for d in page]})


def _device(request: Request, agent: IotAgent) -> Device:
    tenant, subservice = _scope(request)
    assert subservice is not None
    return agent.registry.get_device(
        tenant, subservice, request.path_params["device_id"], request.query_params.get("apikey")
    )


@_iot
async def get_device(request: Request) -> Response:
    """GET /iot/devices/{deviceId}."""
    agent = _agent(request)
    return _json(_device(request, agent).api())


@_iot
async def update_device(request: Request) -> Response:
    """PUT /iot/devices/{deviceId}: replace the fields given (204)."""
    agent = _agent(request)
    device = _device(request, agent)
    body = await _body(request, agent)
    if isinstance(body, dict) and "device_id" in body:
        raise IotError(400, "BAD_REQUEST", "Can't change the ID of a preprovisioned device")
    doc = updated_doc(device.doc, body, fixed=("apikey",))
    await agent.registry.replace_device(parse_device(doc, device.service, device.subservice))
    return Response(status_code=204)


@_iot
async def delete_device(request: Request) -> Response:
    """DELETE /iot/devices/{deviceId} (204; the entity stays)."""
    agent = _agent(request)
    await agent.registry.delete_devices([_device(request, agent)])
    return Response(status_code=204)


@_iot
async def delete_devices(request: Request) -> Response:
    """POST /iot/op/delete: remove devices by deviceId and apikey (204, or 404 if any missing)."""
    agent = _agent(request)
    tenant, subservice = _scope(request)
    assert subservice is not None
    body = await _body(request, agent)
    found, missing = [], []
    for item in _items(body, "devices"):
        if not isinstance(item, dict) or not isinstance(item.get("deviceId"), str):
            raise wrong_syntax("each item of 'devices' needs a deviceId")
        try:
            found.append(
                agent.registry.get_device(tenant, subservice, item["deviceId"], item.get("apikey"))
            )
        except IotError:
            missing.append(item["deviceId"])
    if found:
        await agent.registry.delete_devices(found)
    if missing:
        raise IotError(404, "DEVICE_NOT_FOUND", f"No device was found with id:{missing[0]}")
    return Response(status_code=204)


# -- commands ------------------------------------------------------------------------------


@_iot
async def send_commands(request: Request) -> Response:
    """POST /iot/devices/{deviceId}/commands: ``{"command": value, ...}`` to the device."""
    agent = _agent(request)
    tenant, subservice = _scope(request)
    assert subservice is not None
    body = await _body(request, agent)
    if not isinstance(body, dict) or not body:
        raise wrong_syntax('the body must be an object of commands, like {"dim": 50}')
    profile = agent.device_profile(
        tenant, subservice, request.path_params["device_id"], request.query_params.get("apikey")
    )
    for name in body:
        if name not in profile.commands:
            raise IotError(
                404,
                "COMMAND_NOT_FOUND",
                f"Couldn't update the command because no command with the name [{name}] was found.",
            )
    results = [await agent.send_command(profile, name, value) for name, value in body.items()]
    return _json({"commands": [r.as_json() for r in results]})


@_iot
async def notify(request: Request) -> Response:
    """POST /iot/notify: an NGSI-LD notification whose entities carry command values."""
    agent = _agent(request)
    tenant, _ = _scope(request)
    body = await _body(request, agent)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise wrong_syntax("a notification has a 'data' array of entities")
    results = await agent.notified(tenant, data)
    return _json({"commands": [r.as_json() for r in results]})


# -- devices over HTTP -----------------------------------------------------------------------


def _device_params(request: Request) -> tuple[str, str]:
    params = request.query_params
    missing = [name for name in ("i", "k") if not params.get(name)]
    if missing:
        raise IotError(
            400,
            "MANDATORY_PARAMS_NOT_FOUND",
            "Some of the mandatory params weren't found in the request: "
            + orjson.dumps(missing).decode(),
        )
    return params["k"], params["i"]


def _answer(outcome: Outcome) -> None:
    if outcome.reason is not None:
        status, name = _REJECTION_STATUS.get(outcome.reason, (400, "BAD_REQUEST"))
        raise IotError(status, name, outcome.detail)


async def _commands_reply(
    agent: IotAgent, request: Request, apikey: str, device_id: str, fmt: str
) -> Response:
    if request.query_params.get("getCmd") != "1":
        return Response(status_code=200)
    waiting = await agent.poll(apikey, device_id)
    if fmt == "json":
        return _json(waiting)
    text = "#".join(ultralight.format_command(device_id, k, v) for k, v in waiting.items())
    return Response(text, media_type="text/plain")


def _southbound(fmt: str) -> tuple[Handler, Handler, Handler]:
    @_iot
    async def measure(request: Request) -> Response:
        agent = _agent(request)
        apikey, device_id = _device_params(request)
        payload = await _raw(request, agent)
        timestamp = None
        if request.query_params.get("t"):
            try:
                timestamp = normalise_datetime(request.query_params["t"])
            except BadRequestData as exc:
                agent.stats.reject(
                    "bad-timestamp",
                    exc.detail,
                    apikey=apikey,
                    device_id=device_id,
                    transport="http",
                )
                raise IotError(400, "BAD_TIMESTAMP", exc.detail) from None
        kind = "cmdexe" if fmt == "ul" and _UL_RESULT.match(payload) else "attrs"
        outcome = await agent.http_measure(
            apikey, device_id, fmt, payload, timestamp=timestamp, kind=kind
        )
        _answer(outcome)
        return await _commands_reply(agent, request, apikey, device_id, fmt)

    @_iot
    async def poll(request: Request) -> Response:
        agent = _agent(request)
        apikey, device_id = _device_params(request)
        return await _commands_reply(agent, request, apikey, device_id, fmt)

    @_iot
    async def command_result(request: Request) -> Response:
        agent = _agent(request)
        apikey, device_id = _device_params(request)
        payload = await _raw(request, agent)
        outcome = await agent.http_measure(apikey, device_id, fmt, payload, kind="cmdexe")
        _answer(outcome)
        return Response(status_code=200)

    return measure, poll, command_result


@_iot
async def about(request: Request) -> Response:
    """GET /iot/about: versions and transports of the agent."""
    return _json(_agent(request).about())


@_iot
async def stats(request: Request) -> Response:
    """GET /iot/stats: counters, rejections per reason and the last rejections."""
    return _json(_agent(request).stats_json())


_ul_measure, _ul_poll, _ul_result = _southbound("ul")
_json_measure, _json_poll, _json_result = _southbound("json")

routes = [
    Route("/iot/d", _ul_measure, methods=["POST"]),
    Route("/iot/json", _json_measure, methods=["POST"]),
    Route("/iot/d", _ul_poll, methods=["GET"]),
    Route("/iot/json", _json_poll, methods=["GET"]),
    Route("/iot/d/commands", _ul_result, methods=["POST"]),
    Route("/iot/json/commands", _json_result, methods=["POST"]),
    *_group_routes("/iot/services", "services"),
    *_group_routes("/iot/groups", "groups"),
    Route("/iot/devices", create_devices, methods=["POST"]),
    Route("/iot/devices", list_devices, methods=["GET"]),
    Route("/iot/devices/{device_id}", get_device, methods=["GET"]),
    Route("/iot/devices/{device_id}", update_device, methods=["PUT"]),
    Route("/iot/devices/{device_id}", delete_device, methods=["DELETE"]),
    Route("/iot/devices/{device_id}/commands", send_commands, methods=["POST"]),
    Route("/iot/op/delete", delete_devices, methods=["POST"]),
    Route("/iot/notify", notify, methods=["POST"]),
    Route("/iot/about", about, methods=["GET"]),
    Route("/iot/stats", stats, methods=["GET"]),
]
"""Every route of the IoT agent (each listed in docs/iot.md)."""
