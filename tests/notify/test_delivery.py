"""Notifications delivered over HTTP to a real local receiver (GS CIM 009 v1.8 5.3.1, 5.11),
through the whole app, on every store."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import socket
import time
from typing import Any

import httpx
import pytest

from cityverse.settings import Settings
from cityverse.store.base import Change, EntityStore
from cityverse.store.postgres import PostgresStore
from tests.notify.conftest import running, same_store
from tests.notify.receiver import Receiver

E = "/ngsi-ld/v1/entities"
S = "/ngsi-ld/v1/subscriptions"
CORE_LINK = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"


def pipe(n: int = 1, **attrs: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": f"urn:ngsi-ld:Pipe:{n}", "type": "Pipe"}
    for name, value in (attrs or {"diameter": 200}).items():
        body[name] = {"type": "Property", "value": value}
    return body


def sub(uri: str, **members: Any) -> dict[str, Any]:
    notification = members.pop("notification", {})
    endpoint = notification.pop("endpoint", {})
    body: dict[str, Any] = {
        "type": "Subscription",
        "entities": [{"type": "Pipe"}],
        "notification": {**notification, "endpoint": {"uri": uri, **endpoint}},
    }
    body.update(members)
    return body


async def subscribe(client: httpx.AsyncClient, body: dict[str, Any], **kw: Any) -> str:
    r = await client.post(S, json=body, **kw)
    assert r.status_code == 201, r.text
    return str(r.headers["location"].rsplit("/", 1)[1])


async def counters(client: httpx.AsyncClient, sub_id: str, **kw: Any) -> dict[str, Any]:
    r = await client.get(f"{S}/{sub_id}", **kw)
    assert r.status_code == 200, r.text
    return dict(r.json()["notification"])


async def eventually(check: Any, timeout: float = 10.0) -> Any:
    """Poll ``check`` (async, returns a value or None) until it gives a value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_creation_and_update_are_notified(store: EntityStore, settings: Settings) -> None:
    """5.11 / 5.3.1: the default triggers notify creation and updates with a Notification
    (id, type, subscriptionId, notifiedAt, data) and the Link of the @context (6.3.5)."""
    async with Receiver() as receiver, running(store, settings) as (client, _):
        sub_id = await subscribe(
            client,
            sub(
                receiver.url,
                notification={"endpoint": {"receiverInfo": [{"key": "X-City", "value": "Oujda"}]}},
            ),
        )
        assert (await client.post(E, json=pipe(diameter=200))).status_code == 201
        r = await client.patch(f"{E}/urn:ngsi-ld:Pipe:1/attrs", json={"diameter": 250})
        assert r.status_code == 204
        first, second = await receiver.wait(2)
        headers = receiver.received[0][0]
        assert headers["content-type"] == "application/json"
        assert headers["x-city"] == "Oujda"
        assert CORE_LINK in headers["link"]
        for body in (first, second):
            assert body["id"].startswith("urn:ngsi-ld:Notification:")
            assert body["type"] == "Notification"
            assert body["subscriptionId"] == sub_id
            assert body["notifiedAt"].endswith("Z")
        assert first["id"] != second["id"]
        assert first["data"] == [
            {
                "id": "urn:ngsi-ld:Pipe:1",
                "type": "Pipe",
                "diameter": {"type": "Property", "value": 200},
            }
        ]
        assert second["data"][0]["diameter"]["value"] == 250
        got = await eventually(
            lambda: _when(counters(client, sub_id), lambda c: c["timesSent"] == 2)
        )
        assert got["timesFailed"] == 0
        assert got["status"] == "ok"
        assert got["lastSuccess"] == got["lastNotification"]


async def _when(awaitable: Any, predicate: Any) -> Any:
    value = await awaitable
    return value if predicate(value) else None


