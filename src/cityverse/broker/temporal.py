"""Temporal operations of GS CIM 009 v1.8 (5.6.11 to 5.6.16, 5.7.3 and 5.7.4) over the
store's history.

History is written by every entity change (store/history.py); these operations read it
in the three temporal representations and let a client add, amend or delete it::

    request = parse_request(call, params)                       # window, lastN, view
    answer = await retrieve(broker, call, "urn:ngsi-ld:Sensor:1", request)
    answer.body, answer.range                                   # range set: 206 partial

Each attribute answers at most ``Settings.temporal_max_instances`` instances; when one
is cut, every attribute is clipped to the same time range and the answer carries it
(Content-Range, clause 6.3.10).

The caller's gate (``call.gate``) applies as to entity reads and writes: an entity of a
type it may not read does not exist for it (a retrieval answers 404, a query skips it),
an attribute it may not read is left out and a personal one shows pseudonyms (in the
aggregated representation, only its counts). Every change to history (create, append,
modify an instance) needs ``may_write`` on the entity's types; every deletion of
history (the entity's, an attribute's, an instance) needs ``may_write(delete=True)``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from cityverse.broker.entities import attribute_name, check_entity_id
from cityverse.broker.gate import Readable, check_write, pseudonymised
from cityverse.broker.query import AnyOf, Selection
from cityverse.broker.request import Broker, Call, Gate
from cityverse.broker.views import parse_options, parse_view
from cityverse.core.entity import iso_now, valid_uri
from cityverse.core.errors import (
    BadRequestData,
    Forbidden,
    OperationNotSupported,
    ResourceNotFound,
)
from cityverse.core.model import Entity, Instance
from cityverse.core.query import TypeExpr
from cityverse.core.temporal import (
    AGGREGATED_VALUES,
    CONCISE,
    TEMPORAL_VALUES,
    Range,
    Shown,
    TemporalQuery,
    clip,
    cut_range,
    merge_ranges,
    parse_temporal_attribute,
    parse_temporal_attributes,
    parse_temporal_entity,
    parse_temporal_query,
    render_aggregated,
    render_temporal,
    render_temporal_values,
)
from cityverse.store.base import EntityFilter, Predicate
from cityverse.store.temporal import (
    AttributeHistory,
    Bucket,
    HistoryEntity,
    Period,
    TemporalStore,
    TimeWindow,
)

_TEMPORAL_METHODS = ("history_entities", "instances", "aggregate", "append_history")


@dataclass(frozen=True, slots=True)
class TemporalRequest:
    """A parsed temporal read: the query, the attributes asked for and how to show them.

    ``attrs`` is what ``attrs`` and ``pick`` keep (None: every attribute), ``omit``
    what is left out; ``keep_id``/``keep_type`` say whether ``pick``/``omit`` keep the
    entity's ``id`` and ``type``.
    """

    query: TemporalQuery
    attrs: frozenset[str] | None = None
    sys_attrs: bool = False
    lang: str | None = None
    omit: frozenset[str] = frozenset()
    keep_id: bool = True
    keep_type: bool = True


@dataclass(slots=True)
class TemporalAnswer:
    """Rendered temporal entities; ``range`` is set when instances were cut (206)."""

    body: Any
    range: Range | None = None
    total: int | None = None


def history(broker: Broker) -> TemporalStore:
    """The store's history, or OperationNotSupported for a store that keeps none."""
    store = broker.store
    if not all(hasattr(store, name) for name in _TEMPORAL_METHODS):
        raise OperationNotSupported(
            f"the {type(store).__name__} store keeps no history: the temporal API is off"
        )
    return cast(TemporalStore, store)


