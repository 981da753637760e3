"""The live stream of entity changes (Server-Sent Events), through a real HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import uvicorn

from cityverse.api.app import create_app
from cityverse.settings import Settings
from cityverse.store.base import EntityStore
from tests.notify.test_delivery import E, S, eventually, free_port, pipe

STREAM = "/cityverse/v1/stream"


@contextlib.asynccontextmanager
async def serving(store: EntityStore, settings: Settings) -> AsyncIterator[str]:
    """A uvicorn server of the app on a free port, in this event loop."""
    app = create_app(settings, store=store)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The ``notification`` events of an SSE response, parsed."""
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if event.get("event") == "notification":
                yield orjson.loads(event["data"])
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.lstrip(" ")


async def test_stream_sends_matching_changes(store: EntityStore, settings: Settings) -> None:
    """Each change of a selected entity that satisfies q arrives as a Notification event;
    the stream's subscription is not listed and is removed when the client leaves."""
    async with serving(store, settings) as base, httpx.AsyncClient(base_url=base) as client:
        params = {"type": "Pipe", "q": "diameter>100", "format": "keyValues"}
        async with client.stream("GET", STREAM, params=params) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events(response)
            await client.post(E, json=pipe(1, diameter=50))
            await client.post(E, json=pipe(2, diameter=150))
            await client.post(
                E, json={"id": "urn:ngsi-ld:Tank:1", "type": "Tank", "diameter": {"value": 900}}
            )
            await client.patch(f"{E}/urn:ngsi-ld:Pipe:2/attrs", json={"diameter": 175})
            await client.delete(f"{E}/urn:ngsi-ld:Pipe:2")
            got = [await asyncio.wait_for(anext(stream), 5) for _ in range(3)]
            assert [n["type"] for n in got] == ["Notification"] * 3
            assert got[0]["data"] == [{"id": "urn:ngsi-ld:Pipe:2", "type": "Pipe", "diameter": 150}]
            assert got[1]["data"][0]["diameter"] == 175
            assert "deletedAt" in got[2]["data"][0]
            assert (await client.get(S)).json() == []

        async def gone() -> bool:
            rows = await store.all_subscriptions()  # type: ignore[attr-defined]
            return not rows

        await eventually(gone)


async def test_stream_needs_a_filter(store: EntityStore, settings: Settings) -> None:
    """A stream without type or watchedAttributes, or with a bad q, is 400."""
    async with serving(store, settings) as base, httpx.AsyncClient(base_url=base) as client:
        r = await client.get(STREAM)
        assert r.status_code == 400
        assert r.json()["type"].endswith("BadRequestData")
        r = await client.get(STREAM, params={"type": "Pipe", "q": "a>>"})
        assert r.status_code == 400
