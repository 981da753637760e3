"""The demo clock, the devices and the story, driven by a fixed clock (no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cityverse.demo import sun
from cityverse.demo.city import DEFAULT_SEED, generate
from cityverse.demo.clock import DemoClock, demo_start, morning_of
from cityverse.demo.devices import Devices
from cityverse.demo.frame import BERKANE
from cityverse.demo.hydraulics import HydraulicTables, simulate
from cityverse.demo.load import load_city
from cityverse.demo.story import LEAK_PIPE, SPAN, ScriptedLeakAlert, Story
from cityverse.demo.water import entity_id, sensors
from cityverse.store.base import DEFAULT_TENANT, EntityStore

MIDSUMMER = datetime(2026, 6, 21, 12, tzinfo=UTC)


class FixedClock:
    """A monotonic clock and a wall clock that move together, only when told."""

    def __init__(self, wall: datetime) -> None:
        self.seconds = 1000.0
        self.real = wall

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return self.real

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.real += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def city() -> list[dict[str, Any]]:
    return generate(DEFAULT_SEED)


@pytest.fixture(scope="module")
def tables() -> HydraulicTables:
    return simulate(LEAK_PIPE)


def test_the_clock_replays_fast_then_runs_live_never_ahead() -> None:
    start = datetime(2026, 6, 21, 4, 30, tzinfo=UTC)
    fixed = FixedClock(wall=start + timedelta(hours=3))
    clock = DemoClock(start, speed=60, monotonic=fixed.monotonic, wall=fixed.wall)
    assert clock.now() == start and not clock.live()
    fixed.advance(2.5)
    assert clock.now() == start + timedelta(minutes=2, seconds=30)
    assert clock.real_seconds_until(start + timedelta(minutes=5)) == pytest.approx(2.5)
    # The replay gains 59 s on the wall clock each real second: 3 h in 183 s.
    handover = 3 * 3600 / 59
    fixed.advance(handover - 2.5 - 1)
    assert clock.now() < fixed.wall() and not clock.live()
    fixed.advance(2)
    assert clock.live() and clock.now() == fixed.wall()
    for _ in range(100):  # live: the wall clock's pace, never ahead of it
        before = clock.now()
        fixed.advance(0.7)
        assert clock.now() == fixed.wall()
        assert clock.now() - before == timedelta(seconds=0.7)
    assert clock.real_seconds_until(fixed.wall() + timedelta(minutes=1)) == pytest.approx(60)
    assert clock.real_seconds_until(fixed.wall() - timedelta(minutes=1)) == 0


def test_a_slow_clock_stays_behind_and_a_future_start_is_held_at_now() -> None:
    now = datetime(2026, 6, 21, 12, tzinfo=UTC)
    fixed = FixedClock(wall=now)
    slow = DemoClock(
        now - timedelta(hours=1), speed=0.5, monotonic=fixed.monotonic, wall=fixed.wall
    )
    ahead = DemoClock(
        now + timedelta(hours=1), speed=60, monotonic=fixed.monotonic, wall=fixed.wall
    )
    for _ in range(50):
        fixed.advance(30)
        assert slow.now() < fixed.wall()
        assert ahead.now() == fixed.wall()
    with pytest.raises(ValueError):
        DemoClock(now, speed=0)


def test_the_demo_replays_the_latest_morning_whose_story_is_over() -> None:
    # 13:00 in Berkane: this morning's story (05:30 to 08:20) is over.
    assert demo_start(MIDSUMMER, SPAN) == datetime(2026, 6, 21, 4, 30, tzinfo=UTC)
    # 08:10 in Berkane: the alert (08:20) is still to come, so yesterday's morning.
    early = datetime(2026, 6, 21, 7, 10, tzinfo=UTC)
    assert demo_start(early, SPAN) == datetime(2026, 6, 20, 4, 30, tzinfo=UTC)
    # 00:30 in Berkane is already the next local day; its 05:30 is still to come.
    assert morning_of(datetime(2026, 6, 20, 23, 30, tzinfo=UTC)) == datetime(
        2026, 6, 20, 4, 30, tzinfo=UTC
    )
    for hour in range(0, 48):
        now = MIDSUMMER + timedelta(hours=hour, minutes=7)
        start = demo_start(now, SPAN)
        assert start + SPAN <= now < start + SPAN + timedelta(days=1)


def test_the_demo_day_starts_before_dawn_in_berkane() -> None:
    start = demo_start(MIDSUMMER, SPAN)
    assert sun.elevation(start, *BERKANE) < 0
    # At solar noon the sun stands at 90 - 34.92 + 23.44 degrees in midsummer.
    noon = max(sun.elevation(start + timedelta(minutes=m), *BERKANE) for m in range(0, 600, 2))
    assert noon == pytest.approx(78.5, abs=0.3)


def test_the_story_timeline_at_speed() -> None:
    start = demo_start(MIDSUMMER, SPAN)
    fixed = FixedClock(wall=MIDSUMMER)
    clock = DemoClock(start, speed=120, monotonic=fixed.monotonic, wall=fixed.wall)
    story = Story(start=clock.start)
    assert story.alert_at <= MIDSUMMER  # the whole story lies in the past
    assert clock.real_seconds_until(story.leak_at) == pytest.approx(2.5 * 3600 / 120)
    fixed.advance(2.5 * 3600 / 120 - 1)
    assert not story.leaking(clock.now())
    fixed.advance(1)
    assert story.leaking(clock.now()) and not story.alert_due(clock.now())
    fixed.advance(20 * 60 / 120)
    assert story.alert_due(clock.now())
    assert clock.now() < fixed.wall()


def test_the_leak_lowers_pressures_and_loses_water(tables: HydraulicTables) -> None:
    eight = 8 * 3600
    pressures = [s for s in tables.normal if s.kind == "pressure"]
    drops = [
        tables.reading(s, eight, leaking=False) - tables.reading(s, eight, leaking=True)
        for s in pressures
    ]
    assert len(pressures) == 33  # L-Town's pressure sensors
    assert max(drops) > 1.0
    assert min(drops) > -0.05  # a leak raises no pressure
    assert tables.leak_flow.min() > 20  # m³/h through the burst


def test_devices_follow_the_day(city: list[dict[str, Any]], tables: HydraulicTables) -> None:
    story = Story(start=demo_start(MIDSUMMER, SPAN))
    devices = Devices(city, tables, story, seed=1)
    first = devices.step(story.start)
    lights = [i for i in first if "powerState" in i]
    assert lights and all(i["powerState"]["value"] == "on" for i in lights)
    assert any("fillingLevel" in i for i in first)
    assert any(i["id"].startswith("urn:ngsi-ld:WeatherObserved") for i in first)
    before = {i["id"]: i for i in first if "pressure" in i}
    assert len(before) == 33
    # Step through the morning a minute at a time, as the service does.
    moment, seen_off, emptied = story.start, set(), 0
    while moment < story.leak_at + timedelta(minutes=5):
        moment += timedelta(minutes=1)
        for item in devices.step(moment):
            if item.get("powerState", {}).get("value") == "off":
                seen_off.add(item["id"])
            emptied += "dateLastEmptying" in item
    assert seen_off == {i["id"] for i in lights}  # every light went off after dawn
    assert emptied > 0  # the 07:00 collection round
    after = {i["id"]: i for i in devices.step(moment + timedelta(minutes=5)) if "pressure" in i}
    assert after.keys() == before.keys()
    assert after[next(iter(after))]["pressure"]["observedAt"] > first[0]["powerState"]["observedAt"]


def test_water_readings_land_on_the_twins_elements_observed_by_their_devices(
    city: list[dict[str, Any]], tables: HydraulicTables
) -> None:
    devices = {e["id"]: e for e in city if e["type"] == "Device"}
    elements = {e["id"] for e in city if e["type"] in ("Junction", "Tank", "Pipe", "Pump")}
    story = Story(start=demo_start(MIDSUMMER, SPAN))
    readings = [
        i for i in Devices(city, tables, story, seed=1).step(story.start) if "@context" in i
    ]
    water = {}
    for item in readings:
        for prop in ("pressure", "level", "flow"):
            if prop in item:
                water[(item["id"], prop)] = item[prop]
    assert len(water) == 37  # L-Town's 33 pressure, 1 level and 3 flow sensors
    for (element, prop), reading in water.items():
        assert element in elements
        device = devices[reading["observedBy"]["object"]]
        assert device["controlledAsset"]["object"] == element
        assert device["controlledProperty"]["value"] == [prop]
        assert reading["unitCode"] == {"pressure": "MTR", "level": "MTR", "flow": "G51"}[prop]
    # Litres per second, as the twin's flows: an inlet's night flow is a few L/s (0.008 m³/s).
    inflow = water[("urn:ngsi-ld:Pipe:L-Town:p227", "flow")]["value"]
    assert 1 < abs(inflow) < 100


def test_parking_follows_the_hour(city: list[dict[str, Any]], tables: HydraulicTables) -> None:
    story = Story(start=demo_start(MIDSUMMER, SPAN))
    devices = Devices(city, tables, story, seed=1)
    moment = story.start
    while moment < story.start + timedelta(hours=6):  # to 11:30, a busy morning
        devices.step(moment)
        moment += timedelta(minutes=5)
    taken = sum(s == "occupied" for s in devices.parking.values()) / len(devices.parking)
    assert 0.7 < taken < 1.0


async def test_the_scripted_alert_is_an_sdm_alert(
    store: EntityStore, city: list[dict[str, Any]]
) -> None:
    story = Story(start=demo_start(MIDSUMMER, SPAN))
    alert = ScriptedLeakAlert(story, {"type": "Point", "coordinates": [-2.32, 34.92]}, base="")
    result = await load_city(store, [alert.entity()])
    assert result.errors == []
    stored = await store.get(DEFAULT_TENANT, alert.entity_id)
    assert stored is not None
    alert_sdm = "https://smartdatamodels.org/dataModel.Alert/"
    assert stored["type"] == [alert_sdm + "Alert"]
    assert stored["attrs"][alert_sdm + "category"][0]["value"] == "water"
    assert stored["attrs"][alert_sdm + "subCategory"][0]["value"] == "leak"
    source = stored["attrs"][alert_sdm + "alertSource"][0]["object"]
    assert source == entity_id("Pipe", LEAK_PIPE) == f"urn:ngsi-ld:Pipe:L-Town:{LEAK_PIPE}"


def test_a_sensor_reads_between_steps(tables: HydraulicTables) -> None:
    [sensor] = [s for s in sensors() if s.kind == "level"]
    assert sensor.entity_id == "urn:ngsi-ld:Tank:L-Town:T1"
    a = tables.reading(sensor, 3600, leaking=False)
    b = tables.reading(sensor, 3900, leaking=False)
    mid = tables.reading(sensor, 3750, leaking=False)
    assert min(a, b) <= mid <= max(a, b)
    assert 0 < a < 4.0  # within the tank's min and max levels
