"""Entity operations of GS CIM 009 clause 5.6 and 5.7.1, as plain functions over a store.

Each operation builds a mutation (stored entity -> new entity) from the parsed request
and hands it to ``store.mutate``, so that every read-modify-write is atomic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cityverse.broker import attrs as algebra
from cityverse.broker.gate import check_readable, guarded
from cityverse.broker.request import Broker, Call
from cityverse.core.context import Context
from cityverse.core.entity import (
    iso_now,
    parse_attribute,
    parse_attributes,
    parse_entity,
    valid_name,
    valid_uri,
)
from cityverse.core.errors import (
    AlreadyExists,
    BadRequestData,
    NgsiError,
    ResourceNotFound,
)
from cityverse.core.model import Entity, Instance
from cityverse.store.base import Change, Mutation

Keeping = Callable[[Entity | None], Entity]
"""A mutation that never deletes: it returns the entity to store."""


@dataclass
class UpdateResult:
    """Which attributes an update changed and which it did not, with why (5.2.18)."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.not_updated

    def render(self, ctx: Context) -> dict[str, Any]:
        """The UpdateResult body, names compacted with the request's @context."""
        return {
            "updated": [ctx.compact(name) for name in self.updated],
            "notUpdated": [
                {"attributeName": ctx.compact(name), "reason": reason}
                for name, reason in self.not_updated
            ],
        }


def check_entity_id(entity_id: str) -> str:
    """The id if it is a URI, else BadRequestData (4.5.1: entity ids are URIs). Its
    length is not checked here: a write checks it (``store/changes.py``)."""
    if not valid_uri(entity_id, any_length=True):
        raise BadRequestData(f"entity id {entity_id!r} is not a valid URI")
    return entity_id


def attribute_name(call: Call, name: str) -> str:
    """The expanded name of an attribute named in a URL, after checking it."""
    if not valid_name(name):
        raise BadRequestData(f"invalid attribute name {name!r}")
    return call.context.expand(name)


async def _apply(broker: Broker, call: Call, entity_id: str, mutation: Mutation) -> Entity | None:
    change = Change(entity_id, guarded(call.gate, mutation))
    [outcome] = await broker.store.mutate(call.tenant, [change])
    if outcome.error is not None:
        raise outcome.error
    broker.tenant_written(call.tenant)
    return outcome.new


def _existing(entity_id: str, current: Entity | None) -> Entity:
    if current is None:
        raise ResourceNotFound(f"entity {entity_id!r} not found", instance=entity_id)
    return current


# -- create, retrieve, delete, replace, merge ------------------------------------------


def creation(entity: Entity) -> Keeping:
    """The mutation that creates ``entity`` and fails if its id exists (5.6.1)."""

    def apply(current: Entity | None) -> Entity:
        if current is not None:
            raise AlreadyExists(f"entity {entity['id']!r} already exists", instance=entity["id"])
        return entity

    return apply


async def create(broker: Broker, call: Call, body: Any) -> str:
    """Create Entity (5.6.1); returns the new entity's id."""
    entity = parse_entity(body, call.context, now=iso_now())
    await _apply(broker, call, entity["id"], creation(entity))
    return str(entity["id"])


async def retrieve(broker: Broker, call: Call, entity_id: str) -> Entity:
    """Retrieve Entity (5.7.1): the stored entity, for a view to render."""
    check_entity_id(entity_id)
    await broker.check_tenant(call.tenant)
    entity = _existing(entity_id, await broker.store.get(call.tenant, entity_id))
    return check_readable(call.gate, entity_id, entity)


async def delete(broker: Broker, call: Call, entity_id: str) -> None:
    """Delete Entity (5.6.6)."""
    check_entity_id(entity_id)
    await broker.check_tenant(call.tenant)

    def apply(current: Entity | None) -> None:
        _existing(entity_id, current)
        return None

    await _apply(broker, call, entity_id, apply)


def replacement(entity: Entity) -> Keeping:
    """The mutation that replaces a stored entity whole, keeping its creation time (5.6.18)."""

    def apply(current: Entity | None) -> Entity:
        current = _existing(entity["id"], current)
        return _replaced(current, entity)

    return apply


def _replaced(current: Entity, entity: Entity) -> Entity:
    new = dict(entity)
    new["createdAt"] = current["createdAt"]
    return new


async def replace(broker: Broker, call: Call, entity_id: str, body: Any) -> None:
    """Replace Entity (5.6.18): PUT /entities/{id}."""
    check_entity_id(entity_id)
    body = _with_identity(body, entity_id)
    entity = parse_entity(body, call.context, now=iso_now())
    await _apply(broker, call, entity_id, replacement(entity))


