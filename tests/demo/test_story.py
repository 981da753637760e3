"""The demo clock, the devices and the story, driven by a fixed clock (no sleeping)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cityverse.core.entity import format_utc
from cityverse.demo import iot, sun
from cityverse.demo.clock import DemoClock, demo_start, morning_of
from cityverse.demo.devices import Devices, Message
from cityverse.demo.frame import BERKANE
from cityverse.demo.hydraulics import HydraulicTables
from cityverse.demo.story import DETECTION_ALLOWANCE, SPAN, Story
from cityverse.demo.water import sensors
from tests.demo.conftest import FixedClock

MIDSUMMER = datetime(2026, 6, 21, 12, tzinfo=UTC)


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
    # 13:00 in Berkane: this morning's story (05:30 to 10:00) is over.
    assert demo_start(MIDSUMMER, SPAN) == datetime(2026, 6, 21, 4, 30, tzinfo=UTC)
    # 09:10 in Berkane: the leak's detection may still be to come, so yesterday's morning.
    early = datetime(2026, 6, 21, 8, 10, tzinfo=UTC)
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
    assert story.leak_at + DETECTION_ALLOWANCE <= MIDSUMMER  # the story lies in the past
    assert clock.real_seconds_until(story.leak_at) == pytest.approx(2.5 * 3600 / 120)
    fixed.advance(2.5 * 3600 / 120 - 1)
    assert not story.leaking(clock.now())
    fixed.advance(1)
    assert story.leaking(clock.now())
    assert clock.now() < fixed.wall()
    # The sensors' logged week ends where the morning's first hour begins (04:00 UTC).
    assert story.history_from == datetime(2026, 6, 14, 4, tzinfo=UTC)
    assert not Story(start=start, leak_pipe=None).leaking(start + timedelta(days=3))


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


def _measures(messages: list[Message], kind: str) -> dict[str, list[dict[str, Any]]]:
    return {m.device: m.measures for m in messages if m.kind == kind}


def test_devices_follow_the_day(city: list[dict[str, Any]], tables: HydraulicTables) -> None:
    story = Story(start=demo_start(MIDSUMMER, SPAN))
    devices = Devices(city, tables, story, seed=1, since=story.start)
    first = devices.step(story.start)
    lights = _measures(first, "light")
    assert len(lights) == len(devices.lights) > 1000
    stamp = format_utc(story.start)
    assert all(m == [{"TimeInstant": stamp, "p": "on", "i": 1.0}] for m in lights.values())
    assert len(_measures(first, "waste")) == len(devices.waste)
    [weather] = _measures(first, "weather").values()
    assert weather[0]["d"] == weather[0]["TimeInstant"] == stamp
    before = _measures(first, "water")
    assert len(before) == 37
    # Step through the morning a minute at a time, as the service does at 60x.
    moment, seen_off, emptied = story.start, set(), 0
    while moment < story.leak_at + timedelta(minutes=5):
        moment += timedelta(minutes=1)
        messages = devices.step(moment)
        for device, measures in _measures(messages, "light").items():
            if measures[-1]["p"] == "off":
                seen_off.add(device)
        emptied += sum("e" in m[0] for m in _measures(messages, "waste").values())
    assert seen_off == set(lights)  # every light went off after dawn
    assert emptied > 0  # the 07:00 collection round
    after = _measures(devices.step(moment + timedelta(minutes=5)), "water")
    assert after.keys() == before.keys()
    assert all(m[-1]["TimeInstant"] > before[d][-1]["TimeInstant"] for d, m in after.items())


def test_measures_keep_to_their_grid_whatever_the_speed(
    city: list[dict[str, Any]], tables: HydraulicTables
) -> None:
    """At 1200x a tick is 20 city minutes: each sensor sends a reading per 5 minutes of
    them, stamped on the 5 minutes, never after the tick's moment."""
    story = Story(start=demo_start(MIDSUMMER, SPAN))
    devices = Devices(city, tables, story, seed=1, since=story.start)
    moment = story.start
    stamps: dict[str, list[str]] = {}
    while moment <= story.start + timedelta(hours=2):
        for message in devices.step(moment):
            if message.kind in ("water", "weather"):
                sent = [m["TimeInstant"] for m in message.measures]
                assert all(s <= format_utc(moment) for s in sent)
                stamps.setdefault(message.device, []).extend(sent)
        moment += timedelta(minutes=20, seconds=7)
    water = stamps["pressure-Junction-n1"]
    expected = [format_utc(story.start + timedelta(minutes=5 * k)) for k in range(len(water))]
    assert water == expected and len(water) == 21  # 04:30 to 06:10, the last moment 06:10:35
    assert stamps["weather-centre"] == expected[::2]


