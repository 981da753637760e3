"""Putting the demo city into a store: once when the store is empty, again after a reset."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from cityverse.broker import batch
from cityverse.broker.jsonld import hosted_lookup
from cityverse.broker.request import Broker, Call
from cityverse.core.context import ContextResolver
from cityverse.core.entity import iso_now
from cityverse.demo import contexts
from cityverse.settings import Settings
from cityverse.store.base import DEFAULT_TENANT, EntityFilter, EntityStore, open_store

CHUNK = 5000
"""Entities per batch: large enough to be fast, small enough to let readings interleave."""


async def is_empty(store: EntityStore) -> bool:
    """True when the store's default tenant holds no entity."""
    page = await store.query(DEFAULT_TENANT, EntityFilter(), limit=1)
    return not page.entities


async def load_city(
    store: EntityStore, entities: list[dict[str, Any]], *, settings: Settings | None = None
) -> batch.BatchResult:
    """Host the demo's @contexts, then upsert every entity through the broker's batch operation."""
    for subject in contexts.SUBJECTS:
        document = {**contexts.document(subject), "createdAt": iso_now()}
        await store.put_context(contexts.context_id(subject), document)
    broker = Broker(
        settings=settings or Settings(),
        store=store,
        contexts=ContextResolver(local=hosted_lookup(store)),
    )
    call = Call(tenant=DEFAULT_TENANT, context=broker.contexts.core, ld_body=True)
    result = batch.BatchResult()
    for at in range(0, len(entities), CHUNK):
        part = await batch.upsert(broker, call, entities[at : at + CHUNK])
        result.success += part.success
        result.errors += part.errors
        result.created += part.created
    return result


def reset_store(url: str) -> None:
    """Empty the store at ``url``: remove an SQLite file (and its WAL), clear any other store."""
    if url.lower().startswith("sqlite:"):
        path = Path(url.split(":///", 1)[-1])
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return
    asyncio.run(_clear(url))


async def _clear(url: str) -> None:
    store = open_store(url)
    await store.open()
    try:
        clear = getattr(store, "clear", None)
        if clear is None:
            raise ValueError(f"the store at {url} cannot be reset")
        await clear()
    finally:
        await store.close()
