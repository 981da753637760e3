"""The temporal NGSI-LD routes (GS CIM 009 v1.8 clauses 6.18 to 6.24): thin translations.

Each handler parses the request into a ``Call`` and a temporal request, calls one
operation of broker/temporal.py and renders its answer: 206 with ``Content-Range`` when
the instances of an attribute were cut by the per-attribute limit.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cityverse.api.http import json_response, make_call, negotiate, read_json
from cityverse.api.ngsi_ld import PREFIX
from cityverse.broker import query, temporal
from cityverse.broker.request import Broker
from cityverse.core.errors import BadRequestData

TEMPORAL = PREFIX + "/temporal/entities"
ENTITY = TEMPORAL + "/{entity_id:entity_id}"
ATTRIBUTE = ENTITY + "/attrs/{attr}"


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def _params(request: Request) -> dict[str, str]:
    if not request.scope["query_string"]:
        return {}
    return dict(request.query_params)


def _answer(answer: temporal.TemporalAnswer, ctx: Any, media: str) -> Response:
    headers = {}
    if answer.total is not None:
        headers["NGSILD-Results-Count"] = str(answer.total)
    if answer.range is None:
        return json_response(answer.body, ctx, media, headers=headers)
    headers["Content-Range"] = answer.range.header()
    return json_response(answer.body, ctx, media, status=206, headers=headers)


async def query_temporal(request: Request) -> Response:
    broker = _broker(request)
    media = negotiate(request.headers.get("accept"))
    call = await make_call(request, broker)
    params = _params(request)
    selection = query.selection_from_params(broker, call, params)
    parsed = temporal.parse_request(call, params)
    answer = await temporal.query(broker, call, selection, parsed)
    return _answer(answer, call.context, media)


async def query_temporal_post(request: Request) -> Response:
    broker = _broker(request)
    media = negotiate(request.headers.get("accept"))
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    params = _params(request)
    selection, view = query.selection_from_body(broker, call, body, params)
    parsed = temporal.parse_request(
        call, {**temporal.body_params(body, params), **view}, attrs=view.get("attrs")
    )
    answer = await temporal.query(broker, call, selection, parsed)
    return _answer(answer, call.context, media)


async def retrieve_temporal(request: Request) -> Response:
    broker = _broker(request)
    media = negotiate(request.headers.get("accept"))
    call = await make_call(request, broker)
    parsed = temporal.parse_request(call, _params(request))
    answer = await temporal.retrieve(broker, call, request.path_params["entity_id"], parsed)
    return _answer(answer, call.context, media)


async def create_temporal(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    entity_id, created = await temporal.create(broker, call, body)
    if not created:
        return Response(status_code=204)
    return Response(status_code=201, headers={"Location": f"{TEMPORAL}/{entity_id}"})


async def append_temporal_attrs(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    await temporal.append_attrs(broker, call, request.path_params["entity_id"], body)
    return Response(status_code=204)


async def delete_temporal(request: Request) -> Response:
    broker = _broker(request)
    call = await make_call(request, broker)
    await temporal.delete(broker, call, request.path_params["entity_id"])
    return Response(status_code=204)


async def delete_temporal_attr(request: Request) -> Response:
    broker = _broker(request)
    call = await make_call(request, broker)
    params = request.query_params
    delete_all = params.get("deleteAll", "false")
    if delete_all not in ("true", "false"):
        raise BadRequestData("deleteAll must be true or false")
    path = request.path_params
    await temporal.delete_attr(
        broker,
        call,
        path["entity_id"],
        path["attr"],
        dataset_id=params.get("datasetId"),
        delete_all=delete_all == "true",
    )
    return Response(status_code=204)


async def modify_instance(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    path = request.path_params
    await temporal.modify_instance(
        broker, call, path["entity_id"], path["attr"], path["instance_id"], body
    )
    return Response(status_code=204)


async def delete_instance(request: Request) -> Response:
    broker = _broker(request)
    call = await make_call(request, broker)
    path = request.path_params
    await temporal.delete_instance(
        broker, call, path["entity_id"], path["attr"], path["instance_id"]
    )
    return Response(status_code=204)


routes = [
    Route(TEMPORAL, query_temporal, methods=["GET"]),
    Route(TEMPORAL, create_temporal, methods=["POST"]),
    Route(PREFIX + "/temporal/entityOperations/query", query_temporal_post, methods=["POST"]),
    Route(ENTITY, retrieve_temporal, methods=["GET"]),
    Route(ENTITY, delete_temporal, methods=["DELETE"]),
    Route(ENTITY + "/attrs", append_temporal_attrs, methods=["POST"]),
    Route(ATTRIBUTE, delete_temporal_attr, methods=["DELETE"]),
    Route(ATTRIBUTE + "/{instance_id:path}", modify_instance, methods=["PATCH"]),
    Route(ATTRIBUTE + "/{instance_id:path}", delete_instance, methods=["DELETE"]),
]