def test_water_sensors_log_their_week_before_the_morning(
    city: list[dict[str, Any]], tables: HydraulicTables
) -> None:
    story = Story(start=demo_start(MIDSUMMER, SPAN))
    devices = Devices(city, tables, story, seed=1, since=story.start)
    logged = devices.logged(story.history_from, story.start)
    assert len(logged) == 37
    week = (story.start - story.history_from) // timedelta(minutes=5)
    for record in logged:
        stamps = [when for when, _ in record.readings]
        assert stamps[0] == format_utc(story.history_from)
        assert stamps[-1] == format_utc(story.start - timedelta(minutes=5))
        assert len(stamps) == week
        [instances] = record.temporal().values()
        assert instances[0]["observedBy"] == {"type": "Relationship", "object": record.device}
        assert instances[0]["unitCode"] == record.unit
    # A week with the sensors' noise: no reading repeats itself for long, as a stuck
    # sensor's would, and the week's mornings at the same time agree within the noise.
    n1 = next(r for r in logged if r.entity_id.endswith(":n1"))
    pressures = [value for _, value in n1.readings]
    assert max(len(list(g)) for _, g in itertools.groupby(pressures)) < 6
    mornings = pressures[::-288]
    assert len(mornings) == 8 and max(mornings) - min(mornings) < 0.2  # 05:25, 8 mornings
    # The live readings take over where the log ends.
    [first] = [m for m in devices.step(story.start) if m.device == "pressure-Junction-n1"]
    assert first.measures[0]["TimeInstant"] == format_utc(story.start)


def test_water_measures_feed_the_twins_elements_through_their_devices(
    city: list[dict[str, Any]], tables: HydraulicTables
) -> None:
    """Each water sensor's device is provisioned on the element it measures, its measure
    mapped to the twin's attribute with its unit and ``observedBy`` its Device."""
    devices = {e["id"]: e for e in city if e["type"] == "Device"}
    kinds = ("Junction", "Tank", "Pipe", "Pump")
    elements = {e["id"]: e["type"] for e in city if e["type"] in kinds}
    _, provisioned = iot.provisioning(city)
    water = iot.KINDS["water"]
    by_id = {d["device_id"]: d for d in provisioned if d["apikey"] == water.apikey}
    story = Story(start=demo_start(MIDSUMMER, SPAN))
    readings = _measures(Devices(city, tables, story, seed=1).step(story.start), "water")
    assert readings.keys() == by_id.keys() and len(by_id) == 37
    units = {"pressure": "MTR", "level": "MTR", "flow": "G51"}
    for device_id, measures in readings.items():
        doc = by_id[device_id]
        [attribute] = doc["attributes"]
        device = devices[attribute["metadata"]["observedBy"]["value"]]
        assert doc["entity_name"] == device["controlledAsset"]["object"]
        assert doc["entity_type"] == elements[doc["entity_name"]]
        assert device["controlledProperty"]["value"] == [attribute["name"]]
        assert attribute["metadata"]["unitCode"]["value"] == units[attribute["name"]]
        assert measures[0].keys() == {"TimeInstant", attribute["object_id"]}
    # Litres per second, as the twin's flows: an inlet's night flow is a few L/s.
    inflow = readings["flow-Pipe-p227"][0]["q"]
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


def test_a_sensor_reads_between_steps(tables: HydraulicTables) -> None:
    [sensor] = [s for s in sensors() if s.kind == "level"]
    assert sensor.entity_id == "urn:ngsi-ld:Tank:L-Town:T1"
    a = tables.reading(sensor, 3600, leaking=False)
    b = tables.reading(sensor, 3900, leaking=False)
    mid = tables.reading(sensor, 3750, leaking=False)
    assert min(a, b) <= mid <= max(a, b)
    assert 0 < a < 4.0  # within the tank's min and max levels
