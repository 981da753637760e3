"""Subscriptions over HTTP (GS CIM 009 v1.8 clauses 5.2.12 to 5.2.15 and 5.8), on every store."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.helpers import CORE, LD, assert_problem

S = "/ngsi-ld/v1/subscriptions"


def subscription(**members: Any) -> dict[str, Any]:
    """A valid Subscription body; members override or add."""
    body: dict[str, Any] = {
        "type": "Subscription",
        "entities": [{"type": "Pipe"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}},
    }
    body.update(members)
    return {k: v for k, v in body.items() if v is not None}


async def test_create_then_retrieve(client: httpx.AsyncClient) -> None:
    """5.8.1 answers 201 with Location; 5.8.3 returns it with defaults and counters."""
    r = await client.post(S, json=subscription(id="urn:ngsi-ld:Subscription:1"))
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{S}/urn:ngsi-ld:Subscription:1"
    r = await client.get(f"{S}/urn:ngsi-ld:Subscription:1")
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "urn:ngsi-ld:Subscription:1"
    assert body["type"] == "Subscription"
    assert body["entities"] == [{"type": "Pipe"}]
    assert body["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]
    assert body["isActive"] is True
    assert body["status"] == "active"
    notification = body["notification"]
    assert notification["format"] == "normalized"
    assert notification["endpoint"] == {
        "uri": "http://127.0.0.1:9/notify",
        "accept": "application/json",
    }
    assert notification["timesSent"] == 0
    assert notification["timesFailed"] == 0
    assert "createdAt" not in body
    assert r.headers["link"].startswith(f"<{CORE}>")


async def test_generated_id(client: httpx.AsyncClient) -> None:
    """5.8.1: without an id the broker assigns a URI."""
    r = await client.post(S, json=subscription())
    assert r.status_code == 201, r.text
    location = r.headers["location"]
    assert location.startswith(f"{S}/urn:ngsi-ld:Subscription:")
    assert (await client.get(location)).json()["id"] == location.rsplit("/", 1)[1]


async def test_duplicate_id_is_conflict(client: httpx.AsyncClient) -> None:
    """5.8.1: an id already used answers 409 AlreadyExists."""
    body = subscription(id="urn:ngsi-ld:Subscription:dup")
    assert (await client.post(S, json=body)).status_code == 201
    assert_problem(await client.post(S, json=body), 409, "AlreadyExists")


async def test_all_members_round_trip(client: httpx.AsyncClient) -> None:
    """5.2.12 / 5.2.14 / 5.2.15: every member given comes back as given."""
    body = subscription(
        id="urn:ngsi-ld:Subscription:full",
        subscriptionName="pressure drops",
        description="low pressure in the centre",
        entities=[{"type": "Junction", "idPattern": "urn:ngsi-ld:Junction:.*"}],
        watchedAttributes=["pressure"],
        notificationTrigger=["attributeUpdated", "entityDeleted"],
        q="pressure<2",
        scopeQ="/Berkane",
        geoQ={
            "geometry": "Point",
            "coordinates": [-2.32, 34.92],
            "georel": "near;maxDistance==500",
        },
        throttling=5,
        expiresAt="2099-01-01T00:00:00Z",
        lang="fr",
        notification={
            "attributes": ["pressure"],
            "format": "keyValues",
            "showChanges": True,
            "sysAttrs": True,
            "endpoint": {
                "uri": "mqtt://user:secret@127.0.0.1:1883/city/pressure",
                "accept": "application/ld+json",
                "receiverInfo": [{"key": "X-City", "value": "Berkane"}],
                "notifierInfo": [{"key": "MQTT-QoS", "value": "1"}],
            },
        },
    )
    assert (await client.post(S, json=body)).status_code == 201
    got = (await client.get(f"{S}/urn:ngsi-ld:Subscription:full")).json()
    for key in ("subscriptionName", "description", "entities", "watchedAttributes", "q"):
        assert got[key] == body[key], key
    assert got["notificationTrigger"] == ["attributeUpdated", "entityDeleted"]
    assert got["geoQ"]["georel"] == "near;maxDistance==500"
    assert got["geoQ"]["geoproperty"] == "location"
    assert got["throttling"] == 5
    assert got["expiresAt"] == "2099-01-01T00:00:00.000Z"
    assert got["lang"] == "fr"
    n = got["notification"]
    assert n["attributes"] == ["pressure"]
    assert n["format"] == "keyValues"
    assert n["showChanges"] is True and n["sysAttrs"] is True
    assert n["endpoint"]["receiverInfo"] == [{"key": "X-City", "value": "Berkane"}]
    assert n["endpoint"]["notifierInfo"] == [{"key": "MQTT-QoS", "value": "1"}]


async def test_names_are_expanded_with_the_context(client: httpx.AsyncClient) -> None:
    """5.2.12: names are expanded with the request's @context and compacted for the reader."""
    water = {
        "pressure": "https://example.org/water#pressure",
        "Junction": "https://example.org/water#Junction",
    }
    body = subscription(
        id="urn:ngsi-ld:Subscription:ctx",
        entities=[{"type": "Junction"}],
        watchedAttributes=["pressure"],
        notification={"attributes": ["pressure"], "endpoint": {"uri": "http://127.0.0.1:9/"}},
        **{"@context": [water, CORE]},
    )
    r = await client.post(S, json=body, headers={"Content-Type": LD})
    assert r.status_code == 201, r.text
    # Read with the core context only, the names show as the IRIs they stand for.
    got = (await client.get(f"{S}/urn:ngsi-ld:Subscription:ctx")).json()
    assert got["watchedAttributes"] == ["https://example.org/water#pressure"]
    assert got["notification"]["attributes"] == ["https://example.org/water#pressure"]
    assert got["entities"] == [{"type": "https://example.org/water#Junction"}]


