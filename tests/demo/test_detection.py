"""The water twin's own leak detection on the demo's history, hour by hour: the water
sensors upload their logged week and then read through the morning, through the IoT
agent; the twin finds the story's leak as soon as its first hour is over, with the
bursting pipe first among the candidates, and raises nothing on a day without a leak."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import LineString, shape

from cityverse.demo import iot, water
from cityverse.demo.city import DEFAULT_SEED
from cityverse.demo.detection import Found, LeakWatch, hour_floor
from cityverse.demo.devices import Devices
from cityverse.demo.hydraulics import HydraulicTables
from cityverse.demo.load import load_city
from cityverse.demo.story import LEAK_PIPE, Story
from cityverse.store.base import EntityStore
from cityverse.twins.water import incidents
from tests.demo.conftest import Server, serving

MORNING = datetime(2026, 6, 21, 4, 30, tzinfo=UTC)
"""05:30 in Berkane."""
STEP = timedelta(minutes=30)
ALERT_LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"'


@pytest.fixture(scope="module")
def network() -> list[dict[str, Any]]:
    """The demo's water network and its sensors' Devices (the rest of the town is not
    needed here)."""
    return water.water_twin_importer()


async def _sensors(server: Server, network: list[dict[str, Any]]) -> None:
    """The city's water network in the store and its sensors in the IoT agent."""
    result = await load_city(server.broker.store, network)
    assert result.errors == []
    groups, devices = iot.provisioning(network)
    assert len(devices) == 37
    await server.publisher().provision(groups, devices)


async def _read(server: Server, devices: Devices, moment: datetime) -> None:
    messages = devices.step(moment)
    assert {m.kind for m in messages} == {"water"}
    publisher = server.publisher()
    await publisher.send(messages)
    assert publisher.failures == 0


async def test_the_twin_finds_the_storys_leak_in_its_first_hour(
    store: EntityStore,
    tmp_path: Path,
    network: list[dict[str, Any]],
    tables: HydraulicTables,
) -> None:
    story = Story(start=MORNING)
    async with serving(store, tmp_path) as server:
        await _sensors(server, network)
        devices = Devices(network, tables, story, DEFAULT_SEED, since=story.start)
        await server.publisher().upload(devices.logged(story.history_from, story.start))
        watch = LeakWatch(store, water.NETWORK, since=story.history_from)
        assert watch.first == hour_floor(story.start) + timedelta(hours=1)
        moment, found = story.start, None
        while found is None and moment < story.leak_at + timedelta(hours=3):
            await _read(server, devices, moment)
            if moment.minute == 0 and moment >= watch.first:
                found = await watch.check(moment)
                # Nothing before the leak, nor while its first hour is still running.
                assert (found is None) == (moment < story.leak_at + timedelta(hours=1)), moment
            moment += STEP
        assert isinstance(found, Found)
        assert watch.runs == 4  # 06:00, 07:00 and 08:00 Berkane time, then 09:00
        assert found.start == story.leak_at  # 08:00 in Berkane
        assert found.raised == story.leak_at + timedelta(hours=1)
        assert found.candidates[0]["pipe"] == LEAK_PIPE
        assert found.candidates[0]["id"] == water.entity_id("Pipe", LEAK_PIPE)
        pipe = next(e for e in network if e["id"] == water.entity_id("Pipe", LEAK_PIPE))
        middle = LineString(pipe["location"]["value"]["coordinates"]).interpolate(
            0.5, normalized=True
        )
        assert found.search_area is not None
        assert shape(found.search_area).contains(middle)
        # The Alert as any NGSI-LD client sees it (SDM Alert, with the twin's findings).
        response = await server.client.get(
            f"/ngsi-ld/v1/entities/{found.alert}",
            params={"options": "keyValues"},
            headers={"Link": ALERT_LINK.format(water.CONTEXT[0])},
        )
        assert response.status_code == 200, response.text
        alert = response.json()
        assert alert["type"] == "https://smartdatamodels.org/dataModel.Alert/Alert"
        sdm = "https://smartdatamodels.org/dataModel.Alert/"
        assert alert[sdm + "category"] == "water" and alert[sdm + "subCategory"] == "leak"
        assert alert[sdm + "severity"] in ("high", "critical")  # about 50 m³/h
        assert alert["location"]["type"] == "Point"
        assert alert[sdm + "dateIssued"] == "2026-06-21T08:00:00.000Z"
        # A restarted demo takes the Alert up instead of looking again.
        again = LeakWatch(store, water.NETWORK, since=story.history_from)
        await again.prepare()
        assert again.found is not None and again.found.alert == found.alert
        assert again.found.candidates[0]["pipe"] == LEAK_PIPE
        again.poke(moment + timedelta(hours=5))
        assert again.task is None


async def test_no_alert_on_a_day_without_a_leak(
    store: EntityStore,
    tmp_path: Path,
    network: list[dict[str, Any]],
    tables: HydraulicTables,
) -> None:
    """A whole day of the demo's sensors with no leak, from the story's morning to the next.

    The test is causal (each hour's CUSUM sees only the hours before), so one run over
    the day judges every hour as the hourly runs do: an alarm at any hour, a leak or a
    faulty sensor, would be raised by it.
    """
    story = Story(start=MORNING, leak_pipe=None)
    async with serving(store, tmp_path) as server:
        await _sensors(server, network)
        devices = Devices(network, tables, story, DEFAULT_SEED + 1, since=story.start)
        await server.publisher().upload(devices.logged(story.history_from, story.start))
        watch = LeakWatch(store, water.NETWORK, since=story.history_from)
        moment = story.start
        while moment <= story.start + timedelta(days=1):
            await _read(server, devices, moment)
            moment += STEP
        assert await watch.check(hour_floor(story.start + timedelta(days=1))) is None
        assert await incidents.list_alerts(store, "", water.NETWORK) == []
