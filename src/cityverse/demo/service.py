"""The demo as an app service: load the city, then run its devices and its story.

``DemoService`` is registered by the app factory when ``Settings.demo_speed`` is above 0
(``cityverse demo`` sets it). ``start`` loads the city when the store is empty and
computes the hydraulics; then a task publishes the devices' readings through the
ingestion path (``Publisher``) every real second, at the demo clock, until ``stop``.

The clock replays the story's morning (``story.demo_start``) fast and then runs live;
a restart on a store the demo already played resumes after its last weather
observation instead, so that the history holds each moment once.

The readings go through the server's own NGSI-LD API over HTTP (batch update), exactly
as an outside device gateway would send them; a publisher that speaks the IoT agent's
protocol plugs in through the same ``Publisher`` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import httpx

from cityverse.broker.request import Broker
from cityverse.demo import water
from cityverse.demo.city import DEFAULT_SEED, WEATHER, WEATHER_STATION, generate
from cityverse.demo.clock import DemoClock, demo_start, utc_now
from cityverse.demo.devices import Devices, Item
from cityverse.demo.hydraulics import simulate
from cityverse.demo.load import is_empty, load_city
from cityverse.demo.story import SPAN, ScriptedLeakAlert, Story
from cityverse.settings import Settings
from cityverse.store.base import DEFAULT_TENANT

log = logging.getLogger("cityverse.demo")

TICK = 1.0
"""Real seconds between two rounds of readings."""
BATCH = 1000
LD_JSON = {"Content-Type": "application/ld+json"}


class Publisher(Protocol):
    """Where the simulated devices' readings go::

    class Printer:
        async def ready(self): pass
        async def update(self, items): print(items)
        async def upsert(self, entities): print(entities)
        async def close(self): pass
    """

    async def ready(self) -> None: ...

    async def update(self, items: list[Item]) -> None: ...

    async def upsert(self, entities: list[dict[str, Any]]) -> None: ...

    async def close(self) -> None: ...


class HttpPublisher:
    """Readings as NGSI-LD batch updates to a broker over HTTP."""

    def __init__(self, base: str, client: httpx.AsyncClient | None = None) -> None:
        self.base = base
        self.client = client or httpx.AsyncClient(base_url=base, timeout=30.0)

    async def ready(self) -> None:
        """Wait until the broker answers (the server binds its port after the services start)."""
        while True:
            try:
                response = await self.client.get("/ngsi-ld/v1/info/sourceIdentity")
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)

    async def update(self, items: list[Item]) -> None:
        """Batch Entity Update (GS CIM 009 5.6.9) of the readings, in batches."""
        for at in range(0, len(items), BATCH):
            part = items[at : at + BATCH]
            response = await self.client.post(
                "/ngsi-ld/v1/entityOperations/update", json=part, headers=LD_JSON
            )
            _report(response)

    async def upsert(self, entities: list[dict[str, Any]]) -> None:
        """Batch Entity Create or Update (5.6.8)."""
        response = await self.client.post(
            "/ngsi-ld/v1/entityOperations/upsert", json=entities, headers=LD_JSON
        )
        _report(response)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


def _report(response: httpx.Response) -> None:
    if response.status_code >= 300:
        log.warning("demo readings: %s %s", response.status_code, response.text[:500])


def self_url(settings: Settings) -> str:
    """The URL at which the server reaches itself."""
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


class DemoService:
    """Loads the demo city and plays its devices and story while the app runs."""

    def __init__(
        self,
        broker: Broker,
        settings: Settings,
        *,
        wall: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        publisher: Publisher | None = None,
        seed: int = DEFAULT_SEED,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.clock: DemoClock | None = None
        self.wall = wall
        self.monotonic = monotonic
        self.publisher = publisher
        self.headers: Mapping[str, str] = {}
        self.seed = seed
        self.task: asyncio.Task[None] | None = None
        self.devices: Devices | None = None
        self.alert: ScriptedLeakAlert | None = None
        self.live = False

    def use(self, headers: Mapping[str, str]) -> None:
        """Send ``headers`` (the demo's credentials) with its requests to the API."""
        self.headers = headers

    async def last_observation(self) -> datetime | None:
        """When the weather station last reported in the store (a previous run's last tick)."""
        entity = await self.broker.store.get(DEFAULT_TENANT, WEATHER_STATION)
        if entity is None:
            return None
        context = await self.broker.contexts.resolve(WEATHER)
        instances = entity["attrs"].get(context.expand("dateObserved")) or [{}]
        try:
            observed = datetime.fromisoformat(str(instances[0].get("value")))
        except ValueError:
            return None
        return observed if observed.tzinfo is not None else None

    async def start(self) -> None:
        """Load the city if the store is empty, prepare the devices, start playing."""
        base = self_url(self.settings)
        entities = await asyncio.to_thread(generate, self.seed, base=base)
        resume = None
        if await is_empty(self.broker.store):
            result = await load_city(self.broker.store, entities, settings=self.settings)
            loaded, rejected = len(result.success), len(result.errors)
            log.info("demo city loaded: %d entities, %d rejected", loaded, rejected)
            for entity_id, error in result.errors[:10]:
                log.warning("demo entity %s rejected: %s", entity_id, error)
        else:
            resume = await self.last_observation()
        now = self.wall()
        story = Story(start=demo_start(now, SPAN))
        start = resume if resume is not None and story.start < resume < now else story.start
        speed = self.settings.demo_speed
        self.clock = DemoClock(start, speed, monotonic=self.monotonic, wall=self.wall)
        log.info("demo clock: from %s at %gx, then live", start, speed)
        tables = await asyncio.to_thread(simulate, story.leak_pipe)
        self.devices = Devices(entities, tables, story, self.seed)
        self.alert = ScriptedLeakAlert(story, _leak_location(entities, story.leak_pipe), base)
        if self.publisher is None:
            client = httpx.AsyncClient(base_url=base, timeout=30.0, headers=self.headers)
            self.publisher = HttpPublisher(base, client)
        self.task = asyncio.create_task(self._play(), name="cityverse-demo")

    async def _play(self) -> None:
        assert self.publisher is not None and self.devices is not None and self.clock is not None
        await self.publisher.ready()
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("demo tick failed; the next one will try again")
            await asyncio.sleep(TICK)

    async def tick(self) -> None:
        """Publish the readings due now and raise the story's alert when its time comes."""
        assert self.publisher is not None and self.devices is not None and self.clock is not None
        assert self.alert is not None
        moment = self.clock.now()
        if not self.live and self.clock.live():
            self.live = True
            log.info("demo clock: caught up with real time, running live")
        items = self.devices.step(moment)
        if items:
            await self.publisher.update(items)
        if not self.alert.raised and self.alert.story.alert_due(moment):
            await self.publisher.upsert([self.alert.entity()])
            self.alert.raised = True
            log.info("demo story: leak alert raised on pipe %s", self.alert.story.leak_pipe)

    async def stop(self) -> None:
        """Stop playing and close the connections."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.publisher is not None:
            await self.publisher.close()


def _leak_location(entities: list[dict[str, Any]], pipe: str) -> dict[str, Any]:
    """The middle of the leaking pipe (the Alert's location)."""
    for entity in entities:
        if entity["id"] == water.entity_id("Pipe", pipe):
            line = entity["location"]["value"]["coordinates"]
            (x1, y1), (x2, y2) = line[len(line) // 2 - 1], line[len(line) // 2]
            return {"type": "Point", "coordinates": [(x1 + x2) / 2, (y1 + y2) / 2]}
    return {"type": "Point", "coordinates": [-2.32, 34.92]}