async def test_json_ld_body(client: httpx.AsyncClient) -> None:
    """6.3.5: an application/ld+json subscription carries its @context in the body."""
    body = subscription(id="urn:ngsi-ld:Subscription:ld", **{"@context": CORE})
    r = await client.post(S, json=body, headers={"Content-Type": LD})
    assert r.status_code == 201, r.text
    got = await client.get(f"{S}/urn:ngsi-ld:Subscription:ld", headers={"Accept": LD})
    assert got.json()["@context"] == CORE


async def test_list_with_pagination(client: httpx.AsyncClient) -> None:
    """5.8.4: subscriptions in creation order, limit/offset, count in NGSILD-Results-Count."""
    for i in range(5):
        body = subscription(id=f"urn:ngsi-ld:Subscription:{i}")
        assert (await client.post(S, json=body)).status_code == 201
    r = await client.get(S)
    assert [s["id"] for s in r.json()] == [f"urn:ngsi-ld:Subscription:{i}" for i in range(5)]
    r = await client.get(S, params={"limit": 2, "offset": 1, "count": "true"})
    assert [s["id"] for s in r.json()] == [
        "urn:ngsi-ld:Subscription:1",
        "urn:ngsi-ld:Subscription:2",
    ]
    assert r.headers["ngsild-results-count"] == "5"
    assert_problem(await client.get(S, params={"limit": -1}), 400, "BadRequestData")


async def test_tenants_are_apart(client: httpx.AsyncClient) -> None:
    """5.8.4 / 4.14: a subscription lives in the tenant that created it."""
    body = subscription(id="urn:ngsi-ld:Subscription:t")
    assert (await client.post(S, json=body, headers={"NGSILD-Tenant": "oujda"})).status_code == 201
    assert (await client.get(S)).json() == []
    listed = (await client.get(S, headers={"NGSILD-Tenant": "oujda"})).json()
    assert [s["id"] for s in listed] == ["urn:ngsi-ld:Subscription:t"]
    assert_problem(await client.get(f"{S}/urn:ngsi-ld:Subscription:t"), 404, "ResourceNotFound")


