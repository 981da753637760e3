"""Notifications and the live stream show what their subscriber may see, on every store:
entities of types its role may not read are left out, personal attributes hidden or
pseudonymised, as for its queries. Delivered over real HTTP and SSE connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from cityverse.api.app import create_app
from cityverse.security.policy import PUBLIC_READ
from cityverse.settings import Settings
from cityverse.store.base import EntityStore
from tests.notify.conftest import lifespan
from tests.notify.receiver import Receiver
from tests.notify.test_delivery import E, S, free_port
from tests.notify.test_stream import STREAM, events

ROLES = ("admin", "operator", "analyst", "citizen")
REQUEST = "urn:ngsi-ld:ServiceRequest:1"
EMAIL = "amina@example.org"
CUSTOMER = "C-0042"


@dataclass
class Live:
    """A secured app with its services running, a client and a key per role."""

    app: Starlette
    client: httpx.AsyncClient
    keys: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.keys[role]}

    async def subscribe(self, role: str, uri: str, *types: str, **members: Any) -> str:
        body: dict[str, Any] = {
            "type": "Subscription",
            "entities": [{"type": t} for t in types],
            "notification": {"endpoint": {"uri": uri}},
            **members,
        }
        r = await self.client.post(S, json=body, headers=self.headers(role))
        assert r.status_code == 201, r.text
        return str(r.headers["location"].rsplit("/", 1)[1])

    async def write(self, entity: dict[str, Any]) -> None:
        r = await self.client.post(E, json=entity, headers=self.headers("operator"))
        assert r.status_code == 201, r.text

    async def set_policy(self, policy: dict[str, Any]) -> None:
        r = await self.client.put(
            "/cityverse/v1/security/policy", json=policy, headers=self.headers("admin")
        )
        assert r.status_code in (200, 204), r.text


def settings_for(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=str(tmp_path),
        auth="on",
        rate_limit=0,
        context_timeout=1.0,
        notify_timeout=1.0,
        notify_retry_base=0.05,
        notify_retry_max=0.2,
        notify_poll=0.02,
        notify_lease=2.0,
    )


async def _keys(app: Starlette) -> dict[str, str]:
    keys = {}
    for role in ROLES:
        keys[role], _ = await app.state.guard.keys.create("", role, f"{role} key")
    return keys


@contextlib.asynccontextmanager
async def live(store: EntityStore, tmp_path: Path) -> AsyncIterator[Live]:
    """The secured app over ``store`` with its lifespan run (the notifier started)."""
    app = create_app(settings_for(tmp_path), store=store)
    async with lifespan(app):
        keys = await _keys(app)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://cityverse.test") as c:
            yield Live(app, c, keys)


def service_request(status: str = "open") -> dict[str, Any]:
    return {
        "id": REQUEST,
        "type": "ServiceRequest",
        "status": {"type": "Property", "value": status},
        "contactPoint": {"type": "Property", "value": {"email": EMAIL}},
        "customer": {"type": "Property", "value": CUSTOMER},
    }


def building(n: int) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Building:{n}",
        "type": "Building",
        "name": {"type": "Property", "value": f"school {n}"},
    }


def only_item(body: Any) -> dict[str, Any]:
    assert body["type"] == "Notification"
    [item] = body["data"]
    return dict(item)


async def test_personal_attributes_follow_the_subscribers_role(
    store: EntityStore, tmp_path: Path
) -> None:
    """An analyst's notifications carry the customer as a pseudonym and no contactPoint;
    an operator's carry both in clear; the owner is not part of the subscription shown."""
    async with (
        Receiver() as analyst,
        Receiver() as operator,
        live(store, tmp_path) as city,
    ):
        analyst_sub = await city.subscribe("analyst", analyst.url, "ServiceRequest")
        await city.subscribe("operator", operator.url, "ServiceRequest")
        await city.write(service_request())
        [seen] = await analyst.wait(1)
        [clear] = await operator.wait(1)

        item = only_item(seen)
        assert item["id"] == REQUEST
        assert item["status"]["value"] == "open"
        assert "contactPoint" not in item
        assert item["customer"]["value"].startswith("pseudonym:")
        assert CUSTOMER not in str(seen) and EMAIL not in str(seen)

        item = only_item(clear)
        assert item["contactPoint"]["value"] == {"email": EMAIL}
        assert item["customer"]["value"] == CUSTOMER

        shown = await city.client.get(f"{S}/{analyst_sub}", headers=city.headers("analyst"))
        assert shown.status_code == 200
        assert "owner" not in shown.json()
        assert "analyst" not in shown.text


