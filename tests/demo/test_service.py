"""The demo service over a real store and the app in-process: the city's devices are
provisioned in the IoT agent and send their measures through its HTTP southbound; the
story's morning is replayed fast, then live, never ahead of the wall clock; a restart
resumes after the last reading. Fixed clocks, no sleeping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from cityverse.demo import iot
from cityverse.demo.city import PARKING, STREETLIGHTING, WASTE, WEATHER, WEATHER_STATION
from cityverse.demo.clock import LOCAL_OFFSET
from cityverse.demo.devices import Logged, Message
from cityverse.demo.service import DemoService, HttpPublisher
from cityverse.demo.water import NETWORK
from cityverse.settings import Settings
from cityverse.store.base import EntityStore
from cityverse.twins.water.model import SDM_CONTEXT
from tests.demo.conftest import BASE, FixedClock, Server, serving

NOW = datetime(2026, 6, 21, 12, tzinfo=UTC)
HISTORY = timedelta(days=1)
"""13:00 in Berkane: this morning's story is over."""
LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"'


class CheckedPublisher(HttpPublisher):
    """The HTTP publisher, checking that no measure is stamped after the wall clock."""

    def __init__(self, server: Server, clock: FixedClock) -> None:
        super().__init__(BASE, client=server.client)
        self.clock = clock
        self.stamps: list[datetime] = []
        self.logged: list[datetime] = []

    async def ready(self) -> None:
        await asyncio.Event().wait()  # the tests tick by hand, not the service's loop

    async def upload(self, logged: list[Logged]) -> None:
        for record in logged:
            self.logged += [datetime.fromisoformat(t) for t, _ in record.readings]
        await super().upload(logged)

    async def send(self, messages: list[Message]) -> None:
        for message in messages:
            for measures in message.measures:
                stamp = datetime.fromisoformat(measures["TimeInstant"].replace("Z", "+00:00"))
                assert stamp <= self.clock.wall(), (message.device, stamp)
                self.stamps.append(stamp)
        await super().send(messages)


def _service(server: Server, fixed: FixedClock, tmp_path: Path, speed: float = 60) -> DemoService:
    settings = Settings(demo_speed=speed, data_dir=str(tmp_path))
    return DemoService(
        server.broker,
        settings,
        wall=fixed.wall,
        monotonic=fixed.monotonic,
        publisher=CheckedPublisher(server, fixed),
        history=HISTORY,  # a day of logged water history (the demo's is a week)
    )


