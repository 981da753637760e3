"""Subscription routes (GS CIM 009 v1.8 clause 5.8) and the live stream of entity
changes, a CityVerse extension.

``GET /cityverse/v1/stream`` answers ``text/event-stream`` (Server-Sent Events): one
``notification`` event per change that matches the filter given as URL parameters
(``type``, ``id``, ``idPattern``, ``q``, ``scopeQ``, ``attrs``, ``watchedAttributes``,
``format``, ``options=sysAttrs`` and the geo-query parameters), each event's data a
Notification (5.3.1). Behind it is a transient subscription, so the stream sees the
writes of every server process, and is gone when the client disconnects. Its events
show what the caller may see, as the notifications of a subscription it created.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cityverse.api.http import json_response, make_call, negotiate, read_json
from cityverse.api.ngsi_ld import PREFIX
from cityverse.broker import subscriptions
from cityverse.broker.request import Broker, Call, parse_tenant
from cityverse.broker.views import parse_options
from cityverse.core.entity import iso_now
from cityverse.core.errors import BadRequestData, OperationNotSupported
from cityverse.notify.service import Notifier

log = logging.getLogger("cityverse.notify")

STREAM = "/cityverse/v1/stream"
KEEP_ALIVE = 15.0
"""Seconds between comments that keep an idle stream's connection open."""
DISCONNECT_CHECK = 0.5
"""Seconds between checks that the client of a quiet stream is still there."""

_cleanups: set[asyncio.Task[None]] = set()


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def _sys_attrs(request: Request) -> bool:
    return "sysAttrs" in parse_options(request.query_params.get("options"))


async def create_subscription(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "@context"}
    sub_id = await subscriptions.create(broker, call, body)
    return Response(status_code=201, headers={"Location": f"{PREFIX}/subscriptions/{sub_id}"})


async def query_subscriptions(request: Request) -> Response:
    broker = _broker(request)
    media = negotiate(request.headers.get("accept"))
    call = await make_call(request, broker)
    params = dict(request.query_params)
    body, total = await subscriptions.query(broker, call, params, sys_attrs=_sys_attrs(request))
    headers = {} if total is None else {"NGSILD-Results-Count": str(total)}
    return json_response(body, call.context, media, headers=headers)


async def retrieve_subscription(request: Request) -> Response:
    broker = _broker(request)
    media = negotiate(request.headers.get("accept"))
    call = await make_call(request, broker)
    body = await subscriptions.retrieve(
        broker, call, request.path_params["subscription_id"], sys_attrs=_sys_attrs(request)
    )
    return json_response(body, call.context, media)


async def update_subscription(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker, merge_patch=True)
    call = await make_call(request, broker, body)
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "@context"}
    await subscriptions.update(broker, call, request.path_params["subscription_id"], body)
    return Response(status_code=204)


async def delete_subscription(request: Request) -> Response:
    broker = _broker(request)
    call = await make_call(request, broker)
    await subscriptions.delete(broker, call, request.path_params["subscription_id"])
    return Response(status_code=204)


# -- live stream -----------------------------------------------------------------------


def stream_body(params: dict[str, str]) -> dict[str, Any]:
    """The Subscription a live stream's URL parameters describe."""
    body: dict[str, Any] = {
        "type": "Subscription",
        "notificationTrigger": ["entityCreated", "entityUpdated", "entityDeleted"],
    }
    if "type" in params:
        selector: dict[str, str] = {"type": params["type"]}
        for key in ("id", "idPattern"):
            if key in params:
                selector[key] = params[key]
        body["entities"] = [selector]
    elif "id" in params or "idPattern" in params:
        raise BadRequestData("a stream selecting by id or idPattern needs a type too")
    if "watchedAttributes" in params:
        body["watchedAttributes"] = [a for a in params["watchedAttributes"].split(",") if a]
    if "entities" not in body and "watchedAttributes" not in body:
        raise BadRequestData("a stream needs type, watchedAttributes or both")
    for key in ("q", "scopeQ", "lang"):
        if key in params:
            body[key] = params[key]
    if "georel" in params or "geometry" in params or "coordinates" in params:
        geo: dict[str, str] = {
            k: params[k] for k in ("georel", "geometry", "coordinates") if k in params
        }
        if "geoproperty" in params:
            geo["geoproperty"] = params["geoproperty"]
        body["geoQ"] = geo
    options = parse_options(params.get("options"))
    notification: dict[str, Any] = {
        # A placeholder the notifier replaces with this stream's own key.
        "endpoint": {"uri": "http://stream.invalid/", "accept": "application/json"},
        "format": params.get("format", "keyValues" if "keyValues" in options else "normalized"),
        "sysAttrs": "sysAttrs" in options,
    }
    if "attrs" in params:
        notification["attributes"] = [a for a in params["attrs"].split(",") if a]
    body["notification"] = notification
    return body


