"""The NGSI-LD HTTP routes under /ngsi-ld/v1 (GS CIM 009 clause 6): thin translations.

Each handler parses the request into a ``Call``, calls one broker operation and renders
its result; errors become ProblemDetails in one place (api/app.py).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cityverse.api.http import (
    GEO_JSON,
    JSON,
    json_response,
    make_call,
    negotiate,
    read_json,
)
from cityverse.broker import batch, discovery, entities, jsonld, query, views
from cityverse.broker.request import Broker
from cityverse.core.errors import BadRequestData

PREFIX = "/ngsi-ld/v1"


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def _params(request: Request) -> dict[str, str]:
    if not request.scope["query_string"]:
        return {}
    return dict(request.query_params)


def _no_content(headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=204, headers=headers)


def _update_result(result: entities.UpdateResult, ctx: Any) -> Response:
    if result.complete:
        return _no_content()
    return json_response(result.render(ctx), ctx, JSON, status=207)


def _options(request: Request) -> set[str]:
    return views.parse_options(request.query_params.get("options"))


# -- entities --------------------------------------------------------------------------


async def create_entity(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    entity_id = await entities.create(broker, call, body)
    return Response(status_code=201, headers={"Location": f"{PREFIX}/entities/{entity_id}"})


async def query_entities(request: Request) -> Response:
    broker = _broker(request)
    media = negotiate(request.headers.get("accept"), geo=True)
    call = await make_call(request, broker)
    params = _params(request)
    selection = query.selection_from_params(broker, call, params)
    view = views.parse_view(call.context, params)
    page = await query.run(broker, call, selection)
    return _entities_response(page, call.context, view, media)


def _entities_response(page: Any, ctx: Any, view: views.View, media: str) -> Response:
    headers = {}
    if page.total is not None:
        headers["NGSILD-Results-Count"] = str(page.total)
    if media == GEO_JSON:
        features = [views.render(e, ctx, view, geojson=True) for e in page.entities]
        body: Any = {"type": "FeatureCollection", "features": features}
    else:
        body = [views.render(e, ctx, view) for e in page.entities]
    return json_response(body, ctx, media, headers=headers)


async def retrieve_entity(request: Request) -> Response:
    broker = _broker(request)
    media = negotiate(request.headers.get("accept"), geo=True)
    call = await make_call(request, broker)
    view = views.parse_view(call.context, _params(request))
    entity = await entities.retrieve(broker, call, request.path_params["entity_id"])
    body = views.render(entity, call.context, view, geojson=media == GEO_JSON)
    return json_response(body, call.context, media)


async def delete_entity(request: Request) -> Response:
    broker = _broker(request)
    call = await make_call(request, broker)
    await entities.delete(broker, call, request.path_params["entity_id"])
    return _no_content()


async def replace_entity(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    await entities.replace(broker, call, request.path_params["entity_id"], body)
    return _no_content()


async def merge_entity(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker, merge_patch=True)
    call = await make_call(request, broker, body)
    await entities.merge(broker, call, request.path_params["entity_id"], body)
    return _no_content()


async def append_attrs(request: Request) -> Response:
    broker = _broker(request)
    overwrite = "noOverwrite" not in _options(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    result = await entities.append_attrs(
        broker, call, request.path_params["entity_id"], body, overwrite=overwrite
    )
    return _update_result(result, call.context)


async def update_attrs(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    result = await entities.update_attrs(broker, call, request.path_params["entity_id"], body)
    return _update_result(result, call.context)


async def update_attr(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    path = request.path_params
    await entities.update_attr(broker, call, path["entity_id"], path["attr"], body)
    return _no_content()


async def replace_attr(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    path = request.path_params
    await entities.replace_attr(broker, call, path["entity_id"], path["attr"], body)
    return _no_content()


async def delete_attr(request: Request) -> Response:
    broker = _broker(request)
    call = await make_call(request, broker)
    params = request.query_params
    delete_all = params.get("deleteAll", "false")
    if delete_all not in ("true", "false"):
        raise BadRequestData("deleteAll must be true or false")
    path = request.path_params
    await entities.delete_attr(
        broker,
        call,
        path["entity_id"],
        path["attr"],
        dataset_id=params.get("datasetId"),
        delete_all=delete_all == "true",
    )
    return _no_content()


# -- batch -----------------------------------------------------------------------------


def _batch_response(result: batch.BatchResult, ctx: Any, *, created: bool) -> Response:
    if not result.complete:
        return json_response(result.render(), ctx, JSON, status=207)
    if created:
        return json_response(result.success, ctx, JSON, status=201)
    return _no_content()


async def batch_create(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    result = await batch.create(broker, call, body)
    return _batch_response(result, call.context, created=True)


async def batch_upsert(request: Request) -> Response:
    broker = _broker(request)
    options = _options(request)
    if {"update", "replace"} <= options:
        raise BadRequestData("options update and replace exclude each other")
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    result = await batch.upsert(broker, call, body, replace="update" not in options)
    if result.complete and result.created:
        return json_response(result.created, call.context, JSON, status=201)
    return _batch_response(result, call.context, created=False)


async def batch_update(request: Request) -> Response:
    broker = _broker(request)
    overwrite = "noOverwrite" not in _options(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    result = await batch.update(broker, call, body, overwrite=overwrite)
    return _batch_response(result, call.context, created=False)


async def batch_merge(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker, merge_patch=True)
    call = await make_call(request, broker, body)
    result = await batch.merge(broker, call, body)
    return _batch_response(result, call.context, created=False)


async def batch_delete(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker)
    call = await make_call(request, broker)
    result = await batch.delete(broker, call, body)
    return _batch_response(result, call.context, created=False)


async def batch_query(request: Request) -> Response:
    broker = _broker(request)
    media = negotiate(request.headers.get("accept"), geo=True)
    body = await read_json(request, broker)
    call = await make_call(request, broker, body)
    params = _params(request)
    selection, view_params = query.selection_from_body(broker, call, body, params)
    view = views.parse_view(call.context, {**params, **view_params})
    page = await query.run(broker, call, selection)
    return _entities_response(page, call.context, view, media)


# -- discovery -------------------------------------------------------------------------


def _details(request: Request) -> bool:
    raw = request.query_params.get("details", "false")
    if raw not in ("true", "false"):
        raise BadRequestData("details must be true or false")
    return raw == "true"


async def list_types(request: Request) -> Response:
    broker = _broker(request)
    media = negotiate(request.headers.get("accept"))
    call = await make_call(request, broker)
    body = await discovery.types(broker, call, details=_details(request))
    return json_response(body, call.context, media)


async def get_type(request: Request) -> Response:
    broker = _broker(request)
    media = negotiate(request.headers.get("accept"))
    call = await make_call(request, broker)
    body = await discovery.type_info(broker, call, request.path_params["type"])
    return json_response(body, call.context, media)


async def list_attributes(request: Request) -> Response:
    broker = _broker(request)
    media = negotiate(request.headers.get("accept"))
    call = await make_call(request, broker)
    body = await discovery.attributes(broker, call, details=_details(request))
    return json_response(body, call.context, media)


async def get_attribute(request: Request) -> Response:
    broker = _broker(request)
    media = negotiate(request.headers.get("accept"))
    call = await make_call(request, broker)
    body = await discovery.attribute_info(broker, call, request.path_params["attr"])
    return json_response(body, call.context, media)


# -- @context documents ----------------------------------------------------------------


async def add_context(request: Request) -> Response:
    broker = _broker(request)
    body = await read_json(request, broker)
    url = await jsonld.add(broker, body, base=str(request.base_url).rstrip("/") + PREFIX)
    return Response(status_code=201, headers={"Location": url})


async def list_contexts(request: Request) -> Response:
    broker = _broker(request)
    params = request.query_params
    body = await jsonld.listing(
        broker,
        base=str(request.base_url).rstrip("/") + PREFIX,
        details=_details(request),
        kind=params.get("kind"),
    )
    return Response(orjson.dumps(body), media_type=JSON)


async def get_context(request: Request) -> Response:
    broker = _broker(request)
    body = await jsonld.retrieve(
        broker,
        request.path_params["context_id"],
        base=str(request.base_url).rstrip("/") + PREFIX,
        details=_details(request),
    )
    return Response(orjson.dumps(body), media_type="application/ld+json")


async def delete_context(request: Request) -> Response:
    broker = _broker(request)
    reload = request.query_params.get("reload", "false")
    if reload not in ("true", "false"):
        raise BadRequestData("reload must be true or false")
    await jsonld.delete(broker, request.path_params["context_id"], reload=reload == "true")
    return _no_content()


class EntityIdConvertor(Convertor[str]):
    """An entity id in a path: a URI, which may hold '/', but never a '/attrs' segment."""

    regex = r"(?:(?!/attrs(?:/|$)).)+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("entity_id", EntityIdConvertor())

ENTITY = PREFIX + "/entities/{entity_id:entity_id}"

# The hottest routes come first: Starlette tries them in order.
routes = [
    Route(ENTITY, retrieve_entity, methods=["GET"]),
    Route(ENTITY + "/attrs/{attr}", update_attr, methods=["PATCH"]),
    Route(PREFIX + "/entities", query_entities, methods=["GET"]),
    Route(PREFIX + "/entities", create_entity, methods=["POST"]),
    Route(ENTITY + "/attrs/{attr}", replace_attr, methods=["PUT"]),
    Route(ENTITY + "/attrs/{attr}", delete_attr, methods=["DELETE"]),
    Route(ENTITY + "/attrs", append_attrs, methods=["POST"]),
    Route(ENTITY + "/attrs", update_attrs, methods=["PATCH"]),
    Route(ENTITY, delete_entity, methods=["DELETE"]),
    Route(ENTITY, replace_entity, methods=["PUT"]),
    Route(ENTITY, merge_entity, methods=["PATCH"]),
    Route(PREFIX + "/entityOperations/create", batch_create, methods=["POST"]),
    Route(PREFIX + "/entityOperations/upsert", batch_upsert, methods=["POST"]),
    Route(PREFIX + "/entityOperations/update", batch_update, methods=["POST"]),
    Route(PREFIX + "/entityOperations/merge", batch_merge, methods=["POST"]),
    Route(PREFIX + "/entityOperations/delete", batch_delete, methods=["POST"]),
    Route(PREFIX + "/entityOperations/query", batch_query, methods=["POST"]),
    Route(PREFIX + "/types", list_types, methods=["GET"]),
    Route(PREFIX + "/types/{type}", get_type, methods=["GET"]),
    Route(PREFIX + "/attributes", list_attributes, methods=["GET"]),
    Route(PREFIX + "/attributes/{attr}", get_attribute, methods=["GET"]),
    Route(PREFIX + "/jsonldContexts", list_contexts, methods=["GET"]),
    Route(PREFIX + "/jsonldContexts", add_context, methods=["POST"]),
    Route(PREFIX + "/jsonldContexts/{context_id:path}", get_context, methods=["GET"]),
    Route(PREFIX + "/jsonldContexts/{context_id:path}", delete_context, methods=["DELETE"]),
]
