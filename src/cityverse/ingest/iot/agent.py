"""The IoT agent: a background service of the app that brings device data into the twin.

It speaks the FIWARE IoT Agent provisioning API and the FIWARE agents' southbound
protocols (UltraLight 2.0 and JSON, over MQTT and HTTP), and writes measures as NGSI-LD
attribute updates through the store's one write primitive::

    agent = IotAgent(broker)          # one per app, listed in its services
    await agent.start()               # loads the registry, connects to MQTT if configured
    outcome = await agent.http_measure("k1", "lamp1", "ul", b"t|25")
    await agent.stop()                # writes what is queued, disconnects

With several server processes on one data directory, one of them (the first to take a
lock file) holds the MQTT subscription; the others publish commands only.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Any

from cityverse import __version__
from cityverse.broker.request import Broker
from cityverse.core.tasks import cancel_and_wait
from cityverse.ingest.iot.commands import Commands, CommandStatus
from cityverse.ingest.iot.mapping import Profile
from cityverse.ingest.iot.mqtt import MqttTransport
from cityverse.ingest.iot.pipeline import Message, Outcome, Pipeline
from cityverse.ingest.iot.provisioning import IotError
from cityverse.ingest.iot.registry import Registry
from cityverse.ingest.iot.stats import RateLimiter, Stats
from cityverse.store.base import Change

log = logging.getLogger("cityverse.iot")

REFRESH_SECONDS = 5.0
"""How often a server process re-reads provisioning made by the others."""


class IotAgent:
    """Provisioning, southbound transports and commands, as one app service."""

    def __init__(self, broker: Broker) -> None:
        settings = broker.settings
        self.broker = broker
        self.settings = settings
        self.stats = Stats()
        self.registry = Registry(broker.store, broker.contexts)
        self.commands = Commands(broker, self.stats)
        self.pipeline = Pipeline(
            broker,
            self.registry,
            self.stats,
            RateLimiter(settings.iot_rate_limit),
            window=max(0.0, settings.iot_batch_ms) / 1000,
            command_results=lambda message, profile, fmt: self.commands.results(
                message.payload, fmt, profile
            ),
        )
        self.mqtt: MqttTransport | None = None
        self._lock: IO[str] | None = None
        self._refresh: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load the registry, start the pipeline and, when a broker URL is set, MQTT."""
        await self.registry.load()
        self.pipeline.start()
        url = self.settings.iot_mqtt_url
        if url:
            owner = self._take_lock()
            client_id = self.settings.iot_mqtt_client_id
            if not owner:
                client_id = f"{client_id}-publisher-{os.getpid()}"
            self.mqtt = MqttTransport(
                url,
                client_id,
                self.pipeline.submit,
                self.stats,
                subscribe=owner,
                backlog=lambda: self.pipeline.backlog,
            )
            self.commands.publish = self.mqtt.publish
            self.mqtt.start()
        if self.settings.workers > 1:
            self._refresh = asyncio.create_task(self._refresh_loop(), name="iot-registry")

    async def stop(self) -> None:
        """Disconnect from MQTT, write every message received, close."""
        await cancel_and_wait([self._refresh], what="IoT registry")
        if self.mqtt is not None:
            await asyncio.to_thread(self.mqtt.stop)
            self.commands.publish = None
        await self.pipeline.stop()
        await self.commands.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _take_lock(self) -> bool:
        path = Path(self.settings.data_dir) / "iot-mqtt.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            log.info("another server process holds the MQTT subscription; this one publishes only")
            return False
        self._lock = handle
        return True

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.registry.load()
            except Exception:
                log.exception("IoT registry could not be re-read")

    # -- southbound HTTP -----------------------------------------------------------------

    async def http_measure(
        self,
        apikey: str,
        device_id: str,
        fmt: str,
        payload: bytes,
        *,
        timestamp: str | None = None,
        kind: str = "attrs",
    ) -> Outcome:
        """Write a measure (or command results, ``kind="cmdexe"``) sent over HTTP."""
        message = Message("http", apikey, device_id, kind, payload, None, fmt, timestamp=timestamp)
        return await self.pipeline.process(message)

    async def poll(self, apikey: str, device_id: str) -> dict[str, Any]:
        """The commands waiting for a device that polls for them (``getCmd=1``)."""
        profile = self._profile(apikey, device_id)
        if profile is None:
            return {}
        waiting, changes = self.commands.take_polled(profile)
        if changes:
            await self._write(profile.tenant, changes)
        return waiting

    # -- commands ------------------------------------------------------------------------

    def device_profile(
        self, tenant: str, subservice: str, device_id: str, apikey: str | None
    ) -> Profile:
        """The profile of a provisioned device of a tenant, or 404 DEVICE_NOT_FOUND."""
        device = self.registry.get_device(tenant, subservice, device_id, apikey)
        group, _ = self.registry.find(device.apikey, device.device_id)
        return self.registry.profile(group, device, device.apikey, device.device_id)

    async def send_command(self, profile: Profile, command: str, value: Any) -> CommandStatus:
        """Send a command to a device (see commands.py)."""
        return await self.commands.send(profile, command, value)

    async def notified(self, tenant: str, entities: list[Any]) -> list[CommandStatus]:
        """Send the commands named in an NGSI-LD notification's entities."""
        sent = []
        for entity in entities:
            if not isinstance(entity, dict) or not isinstance(entity.get("id"), str):
                raise IotError(400, "BAD_REQUEST", "each notified entity needs an id")
            profile = self.registry.by_entity(tenant, entity["id"])
            if profile is None:
                continue
            for name, raw in entity.items():
                if name in profile.commands:
                    value = raw.get("value", raw) if isinstance(raw, dict) else raw
                    sent.append(await self.commands.send(profile, name, value))
        return sent

    def _profile(self, apikey: str, device_id: str) -> Profile | None:
        group, device = self.registry.find(apikey, device_id)
        if device is None:
            return None
        return self.registry.profile(group, device, apikey, device_id)

    async def _write(self, tenant: str, changes: list[Change]) -> None:
        await self.broker.store.mutate(tenant, changes)
        self.broker.tenant_written(tenant)

    # -- what operators see --------------------------------------------------------------

    def about(self) -> dict[str, Any]:
        """What ``GET /iot/about`` shows: versions and transports."""
        mqtt: dict[str, Any] = {"enabled": self.mqtt is not None}
        if self.mqtt is not None:
            mqtt.update(
                broker=f"{self.mqtt.host}:{self.mqtt.port}",
                clientId=self.mqtt.client_id,
                subscribed=self.mqtt.subscribe,
                connected=self.mqtt.connected.is_set(),
            )
        return {
            "libVersion": __version__,
            "version": __version__,
            "port": self.settings.port,
            "baseRoot": "/",
            "product": "CityVerse IoT agent",
            "transports": {"http": True, "mqtt": mqtt},
            "payloads": ["UltraLight 2.0", "JSON"],
        }

    def stats_json(self) -> dict[str, Any]:
        """What ``GET /iot/stats`` shows: counters, rejections per reason, the last ones."""
        body = self.stats.as_json()
        body["backlog"] = self.pipeline.backlog
        body["groups"] = len(self.registry.groups)
        body["devices"] = len(self.registry.devices)
        body["mqttConnected"] = self.mqtt is not None and self.mqtt.connected.is_set()
        return body