async def stream(request: Request) -> Response:
    broker = _broker(request)
    notifier: Notifier | None = request.app.state.notifier
    if notifier is None:
        raise OperationNotSupported("this store does not keep subscriptions")
    call = await make_call(request, broker)
    # Browsers' EventSource cannot send headers: the tenant may come as a parameter.
    if "tenant" in request.query_params and "ngsild-tenant" not in request.headers:
        call = Call(parse_tenant(request.query_params["tenant"]), call.context, gate=call.gate)
    params = {k: v for k, v in request.query_params.items() if k != "tenant"}
    doc = subscriptions.parse_subscription(
        stream_body(params), call.context, now=iso_now(), creating=True
    )
    doc["createdAt"] = doc["modifiedAt"] = iso_now()
    subscriptions.stamp_owner(doc, call.gate)
    stream_id, queue = await notifier.open_stream(call.tenant, doc)
    return StreamingResponse(
        _events(request, notifier, call.tenant, stream_id, queue),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request,
    notifier: Notifier,
    tenant: str,
    stream_id: str,
    queue: asyncio.Queue[bytes],
) -> AsyncIterator[bytes]:
    try:
        yield f": stream {stream_id}\n\n".encode()
        quiet = 0.0
        while True:
            try:
                content = await asyncio.wait_for(queue.get(), DISCONNECT_CHECK)
            except TimeoutError:
                # A server may only learn that the client left when it next writes: look
                # for the disconnect itself, so that a quiet stream is closed promptly.
                if await request.is_disconnected():
                    return
                quiet += DISCONNECT_CHECK
                if quiet >= KEEP_ALIVE:
                    quiet = 0.0
                    yield b": keep-alive\n\n"
                continue
            quiet = 0.0
            event_id = orjson.loads(content).get("id", "")
            yield b"id: " + event_id.encode() + b"\nevent: notification\ndata: " + content + b"\n\n"
    finally:
        # The response task is being torn down: clean up in a task of our own.
        task = asyncio.get_running_loop().create_task(_close(notifier, tenant, stream_id))
        _cleanups.add(task)
        task.add_done_callback(_cleanups.discard)


async def _close(notifier: Notifier, tenant: str, stream_id: str) -> None:
    try:
        await notifier.close_stream(tenant, stream_id)
    except Exception:
        # The heartbeat removes a stream whose process stopped renewing it; this one's
        # process lives on, so a failed removal is worth an operator's notice.
        log.warning("could not remove live stream %s", stream_id, exc_info=True)


SUBSCRIPTION = PREFIX + "/subscriptions/{subscription_id:path}"

routes = [
    Route(PREFIX + "/subscriptions", create_subscription, methods=["POST"]),
    Route(PREFIX + "/subscriptions", query_subscriptions, methods=["GET"]),
    Route(SUBSCRIPTION, retrieve_subscription, methods=["GET"]),
    Route(SUBSCRIPTION, update_subscription, methods=["PATCH"]),
    Route(SUBSCRIPTION, delete_subscription, methods=["DELETE"]),
    Route(STREAM, stream, methods=["GET"]),
]