def parse_request(
    call: Call, params: Mapping[str, Any], *, attrs: str | None = None
) -> TemporalRequest:
    """The temporal request of URL parameters (or of a query body's ``temporalQ`` merged
    with them); ``attrs`` overrides the ``attrs`` parameter. ``pick`` and ``omit``
    (v1.8) name attributes, ``id`` and ``type``, comma-separated."""
    options = parse_options(params.get("options"))
    query = parse_temporal_query(params, options)
    raw_attrs = attrs if attrs is not None else params.get("attrs")
    projection = {"attrs": raw_attrs, "pick": params.get("pick"), "omit": params.get("omit")}
    for key in ("pick", "omit"):
        raw = projection[key]
        if raw is None:
            continue
        if not isinstance(raw, str) or not raw:
            raise BadRequestData(f"{key} must name attributes, id or type, comma-separated")
        try:
            parse_view(call.context, {key: raw})
        except BadRequestData as exc:
            raise BadRequestData(f"{key}: {exc.detail}") from None
    view = parse_view(call.context, {k: v for k, v in projection.items() if v})
    lang = params.get("lang")
    if lang is not None and (not isinstance(lang, str) or not lang):
        raise BadRequestData("lang must be a language tag, a list of them, or *")
    return TemporalRequest(
        query,
        view.attrs,
        "sysAttrs" in options,
        lang,
        view.omit or frozenset(),
        view.keep_id,
        view.keep_type,
    )