async def test_other_entities_and_attributes_do_not_notify(
    store: EntityStore, settings: Settings
) -> None:
    """5.11: only changes of selected entities to watched attributes that satisfy q notify."""
    async with Receiver() as receiver, running(store, settings) as (client, _):
        await subscribe(client, sub(receiver.url, watchedAttributes=["diameter"], q="diameter>100"))
        await client.post(
            E,
            json={
                "id": "urn:ngsi-ld:Tank:1",
                "type": "Tank",
                "level": {"type": "Property", "value": 1},
            },
        )
        await client.post(E, json=pipe(1, diameter=50))  # fails q
        await client.post(E, json=pipe(2, diameter=150, roughness=1))
        await client.patch(f"{E}/urn:ngsi-ld:Pipe:2/attrs", json={"roughness": 2})  # unwatched
        await client.patch(f"{E}/urn:ngsi-ld:Pipe:2/attrs", json={"diameter": 300})
        bodies = await receiver.wait(2)
        await asyncio.sleep(0.3)
        assert len(receiver.bodies) == 2
        assert [b["data"][0]["diameter"]["value"] for b in bodies] == [150, 300]


async def test_formats_attributes_and_show_changes(store: EntityStore, settings: Settings) -> None:
    """5.2.14: attributes, format keyValues / concise and showChanges (previousValue)."""
    async with Receiver() as receiver, running(store, settings) as (client, _):
        await subscribe(
            client,
            sub(
                receiver.url,
                notificationTrigger=["attributeUpdated"],
                notification={"format": "keyValues", "attributes": ["diameter"]},
            ),
        )
        await subscribe(
            client,
            sub(
                receiver.url,
                notificationTrigger=["attributeUpdated"],
                notification={"format": "concise", "showChanges": True},
            ),
        )
        await client.post(E, json=pipe(diameter=200, roughness=1))
        await client.patch(f"{E}/urn:ngsi-ld:Pipe:1/attrs", json={"diameter": 250})
        bodies = await receiver.wait(2)
        data = sorted((b["data"][0] for b in bodies), key=lambda d: len(d))
        assert data[0] == {"id": "urn:ngsi-ld:Pipe:1", "type": "Pipe", "diameter": 250}
        assert data[1]["diameter"] == {"value": 250, "previousValue": 200}
        assert data[1]["roughness"] == 1


async def test_deletions(store: EntityStore, settings: Settings) -> None:
    """5.2.12: entityDeleted sends id, type and deletedAt; attributeDeleted sends the
    attribute with the NGSI-LD Null value."""
    async with Receiver() as receiver, running(store, settings) as (client, _):
        await subscribe(
            client, sub(receiver.url, notificationTrigger=["entityDeleted", "attributeDeleted"])
        )
        await client.post(E, json=pipe(diameter=200, roughness=1))
        assert (await client.delete(f"{E}/urn:ngsi-ld:Pipe:1/attrs/roughness")).status_code == 204
        assert (await client.delete(f"{E}/urn:ngsi-ld:Pipe:1")).status_code == 204
        first, second = await receiver.wait(2)
        assert first["data"][0]["roughness"]["value"] == "urn:ngsi-ld:null"
        assert "deletedAt" in first["data"][0]["roughness"]
        assert set(second["data"][0]) == {"id", "type", "deletedAt"}


async def test_paused_and_expired_do_not_notify(store: EntityStore, settings: Settings) -> None:
    """5.2.12: a paused (isActive false) subscription sends nothing until it is resumed."""
    async with Receiver() as receiver, running(store, settings) as (client, _):
        sub_id = await subscribe(client, sub(receiver.url, isActive=False))
        await client.post(E, json=pipe(1))
        await asyncio.sleep(0.3)
        assert receiver.bodies == []
        await client.patch(f"{S}/{sub_id}", json={"isActive": True})
        await client.post(E, json=pipe(2))
        [body] = await receiver.wait(1)
        assert body["data"][0]["id"] == "urn:ngsi-ld:Pipe:2"


async def test_tenant_is_named(store: EntityStore, settings: Settings) -> None:
    """A notification of a tenant's subscription names it in the NGSILD-Tenant header."""
    tenant = {"NGSILD-Tenant": "berkane"}
    async with Receiver() as receiver, running(store, settings) as (client, _):
        await subscribe(client, sub(receiver.url), headers=tenant)
        await client.post(E, json=pipe(1))  # default tenant: not notified
        await client.post(E, json=pipe(2), headers=tenant)
        [body] = await receiver.wait(1)
        assert body["data"][0]["id"] == "urn:ngsi-ld:Pipe:2"
        assert receiver.received[0][0]["ngsild-tenant"] == "berkane"


