"""The store protocol: where entities live, chosen by URL.

Two real backends implement it, registered the same way a third-party one would be::

    store = open_store("sqlite:///data/cityverse.db")     # or "postgresql://user@host/db"
    await store.open()
    [outcome] = await store.mutate("", [Change("urn:a", lambda cur: {...})])
    page = await store.query("", EntityFilter(type_names=frozenset({T})), limit=20)
    await store.close()

All writes go through ``mutate``: a list of changes applied in one transaction, each a
function from the entity as stored (or None) to the entity to store (or None to delete).
A change raising ``NgsiError`` is rejected alone and reported in its outcome; the
others still apply. This one primitive serves create, update, merge, replace, delete and
every batch operation, keeps read-modify-write atomic, and is where history and
notifications will hook in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cityverse.core.errors import NgsiError
from cityverse.core.model import Entity
from cityverse.core.query import Or, TypeExpr, TypeName

DEFAULT_TENANT = ""

Mutation = Callable[[Entity | None], Entity | None]
"""Current entity (None if absent) -> new entity (None to delete it, or the very same
object to leave it unchanged). Raises ``NgsiError`` to reject this change."""


@dataclass(frozen=True, slots=True)
class Change:
    """One entity's change inside a ``mutate`` call."""

    id: str
    apply: Mutation


@dataclass(slots=True)
class Outcome:
    """What became of one ``Change``: the entity before and after, or the error."""

    id: str
    old: Entity | None = None
    new: Entity | None = None
    error: NgsiError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Predicate(Protocol):
    """An exact test on a stored entity (q, scopeQ, geo-query, type expression)."""

    def matches(self, entity: Entity) -> bool: ...


@dataclass(frozen=True, slots=True)
class EntityFilter:
    """What a query selects. Stores push down what they can; ``matches`` is exact.

    ``type_names`` is the set of expanded types of which a selected entity has at
    least one (a store may filter on it in SQL); ``predicates`` refine exactly.
    ``attrs`` selects the entities that have at least one of these attributes.
    """

    type_names: frozenset[str] | None = None
    ids: frozenset[str] | None = None
    id_pattern: re.Pattern[str] | None = None
    attrs: frozenset[str] | None = None
    predicates: tuple[Predicate, ...] = field(default_factory=tuple)

    def matches(self, entity: Entity) -> bool:
        """True when the entity satisfies every part of the filter."""
        if self.type_names is not None and not self.type_names.intersection(entity["type"]):
            return False
        if self.ids is not None and entity["id"] not in self.ids:
            return False
        if self.id_pattern is not None and not self.id_pattern.fullmatch(entity["id"]):
            return False
        if self.attrs is not None and not self.attrs.intersection(entity["attrs"]):
            return False
        return all(p.matches(entity) for p in self.predicates)

    @property
    def sql_exact(self) -> bool:
        """True when ``type_names``, ``ids`` and ``attrs`` alone say what the filter
        selects: a store that tests those three exactly in SQL may then page and count
        there, and decode only the rows of the page.

        A predicate is redundant only when it is a type selection that is a plain
        alternative of types (``A,B``, ``A|B``) covering ``type_names``: the broker
        passes the type of a query both ways. Anything else (idPattern, q, scopeQ,
        geo-queries, ``A;B``, a predicate this module does not know) needs Python.
        """
        if self.id_pattern is not None:
            return False
        for predicate in self.predicates:
            if not isinstance(predicate, TypeExpr) or self.type_names is None:
                return False
            alternatives = _alternative_types(predicate.root)
            if alternatives is None or not self.type_names <= alternatives:
                return False
        return True


def _alternative_types(node: object) -> frozenset[str] | None:
    """The types of which an entity must have one to match ``node``, when ``node`` is
    exactly that (types joined by ``|`` or ``,``); None for anything else."""
    if isinstance(node, TypeName):
        return frozenset({node.name})
    if isinstance(node, Or):
        names: set[str] = set()
        for term in node.terms:
            found = _alternative_types(term)
            if found is None:
                return None
            names |= found
        return frozenset(names)
    return None


@dataclass(slots=True)
class Page:
    """A page of query results; ``total`` is set when a count was asked for."""

    entities: list[Entity]
    total: int | None = None


class EntityStore(Protocol):
    """Entities per tenant, plus the hosted @context documents."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        """The stored entity, or None."""
        ...

    async def mutate(self, tenant: str, changes: Sequence[Change]) -> list[Outcome]:
        """Apply the changes in one transaction (creating the tenant); one outcome each."""
        ...

    async def query(
        self,
        tenant: str,
        flt: EntityFilter,
        *,
        limit: int | None,
        offset: int = 0,
        count: bool = False,
    ) -> Page:
        """Entities matching ``flt`` in creation order; ``limit=None`` returns all."""
        ...

    async def tenants(self) -> list[str]:
        """Tenants that hold or held data (the default tenant always exists)."""
        ...

    async def shape_version(self, tenant: str) -> int:
        """A number that grows with every write that may change what discovery tells of
        the tenant (entities created or deleted, types, attribute names and kinds); 0
        before the first. Reading it before the entities tells whether an answer
        computed from them is still current."""
        ...

    async def put_context(self, context_id: str, document: dict[str, Any]) -> None:
        """Store a hosted @context document under ``context_id`` (replacing)."""
        ...

    async def get_context(self, context_id: str) -> dict[str, Any] | None: ...

    async def list_contexts(self) -> list[tuple[str, dict[str, Any]]]: ...

    async def delete_context(self, context_id: str) -> bool: ...


StoreFactory = Callable[[str], EntityStore]

_REGISTRY: dict[str, StoreFactory] = {}


def register_store(schemes: Iterable[str], factory: StoreFactory) -> None:
    """Make ``open_store`` build stores for URLs with these schemes."""
    for scheme in schemes:
        _REGISTRY[scheme] = factory


def open_store(url: str) -> EntityStore:
    """Build (not yet open) the store a URL names: sqlite:///path or postgresql://..."""
    scheme = url.split(":", 1)[0].lower()
    if scheme not in _REGISTRY:
        _register_builtins()
    try:
        factory = _REGISTRY[scheme]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(
            f"unknown store URL scheme {scheme!r} in {url!r} (known: {known})"
        ) from None
    return factory(url)


def _register_builtins() -> None:
    # Imported lazily so that a SQLite-only deployment never imports psycopg.
    def sqlite_factory(url: str) -> EntityStore:
        from cityverse.store.sqlite import SqliteStore

        return SqliteStore.from_url(url)

    def postgres_factory(url: str) -> EntityStore:
        from cityverse.store.postgres import PostgresStore

        return PostgresStore.from_url(url)

    register_store(["sqlite"], sqlite_factory)
    register_store(["postgresql", "postgres"], postgres_factory)