def body_params(body: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """The temporal parameters of a query body (``temporalQ``, 5.2.21) under the URL's."""
    temporal_q = body.get("temporalQ") if isinstance(body, dict) else None
    if temporal_q is None:
        return dict(params)
    if not isinstance(temporal_q, dict):
        raise BadRequestData("temporalQ must be an object (TemporalQuery)")
    known = {"timerel", "timeAt", "endTimeAt", "timeproperty", "lastN"}
    known |= {"aggrMethods", "aggrPeriodDuration"}
    unknown = sorted(set(temporal_q) - known)
    if unknown:
        raise BadRequestData(f"unknown temporalQ member(s): {', '.join(unknown)}")
    return {**temporal_q, **params}


# -- reading -----------------------------------------------------------------------------


def _window(query: TemporalQuery) -> TimeWindow:
    w = query.window
    return TimeWindow(w.prop, w.start, w.end)


def _period(query: TemporalQuery) -> Period | None:
    if query.period is None:
        return None
    return Period(months=query.period.months, millis=query.period.millis)


async def _read(
    broker: Broker, call: Call, entity: HistoryEntity, request: TemporalRequest
) -> tuple[HistoryEntity, Any]:
    store = history(broker)
    query = request.query
    found: dict[str, Any]
    if query.representation == AGGREGATED_VALUES:
        found = await store.aggregate(
            call.tenant,
            entity.id,
            request.attrs,
            _window(query),
            _period(query),
            frozenset(query.methods),
        )
    else:
        found = await store.instances(
            call.tenant,
            entity.id,
            request.attrs,
            _window(query),
            last_n=query.last_n,
            limit=broker.settings.temporal_max_instances,
        )
    for name in request.omit.intersection(found):
        del found[name]
    if call.gate.restricted:
        found = _gated(call.gate, entity.types, found)
    return entity, found


_VALUE_METHODS = frozenset({"sum", "avg", "min", "max", "stddev", "sumsq"})
"""Aggregation methods whose results tell about the values (not shown for personal ones)."""


def _gated(gate: Gate, types: list[str], found: dict[str, Any]) -> dict[str, Any]:
    """The attributes read as the gate lets the caller see them."""
    out: dict[str, Any] = {}
    for name, got in found.items():
        treatment = gate.attribute(types, name)
        if treatment == "show":
            out[name] = got
        elif treatment == "pseudonymise":
            out[name] = _pseudonymised(gate, got)
    return out


def _pseudonymised(gate: Gate, got: Any) -> Any:
    if isinstance(got, AttributeHistory):
        # A deletion shows the NGSI-LD Null, which tells nothing about the value.
        instances = [
            i if i.get("deletedAt") is not None else pseudonymised(gate, i) for i in got.instances
        ]
        return dataclasses.replace(got, instances=instances)
    buckets = cast(list[Bucket], got)
    return [
        dataclasses.replace(
            b, values={m: v for m, v in b.values.items() if m not in _VALUE_METHODS}
        )
        for b in buckets
    ]


async def _attribute_types(broker: Broker, call: Call, entity_id: str) -> dict[str, str]:
    # The aggregated representation names each attribute's type; the current entity
    # knows it, and an attribute it no longer holds is shown as a Property.
    current = await broker.store.get(call.tenant, entity_id)
    if current is None:
        return {}
    return {name: instances[0]["type"] for name, instances in current["attrs"].items()}


async def _render(
    broker: Broker,
    call: Call,
    read: list[tuple[HistoryEntity, Any]],
    request: TemporalRequest,
) -> tuple[list[dict[str, Any]], Range | None]:
    query = request.query
    ctx = call.context
    if query.representation == AGGREGATED_VALUES:
        kinds = await asyncio.gather(*(_attribute_types(broker, call, e.id) for e, _ in read))
        bodies = []
        for (entity, buckets), types in zip(read, kinds, strict=True):
            _disclosed(call, entity, buckets)
            bodies.append(
                render_aggregated(
                    entity.id,
                    entity.types,
                    buckets,
                    query.methods,
                    ctx,
                    attr_types=types,
                    shown=_shown(entity, request),
                )
            )
        return bodies, None
    where = merge_ranges(cut_range(found, query) for _, found in read)
    prop = query.window.prop
    bodies = []
    for entity, found in read:
        attrs: dict[str, list[Instance]] = {}
        for name, series in cast(dict[str, AttributeHistory], found).items():
            instances = series.instances if where is None else clip(series.instances, where, prop)
            if instances:
                attrs[name] = instances
        _disclosed(call, entity, attrs)
        shown = _shown(entity, request)
        if query.representation == TEMPORAL_VALUES:
            body = render_temporal_values(
                entity.id, entity.types, attrs, ctx, prop=prop, shown=shown
            )
        else:
            body = render_temporal(
                entity.id,
                entity.types,
                attrs,
                ctx,
                prop=prop,
                lang=request.lang,
                concise=query.representation == CONCISE,
                shown=shown,
            )
        bodies.append(body)
    return bodies, where


def _shown(entity: HistoryEntity, request: TemporalRequest) -> Shown:
    return Shown(
        scope=entity.scope,
        deleted_at=entity.deleted_at,
        sys_attrs=request.sys_attrs,
        keep_id=request.keep_id,
        keep_type=request.keep_type,
    )


def _disclosed(call: Call, entity: HistoryEntity, attrs: Mapping[str, Any]) -> None:
    """Tell the gate which attributes an answer shows as they are (it notes the
    personal ones for the audit)."""
    gate = call.gate
    if gate.restricted:
        for name, shown in attrs.items():
            if shown and gate.attribute(entity.types, name) == "show":
                gate.disclosed(entity.id, name)


async def _history_entity(broker: Broker, call: Call, entity_id: str) -> HistoryEntity | None:
    page = await history(broker).history_entities(
        call.tenant, EntityFilter(ids=frozenset({entity_id})), limit=1
    )
    return page.entities[0] if page.entities else None


async def _existing(broker: Broker, call: Call, entity_id: str) -> HistoryEntity:
    """The entity's history, or 404 when it has none or the caller may not see it."""
    check_entity_id(entity_id)
    await broker.check_tenant(call.tenant)
    entity = await _history_entity(broker, call, entity_id)
    if entity is None or (call.gate.restricted and call.gate.hides(entity.types)):
        raise ResourceNotFound(f"entity {entity_id!r} has no history", instance=entity_id)
    return entity


async def _writable(
    broker: Broker, call: Call, entity_id: str, *, delete: bool = False
) -> HistoryEntity | None:
    """The entity's history after checking that the caller may change it (or delete
    from it); None without a check when the caller may change everything."""
    if not call.gate.restricted:
        return None
    entity = await _existing(broker, call, entity_id)
    if not call.gate.may_write(entity.types, delete=delete):
        raise Forbidden(f"not allowed to change the history of {entity_id!r}")
    return entity


async def retrieve(
    broker: Broker, call: Call, entity_id: str, request: TemporalRequest
) -> TemporalAnswer:
    """Retrieve Temporal Evolution of an Entity (5.7.3)."""
    entity = await _existing(broker, call, entity_id)
    read = [await _read(broker, call, entity, request)]
    bodies, where = await _render(broker, call, read, request)
    return TemporalAnswer(bodies[0], where)


def _plain_types(predicate: Predicate | None) -> bool:
    # A type selection without ';' is exactly "has one of its names" (type selections
    # have no negation, so one name alone matching means every entity with it matches).
    return isinstance(predicate, TypeExpr) and all(
        predicate.matches({"type": [name]}) for name in predicate.names
    )


@dataclass(frozen=True, slots=True)
class _OnEntity:
    """A predicate on the entity's id and types only: the store tests it without
    rebuilding any attribute's history (``attribute_names`` is empty)."""

    predicate: Predicate
    attribute_names: frozenset[str] = frozenset()

    def matches(self, entity: Entity) -> bool:
        return self.predicate.matches(entity)


def history_filter(flt: EntityFilter) -> EntityFilter:
    """The filter with the selection by id and type moved out of its predicates.

    Ids, idPattern and type names the store tests on the history itself, so that a
    temporal query by type finds every entity with history at the cost of an index
    lookup; what is left of a selection by id and type is marked as reading no
    attribute, so that the store tests it without rebuilding past states.
    """
    predicates: list[Predicate] = []
    ids, pattern = flt.ids, flt.id_pattern
    for predicate in flt.predicates:
        if _plain_types(predicate):
            continue
        one_of = isinstance(predicate, AnyOf) and len(predicate.selectors) == 1
        if one_of and ids is None and pattern is None:
            [one] = cast(AnyOf, predicate).selectors
            if one.types is not None and not _plain_types(one.types):
                predicates.append(one.types)
            if one.entity_id is not None:
                ids = frozenset({one.entity_id})
            pattern = one.id_pattern
            continue
        if isinstance(predicate, AnyOf) and all(
            s.entity_id is None and s.id_pattern is None and _plain_types(s.types)
            for s in predicate.selectors
        ):
            continue
        predicates.append(_OnEntity(predicate) if isinstance(predicate, AnyOf) else predicate)
    return EntityFilter(
        type_names=flt.type_names,
        ids=ids,
        id_pattern=pattern,
        attrs=flt.attrs,
        predicates=tuple(predicates),
    )


async def query(
    broker: Broker, call: Call, selection: Selection, request: TemporalRequest
) -> TemporalAnswer:
    """Query Temporal Evolution of Entities (5.7.4), by URL parameters or a Query body."""
    store = history(broker)
    await broker.check_tenant(call.tenant)
    flt = history_filter(selection.filter)
    if call.gate.restricted:
        flt = dataclasses.replace(flt, predicates=(Readable(call.gate), *flt.predicates))
    page = await store.history_entities(
        call.tenant,
        flt,
        limit=selection.limit,
        offset=selection.offset,
        count=selection.count,
        window=_window(request.query),
    )
    read = await asyncio.gather(*(_read(broker, call, e, request) for e in page.entities))
    bodies, where = await _render(broker, call, list(read), request)
    return TemporalAnswer(bodies, where, page.total)


# -- writing -----------------------------------------------------------------------------


async def create(broker: Broker, call: Call, body: Any) -> tuple[str, bool]:
    """Create or Update Temporal Representation of an Entity (5.6.11): adds the
    instances to the entity's history; returns its id and whether it is new."""
    store = history(broker)
    entity_id, types, attrs = parse_temporal_entity(body, call.context, now=iso_now())
    known = await _history_entity(broker, call, entity_id)
    if call.gate.restricted:
        if known is not None and call.gate.hides(known.types):
            raise ResourceNotFound(f"entity {entity_id!r} not found", instance=entity_id)
        before = None if known is None else {"type": known.types}
        check_write(call.gate, before, {"type": types})
    await store.append_history(call.tenant, entity_id, types, attrs)
    broker.tenant_written(call.tenant)
    return entity_id, known is None


async def append_attrs(broker: Broker, call: Call, entity_id: str, body: Any) -> None:
    """Add Attributes to Temporal Representation of an Entity (5.6.12)."""
    if isinstance(body, dict) and body.get("id", entity_id) != entity_id:
        raise BadRequestData(f"the body's id {body['id']!r} differs from the URL's {entity_id!r}")
    attrs = parse_temporal_attributes(body, call.context, now=iso_now())
    entity = await _existing(broker, call, entity_id)
    if call.gate.restricted and not call.gate.may_write(entity.types):
        raise Forbidden(f"not allowed to change the history of {entity_id!r}")
    await history(broker).append_history(call.tenant, entity_id, entity.types, attrs)


async def delete(broker: Broker, call: Call, entity_id: str) -> None:
    """Delete Temporal Representation of an Entity (5.6.16)."""
    check_entity_id(entity_id)
    await broker.check_tenant(call.tenant)
    await _writable(broker, call, entity_id, delete=True)
    if not await history(broker).delete_history(call.tenant, entity_id):
        raise ResourceNotFound(f"entity {entity_id!r} has no history", instance=entity_id)


async def delete_attr(
    broker: Broker,
    call: Call,
    entity_id: str,
    name: str,
    *,
    dataset_id: str | None = None,
    delete_all: bool = False,
) -> None:
    """Delete Attribute from Temporal Representation of an Entity (5.6.13)."""
    check_entity_id(entity_id)
    expanded = attribute_name(call, name)
    if dataset_id is not None and not valid_uri(dataset_id):
        raise BadRequestData(f"datasetId {dataset_id!r} is not a URI")
    await broker.check_tenant(call.tenant)
    await _writable(broker, call, entity_id, delete=True)
    deleted = await history(broker).delete_history(
        call.tenant, entity_id, expanded, dataset_id=dataset_id, delete_all=delete_all
    )
    if not deleted:
        which = f" with datasetId {dataset_id!r}" if dataset_id else ""
        raise ResourceNotFound(f"entity {entity_id!r} has no history of {name!r}{which}")


def _instance_id(instance_id: str) -> str:
    if not valid_uri(instance_id):
        raise BadRequestData(f"instanceId {instance_id!r} is not a URI")
    return instance_id


async def modify_instance(
    broker: Broker, call: Call, entity_id: str, name: str, instance_id: str, body: Any
) -> None:
    """Modify Attribute Instance in Temporal Representation of an Entity (5.6.14): the
    body (one instance, with observedAt) replaces it, keeping its instanceId."""
    check_entity_id(entity_id)
    expanded = attribute_name(call, name)
    _instance_id(instance_id)
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, dict):
        raise BadRequestData("the body must be one attribute instance (a JSON object)")
    instances = parse_temporal_attribute(name, body, call.context, now=iso_now())
    if len(instances) != 1:
        raise BadRequestData("the body must be one attribute instance, not several")
    await broker.check_tenant(call.tenant)
    await _writable(broker, call, entity_id)
    found = await history(broker).modify_instance(
        call.tenant, entity_id, expanded, instance_id, instances[0]
    )
    if not found:
        raise ResourceNotFound(
            f"entity {entity_id!r} has no instance {instance_id!r} of {name!r}",
            instance=instance_id,
        )


async def delete_instance(
    broker: Broker, call: Call, entity_id: str, name: str, instance_id: str
) -> None:
    """Delete Attribute Instance from Temporal Representation of an Entity (5.6.15)."""
    check_entity_id(entity_id)
    expanded = attribute_name(call, name)
    _instance_id(instance_id)
    await broker.check_tenant(call.tenant)
    await _writable(broker, call, entity_id, delete=True)
    if not await history(broker).delete_instance(call.tenant, entity_id, expanded, instance_id):
        raise ResourceNotFound(
            f"entity {entity_id!r} has no instance {instance_id!r} of {name!r}",
            instance=instance_id,
        )