def _with_identity(body: Any, entity_id: str, type_required: bool = True) -> Any:
    if not isinstance(body, dict):
        raise BadRequestData("the body must be a JSON object")
    given = body.get("id")
    if given is not None and given != entity_id:
        raise BadRequestData(f"the body's id {given!r} differs from the URL's {entity_id!r}")
    if "id" not in body:
        body = {**body, "id": entity_id}
    if type_required and "type" not in body:
        raise BadRequestData("the entity has no type")
    return body


def merging(call_context: Context, body: dict[str, Any], now: str) -> Keeping:
    """The merge-patch mutation of Merge Entity (5.6.17)."""
    patch = parse_attributes(body, call_context, now=now, allow_null=True)
    new_types = _parse_types(body.get("type"), call_context)
    new_scope = _parse_scope(body)

    def apply(current: Entity | None) -> Entity:
        cur = _existing(str(body["id"]), current)
        new = dict(cur)
        if new_types:
            new["type"] = list(dict.fromkeys([*cur["type"], *new_types]))
        if new_scope is not None:
            if new_scope:
                new["scope"] = new_scope
            else:
                new.pop("scope", None)
        attributes = dict(cur["attrs"])
        for name, instances in patch.items():
            if not instances or all(algebra.is_null(i) for i in instances):
                attributes.pop(name, None)
                continue
            if name in attributes:
                attributes[name] = algebra.merge_instances(attributes[name], instances)
            else:
                attributes[name] = instances
        new["attrs"] = attributes
        new["modifiedAt"] = now
        return new

    return apply


async def merge(broker: Broker, call: Call, entity_id: str, body: Any) -> None:
    """Merge Entity (5.6.17): PATCH /entities/{id}."""
    check_entity_id(entity_id)
    body = _with_identity(body, entity_id, type_required=False)
    await _apply(broker, call, entity_id, merging(call.context, body, iso_now()))


def _parse_types(raw: Any, ctx: Context) -> list[str]:
    if raw is None:
        return []
    names = raw if isinstance(raw, list) else [raw]
    if not names or not all(isinstance(t, str) and valid_name(t) for t in names):
        raise BadRequestData(f"invalid entity type {raw!r}")
    return [ctx.expand(t) for t in names]


def _parse_scope(body: dict[str, Any]) -> list[str] | None:
    if "scope" not in body:
        return None
    raw = body["scope"]
    if raw == algebra.NGSI_LD_NULL:
        return []
    scopes = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(s, str) and s.startswith("/") for s in scopes):
        raise BadRequestData(f"invalid scope {raw!r}: scopes are strings like '/Berkane/Centre'")
    return scopes


# -- attribute operations -------------------------------------------------------------


def appending(
    entity_id: str,
    patch: dict[str, list[Instance]],
    now: str,
    *,
    overwrite: bool,
    result: UpdateResult,
) -> Keeping:
    """Append Entity Attributes (5.6.3): add attributes, replace existing ones unless not
    ``overwrite``."""

    def apply(current: Entity | None) -> Entity:
        cur = _existing(entity_id, current)
        attributes = dict(cur["attrs"])
        result.updated.clear()
        result.not_updated.clear()
        for name, instances in patch.items():
            stored = attributes.get(name)
            if stored is None:
                attributes[name] = algebra.ordered(list(instances))
                result.updated.append(name)
                continue
            clashes = [i for i in instances if algebra.find(stored, i.get("datasetId")) >= 0]
            if clashes and not overwrite:
                result.not_updated.append((name, "attribute exists and noOverwrite was asked"))
                continue
            attributes[name] = algebra.replace_instances(stored, instances)
            result.updated.append(name)
        if not result.updated:
            return cur
        return {**cur, "attrs": attributes, "modifiedAt": now}

    return apply


async def append_attrs(
    broker: Broker, call: Call, entity_id: str, body: Any, *, overwrite: bool = True
) -> UpdateResult:
    """Append Entity Attributes (5.6.3): POST /entities/{id}/attrs."""
    check_entity_id(entity_id)
    now = iso_now()
    patch = _attributes_of(body, call.context, now)
    result = UpdateResult()
    await _apply(
        broker,
        call,
        entity_id,
        appending(entity_id, patch, now, overwrite=overwrite, result=result),
    )
    return result


def _attributes_of(body: Any, ctx: Context, now: str) -> dict[str, list[Instance]]:
    if not isinstance(body, dict):
        raise BadRequestData("the body must be a JSON object of attributes")
    if "id" in body and not isinstance(body["id"], str):
        raise BadRequestData("'id' must be a string")
    return parse_attributes(body, ctx, now=now)


