"""Discovery of types and attributes (GS CIM 009 5.7.5 to 5.7.10).

Answers are computed from the tenant's entities that the caller may see, as it may see
them, compacted with the request's @context.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
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


async def _entities(broker: Broker, call: Call) -> list[Entity]:
    await broker.check_tenant(call.tenant)
    page = await broker.store.query(call.tenant, EntityFilter(), limit=None)
    return page.entities


def _seen(gate: Gate, entities: list[Entity]) -> Iterator[tuple[Entity, dict[str, list[str]]]]:
    """Each entity the caller may see, with the kinds of its attributes as the caller sees
    them: hidden types and attributes left out, pseudonymised ones a Property. Only
    names and kinds are told, no value, so nothing is disclosed to the audit."""
    for entity in entities:
        if not gate.restricted:
            yield entity, {n: [i["type"] for i in found] for n, found in entity["attrs"].items()}
            continue
        types = entity["type"]
        if gate.hides(types):
            continue
        kinds: dict[str, list[str]] = {}
        for name, instances in entity["attrs"].items():
            treatment = gate.attribute(types, name)
            if treatment == "hide":
                continue
            kinds[name] = (
                [i["type"] for i in instances]
                if treatment == "show"
                else ["Property"] * len(instances)
            )
        yield entity, kinds


def _type_stats(gate: Gate, entities: list[Entity]) -> dict[str, _TypeStats]:
    stats: dict[str, _TypeStats] = defaultdict(_TypeStats)
    for entity, kinds in _seen(gate, entities):
        for t in entity["type"]:
            s = stats[t]
            s.count += 1
            for name, found in kinds.items():
                s.attributes[name].update(found)
    return stats


def _attr_stats(gate: Gate, entities: list[Entity]) -> dict[str, _AttrStats]:
    stats: dict[str, _AttrStats] = defaultdict(_AttrStats)
    for entity, kinds in _seen(gate, entities):
        for name, found in kinds.items():
            s = stats[name]
            s.count += len(found)
            s.kinds.update(found)
            s.types.update(entity["type"])
    return stats


def _list_id(kind: str) -> str:
    return f"urn:ngsi-ld:{kind}:{uuid.uuid4()}"


async def types(broker: Broker, call: Call, *, details: bool = False) -> Any:
    """Retrieve Available Entity Types (5.7.5) or their details (5.7.6)."""
    stats = _type_stats(call.gate, await _entities(broker, call))
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
    stats = _type_stats(call.gate, await _entities(broker, call)).get(expanded)
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
    stats = _attr_stats(call.gate, await _entities(broker, call))
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
    stats = _attr_stats(call.gate, await _entities(broker, call)).get(expanded)
    if stats is None:
        raise ResourceNotFound(f"no attribute {name!r}")
    return _attribute(call.context, expanded, stats)