async def test_failures_are_counted_with_their_reason(
    store: EntityStore, settings: Settings
) -> None:
    """5.2.14: refused connections, timeouts and 500 answers count in timesFailed, with
    lastFailure and its reason; the updates themselves succeed."""
    async with (
        Receiver(status=500) as failing,
        Receiver(hang=True) as hanging,
        running(store, settings) as (client, _),
    ):
        refused = await subscribe(client, sub(f"http://127.0.0.1:{free_port()}/x"))
        erring = await subscribe(client, sub(failing.url))
        slow = await subscribe(
            client, sub(hanging.url, notification={"endpoint": {"timeout": 300}})
        )
        assert (await client.post(E, json=pipe(1))).status_code == 201
        for n in range(3):
            r = await client.patch(f"{E}/urn:ngsi-ld:Pipe:1/attrs", json={"diameter": n})
            assert r.status_code == 204
        expected = {refused: "connection refused", erring: "HTTP 500", slow: "timed out"}
        for sub_id, reason in expected.items():
            got = await eventually(
                lambda sub_id=sub_id: _when(
                    counters(client, sub_id), lambda c: c["timesFailed"] >= 1
                )
            )
            assert reason in got["lastFailureReason"], got
            assert got["status"] == "failed"
            assert got["lastFailure"] == got["lastNotification"]
            assert "lastSuccess" not in got
        entity = (await client.get(f"{E}/urn:ngsi-ld:Pipe:1")).json()
        assert entity["diameter"]["value"] == 2


async def test_retries_deliver_once_the_endpoint_recovers(
    store: EntityStore, settings: Settings
) -> None:
    """5.11: a failed notification is retried with backoff until it is delivered."""
    async with Receiver(status=500) as receiver, running(store, settings) as (client, _):
        sub_id = await subscribe(client, sub(receiver.url))
        await client.post(E, json=pipe(1))
        await receiver.wait(2)  # two failed attempts
        receiver.status = 204
        await eventually(lambda: _when(counters(client, sub_id), lambda c: c.get("status") == "ok"))
        got = await counters(client, sub_id)
        assert got["timesFailed"] >= 2
        assert got["timesSent"] == got["timesFailed"] + 1
        ids = {body["id"] for body in receiver.bodies}
        assert len(ids) == 1, "retries send the same notification"


async def test_dead_endpoint_does_not_delay_others(store: EntityStore, settings: Settings) -> None:
    """A subscriber that never answers holds up only its own notifications: the others
    all arrive before its first attempt has even timed out."""
    settings = settings.replace(notify_timeout=10.0)
    async with (
        Receiver(hang=True) as dead,
        Receiver() as alive,
        running(store, settings) as (client, _),
    ):
        await subscribe(client, sub(dead.url))
        await subscribe(client, sub(alive.url))
        await client.post(E, json=pipe(1))
        start = time.monotonic()
        for n in range(30):
            r = await client.patch(f"{E}/urn:ngsi-ld:Pipe:1/attrs", json={"diameter": n})
            assert r.status_code == 204
        await alive.wait(31, timeout=8.0)
        assert time.monotonic() - start < 8.0
        assert dead.received == []
        values = [b["data"][0]["diameter"]["value"] for b in alive.bodies[1:]]
        assert sorted(values) == list(range(30))


async def test_throttling_spaces_notifications_without_losing_any(
    store: EntityStore, settings: Settings
) -> None:
    """5.2.12 throttling: no two notifications closer than the period; none dropped."""
    async with Receiver() as receiver, running(store, settings) as (client, _):
        await subscribe(client, sub(receiver.url, throttling=0.3))
        await client.post(E, json=pipe(1))
        for n in range(2):
            await client.patch(f"{E}/urn:ngsi-ld:Pipe:1/attrs", json={"diameter": n})
        await receiver.wait(3)
        times = [t for _, _, t in receiver.received]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= 0.25 for gap in gaps), gaps


