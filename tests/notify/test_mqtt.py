"""Notifications over MQTT to the real Mosquitto broker (GS CIM 009 v1.8, MQTT binding:
endpoint mqtt://user:password@host:port/topic, notifierInfo MQTT-QoS and MQTT-Version).

Needs Mosquitto at ``CITYVERSE_TEST_MQTT`` (default 127.0.0.1:1883): skipped without it,
failed when ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import queue
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cityverse.settings import Settings
from cityverse.store.base import EntityStore
from tests.notify.conftest import running
from tests.notify.test_delivery import E, counters, eventually, free_port, pipe, sub, subscribe

MQTT = os.environ.get("CITYVERSE_TEST_MQTT", "127.0.0.1:1883")
HOST, _, PORT = MQTT.partition(":")


@pytest.fixture
def topic() -> Iterator[tuple[str, queue.Queue[Any]]]:
    """A fresh topic on the real broker and the messages that arrive on it."""
    try:
        socket.create_connection((HOST, int(PORT)), timeout=2).close()
    except OSError as exc:
        message = f"Mosquitto not reachable at {MQTT}: {exc}; set CITYVERSE_TEST_MQTT"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"cityverse/test/{uuid.uuid4().hex}"
    received: queue.Queue[Any] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, msg: received.put((msg.qos, orjson.loads(msg.payload)))
    subscribed = queue.Queue[int]()
    client.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(mid)
    client.connect(HOST, int(PORT))
    client.loop_start()
    client.subscribe(name, qos=2)
    subscribed.get(timeout=5)
    yield name, received
    client.loop_stop()
    client.disconnect()


async def next_message(received: queue.Queue[Any]) -> Any:
    return await asyncio.to_thread(received.get, True, 10)


@pytest.mark.parametrize(("qos", "version"), [("0", "mqtt3.1.1"), ("1", "mqtt5.0"), ("2", None)])
async def test_mqtt_notification(
    store: EntityStore,
    settings: Settings,
    topic: tuple[str, queue.Queue[Any]],
    qos: str,
    version: str | None,
) -> None:
    """MQTT binding: the message on the URI's topic is {metadata, body}; body is the
    Notification (5.3.1); the QoS is the one notifierInfo asks for."""
    name, received = topic
    info = [{"key": "MQTT-QoS", "value": qos}]
    if version:
        info.append({"key": "MQTT-Version", "value": version})
    uri = f"mqtt://cityverse:secret@{MQTT}/{name}"
    async with running(store, settings) as (client, _):
        sub_id = await subscribe(
            client,
            sub(
                uri,
                notification={
                    "endpoint": {
                        "notifierInfo": info,
                        "receiverInfo": [{"key": "X-City", "value": "Nador"}],
                    }
                },
            ),
        )
        await client.post(E, json=pipe(diameter=200))
        got_qos, message = await next_message(received)
        assert got_qos == int(qos)
        assert message["metadata"]["Content-Type"] == "application/json"
        assert message["metadata"]["X-City"] == "Nador"
        body = message["body"]
        assert body["type"] == "Notification"
        assert body["subscriptionId"] == sub_id
        assert body["data"][0]["diameter"] == {"type": "Property", "value": 200}
        got = await eventually(lambda: _sent(client, sub_id))
        assert got["timesFailed"] == 0


async def _sent(client: Any, sub_id: str) -> Any:
    got = await counters(client, sub_id)
    return got if got["timesSent"] >= 1 else None


async def test_unreachable_mqtt_broker_is_a_counted_failure(
    store: EntityStore, settings: Settings
) -> None:
    """An MQTT broker that refuses connections counts as a failure with its reason."""
    async with running(store, settings) as (client, _):
        sub_id = await subscribe(client, sub(f"mqtt://127.0.0.1:{free_port()}/t"))
        r = await client.post(E, json=pipe(1))
        assert r.status_code == 201
        got = await eventually(lambda: _failed(client, sub_id))
        assert "connection refused" in got["lastFailureReason"]


async def _failed(client: Any, sub_id: str) -> Any:
    got = await counters(client, sub_id)
    return got if got["timesFailed"] >= 1 else None
