"""History of entities in the postgres store: the TemporalStore half of it."""

from __future__ import annotations

from typing import Any

from cityverse.store.base import Outcome

SCHEMA = ""
"""Tables and indexes of the history, created with the store's own."""

TABLES: tuple[str, ...] = ()
"""Tables that ``PostgresStore.clear`` empties."""


class PostgresTemporal:
    """TemporalStore methods, mixed into the postgres store."""


async def record_history(conn: Any, tenant: str, outcomes: list[Outcome]) -> None:
    """Append the instances the committed outcomes created, in their transaction."""
