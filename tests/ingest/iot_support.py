"""Shared by the IoT agent tests: an app whose agent runs, and access to real Mosquitto."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cityverse.api.app import create_app
from cityverse.ingest.iot.agent import IotAgent
from cityverse.settings import Settings
from cityverse.store.base import EntityStore

MQTT_HOST = os.environ.get("CITYVERSE_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("CITYVERSE_TEST_MQTT_PORT", "1883"))
FIWARE = {"fiware-service": "openiot", "fiware-servicepath": "/"}
TENANT = {"NGSILD-Tenant": "openiot"}


@dataclass
class Running:
    """An app with its IoT agent started, and an HTTP client on it."""

    client: httpx.AsyncClient
    agent: IotAgent

    async def stats(self) -> dict[str, Any]:
        response = await self.client.get("/iot/stats")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    async def entity(self, entity_id: str, **params: str) -> httpx.Response:
        return await self.client.get(
            f"/ngsi-ld/v1/entities/{entity_id}", params=params, headers=TENANT
        )


@asynccontextmanager
async def running(store: EntityStore, tmp_path: Path, **settings: Any) -> AsyncIterator[Running]:
    """The app over ``store`` with only its IoT agent started (the test owns the store)."""
    app = create_app(Settings(data_dir=str(tmp_path), **{"auth": "off", **settings}), store=store)
    agent = next(s for s in app.state.services if isinstance(s, IotAgent))
    await agent.start()
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://cityverse.test") as c:
            yield Running(c, agent)
    finally:
        await agent.stop()


def mqtt_unavailable(reason: object) -> NoReturn:
    """Skip (fail under CI=true) when there is no broker to test against."""
    message = f"Mosquitto not reachable at {MQTT_HOST}:{MQTT_PORT}: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def mqtt_url() -> str:
    """The broker's URL after checking that it answers."""
    try:
        with socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=2):
            pass
    except OSError as exc:
        mqtt_unavailable(exc)
    return f"mqtt://{MQTT_HOST}:{MQTT_PORT}"


def client_id() -> str:
    """A client id of its own for each test, so that runs never share a session."""
    return f"cityverse-test-{uuid.uuid4().hex[:10]}"


def forget_session(cid: str) -> None:
    """Drop a persistent session from the broker (connect once with a clean session)."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=True)
    c.connect(MQTT_HOST, MQTT_PORT)
    c.loop_start()
    c.disconnect()
    c.loop_stop()


class Device:
    """A fake device: a real MQTT client that publishes and listens for commands."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id())
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, m.payload))

    def __enter__(self) -> Device:
        self.client.connect(MQTT_HOST, MQTT_PORT)
        self.client.loop_start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, topic: str) -> None:
        result, _mid = self.client.subscribe(topic, qos=1)
        assert result == 0

    def publish(self, topic: str, payload: str | bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)
