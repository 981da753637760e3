"""Where entities live: the store protocol and its SQLite and PostgreSQL backends."""

from cityverse.store.base import (
    DEFAULT_TENANT,
    Change,
    EntityFilter,
    EntityStore,
    Mutation,
    Outcome,
    Page,
    Predicate,
    open_store,
    register_store,
)

__all__ = [
    "DEFAULT_TENANT",
    "Change",
    "EntityFilter",
    "EntityStore",
    "Mutation",
    "Outcome",
    "Page",
    "Predicate",
    "open_store",
    "register_store",
]
