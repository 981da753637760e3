"""Matching a subscription against a committed change (GS CIM 009 v1.8, 5.11).

A stored subscription document (see ``broker/subscriptions.py``) compiles once into a
``Compiled`` subscription; ``Compiled.match(change)`` tells whether the change of one
entity (old and new state) triggers a notification, and why::

    sub = compile_subscription(row)
    hit = sub.match(change)            # None, or a Match
    if hit is not None and sub.is_active(now):
        ...

Names in the document are kept expanded, and the terms its q and type expressions use
are stored with their expansion (``terms``), so compiling needs no @context.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cityverse.core.geo import parse_geo_query
from cityverse.core.model import LOCATION, Entity
from cityverse.core.query import parse_q, parse_scope_q, parse_type_expr
from cityverse.store.base import Predicate
from cityverse.store.subscriptions import ChangeRecord, SubscriptionRow

TRIGGERS = (
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
)
"""Values of ``notificationTrigger`` (5.2.12)."""

DEFAULT_TRIGGERS = ("attributeCreated", "attributeUpdated")
"""The triggers of a subscription that names none (5.2.12)."""


@dataclass(frozen=True, slots=True)
class Selector:
    """One EntitySelector (5.2.33): id, idPattern and type, all of which must hold."""

    entity_id: str | None
    pattern: re.Pattern[str] | None
    types: Predicate | None

    def matches(self, entity: Entity) -> bool:
        if self.entity_id is not None and entity["id"] != self.entity_id:
            return False
        if self.pattern is not None and not self.pattern.fullmatch(entity["id"]):
            return False
        return self.types is None or self.types.matches(entity)


@dataclass(frozen=True, slots=True)
class Match:
    """Why a change triggers: the trigger and the attributes created, updated, deleted."""

    trigger: str
    created: frozenset[str] = frozenset()
    updated: frozenset[str] = frozenset()
    deleted: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Compiled:
    """A subscription ready to match changes."""

    tenant: str
    id: str
    doc: dict[str, Any]
    selectors: tuple[Selector, ...] | None
    watched: frozenset[str] | None
    triggers: frozenset[str]
    predicates: tuple[Predicate, ...]
    created_at: str
    expires_at: str | None
    active: bool
    throttling: float | None
    interval: float | None
    kind: str

    def is_active(self, now: str) -> bool:
        """Active (not paused) and not expired at ``now``."""
        return self.active and (self.expires_at is None or self.expires_at > now)

    def selects(self, entity: Entity) -> bool:
        """Whether the entity is one the subscription is about (selectors and queries)."""
        if self.selectors is not None and not any(s.matches(entity) for s in self.selectors):
            return False
        return all(p.matches(entity) for p in self.predicates)

    def type_names(self) -> frozenset[str] | None:
        """Types one of which every selected entity has, if the selectors say so."""
        if not self.selectors:
            return None
        names: list[frozenset[str]] = [
            getattr(s.types, "names", frozenset()) for s in self.selectors
        ]
        return frozenset().union(*names) if all(names) else None

    def matches(self, entity: Entity) -> bool:
        """``selects``, so that a subscription is a store Predicate (periodic queries)."""
        return self.selects(entity)

    def match(self, change: ChangeRecord) -> Match | None:
        """The reason the change triggers a notification, or None (5.11)."""
        if self.interval is not None or change.at < self.created_at:
            return None
        old, new = change.old, change.new
        if new is None:
            if old is None or "entityDeleted" not in self.triggers or not self.selects(old):
                return None
            return Match("entityDeleted", deleted=frozenset(old["attrs"]))
        if not self.selects(new):
            return None
        if old is None:
            names = self._watched(new["attrs"])
            if "entityCreated" in self.triggers and (self.watched is None or names):
                return Match("entityCreated", created=names)
            if "attributeCreated" in self.triggers and names:
                return Match("attributeCreated", created=names)
            return None
        all_created, all_updated, all_deleted = diff(old, new)
        created, updated, deleted = (
            self._watched(all_created),
            self._watched(all_updated),
            self._watched(all_deleted),
        )
        hit = Match("entityUpdated", created, updated, deleted)
        if "attributeCreated" in self.triggers and created:
            return Match("attributeCreated", created, updated, deleted)
        if "attributeUpdated" in self.triggers and updated:
            return Match("attributeUpdated", created, updated, deleted)
        if "attributeDeleted" in self.triggers and deleted:
            return Match("attributeDeleted", created, updated, deleted)
        if "entityUpdated" in self.triggers:
            entity_level = self.watched is None and _entity_members_changed(old, new)
            if created or updated or deleted or entity_level:
                return hit
        return None

    def _watched(self, names: Any) -> frozenset[str]:
        if self.watched is None:
            return frozenset(names)
        return self.watched.intersection(names)


class SubscriptionIndex:
    """A tenant's subscriptions, indexed by the entity ids and types they select, so
    that a change is tried only against the subscriptions that can select its entity."""

    def __init__(self, subs: list[Compiled]) -> None:
        self.subs = subs
        self.by_id: dict[str, list[Compiled]] = {}
        self.by_type: dict[str, list[Compiled]] = {}
        self.others: list[Compiled] = []
        for sub in subs:
            ids = [s.entity_id for s in sub.selectors or ()]
            types: list[frozenset[str]] = [
                getattr(s.types, "names", frozenset()) for s in sub.selectors or ()
            ]
            if sub.selectors and all(ids):
                for entity_id in set(ids):
                    self.by_id.setdefault(str(entity_id), []).append(sub)
            elif sub.selectors and all(types):
                # Every entity a type expression selects has one of its necessary types.
                for name in frozenset().union(*types):
                    self.by_type.setdefault(name, []).append(sub)
            else:
                self.others.append(sub)

    def candidates(self, entity: Entity) -> list[Compiled]:
        """The subscriptions that may select ``entity`` (each once)."""
        found = list(self.by_id.get(entity["id"], ()))
        for name in entity["type"]:
            found.extend(self.by_type.get(name, ()))
        if len(entity["type"]) > 1:
            found = list(dict.fromkeys(found))
        return found + self.others if self.others else found


def diff(old: Entity, new: Entity) -> tuple[set[str], set[str], set[str]]:
    """Names of the attributes created, updated and deleted from ``old`` to ``new``."""
    before, after = old["attrs"], new["attrs"]
    created = {name for name in after if name not in before}
    deleted = {name for name in before if name not in after}
    updated = {name for name, inst in after.items() if name in before and before[name] != inst}
    return created, updated, deleted


def _entity_members_changed(old: Entity, new: Entity) -> bool:
    return bool(old.get("type") != new.get("type") or old.get("scope") != new.get("scope"))


def compile_subscription(row: SubscriptionRow) -> Compiled:
    """Compile a stored subscription; BadRequestData if a part of it does not parse."""
    doc = row.doc
    terms: dict[str, str] = doc.get("terms", {})
    expand = _expander(terms)
    selectors = None
    if doc.get("entities"):
        selectors = tuple(
            Selector(
                info.get("id"),
                re.compile(info["idPattern"]) if "idPattern" in info else None,
                parse_type_expr(info["type"], expand) if "type" in info else None,
            )
            for info in doc["entities"]
        )
    predicates: list[Predicate] = []
    if "q" in doc:
        predicates.append(parse_q(doc["q"], expand))
    if "scopeQ" in doc:
        predicates.append(parse_scope_q(doc["scopeQ"]))
    if "geoQ" in doc:
        geo = doc["geoQ"]
        predicates.append(
            parse_geo_query(
                geo["georel"], geo["geometry"], geo["coordinates"], geo.get("geoproperty", LOCATION)
            )
        )
    watched = doc.get("watchedAttributes")
    return Compiled(
        tenant=row.tenant,
        id=row.id,
        doc=doc,
        selectors=selectors,
        watched=frozenset(watched) if watched else None,
        triggers=frozenset(doc.get("notificationTrigger") or DEFAULT_TRIGGERS),
        predicates=tuple(predicates),
        created_at=doc.get("createdAt", ""),
        expires_at=doc.get("expiresAt"),
        active=doc.get("isActive", True),
        throttling=doc.get("throttling"),
        interval=doc.get("timeInterval"),
        kind=row.kind,
    )


def _expander(terms: dict[str, str]) -> Callable[[str], str]:
    def expand(term: str) -> str:
        # Every term was recorded when the subscription was parsed; an IRI stands for itself.
        return terms.get(term, term)

    return expand


def status(doc: dict[str, Any], now: str) -> str:
    """The subscription's status (5.2.12): active, paused or expired."""
    expires = doc.get("expiresAt")
    if expires is not None and expires <= now:
        return "expired"
    return "active" if doc.get("isActive", True) else "paused"
