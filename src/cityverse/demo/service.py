"""The demo as an app service: load the city, then run its devices and its story.

``DemoService`` is registered by the app factory when ``Settings.demo_speed`` is above 0
(``cityverse demo`` sets it). ``start`` loads the city when the store is empty and
computes the hydraulics; then a task provisions the city's devices in the IoT agent and
plays them every real second at the demo clock, until ``stop``.

The devices speak to the server exactly as real ones would, through its IoT agent over
HTTP (``HttpPublisher``: JSON on ``/iot/json``, UltraLight on ``/iot/d``; see ``iot``),
on connections of their own that cost the server's event loop little (``southbound``).
What the water sensors logged in the week before the morning goes into the twin's
history first, through the temporal API. Once every city hour the water twin's own leak
detection runs on that history (``detection``) and raises the story's Alert when the
leak is there. The demo also asks the water twin for a baseline run, so that the
dashboard's KPIs have one to show: first of all, and the devices play once it is over.

The clock replays the story's morning (``story.demo_start``) fast and then runs live;
a restart on a store the demo already played resumes after its last weather
observation instead, and each water sensor after its last reading in the history
(logged or live: ``last_water_readings``), so that the history holds each moment once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
import orjson

from cityverse.broker.request import Broker
from cityverse.broker.temporal import history
from cityverse.core.errors import OperationNotSupported
from cityverse.core.tasks import cancel_and_wait
from cityverse.demo import iot, water
from cityverse.demo.city import DEFAULT_SEED, WEATHER, WEATHER_STATION, generate
from cityverse.demo.clock import DemoClock, demo_start, utc_now
from cityverse.demo.detection import LeakWatch
from cityverse.demo.devices import Devices, Logged, Message
from cityverse.demo.hydraulics import simulate
from cityverse.demo.load import is_empty, load_city
from cityverse.demo.southbound import DeviceLink
from cityverse.demo.story import HISTORY, LEAK_PIPE, SPAN, Story
from cityverse.settings import Settings
from cityverse.store.base import DEFAULT_TENANT
from cityverse.store.temporal import TimeWindow
from cityverse.twins.water.model import SDM_CONTEXT

log = logging.getLogger("cityverse.demo")

TICK = 1.0
"""Real seconds between two rounds of readings."""
PARALLEL = 16
"""Device messages in flight at once."""
MEASURES_PER_MESSAGE = 500
"""Most measures in one message (a tick covering hours of city time sends several)."""
DEVICES_PER_REQUEST = 500
LAST_READINGS = 10
"""Most instances read to find a water sensor's last reading: the newest of each
datasetId of its attribute (the sensor's, and the twin's simulated one)."""
WATER_API = "/cityverse/v1/water"
BASELINE_WAIT = 120
"""Most real seconds the set-up waits for the water baseline run."""
BASELINE_POLL = 0.25
"""Real seconds between two looks at the baseline run."""
RUNNING = ("accepted", "running")
"""A water job's status until it is over."""


class Publisher(Protocol):
    """Where the demo's devices and set-up go::

    class Printer:
        async def ready(self): pass
        async def provision(self, groups, devices): print(groups, devices)
        async def send(self, messages): print(messages)
        async def upload(self, logged): print(logged)
        async def baseline(self, network): pass
        async def close(self): pass
    """

    async def ready(self) -> None: ...

    async def provision(
        self, groups: list[dict[str, Any]], devices: list[dict[str, Any]]
    ) -> None: ...

    async def send(self, messages: list[Message]) -> None: ...

    async def upload(self, logged: list[Logged]) -> None: ...

    async def baseline(self, network: str) -> None: ...

    async def close(self) -> None: ...


