"""Applying a caller's ``Gate`` to what the broker reads and writes.

Reads pass every entity through ``visible`` before it is rendered: an entity of a type
the caller may not read disappears (a retrieval answers 404, as if it did not exist), a
personal attribute is dropped or replaced by its pseudonym. Writes wrap their mutation
in ``guarded``, which checks the entity's types before and after the change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cityverse.broker.request import Gate
from cityverse.core.errors import Forbidden, ResourceNotFound
from cityverse.core.model import Entity, Instance
from cityverse.store.base import Mutation


def visible(gate: Gate, entity: Entity) -> Entity | None:
    """``entity`` as the caller may see it, or None when it is hidden from the caller."""
    if not gate.restricted:
        return entity
    types = entity["type"]
    if gate.hides(types):
        return None
    attrs: dict[str, list[Instance]] = entity.get("attrs", {})
    shown: dict[str, list[Instance]] | None = None
    for name, instances in attrs.items():
        treatment = gate.attribute(types, name)
        if treatment == "show":
            gate.disclosed(entity["id"], name)
            continue
        if shown is None:
            shown = dict(attrs)
        if treatment == "hide":
            del shown[name]
        else:
            shown[name] = [pseudonymised(gate, instance) for instance in instances]
    if shown is None:
        return entity
    return {**entity, "attrs": shown}


@dataclass(frozen=True, slots=True)
class Readable:
    """A query's predicate: the entities a caller's gate lets it read. With it a query
    counts and pages only those (a store then tests it in Python)."""

    gate: Gate
    attribute_names: frozenset[str] = frozenset()
    """None of the entity's attributes is read (a temporal store's filter asks)."""

    def matches(self, entity: Entity) -> bool:
        return not self.gate.hides(entity["type"])


def visible_all(gate: Gate, entities: Iterable[Entity]) -> list[Entity]:
    """The entities the caller may see, each as it may see it."""
    if not gate.restricted:
        return list(entities)
    return [shown for entity in entities if (shown := visible(gate, entity)) is not None]


def pseudonymised(gate: Gate, instance: Instance) -> Instance:
    """An instance whose value is replaced by its pseudonym (a Property then)."""
    out = {k: v for k, v in instance.items() if k not in _VALUE_MEMBERS}
    value = next((instance[m] for m in _VALUE_MEMBERS if m in instance), None)
    out["type"] = "Property"
    out["value"] = gate.pseudonym(value)
    out.pop("sub", None)
    return out


_VALUE_MEMBERS = ("value", "object", "languageMap", "vocab", "valueList", "objectList", "json")


def check_readable(gate: Gate, entity_id: str, entity: Entity) -> Entity:
    """``entity`` as the caller may see it; 404 when hidden (its existence is not told)."""
    shown = visible(gate, entity)
    if shown is None:
        raise ResourceNotFound(f"entity {entity_id!r} not found", instance=entity_id)
    return shown


def guarded(gate: Gate, mutation: Mutation) -> Mutation:
    """``mutation``, refused when the caller may not change the entity it touches."""
    if not gate.restricted:
        return mutation

    def apply(current: Entity | None) -> Entity | None:
        if current is not None and gate.hides(current["type"]):
            raise ResourceNotFound(
                f"entity {current['id']!r} not found", instance=str(current["id"])
            )
        new = mutation(current)
        check_write(gate, current, new)
        return new

    return apply


def check_write(gate: Gate, before: Entity | None, after: Entity | None) -> None:
    """Raise Forbidden when the caller may not turn ``before`` into ``after``."""
    if before is not None and not gate.may_write(before["type"], delete=after is None):
        raise Forbidden(f"not allowed to change entities of type {_short(before['type'])}")
    if after is not None and not gate.may_write(after["type"]):
        raise Forbidden(f"not allowed to write entities of type {_short(after['type'])}")


def _short(types: Any) -> str:
    return ", ".join(str(t).rsplit("/", 1)[-1].rsplit("#", 1)[-1] for t in types)