async def test_periodic_notifications(store: EntityStore, settings: Settings) -> None:
    """5.2.12 timeInterval: every interval, the matching entities, changed or not."""
    async with Receiver() as receiver, running(store, settings) as (client, _):
        await client.post(E, json=pipe(1))
        await client.post(E, json=pipe(2))
        await subscribe(client, sub(receiver.url, timeInterval=0.3))
        first, second = await receiver.wait(2)
        for body in (first, second):
            assert sorted(e["id"] for e in body["data"]) == [
                "urn:ngsi-ld:Pipe:1",
                "urn:ngsi-ld:Pipe:2",
            ]
        gap = receiver.received[1][2] - receiver.received[0][2]
        assert gap >= 0.25


async def test_pending_notifications_survive_a_restart(
    store: EntityStore, settings: Settings
) -> None:
    """Changes acknowledged while the endpoint is down are delivered by the next app over
    the same store; so are changes committed while no notifier ran at all."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/notify"
    async with running(store, settings) as (client, _):
        sub_id = await subscribe(client, sub(url))
        await client.post(E, json=pipe(1))
        for n in range(5):
            await client.patch(f"{E}/urn:ngsi-ld:Pipe:1/attrs", json={"diameter": n})
        await eventually(lambda: _when(counters(client, sub_id), lambda c: c["timesFailed"] >= 1))
    # Written straight to the store, with no notifier running: left in the change log.
    offline = same_store(store)
    await offline.open()

    def grow(entity: Any) -> Any:
        attrs = dict(entity["attrs"])
        attrs["https://uri.etsi.org/ngsi-ld/default-context/diameter"] = [
            {"type": "Property", "value": 99}
        ]
        return {**entity, "attrs": attrs}

    await offline.mutate("", [Change("urn:ngsi-ld:Pipe:1", grow)])
    await offline.close()
    receiver = Receiver()
    receiver_port = port
    async with (
        _receiver_on(receiver, receiver_port),
        running(same_store(store), settings) as (
            _,
            app,
        ),
    ):
        bodies = await receiver.wait(7, timeout=15.0)
        values = sorted(b["data"][0]["diameter"]["value"] for b in bodies)
        assert values == [0, 1, 2, 3, 4, 99, 200]

        async def emptied() -> bool:
            return bool(await app.state.broker.store.outbox_size() == 0)

        await eventually(emptied)


class _receiver_on:
    """Start ``receiver`` on a given port (the one the subscription names)."""

    def __init__(self, receiver: Receiver, port: int) -> None:
        self.receiver = receiver
        self.port = port

    async def __aenter__(self) -> Receiver:
        r = self.receiver
        r._server = await asyncio.start_server(r._serve, "127.0.0.1", self.port)
        r.url = f"http://127.0.0.1:{self.port}/notify"
        return r

    async def __aexit__(self, *exc: object) -> None:
        await self.receiver.__aexit__(*exc)


@pytest.mark.postgres
async def test_several_processes_notify_each_change_once(pg_url: str, settings: Settings) -> None:
    """Two servers over one PostgreSQL database: every change, whichever server made it,
    is notified exactly once."""
    schema = f"twins_{secrets.token_hex(4)}"
    first = PostgresStore.from_url(f"{pg_url}?schema={schema}")
    second = PostgresStore.from_url(f"{pg_url}?schema={schema}")
    async with (
        Receiver() as receiver,
        running(first, settings) as (a, _),
        running(second, settings) as (b, _),
    ):
        await subscribe(a, sub(receiver.url))
        await a.post(E, json=pipe(1, diameter=-1))
        for n in range(40):
            client = a if n % 2 else b
            r = await client.patch(f"{E}/urn:ngsi-ld:Pipe:1/attrs", json={"diameter": n})
            assert r.status_code == 204
        await receiver.wait(41)
        await asyncio.sleep(0.5)
        values = sorted(body["data"][0]["diameter"]["value"] for body in receiver.bodies)
        assert values == [-1, *range(40)]
        assert len({body["id"] for body in receiver.bodies}) == 41