class HttpPublisher:
    """The demo's devices over the IoT agent's HTTP southbound, and its set-up over the
    server's APIs.

    ``headers`` (an ``Authorization``, say) go with every request but the devices'
    measures, which a device authenticates by its apikey. The measures go over a
    ``DeviceLink`` of their own (a few plain HTTP/1.1 connections, see ``southbound``),
    unless ``client`` is given: then everything goes through it (an app in-process, in
    the tests).
    """

    def __init__(
        self,
        base: str,
        client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base = base
        self.headers = dict(headers or {})
        self.owns_client = client is None
        self.client = client or httpx.AsyncClient(base_url=base, timeout=120.0)
        self.link = DeviceLink(base, connections=PARALLEL) if client is None else None
        self.failures = 0
        """Device messages the agent refused (each logged)."""

    async def ready(self) -> None:
        """Wait until the broker answers (the server binds its port after the services start)."""
        while True:
            try:
                response = await self.client.get(
                    "/ngsi-ld/v1/info/sourceIdentity", headers=self.headers
                )
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)

    async def provision(self, groups: list[dict[str, Any]], devices: list[dict[str, Any]]) -> None:
        """Create the service groups and devices the IoT agent does not hold yet."""
        listed = await self._get_json("/iot/services")
        have = {(g.get("resource"), g.get("apikey")) for g in listed.get("services", [])}
        missing = [g for g in groups if (g["resource"], g["apikey"]) not in have]
        if missing:
            await self._post_json("/iot/services", {"services": missing})
        listed = await self._get_json("/iot/devices")
        have = {(d.get("apikey"), d.get("device_id")) for d in listed.get("devices", [])}
        todo = [d for d in devices if (d["apikey"], d["device_id"]) not in have]
        for at in range(0, len(todo), DEVICES_PER_REQUEST):
            await self._post_json("/iot/devices", {"devices": todo[at : at + DEVICES_PER_REQUEST]})
        log.info(
            "demo devices: %d service groups and %d devices provisioned (%d were there)",
            len(missing),
            len(todo),
            len(devices) - len(todo),
        )

    async def send(self, messages: list[Message]) -> None:
        """Each device's measures to the IoT agent, a few devices at a time."""
        gate = asyncio.Semaphore(PARALLEL)

        async def one(message: Message) -> None:
            kind = iot.KINDS[message.kind]
            for at in range(0, len(message.measures), MEASURES_PER_MESSAGE):
                part = message.measures[at : at + MEASURES_PER_MESSAGE]
                path, body, content_type = iot.payload(kind, message.device, part)
                async with gate:
                    status, answer = await self._measure(path, body, content_type)
                if status >= 300:
                    self.failures += 1
                    log.warning(
                        "demo device %s: %s %s",
                        message.device,
                        status,
                        answer[:300].decode(errors="replace"),
                    )

        await asyncio.gather(*(one(m) for m in messages))

    async def _measure(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        if self.link is not None:
            return await self.link.post(path, body, content_type)
        headers = {"Content-Type": content_type}
        response = await self.client.post(path, content=body, headers=headers)
        return response.status_code, response.content

    async def upload(self, logged: list[Logged]) -> None:
        """Add what the sensors logged to their elements' history (GS CIM 009 5.6.12:
        the current state is left as it is, and no subscription is notified)."""
        gate = asyncio.Semaphore(4)
        link = f'<{SDM_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"'

        async def one(record: Logged) -> None:
            if not record.readings:
                return
            async with gate:
                response = await self.client.post(
                    f"/ngsi-ld/v1/temporal/entities/{record.entity_id}/attrs",
                    content=orjson.dumps(record.temporal()),
                    headers={**self.headers, "Content-Type": "application/json", "Link": link},
                )
            _report(response)

        await asyncio.gather(*(one(record) for record in logged))

    async def baseline(self, network: str) -> None:
        """Ask the water twin for a baseline run of ``network`` unless it has one, and
        wait until the run is over (``BASELINE_WAIT`` at most)."""
        path = f"{WATER_API}/networks/{network}/scenarios"
        listed = await self.client.get(path, headers=self.headers)
        _report(listed)
        if listed.status_code == 200 and any(
            (row.get("inputParameters") or {}).get("kind") == "baseline" for row in listed.json()
        ):
            return
        response = await self.client.post(
            path, json=[{"kind": "baseline", "name": "baseline"}], headers=self.headers
        )
        _report(response)
        job = response.headers.get("Location")
        if response.status_code != 202 or not job:
            return
        began = time.monotonic()
        while time.monotonic() - began < BASELINE_WAIT:
            await asyncio.sleep(BASELINE_POLL)
            state = await self.client.get(job, headers=self.headers)
            if state.status_code != 200 or state.json().get("status") not in RUNNING:
                _report(state)
                log.info("demo water baseline: over in %.1f s", time.monotonic() - began)
                return
        log.warning("demo water baseline: still running after %d s", BASELINE_WAIT)

    async def close(self) -> None:
        """Close the connections (but the client's, when it was given)."""
        if self.link is not None:
            await self.link.close()
        if self.owns_client:
            await self.client.aclose()

    async def _get_json(self, path: str) -> Any:
        response = await self.client.get(path, headers=self.headers)
        _report(response)
        return response.json() if response.status_code == 200 else {}

    async def _post_json(self, path: str, body: Any) -> None:
        response = await self.client.post(path, json=body, headers=self.headers)
        _report(response)


def _report(response: httpx.Response) -> None:
    if response.status_code >= 300:
        log.warning(
            "demo: %s %s: %s %s",
            response.request.method,
            response.request.url.path,
            response.status_code,
            response.text[:500],
        )


def _utc(raw: Any) -> datetime | None:
    """An ISO 8601 time with its offset (None: not one)."""
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


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
        headers: Mapping[str, str] | None = None,
        seed: int = DEFAULT_SEED,
        history: timedelta = HISTORY,
    ) -> None:
        self.broker = broker
        self.history = history
        self.settings = settings
        self.clock: DemoClock | None = None
        self.wall = wall
        self.monotonic = monotonic
        self.publisher = publisher
        self.headers = headers
        self.seed = seed
        self.task: asyncio.Task[None] | None = None
        self.story: Story | None = None
        self.devices: Devices | None = None
        self.watch: LeakWatch | None = None
        self.provisioning: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        self.logged: list[Logged] = []
        """What the water sensors logged before the clock's start, to add to the history."""
        self.live = False
        self.leaking = False

    def use(self, headers: Mapping[str, str]) -> None:
        """Send ``headers`` (the demo's credentials) with its requests to the server, all
        but the devices' measures."""
        self.headers = dict(headers)
        if isinstance(self.publisher, HttpPublisher):
            self.publisher.headers = dict(headers)

    async def last_observation(self) -> datetime | None:
        """When the weather station last reported in the store (a previous run's last tick)."""
        return await self._observed(WEATHER_STATION, WEATHER, "dateObserved")

    async def last_water_readings(self) -> dict[tuple[str, str], datetime]:
        """When each water sensor last read, per the store's history: (element id,
        property) -> observedAt; a sensor that never read is left out.

        The history, not the current entities: the logged week is only there (the
        current state holds nothing until the first live reading). The twin's own
        instances (a simulation's, with a datasetId) are not readings.
        """
        try:
            store = history(self.broker)
        except OperationNotSupported:
            return {}
        resolved = await self.broker.contexts.resolve(water.CONTEXT)
        out = {}
        for sensor in water.sensors():
            name = resolved.expand(sensor.kind)
            found = await store.instances(
                DEFAULT_TENANT,
                sensor.entity_id,
                frozenset({name}),
                TimeWindow("observedAt"),
                last_n=1,
                limit=LAST_READINGS,
            )
            series = found.get(name)
            times = [
                when
                for instance in (series.instances if series is not None else [])
                if "datasetId" not in instance
                and (when := _utc(instance.get("observedAt"))) is not None
            ]
            if times:
                out[(sensor.entity_id, sensor.kind)] = max(times)
        return out

    async def _observed(self, entity_id: str, context: Any, attr: str) -> datetime | None:
        """The value of an entity's attribute, as a time (None: no such time)."""
        entity = await self.broker.store.get(DEFAULT_TENANT, entity_id)
        if entity is None:
            return None
        resolved = await self.broker.contexts.resolve(context)
        instances = entity["attrs"].get(resolved.expand(attr)) or [{}]
        return _utc(instances[0].get("value"))

    async def start(self) -> None:
        """Load the city if the store is empty, prepare the devices, start playing."""
        base = self_url(self.settings)
        entities = await asyncio.to_thread(generate, self.seed, base=base)
        resume = None
        if await is_empty(self.broker.store):
            began = time.monotonic()
            result = await load_city(self.broker.store, entities, settings=self.settings)
            loaded, rejected = len(result.success), len(result.errors)
            log.info(
                "demo city loaded: %d entities, %d rejected, in %.1f s",
                loaded,
                rejected,
                time.monotonic() - began,
            )
            for entity_id, error in result.errors[:10]:
                log.warning("demo entity %s rejected: %s", entity_id, error)
        else:
            resume = await self.last_observation()
        now = self.wall()
        story = self.story = Story(start=demo_start(now, SPAN), history=self.history)
        # A resumed run's devices go on after what they sent at ``start``; each water
        # sensor after its own last reading in the store, whether logged or live (a
        # stop may come in the middle of the log's upload or of a round of readings).
        if resume is not None and story.start < resume < now:
            start, first = resume, resume + timedelta(seconds=1)
        else:
            start = first = story.start
        speed = self.settings.demo_speed
        self.clock = DemoClock(start, speed, monotonic=self.monotonic, wall=self.wall)
        log.info("demo clock: from %s at %gx, then live", start, speed)
        tables = await asyncio.to_thread(simulate, story.leak_pipe or LEAK_PIPE)
        stored = await self.last_water_readings()
        self.devices = Devices(entities, tables, story, self.seed, since=first, stored=stored)
        # What the water sensors logged in the week before the morning, until the
        # clock's start, that the store does not hold yet.
        self.logged = await asyncio.to_thread(self.devices.logged, story.history_from, first)
        self.provisioning = iot.provisioning(entities)
        self.watch = LeakWatch(
            self.broker.store, water.NETWORK, since=story.history_from, train=story.history
        )
        if self.publisher is None:
            self.publisher = HttpPublisher(base, headers=self.headers)
        self.task = asyncio.create_task(self._play(), name="cityverse-demo")

    async def prepare(self) -> None:
        """Ask for the water baseline, provision the devices, add the logged week, take up
        a leak already found, and wait until the baseline run is over.

        The set-up's work is done before the devices play, the baseline run meanwhile:
        once the city plays, the server has only its devices' rounds to handle, and a
        dashboard opened then is answered at once.
        """
        assert self.publisher is not None and self.watch is not None
        baseline = asyncio.create_task(
            self.publisher.baseline(water.NETWORK), name="cityverse-demo-baseline"
        )
        try:
            began = time.monotonic()
            await self.publisher.provision(*self.provisioning)
            log.info("demo devices: provisioned in %.1f s", time.monotonic() - began)
            if self.logged:
                began = time.monotonic()
                await self.publisher.upload(self.logged)
                log.info(
                    "demo water sensors: %d logged readings added to the history in %.1f s",
                    sum(len(record.readings) for record in self.logged),
                    time.monotonic() - began,
                )
                self.logged = []
            await self.watch.prepare()
            await baseline
        finally:
            await cancel_and_wait([baseline], what="demo baseline")

    async def _play(self) -> None:
        assert self.publisher is not None
        await self.publisher.ready()
        while True:
            try:
                await self.prepare()
                break
            except Exception:
                log.exception("demo set-up failed; trying again")
                await asyncio.sleep(TICK)
        while True:
            try:
                await self.tick()
            except (httpx.TransportError, OSError, TimeoutError) as exc:
                # The server is stopping, or too busy to answer in time.
                log.warning("demo tick: the server did not answer (%s); trying again", exc)
            except Exception:
                log.exception("demo tick failed; the next one will try again")
            await asyncio.sleep(TICK)

    async def tick(self) -> None:
        """Send the measures due now; start the hourly leak detection when an hour is over."""
        assert self.publisher is not None and self.devices is not None and self.clock is not None
        assert self.watch is not None and self.story is not None
        moment = self.clock.now()
        if not self.live and self.clock.live():
            self.live = True
            log.info("demo clock: caught up with real time, running live")
        if not self.leaking and self.story.leaking(moment):
            self.leaking = True
            log.info("demo story: pipe %s bursts at %s", self.story.leak_pipe, self.story.leak_at)
        messages = self.devices.step(moment)
        if messages:
            await self.publisher.send(messages)
        self.watch.poke(moment)

    async def stop(self) -> None:
        """Stop playing and close the connections."""
        await cancel_and_wait([self.task, self.watch.task if self.watch else None], what="demo")
        if self.publisher is not None:
            await self.publisher.close()