def updating(
    entity_id: str, patch: dict[str, list[Instance]], now: str, result: UpdateResult
) -> Keeping:
    """Update Entity Attributes (5.6.2): replace only attributes (and instances) that exist."""

    def apply(current: Entity | None) -> Entity:
        cur = _existing(entity_id, current)
        attributes = dict(cur["attrs"])
        result.updated.clear()
        result.not_updated.clear()
        for name, instances in patch.items():
            stored = attributes.get(name)
            if stored is None:
                result.not_updated.append((name, "attribute does not exist"))
                continue
            missing = [i for i in instances if algebra.find(stored, i.get("datasetId")) < 0]
            if missing:
                dataset = missing[0].get("datasetId", "default")
                result.not_updated.append((name, f"no instance with datasetId {dataset}"))
                continue
            attributes[name] = algebra.replace_instances(stored, instances)
            result.updated.append(name)
        if not result.updated:
            return cur
        return {**cur, "attrs": attributes, "modifiedAt": now}

    return apply


async def update_attrs(broker: Broker, call: Call, entity_id: str, body: Any) -> UpdateResult:
    """Update Entity Attributes (5.6.2): PATCH /entities/{id}/attrs."""
    check_entity_id(entity_id)
    now = iso_now()
    patch = _attributes_of(body, call.context, now)
    result = UpdateResult()
    await _apply(broker, call, entity_id, updating(entity_id, patch, now, result))
    return result


async def update_attr(broker: Broker, call: Call, entity_id: str, name: str, body: Any) -> None:
    """Partial Attribute Update (5.6.4): PATCH /entities/{id}/attrs/{attrId}."""
    check_entity_id(entity_id)
    expanded = attribute_name(call, name)
    now = iso_now()
    if not isinstance(body, dict):
        raise BadRequestData("the body must be a JSON object: an attribute fragment")
    if isinstance(body.get("datasetId"), list):
        raise BadRequestData("datasetId must be a string")

    def apply(current: Entity | None) -> Entity:
        cur = _existing(entity_id, current)
        stored = cur["attrs"].get(expanded)
        dataset_id = body.get("datasetId")
        index = algebra.find(stored, dataset_id) if stored else -1
        if stored is None or index < 0:
            which = f" with datasetId {dataset_id!r}" if dataset_id else ""
            raise ResourceNotFound(f"entity {entity_id!r} has no attribute {name!r}{which}")
        fragment = body if "type" in body else {**body, "type": stored[index]["type"]}
        [patch] = parse_attribute(name, fragment, call.context, now=now)
        instances = list(stored)
        instances[index] = algebra.merge_instance(stored[index], patch)
        return {**cur, "attrs": {**cur["attrs"], expanded: instances}, "modifiedAt": now}

    await _apply(broker, call, entity_id, apply)


async def replace_attr(broker: Broker, call: Call, entity_id: str, name: str, body: Any) -> None:
    """Replace Attribute (5.6.19): PUT /entities/{id}/attrs/{attrId}."""
    check_entity_id(entity_id)
    expanded = attribute_name(call, name)
    now = iso_now()
    new = parse_attribute(name, body, call.context, now=now)

    def apply(current: Entity | None) -> Entity:
        cur = _existing(entity_id, current)
        stored = cur["attrs"].get(expanded)
        if stored is None or any(algebra.find(stored, i.get("datasetId")) < 0 for i in new):
            raise ResourceNotFound(f"entity {entity_id!r} has no attribute {name!r} to replace")
        instances = algebra.replace_instances(stored, new)
        return {**cur, "attrs": {**cur["attrs"], expanded: instances}, "modifiedAt": now}

    await _apply(broker, call, entity_id, apply)


async def delete_attr(
    broker: Broker,
    call: Call,
    entity_id: str,
    name: str,
    *,
    dataset_id: str | None = None,
    delete_all: bool = False,
) -> None:
    """Delete Entity Attribute (5.6.5), one instance by datasetId or all of them."""
    check_entity_id(entity_id)
    expanded = attribute_name(call, name)
    now = iso_now()
    await broker.check_tenant(call.tenant)

    def apply(current: Entity | None) -> Entity:
        cur = _existing(entity_id, current)
        stored = cur["attrs"].get(expanded)
        if stored is None:
            raise ResourceNotFound(f"entity {entity_id!r} has no attribute {name!r}")
        attributes = dict(cur["attrs"])
        if delete_all:
            del attributes[expanded]
        else:
            index = algebra.find(stored, dataset_id)
            if index < 0:
                which = f"datasetId {dataset_id!r}" if dataset_id else "a default instance"
                raise ResourceNotFound(f"attribute {name!r} of {entity_id!r} has no {which}")
            remaining = [inst for i, inst in enumerate(stored) if i != index]
            if remaining:
                attributes[expanded] = remaining
            else:
                del attributes[expanded]
        return {**cur, "attrs": attributes, "modifiedAt": now}

    await _apply(broker, call, entity_id, apply)


def ids_of(entities: Iterable[Entity]) -> list[str]:
    """The ids of the entities, in order."""
    return [e["id"] for e in entities]


def error_of(exc: Exception) -> NgsiError:
    """An NgsiError for any exception raised while handling one entity."""
    if isinstance(exc, NgsiError):
        return exc
    return NgsiError(str(exc))
