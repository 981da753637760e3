"""The change log and outbox of each store (store/subscriptions.py protocol), driven directly."""

from __future__ import annotations

import time
from typing import Any

from cityverse.store.base import Change, EntityStore
from cityverse.store.subscriptions import DeliveryResult, NewDelivery

V = "https://uri.etsi.org/ngsi-ld/default-context/"
DOC = {"type": "Subscription", "entities": [{"type": "Pipe"}], "notification": {}}


def pipe(value: int) -> Any:
    def apply(current: Any) -> Any:
        return {
            "id": "urn:ngsi-ld:Pipe:1",
            "type": [V + "Pipe"],
            "attrs": {V + "diameter": [{"type": "Property", "value": value}]},
        }

    return Change("urn:ngsi-ld:Pipe:1", apply)


async def test_changes_are_logged_only_in_tenants_with_subscriptions(store: Any) -> None:
    """A write in a tenant without subscriptions logs nothing; with one, old and new."""
    await store.mutate("", [pipe(1)])
    assert await store.pending_changes(10) == []
    assert await store.create_subscription("", "urn:s:1", DOC)
    assert not await store.create_subscription("", "urn:s:1", DOC)
    await store.mutate("other", [pipe(7)])
    await store.mutate("", [pipe(2)])
    [change] = await store.pending_changes(10)
    assert change.tenant == ""
    assert change.old["attrs"][V + "diameter"][0]["value"] == 1
    assert change.new["attrs"][V + "diameter"][0]["value"] == 2
    assert change.at.endswith("Z")


async def test_a_change_is_settled_once(store: Any) -> None:
    """Settling removes the changes and writes the deliveries together; a second settle of
    the same changes (another process) writes nothing."""
    await store.create_subscription("", "urn:s:1", DOC)
    await store.mutate("", [pipe(1)])
    await store.mutate("", [pipe(2)])
    changes = await store.pending_changes(10)
    seqs = [c.seq for c in changes]
    new = [NewDelivery("", "urn:s:1", "http://x/", b"{}") for _ in changes]
    ids = await store.settle_changes(seqs, new, time.time() + 30)
    assert ids is not None and len(ids) == 2 and ids == sorted(ids)
    assert await store.settle_changes(seqs, new, time.time() + 30) is None
    assert await store.pending_changes(10) == []
    assert await store.outbox_size() == 2


async def test_leases_and_results(store: Any) -> None:
    """A leased row is not leased again; results count per subscription, retries come
    back due, sent rows go."""
    await store.create_subscription("", "urn:s:1", DOC)
    now = time.time()
    new = [
        NewDelivery("", "urn:s:1", "http://a/", b"1", leased=False),
        NewDelivery("", "urn:s:1", "http://b/", b"2", leased=False),
        NewDelivery("", "urn:s:1", "http://a/", b"3", not_before=now + 3600, leased=False),
    ]
    await store.settle_changes([], new, 0.0)
    leased = await store.lease_deliveries(now + 1, now + 60, 10, exclude=["http://b/"], owner="p")
    assert [d.body for d in leased] == [b"1"]
    assert (
        await store.lease_deliveries(now + 1, now + 60, 10, exclude=["http://b/"], owner="p") == []
    )
    [probe] = await store.lease_deliveries(
        now + 1, now + 60, 1, exclude=[], owner="p", only="http://a/"
    )
    assert probe.body == b"3"  # a probe takes the endpoint's oldest row, due or not
    [b] = await store.lease_deliveries(now + 1, now + 60, 10, exclude=[], owner="p")
    at = "2026-01-01T00:00:00.000Z"
    await store.finish_deliveries(
        [
            DeliveryResult(leased[0].id, "", "urn:s:1", True, at),
            DeliveryResult(b.id, "", "urn:s:1", False, at, "HTTP 500", retry_at=now),
            DeliveryResult(probe.id, "", "urn:s:1", False, at, retry_at=now, attempted=False),
        ]
    )
    row = await store.get_subscription("", "urn:s:1")
    assert (row.times_sent, row.times_failed) == (2, 1)
    assert row.last_failure_reason == "HTTP 500"
    assert row.last_success == at
    again = await store.lease_deliveries(now + 1, now + 60, 10, exclude=[], owner="p")
    assert sorted(d.body for d in again) == [b"2", b"3"]
    assert next(d for d in again if d.body == b"2").attempts == 1
    assert next(d for d in again if d.body == b"3").attempts == 0
    assert await store.outbox_size() == 2


async def test_park_and_unpark(store: Any) -> None:
    """A failing endpoint's due rows are put off; unparking brings them back."""
    await store.create_subscription("", "urn:s:1", DOC)
    new = [NewDelivery("", "urn:s:1", "http://dead/", b"x", leased=False) for _ in range(3)]
    await store.settle_changes([], new, 0.0)
    await store.park("http://dead/", time.time() + 3600)
    assert (
        await store.lease_deliveries(time.time(), time.time() + 60, 10, exclude=[], owner="p") == []
    )
    await store.unpark()
    due = await store.lease_deliveries(time.time() + 1, time.time() + 60, 10, exclude=[], owner="p")
    assert len(due) == 3


async def test_deleting_a_subscription_drops_its_deliveries(store: EntityStore) -> None:
    """Delete Subscription (5.8.5) takes its pending notifications with it."""
    subs: Any = store
    await subs.create_subscription("", "urn:s:1", DOC)
    version = await subs.subscriptions_version()
    await subs.settle_changes([], [NewDelivery("", "urn:s:1", "http://a/", b"1")], 0.0)
    assert await subs.delete_subscription("", "urn:s:1")
    assert not await subs.delete_subscription("", "urn:s:1")
    assert await subs.outbox_size() == 0
    assert await subs.subscriptions_version() != version