async def test_a_subscription_shows_what_its_last_writer_may_see(
    store: EntityStore, tmp_path: Path
) -> None:
    """An analyst who points an operator's subscription at its own endpoint gets what an
    analyst may see, not what the operator could."""
    async with Receiver() as operator, Receiver() as analyst, live(store, tmp_path) as city:
        sub_id = await city.subscribe("operator", operator.url, "ServiceRequest")
        await city.write(service_request())
        assert only_item((await operator.wait(1))[0])["customer"]["value"] == CUSTOMER

        r = await city.client.patch(
            f"{S}/{sub_id}",
            json={"notification": {"endpoint": {"uri": analyst.url}}},
            headers=city.headers("analyst"),
        )
        assert r.status_code == 204, r.text
        r = await city.client.patch(
            f"{E}/{REQUEST}/attrs",
            json={"status": {"type": "Property", "value": "closed"}},
            headers=city.headers("operator"),
        )
        assert r.status_code == 204, r.text
        item = only_item((await analyst.wait(1))[0])
        assert item["status"]["value"] == "closed"
        assert "contactPoint" not in item
        assert item["customer"]["value"].startswith("pseudonym:")


async def test_periodic_notifications_are_gated(store: EntityStore, tmp_path: Path) -> None:
    """A timeInterval subscription of an analyst sends pseudonyms too."""
    async with Receiver() as analyst, live(store, tmp_path) as city:
        await city.write(service_request())
        await city.subscribe("analyst", analyst.url, "ServiceRequest", timeInterval=1)
        item = only_item((await analyst.wait(1))[0])
        assert item["id"] == REQUEST
        assert "contactPoint" not in item
        assert item["customer"]["value"].startswith("pseudonym:")


async def test_hidden_types_are_not_notified(store: EntityStore, tmp_path: Path) -> None:
    """A citizen whose policy hides Building gets no notification of Building changes,
    while its ServiceRequest notifications and an operator's Building ones go out."""
    async with Receiver() as citizen, Receiver() as operator, live(store, tmp_path) as city:
        await city.set_policy({"roles": {"citizen": {"read": ["ServiceRequest"]}}})
        await city.subscribe("citizen", citizen.url, "Building", "ServiceRequest")
        await city.subscribe("operator", operator.url, "Building")
        await city.write(building(1))
        await city.write(building(2))
        await city.write(service_request())
        [got] = await citizen.wait(1)
        await operator.wait(2)
        # Building notifications, had they been made, were matched with or before the
        # ServiceRequest's: give them the time to arrive anyway.
        await asyncio.sleep(0.5)
        assert [only_item(body)["id"] for body in citizen.bodies] == [REQUEST]
        assert "contactPoint" not in only_item(got)
        assert sorted(only_item(b)["id"] for b in operator.bodies) == [
            "urn:ngsi-ld:Building:1",
            "urn:ngsi-ld:Building:2",
        ]


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """A uvicorn server of the app on a free port, in this event loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_stream_of_an_anonymous_caller_has_no_personal_data(
    store: EntityStore, tmp_path: Path
) -> None:
    """In a tenant open to the public for reading and streaming, an anonymous stream
    gets pseudonyms and no contactPoint, while an operator's stream shows them."""
    app = create_app(settings_for(tmp_path), store=store)
    keys = await _keys(app)
    async with serving(app) as base, httpx.AsyncClient(base_url=base) as client:
        operator = {"Authorization": "Bearer " + keys["operator"]}
        r = await client.put(
            "/cityverse/v1/security/policy",
            json=PUBLIC_READ,
            headers={"Authorization": "Bearer " + keys["admin"]},
        )
        assert r.status_code in (200, 204), r.text
        params = {"type": "ServiceRequest"}
        async with (
            client.stream("GET", STREAM, params=params) as anonymous,
            client.stream("GET", STREAM, params=params, headers=operator) as clear,
        ):
            assert anonymous.status_code == 200 and clear.status_code == 200
            public_events, operator_events = events(anonymous), events(clear)
            r = await client.post(E, json=service_request(), headers=operator)
            assert r.status_code == 201, r.text
            seen = await asyncio.wait_for(anext(public_events), 5)
            shown = await asyncio.wait_for(anext(operator_events), 5)
        item = only_item(seen)
        assert item["id"] == REQUEST and item["status"]["value"] == "open"
        assert "contactPoint" not in item
        assert item["customer"]["value"].startswith("pseudonym:")
        assert EMAIL not in str(seen) and CUSTOMER not in str(seen)
        item = only_item(shown)
        assert item["contactPoint"]["value"] == {"email": EMAIL}
        assert item["customer"]["value"] == CUSTOMER
