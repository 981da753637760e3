"""@context management (GS CIM 009 5.13): hosted and cached @context documents.

Hosted contexts are kept in the store (they survive restarts) and served by this broker
at ``/ngsi-ld/v1/jsonldContexts/{id}``; cached ones are remote @contexts the resolver
fetched. A request naming a hosted context's URL resolves it without the network.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import unquote

from cityverse.broker.request import Broker
from cityverse.core.entity import iso_now
from cityverse.core.errors import BadRequestData, ResourceNotFound

KINDS = ("Hosted", "Cached", "ImplicitlyCreated")


async def add(broker: Broker, body: Any, *, base: str) -> str:
    """Add @context (5.13.2): store a document, return the URL that now serves it."""
    if not isinstance(body, dict) or "@context" not in body:
        raise BadRequestData('the body must be a JSON object with an "@context" member')
    document = body["@context"]
    if not isinstance(document, (dict, list, str)):
        raise BadRequestData("@context must be an object, an array or a URL")
    # Processing it now rejects a broken context at once instead of at first use.
    await broker.contexts.resolve(document)
    context_id = str(uuid.uuid4())
    await broker.store.put_context(context_id, {"@context": document, "createdAt": iso_now()})
    return f"{base}/jsonldContexts/{context_id}"


async def listing(
    broker: Broker, *, base: str, details: bool = False, kind: str | None = None
) -> list[Any]:
    """List @contexts (5.13.3): URLs, or descriptions with ``details``."""
    if kind is not None and kind not in KINDS:
        raise BadRequestData(f"kind must be one of {', '.join(KINDS)}")
    items: list[dict[str, Any]] = []
    if kind in (None, "Hosted"):
        for context_id, doc in await broker.store.list_contexts():
            items.append(
                {
                    "URL": f"{base}/jsonldContexts/{context_id}",
                    "localId": context_id,
                    "kind": "Hosted",
                    "createdAt": doc.get("createdAt"),
                }
            )
    if kind in (None, "Cached"):
        for entry in broker.contexts.cached():
            items.append(
                {
                    "URL": entry["url"],
                    "localId": entry["url"],
                    "kind": "Cached",
                    "createdAt": entry.get("createdAt"),
                    "lastUsage": entry.get("lastUsage"),
                    "numberOfHits": entry.get("numberOfHits"),
                }
            )
    if details:
        return items
    return [item["URL"] for item in items]


async def retrieve(broker: Broker, context_id: str, *, base: str, details: bool = False) -> Any:
    """Serve @context (5.13.4): a hosted document by id, or a cached one by URL."""
    context_id = unquote(context_id)
    doc = await broker.store.get_context(context_id)
    if doc is not None:
        if details:
            return {
                "URL": f"{base}/jsonldContexts/{context_id}",
                "localId": context_id,
                "kind": "Hosted",
                "createdAt": doc.get("createdAt"),
            }
        return {"@context": doc["@context"]}
    for entry in broker.contexts.cached():
        if entry["url"] == context_id:
            if details:
                return {"URL": entry["url"], "localId": entry["url"], "kind": "Cached", **entry}
            resolved = await broker.contexts.resolve(context_id)
            return {"@context": resolved.source}
    raise ResourceNotFound(f"no @context {context_id!r}")


async def delete(broker: Broker, context_id: str, *, reload: bool = False) -> None:
    """Delete @context (5.13.5): a hosted one is removed, a cached one dropped (or reloaded)."""
    context_id = unquote(context_id)
    if await broker.store.delete_context(context_id):
        return
    if broker.contexts.forget(context_id):
        if reload:
            await broker.contexts.resolve(context_id)
        return
    raise ResourceNotFound(f"no @context {context_id!r}")


def hosted_lookup(broker_store: Any) -> Any:
    """The resolver's ``local`` hook: hosted contexts come from the store, not the network."""

    async def local(context_id: str) -> dict[str, Any] | None:
        doc = await broker_store.get_context(unquote(context_id))
        if doc is None:
            return None
        return {"@context": doc["@context"]}

    return local
