"""How a ``mutate`` call turns into writes, shared by every SQL store.

``plan_changes`` runs the changes of one call in order over the entities as stored,
each seeing the result of the previous ones on the same id, and returns the outcomes
plus the net writes (deletes, updates, inserts) the store must apply::

    plan = plan_changes(changes, {"urn:a": stored_a})
    # plan.deletes: ids to delete; plan.updates / plan.inserts: Row(id, entity, blob)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from cityverse.core.entity import overlong, too_long
from cityverse.core.errors import BadRequestData, NgsiError
from cityverse.core.model import Entity
from cityverse.store.base import Change, EntityFilter, Outcome, Page

logger = logging.getLogger("cityverse.store")

CHUNK = 500
"""Ids per ``SELECT ... IN`` when fetching the entities a call touches."""


class Row(NamedTuple):
    """An entity to write: its id, the document and the document serialised."""

    id: str
    entity: Entity
    blob: bytes


@dataclass(slots=True)
class Plan:
    """The outcomes of a ``mutate`` call and the net writes that realise them."""

    outcomes: list[Outcome] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    updates: list[Row] = field(default_factory=list)
    inserts: list[Row] = field(default_factory=list)

    @property
    def writes(self) -> bool:
        return bool(self.deletes or self.updates or self.inserts)


Check = Callable[[Row], None]
"""A store's own limits on what it can hold; raises ``NgsiError`` to reject a row."""


def plan_changes(
    changes: Sequence[Change], stored: dict[str, Entity], check: Check | None = None
) -> Plan:
    """Apply ``changes`` in order over ``stored`` (id -> entity) and plan the writes."""
    plan = Plan()
    latest: dict[str, Row | None] = {}
    recreated: set[str] = set()
    # Dict order is the order of (last) creation, which becomes the order of seq.
    created: dict[str, None] = {}
    for change in changes:
        row = latest.get(change.id, _UNSET)
        if row is _UNSET:
            entity = stored.get(change.id)
        else:
            entity = row.entity if isinstance(row, Row) else None
        try:
            new = change.apply(entity)
            if new is entity:
                plan.outcomes.append(Outcome(change.id, entity, entity))
                continue
            new_row = None if new is None else _row(change.id, new)
            if new_row is not None and check is not None:
                check(new_row)
        except NgsiError as exc:
            plan.outcomes.append(Outcome(change.id, entity, None, exc))
            continue
        except Exception as exc:
            logger.exception("change to entity %r failed", change.id)
            plan.outcomes.append(Outcome(change.id, entity, None, NgsiError(str(exc))))
            continue
        plan.outcomes.append(Outcome(change.id, entity, new))
        if new_row is None:
            if entity is not None:
                latest[change.id] = None
                created.pop(change.id, None)
                if change.id in stored:
                    recreated.add(change.id)
            continue
        latest[change.id] = new_row
        if entity is None:
            created.pop(change.id, None)
            created[change.id] = None
    for entity_id, final in latest.items():
        if final is None or entity_id in recreated:
            if entity_id in stored:
                plan.deletes.append(entity_id)
        elif entity_id in stored:
            plan.updates.append(final)
    plan.inserts = [row for i in created if (row := latest[i]) is not None]
    return plan


def reshaped(outcomes: Sequence[Outcome]) -> bool:
    """Whether the committed outcomes may change what discovery tells of the tenant: an
    entity created or deleted, its types, or the names or kinds of its attributes.
    Values alone (a measure, a patch of a value) do not."""
    for outcome in outcomes:
        old, new = outcome.old, outcome.new
        if outcome.error is not None or new is old:
            continue
        if old is None or new is None or old["type"] != new["type"]:
            return True
        before, after = old["attrs"], new["attrs"]
        if before.keys() != after.keys():
            return True
        for name, instances in after.items():
            previous = before[name]
            if instances is previous:
                continue
            if len(instances) != len(previous):
                return True
            for now, then in zip(instances, previous, strict=True):
                if now["type"] != then["type"]:
                    return True
    return False


def decode(doc: bytes | str) -> Entity:
    """A stored document as an entity."""
    return orjson.loads(doc)


SQL_MAX = 2**62
"""Above any row count: a limit or offset past it is clamped to it in SQL."""


class Pager:
    """One page of a query's matches, in creation order, and their count if asked.

    When the store's SQL selects exactly what the filter selects (``flt.sql_exact``),
    it pages and counts in SQL (``sql_limit``, ``sql_offset``) and hands over the
    page's rows alone (``take``). Otherwise it feeds rows in order (``feed``) and each
    is decoded and tested here: those before the page too, and, for a count, all.
    """

    def __init__(self, flt: EntityFilter, limit: int | None, offset: int, count: bool) -> None:
        if (limit is not None and limit < 0) or offset < 0:
            raise ValueError(f"limit ({limit}) and offset ({offset}) must not be negative")
        self.flt = flt
        self.limit = limit
        self.offset = offset
        self.end = None if limit is None else offset + limit
        self.count = count
        self.found: list[Entity] = []
        self.matched = 0

    @property
    def done(self) -> bool:
        """True when further entities cannot change the page."""
        return not self.count and self.end is not None and self.matched >= self.end

    @property
    def sql_limit(self) -> int:
        """The page's size for SQL's LIMIT: a number (one that both SQLite and
        PostgreSQL take) even when there is no limit."""
        return SQL_MAX if self.limit is None else min(self.limit, SQL_MAX)

    @property
    def sql_offset(self) -> int:
        """The page's start for SQL's OFFSET, within a 64-bit integer."""
        return min(self.offset, SQL_MAX)

    def batch(self, most: int) -> int:
        """How many rows to fetch next: no more than the page still needs, when that is
        known, so that a store's SQL filter does not run past the page."""
        if self.count or self.end is None:
            return most
        return max(1, min(most, self.end - self.matched))

    def feed(self, doc: bytes | str) -> bool:
        """Decode and test one stored document; True when the scan may stop."""
        entity = decode(doc)
        if self.flt.matches(entity):
            if self.offset <= self.matched and (self.end is None or self.matched < self.end):
                self.found.append(entity)
            self.matched += 1
        return self.done

    def take(self, docs: Iterable[bytes | str], total: int | None) -> Page:
        """The page from the documents SQL selected, paged and counted exactly."""
        self.found = [decode(doc) for doc in docs]
        if total is not None:
            self.matched = total
        return self.page()

    def page(self) -> Page:
        """The page collected so far."""
        return Page(self.found, self.matched if self.count else None)


def chunks(ids: Sequence[str], size: int = CHUNK) -> list[Sequence[str]]:
    """``ids`` cut into slices of at most ``size``."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


class _Unset:
    pass


_UNSET = _Unset()


def _row(entity_id: str, entity: Entity) -> Row:
    if not isinstance(entity, dict):
        raise TypeError(f"a change must return an entity dict or None, not {type(entity).__name__}")
    if entity.get("id") != entity_id:
        raise ValueError(
            f"a change to {entity_id!r} returned an entity with id {entity.get('id')!r}"
        )
    types = entity.get("type")
    if type(types) is not list or not types or any(type(t) is not str for t in types):
        raise ValueError(f"entity {entity_id!r} must have a non-empty list of type names")
    if too_long(entity_id):
        # An id made elsewhere than from a request (a device's, say) meets the same limit.
        raise BadRequestData(overlong("entity id", entity_id))
    return Row(entity_id, entity, orjson.dumps(entity))
