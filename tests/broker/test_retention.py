"""History retention (CITYVERSE_TEMPORAL_RETENTION): the policy, and the service that
applies it to every tenant's history, on every store."""

from __future__ import annotations

import asyncio

import pytest

from cityverse.broker.request import Broker
from cityverse.broker.retention import Retention, keep_millis, parse_policy
from cityverse.core.context import ContextResolver
from cityverse.core.model import DEFAULT_CONTEXT_VOCAB
from cityverse.core.temporal import Duration, format_millis, to_millis
from cityverse.settings import Settings
from cityverse.store.base import EntityStore
from cityverse.store.temporal import TemporalStore, TimeWindow

CORE = ContextResolver().core
DAY = 86_400_000
PIPE = DEFAULT_CONTEXT_VOCAB + "Pipe"


def test_policy() -> None:
    policy = parse_policy("Pipe=P90D, Junction=P1Y,*=P5Y", CORE)
    assert policy == {
        PIPE: Duration(millis=90 * DAY),
        DEFAULT_CONTEXT_VOCAB + "Junction": Duration(months=12),
        "*": Duration(months=60),
    }
    assert parse_policy("", CORE) == {}
    assert parse_policy("https://example.org/Tank=PT12H", CORE) == {
        "https://example.org/Tank": Duration(millis=12 * 3_600_000)
    }


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("Pipe", "Type=duration"),
        ("Pipe=", "Type=duration"),
        ("=P1D", "Type=duration"),
        ("Pipe=90 days", "ISO 8601"),
        ("Pipe=P1D,Pipe=P2D", "twice"),
        ("Pi pe=P1D", "type name"),
        ("Pipe=PT0S", "zero"),
        ("Pipe=P1D,", "Type=duration"),
    ],
)
def test_invalid_policy(text: str, word: str) -> None:
    """A bad setting is a clear error at startup, naming the variable and the item."""
    with pytest.raises(ValueError, match="CITYVERSE_TEMPORAL_RETENTION") as info:
        parse_policy(text, CORE)
    assert word in str(info.value)


def test_invalid_setting_stops_the_app(tmp_path: object) -> None:
    from cityverse.api.app import create_app

    with pytest.raises(ValueError, match="CITYVERSE_TEMPORAL_RETENTION"):
        create_app(Settings(data_dir=str(tmp_path), temporal_retention="Pipe=forever"))


def test_keep_millis_follows_the_calendar() -> None:
    """P1M back from 31 March is 28 February (2026 is not a leap year); P1Y is 365 days."""
    now = to_millis("2026-03-31T12:00:00Z")
    assert format_millis(now - keep_millis(Duration(months=1), now)) == "2026-02-28T12:00:00.000Z"
    assert keep_millis(Duration(months=12), now) == 365 * DAY
    assert keep_millis(Duration(millis=DAY), now) == DAY
    assert keep_millis(Duration(months=1, millis=DAY), now) == 32 * DAY


def instance(value: float, at: int) -> dict[str, object]:
    stamp = format_millis(at)
    return {
        "type": "Property",
        "value": value,
        "observedAt": stamp,
        "createdAt": stamp,
        "modifiedAt": stamp,
    }


async def values(store: EntityStore, tenant: str, entity_id: str) -> list[float]:
    history: TemporalStore = store  # type: ignore[assignment]
    found = await history.instances(tenant, entity_id, None, TimeWindow(), last_n=None, limit=1000)
    return [i["value"] for series in found.values() for i in series.instances]


async def test_run_applies_the_policy_per_type_and_tenant(store: EntityStore) -> None:
    """Instances older than their type's term go, in every tenant; others stay."""
    history: TemporalStore = store  # type: ignore[assignment]
    now = to_millis("2026-06-01T00:00:00Z")
    flow = DEFAULT_CONTEXT_VOCAB + "flow"
    series = {flow: [instance(1, now - 100 * DAY), instance(2, now - 10 * DAY)]}
    for tenant in ("", "berkane"):
        await history.append_history(tenant, "urn:ngsi-ld:Pipe:1", [PIPE], series)
        await history.append_history(
            tenant, "urn:ngsi-ld:Tank:1", [DEFAULT_CONTEXT_VOCAB + "Tank"], series
        )
    service = Retention(store, parse_policy("Pipe=P90D,*=P1Y", CORE))
    assert await service.run_once(now) == 2
    for tenant in ("", "berkane"):
        assert await values(store, tenant, "urn:ngsi-ld:Pipe:1") == [2]
        assert await values(store, tenant, "urn:ngsi-ld:Tank:1") == [1, 2]
    assert await service.run_once(now) == 0


async def test_service_runs_at_start_and_stops(store: EntityStore) -> None:
    """The service applies the policy as soon as it starts, then stops cleanly."""
    history: TemporalStore = store  # type: ignore[assignment]
    old = to_millis("2000-01-01T00:00:00Z")
    flow = DEFAULT_CONTEXT_VOCAB + "flow"
    await history.append_history("", "urn:ngsi-ld:Pipe:1", [PIPE], {flow: [instance(1, old)]})
    broker = Broker(Settings(temporal_retention="Pipe=P1Y"), store, ContextResolver())
    service = Retention.for_broker(broker)
    await service.start()
    for _ in range(200):
        if not await values(store, "", "urn:ngsi-ld:Pipe:1"):
            break
        await asyncio.sleep(0.01)
    await service.stop()
    assert await values(store, "", "urn:ngsi-ld:Pipe:1") == []
    await service.stop()  # stopping twice is harmless


async def test_no_policy_no_task(store: EntityStore) -> None:
    service = Retention(store, {})
    await service.start()
    assert service._task is None
    assert await service.run_once() == 0
    await service.stop()
