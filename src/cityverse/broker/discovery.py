"""Discovery of types and attributes (GS CIM 009 5.7.5 to 5.7.10).

Answers are computed from the tenant's entities that the caller may see, as it may see
them, compacted with the request's @context. What the entities hold (types, attribute
names and kinds, counts) is kept per tenant and read again only after a write that may
have changed it (``EntityStore.shape_version``), so that a twin's measures do not make
every call read every entity.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cityverse.broker.request import Broker, Call, Gate
from cityverse.core.errors import ResourceNotFound
from cityverse.core.model import Entity
from cityverse.store.base import EntityFilter


@dataclass
class _TypeStats:
    count: int = 0
    attributes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


@dataclass
class _AttrStats:
    count: int = 0
    kinds: set[str] = field(default_factory=set)
    types: set[str] = field(default_factory=set)


@dataclass
class _Group:
    """The entities of one list of types: how many, and their instances per attribute
    and kind."""

    entities: int = 0
    attributes: dict[str, Counter[str]] = field(default_factory=dict)


Shape = dict[tuple[str, ...], _Group]
"""What discovery tells of a tenant, before the caller's gate: its entities grouped by
their list of types (a gate decides on the whole list)."""


def _shape(entities: list[Entity]) -> Shape:
    groups: Shape = {}
    for entity in entities:
        key = tuple(entity["type"])
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        group.entities += 1
        for name, instances in entity["attrs"].items():
            kinds = group.attributes.get(name)
            if kinds is None:
                kinds = group.attributes[name] = Counter()
            for instance in instances:
                kinds[instance["type"]] += 1
    return groups


async def _groups(broker: Broker, call: Call) -> Shape:
    """The tenant's shape, read again only when a write may have changed it: the version
    is read before the entities, so a shape is never newer than its version says."""
    await broker.check_tenant(call.tenant)
    version = await broker.store.shape_version(call.tenant)
    kept = broker.shapes.get(call.tenant)
    if kept is not None and kept[0] == version:
        shape: Shape = kept[1]
        return shape
    page = await broker.store.query(call.tenant, EntityFilter(), limit=None)
    shape = _shape(page.entities)
    broker.shapes[call.tenant] = (version, shape)
    return shape


def _seen(gate: Gate, shape: Shape) -> Iterator[tuple[tuple[str, ...], _Group]]:
    """Each group the caller may see, as it sees it: hidden types and attributes left
    out, pseudonymised ones a Property. Only names, kinds and counts are told, no value,
    so nothing is disclosed to the audit."""
    for types, group in shape.items():
        if not gate.restricted:
            yield types, group
            continue
        if gate.hides(types):
            continue
        attributes: dict[str, Counter[str]] = {}
        for name, kinds in group.attributes.items():
            treatment = gate.attribute(types, name)
            if treatment == "show":
                attributes[name] = kinds
            elif treatment == "pseudonymise":
                attributes[name] = Counter({"Property": kinds.total()})
        yield types, _Group(group.entities, attributes)


def _type_stats(gate: Gate, shape: Shape) -> dict[str, _TypeStats]:
    stats: dict[str, _TypeStats] = defaultdict(_TypeStats)
    for types, group in _seen(gate, shape):
        for t in types:
            s = stats[t]
            s.count += group.entities
            for name, kinds in group.attributes.items():
                s.attributes[name].update(kinds)
    return stats


def _attr_stats(gate: Gate, shape: Shape) -> dict[str, _AttrStats]:
    stats: dict[str, _AttrStats] = defaultdict(_AttrStats)
    for types, group in _seen(gate, shape):
        for name, kinds in group.attributes.items():
            s = stats[name]
            s.count += kinds.total()
            s.kinds.update(kinds)
            s.types.update(types)
    return stats


def _list_id(kind: str) -> str:
    return f"urn:ngsi-ld:{kind}:{uuid.uuid4()}"


async def types(broker: Broker, call: Call, *, details: bool = False) -> Any:
    """Retrieve Available Entity Types (5.7.5) or their details (5.7.6)."""
    stats = _type_stats(call.gate, await _groups(broker, call))
    ctx = call.context
    if not details:
        return {
            "id": _list_id("EntityTypeList"),
            "type": "EntityTypeList",
            "typeList": sorted(ctx.compact_vocab(t) for t in stats),
        }
    return [
        {
            "id": t,
            "type": "EntityType",
            "typeName": ctx.compact_vocab(t),
            "attributeNames": sorted(ctx.compact(a) for a in s.attributes),
        }
        for t, s in sorted(stats.items())
    ]


async def type_info(broker: Broker, call: Call, type_name: str) -> dict[str, Any]:
    """Retrieve Available Entity Type Information (5.7.7)."""
    ctx = call.context
    expanded = ctx.expand(type_name)
    stats = _type_stats(call.gate, await _groups(broker, call)).get(expanded)
    if stats is None:
        raise ResourceNotFound(f"no entity of type {type_name!r}")
    return {
        "id": expanded,
        "type": "EntityTypeInfo",
        "typeName": ctx.compact_vocab(expanded),
        "entityCount": stats.count,
        "attributeDetails": [
            {
                "id": name,
                "type": "Attribute",
                "attributeName": ctx.compact(name),
                "attributeTypes": sorted(kinds),
            }
            for name, kinds in sorted(stats.attributes.items())
        ],
    }


async def attributes(broker: Broker, call: Call, *, details: bool = False) -> Any:
    """Retrieve Available Attributes (5.7.8) or their details (5.7.9)."""
    stats = _attr_stats(call.gate, await _groups(broker, call))
    ctx = call.context
    if not details:
        return {
            "id": _list_id("AttributeList"),
            "type": "AttributeList",
            "attributeList": sorted(ctx.compact(a) for a in stats),
        }
    return [_attribute(ctx, name, s) for name, s in sorted(stats.items())]


def _attribute(ctx: Any, name: str, s: _AttrStats) -> dict[str, Any]:
    return {
        "id": name,
        "type": "Attribute",
        "attributeName": ctx.compact(name),
        "attributeCount": s.count,
        "attributeTypes": sorted(s.kinds),
        "typeNames": sorted(ctx.compact_vocab(t) for t in s.types),
    }


async def attribute_info(broker: Broker, call: Call, name: str) -> dict[str, Any]:
    """Retrieve Available Attribute Information (5.7.10)."""
    expanded = call.context.expand(name)
    stats = _attr_stats(call.gate, await _groups(broker, call)).get(expanded)
    if stats is None:
        raise ResourceNotFound(f"no attribute {name!r}")
    return _attribute(call.context, expanded, stats)