async def test_update(client: httpx.AsyncClient) -> None:
    """5.8.2: members given replace the stored ones; the rest stays; isActive pauses."""
    sub_id = "urn:ngsi-ld:Subscription:up"
    await client.post(S, json=subscription(id=sub_id, q="diameter>100"))
    r = await client.patch(
        f"{S}/{sub_id}",
        json={"isActive": False, "throttling": 10, "notification": {"format": "concise"}},
    )
    assert r.status_code == 204, r.text
    got = (await client.get(f"{S}/{sub_id}?options=sysAttrs")).json()
    assert got["isActive"] is False
    assert got["status"] == "paused"
    assert got["throttling"] == 10
    assert got["q"] == "diameter>100"
    assert got["notification"]["format"] == "concise"
    assert got["notification"]["endpoint"]["uri"] == "http://127.0.0.1:9/notify"
    assert got["modifiedAt"] >= got["createdAt"]
    r = await client.patch(f"{S}/{sub_id}", json={"throttling": None, "isActive": True})
    assert r.status_code == 204
    got = (await client.get(f"{S}/{sub_id}")).json()
    assert "throttling" not in got and got["status"] == "active"


async def test_update_errors(client: httpx.AsyncClient) -> None:
    """5.8.2: unknown id is 404; an invalid member is 400 and leaves the subscription as is."""
    assert_problem(
        await client.patch(f"{S}/urn:ngsi-ld:Subscription:none", json={"throttling": 1}),
        404,
        "ResourceNotFound",
    )
    sub_id = "urn:ngsi-ld:Subscription:keep"
    await client.post(S, json=subscription(id=sub_id, throttling=3))
    r = await client.patch(f"{S}/{sub_id}", json={"notificationTrigger": ["entityMoved"]})
    assert_problem(r, 400, "BadRequestData")
    r = await client.patch(f"{S}/{sub_id}", json={"expiresAt": "2001-01-01T00:00:00Z"})
    assert_problem(r, 400, "BadRequestData")
    got = (await client.get(f"{S}/{sub_id}")).json()
    assert got["throttling"] == 3
    assert got["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]


async def test_delete(client: httpx.AsyncClient) -> None:
    """5.8.5: 204, then 404 on retrieve and on a second delete."""
    sub_id = "urn:ngsi-ld:Subscription:del"
    await client.post(S, json=subscription(id=sub_id))
    assert (await client.delete(f"{S}/{sub_id}")).status_code == 204
    assert_problem(await client.get(f"{S}/{sub_id}"), 404, "ResourceNotFound")
    assert_problem(await client.delete(f"{S}/{sub_id}"), 404, "ResourceNotFound")


async def test_expiry_shows_in_status(client: httpx.AsyncClient) -> None:
    """5.2.12: a subscription past its expiresAt has status expired."""
    sub_id = "urn:ngsi-ld:Subscription:exp"
    body = subscription(id=sub_id, expiresAt="2099-01-01T00:00:00Z")
    assert (await client.post(S, json=body)).status_code == 201
    # An update may move expiresAt; it does not have to stay in the future once stored.
    store = client._transport.app.state.broker.store  # type: ignore[attr-defined]
    row = await store.get_subscription("", sub_id)
    row.doc["expiresAt"] = "2001-01-01T00:00:00.000Z"
    await store.replace_subscription("", sub_id, row.doc)
    assert (await client.get(f"{S}/{sub_id}")).json()["status"] == "expired"


BAD_BODIES = [
    pytest.param([], id="not-an-object"),
    pytest.param(subscription(type="Sub"), id="wrong-type"),
    pytest.param(subscription(id="not a uri"), id="id-not-uri"),
    pytest.param(subscription(entities=None), id="no-entities-no-watched"),
    pytest.param(subscription(entities=[]), id="empty-entities"),
    pytest.param(subscription(entities=[{"id": "urn:a"}]), id="selector-without-type"),
    pytest.param(subscription(entities=[{"type": "Pipe", "idPattern": "(("}]), id="bad-idPattern"),
    pytest.param(subscription(entities=[{"type": "Pipe", "id": "nope"}]), id="selector-id-not-uri"),
    pytest.param(subscription(watchedAttributes=[]), id="empty-watched"),
    pytest.param(subscription(watchedAttributes=["a b"]), id="bad-watched-name"),
    pytest.param(subscription(notificationTrigger=["entityMoved"]), id="unknown-trigger"),
    pytest.param(subscription(notificationTrigger=[]), id="empty-triggers"),
    pytest.param(subscription(q="diameter>>"), id="q-does-not-parse"),
    pytest.param(subscription(q=5), id="q-not-string"),
    pytest.param(subscription(scopeQ="no-slash"), id="bad-scopeQ"),
    pytest.param(subscription(geoQ={"geometry": "Point"}), id="geoQ-incomplete"),
    pytest.param(
        subscription(geoQ={"geometry": "Point", "coordinates": [1], "georel": "near"}),
        id="geoQ-invalid",
    ),
    pytest.param(subscription(throttling=-1), id="negative-throttling"),
    pytest.param(subscription(throttling="5"), id="throttling-not-number"),
    pytest.param(subscription(timeInterval=0), id="zero-timeInterval"),
    pytest.param(
        subscription(timeInterval=10, watchedAttributes=["a"]), id="timeInterval-with-watched"
    ),
    pytest.param(subscription(timeInterval=10, throttling=1), id="timeInterval-with-throttling"),
    pytest.param(subscription(expiresAt="2001-01-01T00:00:00Z"), id="expiresAt-in-past"),
    pytest.param(subscription(expiresAt="tomorrow"), id="expiresAt-not-datetime"),
    pytest.param(subscription(isActive="yes"), id="isActive-not-bool"),
    pytest.param(subscription(notification=None), id="no-notification"),
    pytest.param(subscription(notification={"format": "normalized"}), id="no-endpoint"),
    pytest.param(subscription(notification={"endpoint": {}}), id="endpoint-without-uri"),
    pytest.param(subscription(notification={"endpoint": {"uri": "not a uri"}}), id="bad-uri"),
    pytest.param(
        subscription(notification={"endpoint": {"uri": "ftp://example.org/x"}}), id="bad-scheme"
    ),
    pytest.param(
        subscription(notification={"endpoint": {"uri": "mqtt://127.0.0.1:1883"}}),
        id="mqtt-without-topic",
    ),
    pytest.param(
        subscription(
            notification={"endpoint": {"uri": "http://127.0.0.1/x", "accept": "text/plain"}}
        ),
        id="bad-accept",
    ),
    pytest.param(
        subscription(
            notification={
                "endpoint": {
                    "uri": "mqtt://127.0.0.1/t",
                    "notifierInfo": [{"key": "MQTT-QoS", "value": "3"}],
                }
            }
        ),
        id="bad-qos",
    ),
    pytest.param(
        subscription(
            notification={"endpoint": {"uri": "http://127.0.0.1/x", "receiverInfo": [{"k": 1}]}}
        ),
        id="bad-receiverInfo",
    ),
    pytest.param(
        subscription(notification={"endpoint": {"uri": "http://127.0.0.1/x"}, "format": "compact"}),
        id="bad-format",
    ),
    pytest.param(
        subscription(notification={"endpoint": {"uri": "http://127.0.0.1/x"}, "sysAttrs": 1}),
        id="sysAttrs-not-bool",
    ),
    pytest.param(
        subscription(notification={"endpoint": {"uri": "http://127.0.0.1/x"}, "attributes": []}),
        id="empty-attributes",
    ),
]


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_invalid_bodies_are_rejected(client: httpx.AsyncClient, body: Any) -> None:
    """5.8.1: an invalid Subscription answers 400 BadRequestData and stores nothing."""
    assert_problem(await client.post(S, json=body), 400, "BadRequestData")
    assert (await client.get(S)).json() == []


async def test_unsupported_members(client: httpx.AsyncClient) -> None:
    """5.8.1: members this broker does not implement answer 422 OperationNotSupported."""
    r = await client.post(S, json=subscription(temporalQ={"timerel": "after"}))
    assert_problem(r, 422, "OperationNotSupported")


async def test_not_json_and_bad_ids(client: httpx.AsyncClient) -> None:
    """6.3: a body that is not JSON is 400 InvalidRequest; ids in paths must be URIs."""
    r = await client.post(S, content=b"{", headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "InvalidRequest")
    assert_problem(await client.get(f"{S}/not-a-uri"), 400, "BadRequestData")
    assert_problem(await client.delete(f"{S}/not-a-uri"), 400, "BadRequestData")
