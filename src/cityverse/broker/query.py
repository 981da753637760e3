"""Query Entity (GS CIM 009 5.7.2) and the query body of 5.7.? (POST entityOperations/query).

A query arrives either as URL parameters or as a ``Query`` data type (5.2.23); both become
one ``Selection``: an EntityFilter for the store plus the paging asked for.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from cityverse.broker.entities import check_entity_id
from cityverse.broker.gate import Readable, visible_all
from cityverse.broker.request import Broker, Call
from cityverse.core.errors import BadRequestData, TooManyResults
from cityverse.core.geo import parse_geo_query
from cityverse.core.model import LOCATION, Entity
from cityverse.core.query import (
    compile_regex,
    parse_attr_list,
    parse_q,
    parse_scope_q,
    parse_type_expr,
)
from cityverse.store.base import EntityFilter, Page, Predicate


@dataclass(frozen=True, slots=True)
class Selector:
    """One EntityInfo of a query body (5.2.8): ids, idPattern and type together."""

    entity_id: str | None
    id_pattern: re.Pattern[str] | None
    types: Predicate | None

    def matches(self, entity: Entity) -> bool:
        if self.entity_id is not None and entity["id"] != self.entity_id:
            return False
        if self.id_pattern is not None and not self.id_pattern.fullmatch(entity["id"]):
            return False
        return self.types is None or self.types.matches(entity)


@dataclass(frozen=True, slots=True)
class AnyOf:
    """True when one of the selectors matches."""

    selectors: tuple[Selector, ...]

    def matches(self, entity: Entity) -> bool:
        return any(s.matches(entity) for s in self.selectors)


@dataclass(frozen=True, slots=True)
class Selection:
    """A parsed query: what to select and which page of it."""

    filter: EntityFilter
    limit: int
    offset: int
    count: bool


def compile_pattern(text: str) -> re.Pattern[str]:
    """An idPattern as a regular expression, or BadRequestData."""
    try:
        return compile_regex(text)
    except (re.error, RecursionError, OverflowError) as exc:
        raise BadRequestData(
            f"idPattern {text!r} is not a valid regular expression: {exc}"
        ) from None


def parse_paging(broker: Broker, params: dict[str, str]) -> tuple[int, int, bool]:
    """limit, offset and count from URL parameters (5.5.9 pagination)."""
    settings = broker.settings
    limit = _int_param(params, "limit", settings.default_limit)
    offset = _int_param(params, "offset", 0)
    count = _bool_param(params, "count")
    if limit < 0 or offset < 0:
        raise BadRequestData("limit and offset must not be negative")
    if limit == 0 and not count:
        raise BadRequestData("limit=0 is only allowed with count=true")
    if limit > settings.max_limit:
        raise TooManyResults(
            f"limit {limit} is above the maximum of {settings.max_limit}",
            maxLimit=settings.max_limit,
        )
    return limit, offset, count


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequestData(f"{name} must be an integer, not {raw!r}") from None


def _bool_param(params: dict[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise BadRequestData(f"{name} must be true or false, not {raw!r}")
    return raw == "true"


def selection_from_params(broker: Broker, call: Call, params: dict[str, str]) -> Selection:
    """The selection of GET /entities from its URL parameters."""
    expand = call.context.expand
    type_names: frozenset[str] | None = None
    predicates: list[Predicate] = []
    if "type" in params:
        types = parse_type_expr(params["type"], expand)
        type_names = types.names
        predicates.append(types)
    ids = None
    if "id" in params:
        id_list = [i for i in params["id"].split(",") if i]
        if not id_list:
            raise BadRequestData("id must list at least one entity id")
        ids = frozenset(check_entity_id(i) for i in id_list)
    pattern = compile_pattern(params["idPattern"]) if "idPattern" in params else None
    attrs = None
    if "attrs" in params:
        attrs = frozenset(parse_attr_list(params["attrs"], expand))
    if "q" in params:
        predicates.append(parse_q(params["q"], expand))
    if "scopeQ" in params:
        predicates.append(parse_scope_q(params["scopeQ"]))
    if "georel" in params or "geometry" in params or "coordinates" in params:
        predicates.append(_geo(call, params))
    if (
        type_names is None
        and ids is None
        and pattern is None
        and attrs is None
        and not predicates
        and params.get("local") != "true"
    ):
        raise BadRequestData(
            "a query needs at least one of type, id, idPattern, attrs, q, scopeQ or a geo-query"
            " (or local=true to list every entity)"
        )
    limit, offset, count = parse_paging(broker, params)
    flt = EntityFilter(
        type_names=type_names,
        ids=ids,
        id_pattern=pattern,
        attrs=attrs,
        predicates=tuple(predicates),
    )
    return Selection(flt, limit, offset, count)


def _geo(call: Call, params: dict[str, Any]) -> Predicate:
    missing = [p for p in ("georel", "geometry", "coordinates") if not params.get(p)]
    if missing:
        raise BadRequestData(
            "a geo-query needs georel, geometry and coordinates; missing: " + ", ".join(missing)
        )
    prop = params.get("geoproperty")
    geoproperty = call.context.expand(prop) if prop else LOCATION
    return parse_geo_query(params["georel"], params["geometry"], params["coordinates"], geoproperty)


def selection_from_body(
    broker: Broker, call: Call, body: Any, params: dict[str, str]
) -> tuple[Selection, dict[str, Any]]:
    """The selection of POST /entityOperations/query (a Query, 5.2.23), and its view
    parameters (attrs, pick, omit, lang) as URL-style strings."""
    if not isinstance(body, dict):
        raise BadRequestData("the query body must be a JSON object of type Query")
    if body.get("type") != "Query":
        raise BadRequestData('the query body must have "type": "Query"')
    expand = call.context.expand
    predicates: list[Predicate] = []
    type_names: set[str] | None = set()
    entities = body.get("entities")
    if entities is not None:
        if not isinstance(entities, list) or not entities:
            raise BadRequestData("entities must be a non-empty array of EntityInfo")
        selectors = []
        for info in entities:
            selector = _selector(info, expand)
            selectors.append(selector)
            names = getattr(selector.types, "names", None)
            if type_names is not None and names:
                type_names |= names
            else:
                type_names = None
        predicates.append(AnyOf(tuple(selectors)))
    else:
        type_names = None
    view: dict[str, Any] = {}
    attrs = None
    if "attrs" in body:
        raw = body["attrs"]
        if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
            raise BadRequestData("attrs must be an array of attribute names")
        attrs = frozenset(parse_attr_list(",".join(raw), expand)) if raw else None
        view["attrs"] = ",".join(raw)
    for key in ("pick", "omit"):
        if key in body:
            raw = body[key]
            if isinstance(raw, list) and not all(isinstance(a, str) for a in raw):
                raise BadRequestData(f"{key} must be an array of names")
            view[key] = ",".join(raw) if isinstance(raw, list) else raw
    if "lang" in body:
        view["lang"] = body["lang"]
    if "q" in body:
        if not isinstance(body["q"], str):
            raise BadRequestData("q must be a string")
        predicates.append(parse_q(body["q"], expand))
    if "scopeQ" in body:
        if not isinstance(body["scopeQ"], str):
            raise BadRequestData("scopeQ must be a string")
        predicates.append(parse_scope_q(body["scopeQ"]))
    if "geoQ" in body:
        geo = body["geoQ"]
        if not isinstance(geo, dict):
            raise BadRequestData("geoQ must be an object with georel, geometry and coordinates")
        predicates.append(_geo(call, geo))
    if entities is None and attrs is None and not predicates:
        raise BadRequestData("a query needs at least one of entities, attrs, q, scopeQ or geoQ")
    limit, offset, count = parse_paging(broker, params)
    flt = EntityFilter(
        type_names=frozenset(type_names) if type_names else None,
        attrs=attrs,
        predicates=tuple(predicates),
    )
    return Selection(flt, limit, offset, count), view


def _selector(info: Any, expand: Any) -> Selector:
    if not isinstance(info, dict):
        raise BadRequestData("each item of entities must be an object (EntityInfo)")
    entity_id = info.get("id")
    if entity_id is not None:
        if not isinstance(entity_id, str):
            raise BadRequestData("EntityInfo id must be a string")
        check_entity_id(entity_id)
    pattern = info.get("idPattern")
    if pattern is not None and not isinstance(pattern, str):
        raise BadRequestData("EntityInfo idPattern must be a string")
    types = info.get("type")
    if types is not None and not isinstance(types, str):
        raise BadRequestData("EntityInfo type must be a string")
    if entity_id is None and pattern is None and types is None:
        raise BadRequestData("EntityInfo needs at least one of id, idPattern or type")
    return Selector(
        entity_id,
        compile_pattern(pattern) if pattern is not None else None,
        parse_type_expr(types, expand) if types is not None else None,
    )


async def run(broker: Broker, call: Call, selection: Selection) -> Page:
    """Run a selection against the store."""
    await broker.check_tenant(call.tenant)
    flt = selection.filter
    if call.gate.restricted:
        # Hidden entities are neither on a page nor in the count: offsets and totals
        # are those of the entities the caller may read.
        flt = dataclasses.replace(flt, predicates=(*flt.predicates, Readable(call.gate)))
    page = await broker.store.query(
        call.tenant, flt, limit=selection.limit, offset=selection.offset, count=selection.count
    )
    if call.gate.restricted:
        page.entities = visible_all(call.gate, page.entities)
    return page