async def _entity(client: httpx.AsyncClient, entity_id: str, context: Any) -> dict[str, Any]:
    response = await client.get(
        f"/ngsi-ld/v1/entities/{entity_id}", headers={"Link": LINK.format(context)}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_demo_replays_its_morning_then_runs_live(
    store: EntityStore, tmp_path: Path
) -> None:
    fixed = FixedClock(wall=NOW)
    async with serving(store, tmp_path) as server:
        service = _service(server, fixed, tmp_path, speed=600)
        await service.start()
        try:
            assert service.clock is not None and service.story is not None
            publisher = service.publisher
            assert isinstance(publisher, CheckedPublisher)
            assert service.clock.start + LOCAL_OFFSET == datetime(2026, 6, 21, 5, 30, tzinfo=UTC)
            await service.prepare()
            # The set-up waited for the water baseline run: it is over before the devices
            # play, with its figures.
            listed = await server.client.get(f"/cityverse/v1/water/networks/{NETWORK}/scenarios")
            [baseline] = [
                row
                for row in listed.json()
                if (row.get("inputParameters") or {}).get("kind") == "baseline"
            ]
            assert baseline["status"] == "succeeded" and baseline["outcome"], baseline
            ticks = 0
            while not service.live:
                await service.tick()
                fixed.advance(1)
                ticks += 1
            # 7 h 30 to replay at 600x, gaining 599 s a second on the wall clock.
            assert abs(ticks - 7.5 * 3600 / 599) <= 2
            # The water sensors' logged history went into the twin's history first, up to
            # the clock's start, where their live readings took over.
            assert min(publisher.logged) == service.story.history_from
            assert max(publisher.logged) < service.clock.start == min(publisher.stamps)
            history = await server.client.get(
                "/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Junction:L-Town:n1",
                params={"attrs": "pressure", "options": "temporalValues", "lastN": "100000"},
                headers={"Link": LINK.format(SDM_CONTEXT)},
            )
            assert history.status_code == 200, history.text
            values = history.json()["pressure"]["values"]
            # Every 5 minutes from the log's start to the clock's, then the replay's.
            assert len(values) >= (HISTORY + timedelta(hours=7)) // timedelta(minutes=5)
            for _ in range(3):  # live: each tick sends what is due by the wall clock
                publisher.stamps.clear()
                fixed.advance(300)
                await service.tick()
                assert publisher.stamps
                # The water sensors report on the 5 minutes, on the wall clock's time.
                assert max(publisher.stamps) > fixed.wall() - timedelta(minutes=5)
            stats = (await server.client.get("/iot/stats")).json()
            assert stats["rejected"] == {} and stats["devices"] == 1859
            assert publisher.failures == 0
        finally:
            await service.stop()


async def test_the_devices_write_the_twin_as_before(store: EntityStore, tmp_path: Path) -> None:
    """What the measures make of the entities: each attribute with its value, unit and
    observation time, and the water readings observed by their Devices."""
    fixed = FixedClock(wall=NOW)
    async with serving(store, tmp_path) as server:
        service = _service(server, fixed, tmp_path)
        await service.start()
        try:
            await service.prepare()
            for _ in range(20):  # 20 city minutes from 05:30
                await service.tick()
                fixed.advance(1)
            assert service.clock is not None
            moment = service.clock.now()
            client = server.client
            n1 = await _entity(client, "urn:ngsi-ld:Junction:L-Town:n1", SDM_CONTEXT)
            pressure = n1["pressure"]
            assert pressure["type"] == "Property" and 20 < pressure["value"] < 80
            assert pressure["unitCode"] == "MTR"
            assert pressure["observedBy"] == {
                "type": "Relationship",
                "object": "urn:ngsi-ld:Device:L-Town:pressure-Junction-n1",
            }
            observed = datetime.fromisoformat(pressure["observedAt"].replace("Z", "+00:00"))
            assert moment - timedelta(minutes=6) < observed <= moment  # 1 tick + 5 minutes
            assert observed.minute % 5 == 0 and observed.second == 0
            flow = (await _entity(client, "urn:ngsi-ld:Pipe:L-Town:p227", SDM_CONTEXT))["flow"]
            assert flow["unitCode"] == "G51" and 1 < abs(flow["value"]) < 100
            tank = (await _entity(client, "urn:ngsi-ld:Tank:L-Town:T1", SDM_CONTEXT))["level"]
            assert tank["unitCode"] == "MTR" and 0 < tank["value"] < 4
            # The water twin sees every sensor's reading beside its Device.
            state = (await client.get(f"/cityverse/v1/water/networks/{NETWORK}/state")).json()
            rows = {(r["entity"], r["attribute"]): r for r in state}
            assert len(rows) == 37
            assert all(r["observedBy"].startswith("urn:ngsi-ld:Device:L-Town:") for r in state)
            weather = await _entity(client, WEATHER_STATION, WEATHER)
            assert weather["temperature"]["unitCode"] == "CEL"
            assert 10 < weather["temperature"]["value"] < 35
            assert weather["dateObserved"]["value"] == weather["temperature"]["observedAt"]
            assert service.devices is not None
            device, (_, state, level) = next(iter(service.devices.lights.items()))
            light_id = "urn:ngsi-ld:Streetlight:berkane-" + device.removeprefix("light-")
            light = await _entity(client, light_id, STREETLIGHTING)
            assert light["powerState"]["value"] == state in ("on", "off")
            assert light["illuminanceLevel"]["value"] == level
            assert light["powerState"]["observedAt"] <= weather["dateObserved"]["value"]
            bins = await client.get(
                "/ngsi-ld/v1/entities",
                params={"type": "WasteContainer", "q": "fillingLevel>0", "count": "true"},
                headers={"Link": LINK.format(WASTE)},
            )
            assert int(bins.headers["NGSILD-Results-Count"]) == len(service.devices.waste)
            spots = await client.get(
                "/ngsi-ld/v1/entities",
                params={"type": "ParkingSpot", "attrs": "status", "limit": "1000"},
                headers={"Link": LINK.format(PARKING)},
            )
            assert any("observedAt" in s["status"] for s in spots.json())
            # Each device is provisioned on its entity, as an outside gateway would find it.
            listed = (await client.get("/iot/devices")).json()
            sensor = next(d for d in listed["devices"] if d["device_id"] == "pressure-Junction-n1")
            assert sensor["entity_name"] == "urn:ngsi-ld:Junction:L-Town:n1"
            assert sensor["apikey"] == iot.KINDS["water"].apikey
        finally:
            await service.stop()


async def test_a_restart_resumes_after_the_last_reading(store: EntityStore, tmp_path: Path) -> None:
    fixed = FixedClock(wall=NOW)
    async with serving(store, tmp_path) as server:
        first = _service(server, fixed, tmp_path)
        await first.start()
        try:
            await first.prepare()
            for _ in range(30):  # half an hour of city time, at 06:00 Berkane time
                await first.tick()
                fixed.advance(1)
        finally:
            await first.stop()
        assert first.clock is not None
        last = first.clock.now()
        fixed.advance(600)
        second = _service(server, fixed, tmp_path)
        await second.start()
        try:
            await second.prepare()
            assert second.clock is not None
            # The weather station reports every 10 city minutes: its last report, not 05:30.
            assert last - timedelta(minutes=10) <= second.clock.start <= last
            assert second.clock.start > first.clock.start
            publisher = second.publisher
            assert isinstance(publisher, CheckedPublisher)
            for _ in range(2):
                await second.tick()
                fixed.advance(1)
            # Nothing is sent twice: the sensors do not upload their history again.
            assert publisher.stamps and min(publisher.stamps) > last - timedelta(minutes=10)
            stats = (await server.client.get("/iot/stats")).json()
            assert stats["devices"] == 1859 and stats["rejected"] == {}
        finally:
            await second.stop()
