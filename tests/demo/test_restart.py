"""A restart of the demo on the same store, at any moment, neither sends a water reading
the history already holds nor leaves one out: before the sensors' logged history has all
been uploaded, after it but before the first live reading, and after live readings.
Fixed clocks, no sleeping; the counts are read back through the temporal store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from cityverse.core.entity import format_utc
from cityverse.demo import iot, water
from cityverse.demo.devices import WATER_PERIOD, Devices, Logged
from cityverse.demo.hydraulics import HydraulicTables
from cityverse.demo.service import DemoService, HttpPublisher
from cityverse.demo.story import Story
from cityverse.settings import Settings
from cityverse.store.base import DEFAULT_TENANT, EntityStore
from cityverse.store.temporal import TemporalStore, TimeWindow
from tests.demo.conftest import BASE, FixedClock, Server, serving

NOW = datetime(2026, 6, 21, 12, tzinfo=UTC)
"""13:00 in Berkane: the morning to replay starts at 05:30 (04:30 UTC)."""
HISTORY = timedelta(days=1)
"""A day of logged water history (the demo's is a week)."""


class Stopped(Exception):
    """The server went away in the middle of the upload."""


class Publisher(HttpPublisher):
    """The HTTP publisher, counting the logged readings it uploads; with ``cut``, the
    upload stops (as a stopped server's would) after that many sensors' records."""

    def __init__(self, server: Server, cut: int | None = None) -> None:
        super().__init__(BASE, client=server.client)
        self.cut = cut
        self.uploaded = 0

    async def ready(self) -> None:
        await asyncio.Event().wait()  # the tests prepare and tick by hand

    async def upload(self, logged: list[Logged]) -> None:
        sent = [record for record in logged if record.readings]
        if self.cut is not None:
            sent = sent[: self.cut]
        await super().upload(sent)
        self.uploaded += sum(len(record.readings) for record in sent)
        if self.cut is not None:
            raise Stopped


def _service(
    server: Server, fixed: FixedClock, tmp_path: Path, publisher: Publisher
) -> DemoService:
    return DemoService(
        server.broker,
        Settings(demo_speed=60, data_dir=str(tmp_path)),
        wall=fixed.wall,
        monotonic=fixed.monotonic,
        publisher=publisher,
        history=HISTORY,
    )


async def _readings(server: Server) -> dict[tuple[str, str], list[datetime]]:
    """Each water sensor's readings in the history (its element's default instances),
    by observedAt in the order stored, duplicates included."""
    history = cast(TemporalStore, server.broker.store)
    resolved = await server.broker.contexts.resolve(water.CONTEXT)
    out: dict[tuple[str, str], list[datetime]] = {}
    for sensor in water.sensors():
        name = resolved.expand(sensor.kind)
        found = await history.instances(
            DEFAULT_TENANT,
            sensor.entity_id,
            frozenset({name}),
            TimeWindow("observedAt"),
            last_n=None,
            limit=1_000_000,
        )
        series = found.get(name)
        out[(sensor.entity_id, sensor.kind)] = [
            datetime.fromisoformat(str(i["observedAt"]).replace("Z", "+00:00"))
            for i in (series.instances if series is not None else [])
            if "datasetId" not in i
        ]
    return out


def _check(
    readings: dict[tuple[str, str], list[datetime]], begin: datetime, end: datetime | None
) -> int:
    """No reading twice, none missing: every 5 minutes from ``begin`` on (until before
    ``end`` when given) for each sensor. Returns the count of readings."""
    total = 0
    for sensor, stamps in readings.items():
        assert len(stamps) == len(set(stamps)), (sensor, len(stamps) - len(set(stamps)))
        expected_end = end if end is not None else max(stamps) + WATER_PERIOD
        expected = (expected_end - begin) // WATER_PERIOD
        assert sorted(stamps) == [begin + k * WATER_PERIOD for k in range(expected)], sensor
        total += len(stamps)
    return total


async def _run(service: DemoService, fixed: FixedClock, ticks: int) -> None:
    await service.prepare()
    for _ in range(ticks):
        await service.tick()
        fixed.advance(1)


async def test_a_restart_at_any_moment_neither_repeats_nor_skips_a_water_reading(
    store: EntityStore, tmp_path: Path
) -> None:
    fixed = FixedClock(wall=NOW)
    sensors = len(water.sensors())
    async with serving(store, tmp_path) as server:
        # Stopped while the logged day is being uploaded: 10 sensors' records are in.
        cut = Publisher(server, cut=10)
        first = _service(server, fixed, tmp_path, cut)
        await first.start()
        try:
            with pytest.raises(Stopped):
                await first.prepare()
        finally:
            await first.stop()
        assert first.story is not None and first.clock is not None
        begin, morning = first.story.history_from, first.clock.start
        day = (morning - begin) // WATER_PERIOD
        readings = await _readings(server)
        assert (
            sorted(len(stamps) for stamps in readings.values()) == [0] * (sensors - 10) + [day] * 10
        )
        _check({k: v for k, v in readings.items() if v}, begin, morning)

        # Restarted: the rest of the log goes in, then stopped before the first live reading.
        fixed.advance(60)
        second = _service(server, fixed, tmp_path, publisher := Publisher(server))
        await second.start()
        try:
            await _run(second, fixed, ticks=0)
        finally:
            await second.stop()
        assert second.clock is not None and second.clock.start == morning
        assert publisher.uploaded == (sensors - 10) * day
        assert _check(await _readings(server), begin, morning) == sensors * day

        # Restarted before the first live reading: nothing to upload; then half an hour live.
        fixed.advance(60)
        third = _service(server, fixed, tmp_path, publisher := Publisher(server))
        await third.start()
        try:
            assert third.clock is not None and third.clock.start == morning
            await _run(third, fixed, ticks=30)
        finally:
            await third.stop()
        assert publisher.uploaded == 0
        readings = await _readings(server)
        count = _check(readings, begin, None)
        last = max(max(stamps) for stamps in readings.values())
        assert count > sensors * day and last > morning

        # Restarted after live readings: the readings go on after the last one stored.
        fixed.advance(600)
        fourth = _service(server, fixed, tmp_path, publisher := Publisher(server))
        await fourth.start()
        try:
            assert fourth.clock is not None and fourth.clock.start > morning
            await _run(fourth, fixed, ticks=12)
            now = fourth.clock.now()
        finally:
            await fourth.stop()
        readings = await _readings(server)
        assert _check(readings, begin, None) > count
        latest = max(max(stamps) for stamps in readings.values())
        assert last < latest <= now
        assert publisher.uploaded == 0 and fourth.clock.start <= last


def test_the_devices_go_on_after_each_sensors_last_stored_reading(
    city: list[dict[str, Any]], tables: HydraulicTables
) -> None:
    story = Story(start=datetime(2026, 6, 21, 4, 30, tzinfo=UTC), history=HISTORY)
    sensors = water.sensors()
    ahead, behind, logged_only = sensors[0], sensors[1], sensors[2]
    stored = {
        (ahead.entity_id, ahead.kind): story.start + timedelta(minutes=10),
        (behind.entity_id, behind.kind): story.history_from + timedelta(hours=3, seconds=20),
        (logged_only.entity_id, logged_only.kind): story.start - WATER_PERIOD,
    }
    devices = Devices(city, tables, story, seed=1, since=story.start, stored=stored)
    logged = {
        (r.entity_id, r.attribute): r for r in devices.logged(story.history_from, story.start)
    }
    day = (story.start - story.history_from) // WATER_PERIOD
    # The log holds what each sensor has not stored yet, up to the clock's start.
    assert logged[(ahead.entity_id, ahead.kind)].readings == []
    assert logged[(logged_only.entity_id, logged_only.kind)].readings == []
    late = [when for when, _ in logged[(behind.entity_id, behind.kind)].readings]
    assert late[0] == format_utc(story.history_from + timedelta(hours=3, minutes=5))
    assert late[-1] == format_utc(story.start - WATER_PERIOD) and len(late) == day - 37
    others = [r for key, r in logged.items() if key not in stored]
    assert len(others) == len(sensors) - 3 and all(len(r.readings) == day for r in others)
    # Live, a sensor already stored at a moment does not read it again.
    steps = [devices.step(story.start + timedelta(minutes=m)) for m in range(0, 16, 5)]
    names = {(s.entity_id, s.kind): iot.device_id("water", d) for s, d in devices.sensors}
    sent: dict[str, list[str]] = {}
    for messages in steps:
        for message in messages:
            if message.kind == "water":
                sent.setdefault(message.device, []).extend(
                    m["TimeInstant"] for m in message.measures
                )
    grid = [format_utc(story.start + timedelta(minutes=m)) for m in range(0, 16, 5)]
    assert sent[names[(ahead.entity_id, ahead.kind)]] == grid[3:]
    assert sent[names[(behind.entity_id, behind.kind)]] == grid
    assert sent[names[(logged_only.entity_id, logged_only.kind)]] == grid
    assert len(sent) == len(sensors)
