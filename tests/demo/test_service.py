"""The demo service's clock over a real store: the story's morning replayed fast, then live,
never ahead of the wall clock; a restart resumes after the last reading. Fixed clocks, no
sleeping; readings go into the store through the broker's batch operations (GS CIM 009
5.6.8 upsert, 5.6.9 update), as the HTTP publisher sends them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from cityverse.broker import batch
from cityverse.broker.jsonld import hosted_lookup
from cityverse.broker.request import Broker, Call
from cityverse.core.context import ContextResolver
from cityverse.demo.clock import LOCAL_OFFSET
from cityverse.demo.devices import Item
from cityverse.demo.service import DemoService
from cityverse.demo.story import SPAN
from cityverse.settings import Settings
from cityverse.store.base import DEFAULT_TENANT, EntityStore
from tests.demo.test_story import FixedClock

NOW = datetime(2026, 6, 21, 12, tzinfo=UTC)
"""13:00 in Berkane: this morning's story is over."""


class StorePublisher:
    """Readings straight into the store through the broker, remembering what it sent."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.call = Call(tenant=DEFAULT_TENANT, context=broker.contexts.core, ld_body=True)
        self.sent: list[Item] = []

    async def ready(self) -> None:
        await asyncio.Event().wait()  # the tests tick by hand, not the service's loop

    async def update(self, items: list[Item]) -> None:
        self.sent += items
        result = await batch.update(self.broker, self.call, items)
        assert result.errors == []

    async def upsert(self, entities: list[dict[str, Any]]) -> None:
        self.sent += entities
        result = await batch.upsert(self.broker, self.call, entities)
        assert result.errors == []

    async def close(self) -> None:
        pass


def _service(store: EntityStore, fixed: FixedClock) -> tuple[DemoService, StorePublisher]:
    settings = Settings(demo_speed=60)
    broker = Broker(settings, store, ContextResolver(local=hosted_lookup(store)))
    publisher = StorePublisher(broker)
    service = DemoService(
        broker, settings, wall=fixed.wall, monotonic=fixed.monotonic, publisher=publisher
    )
    return service, publisher


def _observed(item: Item) -> list[datetime]:
    stamps = [
        attr.get("observedAt") or attr.get("value")
        for name, attr in item.items()
        if isinstance(attr, dict) and (name == "dateIssued" or "observedAt" in attr)
    ]
    return [datetime.fromisoformat(s) for s in stamps]


async def test_the_demo_replays_its_morning_then_runs_live(store: EntityStore) -> None:
    fixed = FixedClock(wall=NOW)
    service, publisher = _service(store, fixed)
    await service.start()
    try:
        assert service.clock is not None and service.alert is not None
        assert service.clock.start + LOCAL_OFFSET == datetime(2026, 6, 21, 5, 30, tzinfo=UTC)
        ticks = 0
        while not service.live:
            await service.tick()
            for item in publisher.sent:
                assert all(t <= fixed.wall() for t in _observed(item)), item
            publisher.sent.clear()
            fixed.advance(1)
            ticks += 1
        # 7 h 30 to replay at 60x, gaining 59 s a second on the wall clock.
        assert abs(ticks - 7.5 * 3600 / 59) <= 2
        assert service.alert.raised
        assert service.alert.story.alert_at == service.clock.start + SPAN
        for _ in range(3):  # live: each tick stamps the wall clock's time
            fixed.advance(300)
            await service.tick()
            stamps = {t for item in publisher.sent for t in _observed(item)}
            assert stamps == {fixed.wall()}
            publisher.sent.clear()
    finally:
        await service.stop()


async def test_a_restart_resumes_after_the_last_reading(store: EntityStore) -> None:
    fixed = FixedClock(wall=NOW)
    first, _ = _service(store, fixed)
    await first.start()
    try:
        for _ in range(30):  # half an hour of city time, at 06:00 Berkane time
            await first.tick()
            fixed.advance(1)
    finally:
        await first.stop()
    assert first.clock is not None
    last = first.clock.now()
    fixed.advance(600)
    second, _ = _service(store, fixed)
    await second.start()
    try:
        assert second.clock is not None
        # The weather station reports every 10 city minutes: its last report, not 05:30.
        assert last - timedelta(minutes=10) <= second.clock.start <= last
        assert second.clock.start > first.clock.start
    finally:
        await second.stop()
