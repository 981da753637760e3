"""Batch entity operations (GS CIM 009 5.6.7 to 5.6.10 and 5.6.20): one store call each.

Every entity of a batch succeeds or fails on its own; the result lists both (5.2.16
BatchOperationResult). Parsing errors, missing entities and conflicts are per entity.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cityverse.broker.entities import (
    UpdateResult,
    appending,
    check_entity_id,
    creation,
    merging,
)
from cityverse.broker.gate import guarded
from cityverse.broker.request import Broker, Call
from cityverse.core.context import Context
from cityverse.core.entity import iso_now, parse_attributes, parse_entity
from cityverse.core.errors import BadRequestData, NgsiError, ResourceNotFound
from cityverse.core.model import Entity
from cityverse.store.base import Change, Mutation


@dataclass
class BatchResult:
    """Per-entity outcome of a batch: ids that succeeded, errors of those that did not."""

    success: list[str] = field(default_factory=list)
    errors: list[tuple[str, NgsiError]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.errors

    def render(self) -> dict[str, Any]:
        """The BatchOperationResult body (5.2.16)."""
        return {
            "success": self.success,
            "errors": [
                {"entityId": entity_id, "error": err.to_problem()} for entity_id, err in self.errors
            ],
        }


def _items(body: Any, limit: int) -> list[Any]:
    if not isinstance(body, list):
        raise BadRequestData("a batch operation takes a JSON array")
    if not body:
        raise BadRequestData("the batch is empty")
    if len(body) > limit:
        raise BadRequestData(f"a batch holds at most {limit} entities, this one {len(body)}")
    return body


async def _context_of(broker: Broker, call: Call, item: Any) -> Context:
    if not call.ld_body:
        return call.context
    if not isinstance(item, dict) or "@context" not in item:
        raise BadRequestData("with application/ld+json every entity must carry its @context")
    return await broker.contexts.resolve(item["@context"])


def _item_id(item: Any) -> str:
    if isinstance(item, dict) and isinstance(item.get("id"), str):
        return item["id"]
    return ""


MutationFactory = Callable[[Context, Any, str], Awaitable[tuple[str, Mutation]]]


async def _run(
    broker: Broker, call: Call, body: Any, factory: MutationFactory, result: BatchResult
) -> list[Change]:
    now = iso_now()
    changes: list[Change] = []
    for item in _items(body, broker.settings.max_batch):
        try:
            ctx = await _context_of(broker, call, item)
            entity_id, mutation = await factory(ctx, item, now)
        except NgsiError as exc:
            result.errors.append((_item_id(item), exc))
            continue
        changes.append(Change(entity_id, guarded(call.gate, mutation)))
    if changes:
        outcomes = await broker.store.mutate(call.tenant, changes)
        broker.tenant_written(call.tenant)
        for outcome in outcomes:
            if outcome.error is not None:
                result.errors.append((outcome.id, outcome.error))
            else:
                result.success.append(outcome.id)
                if outcome.old is None and outcome.new is not None:
                    result.created.append(outcome.id)
    return changes


async def create(broker: Broker, call: Call, body: Any) -> BatchResult:
    """Batch Entity Creation (5.6.7)."""

    async def factory(ctx: Context, item: Any, now: str) -> tuple[str, Mutation]:
        entity = parse_entity(item, ctx, now=now)
        return entity["id"], creation(entity)

    result = BatchResult()
    await _run(broker, call, body, factory, result)
    return result


async def upsert(broker: Broker, call: Call, body: Any, *, replace: bool = True) -> BatchResult:
    """Batch Entity Create or Update (5.6.8): ``replace`` or update existing entities."""

    async def factory(ctx: Context, item: Any, now: str) -> tuple[str, Mutation]:
        entity = parse_entity(item, ctx, now=now)

        def apply(current: Entity | None) -> Entity:
            if current is None:
                return entity
            if replace:
                return {**entity, "createdAt": current["createdAt"]}
            merged = appending(
                entity["id"], entity["attrs"], now, overwrite=True, result=UpdateResult()
            )(current)
            types = list(dict.fromkeys([*current["type"], *entity["type"]]))
            return {**merged, "type": types, "modifiedAt": now}

        return entity["id"], apply

    result = BatchResult()
    await _run(broker, call, body, factory, result)
    return result


async def update(broker: Broker, call: Call, body: Any, *, overwrite: bool = True) -> BatchResult:
    """Batch Entity Update (5.6.9): append attributes to existing entities."""

    async def factory(ctx: Context, item: Any, now: str) -> tuple[str, Mutation]:
        if not isinstance(item, dict) or "id" not in item:
            raise BadRequestData("every entity of a batch update needs an id")
        entity_id = check_entity_id(str(item["id"]))
        patch = parse_attributes(item, ctx, now=now)
        outcome = UpdateResult()
        append = appending(entity_id, patch, now, overwrite=overwrite, result=outcome)

        def apply(current: Entity | None) -> Entity:
            if current is None:
                raise ResourceNotFound(f"entity {entity_id!r} not found", instance=entity_id)
            new = append(current)
            if outcome.not_updated:
                names = ", ".join(ctx.compact(n) for n, _ in outcome.not_updated)
                raise BadRequestData(f"attributes not updated (noOverwrite): {names}")
            return new

        return entity_id, apply

    result = BatchResult()
    await _run(broker, call, body, factory, result)
    return result


async def merge(broker: Broker, call: Call, body: Any) -> BatchResult:
    """Batch Entity Merge (5.6.20)."""

    async def factory(ctx: Context, item: Any, now: str) -> tuple[str, Mutation]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise BadRequestData("every entity of a batch merge needs an id")
        entity_id = check_entity_id(item["id"])
        return entity_id, merging(ctx, item, now)

    result = BatchResult()
    await _run(broker, call, body, factory, result)
    return result


async def delete(broker: Broker, call: Call, body: Any) -> BatchResult:
    """Batch Entity Delete (5.6.10): the body is an array of entity ids."""

    async def factory(ctx: Context, item: Any, now: str) -> tuple[str, Mutation]:
        if not isinstance(item, str):
            raise BadRequestData(f"a batch delete takes entity ids, not {item!r}")
        entity_id = check_entity_id(item)

        def apply(current: Entity | None) -> None:
            if current is None:
                raise ResourceNotFound(f"entity {entity_id!r} not found", instance=entity_id)
            return None

        return entity_id, apply

    result = BatchResult()
    plain = Call(call.tenant, call.context, call.principal, gate=call.gate)
    await _run(broker, plain, body, factory, result)
    return result
