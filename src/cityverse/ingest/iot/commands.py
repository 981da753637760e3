"""Commands to devices: a street light's dimming level, a valve's setting.

A command is an attribute provisioned under ``commands``. Sending one publishes it to
the device (MQTT ``/{apikey}/{device}/cmd``, or an HTTP POST to the device's
``endpoint``; a device with HTTP transport and no endpoint fetches it with
``getCmd=1``) in the device's payload format, and sets ``<command>_status`` on the
entity: ``PENDING``, then ``OK`` (or ``ERROR``) with ``<command>_info`` holding the
device's answer, which comes on ``/{apikey}/{device}/cmdexe`` (UltraLight
``device@command|result``, JSON ``{"command": result}``), in the reply to the HTTP push,
or on ``POST /iot/json/commands``. An answer that says ``ERROR`` (UltraLight
``device@command|ERROR: reason``, JSON ``{"command": {"error": "reason"}}``) marks the
command ``ERROR``; a command that cannot be delivered is ``ERROR`` with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from cityverse.broker.entities import UpdateResult, appending
from cityverse.broker.request import Broker
from cityverse.core.entity import iso_now
from cityverse.core.model import Entity, Instance
from cityverse.ingest.iot import jsonpayload, ultralight
from cityverse.ingest.iot.mapping import MeasureError, Profile
from cityverse.ingest.iot.provisioning import IotError
from cityverse.ingest.iot.stats import Stats
from cityverse.store.base import Change, Mutation

log = logging.getLogger("cityverse.iot")

PENDING, DELIVERED, OK, ERROR = "PENDING", "DELIVERED", "OK", "ERROR"

Publish = Callable[[str, bytes], bool]
"""Publishes a payload on an MQTT topic (QoS 1); False when it cannot."""


@dataclass(slots=True)
class CommandStatus:
    """Where a command stands after sending it."""

    entity_id: str
    command: str
    status: str
    info: Any = None

    def as_json(self) -> dict[str, Any]:
        return {
            "entityId": self.entity_id,
            "command": self.command,
            "status": self.status,
            "info": self.info,
        }


def protocol_of(profile: Profile) -> str:
    """``ul`` or ``json``: the payload format of a device's commands."""
    protocol = (profile.setting("protocol") or "").upper()
    if "UL" in protocol or "ULTRALIGHT" in protocol:
        return "ul"
    if "JSON" in protocol:
        return "json"
    resource = profile.group.resource if profile.group is not None else ""
    return "ul" if resource == "/iot/d" else "json"


def status_mutation(profile: Profile, command: str, status: str, info: Any, now: str) -> Mutation:
    """Set ``<command>_status`` (and ``<command>_info``) on the device's entity."""

    def apply(current: Entity | None) -> Entity:
        entity = profile.new_entity(now) if current is None else current
        patch: dict[str, list[Instance]] = {
            profile.command_iri(command + "_status"): [_property(status, now)]
        }
        if info is not None:
            patch[profile.command_iri(command + "_info")] = [_property(info, now)]
        return appending(profile.entity_id, patch, now, overwrite=True, result=UpdateResult())(
            entity
        )

    return apply


def _property(value: Any, now: str) -> Instance:
    return {"type": "Property", "value": value, "createdAt": now, "modifiedAt": now}


def _verdict(result: Any) -> tuple[str, Any]:
    if isinstance(result, str) and result.strip().upper().startswith("ERROR"):
        return ERROR, result
    if isinstance(result, dict) and "error" in result:
        return ERROR, result["error"]
    return OK, result


class Commands:
    """Sends commands and records their status on the devices' entities."""

    def __init__(self, broker: Broker, stats: Stats, *, timeout: float = 5.0) -> None:
        self.broker = broker
        self.stats = stats
        self.publish: Publish | None = None
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._polls: dict[tuple[str, str], dict[str, Any]] = {}

    async def close(self) -> None:
        """Close the HTTP client of push commands."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def send(self, profile: Profile, command: str, value: Any) -> CommandStatus:
        """Send a command to a device and return its status (PENDING, OK or ERROR)."""
        if command not in profile.commands:
            raise IotError(
                404,
                "COMMAND_NOT_FOUND",
                f"Couldn't update the command because no command with the name [{command}] "
                "was found.",
            )
        fmt = protocol_of(profile)
        payload = (
            ultralight.format_command(profile.device_id, command, value).encode()
            if fmt == "ul"
            else jsonpayload.format_command(command, value)
        )
        endpoint = profile.setting("endpoint")
        transport = profile.setting("transport") or ("HTTP" if endpoint else "MQTT")
        self.stats.count("commandsSent")
        await self._set(profile, command, PENDING, None)
        if transport == "HTTP":
            if endpoint is None:
                self._polls.setdefault((profile.apikey, profile.device_id), {})[command] = value
                return CommandStatus(profile.entity_id, command, PENDING)
            return await self._push(profile, command, endpoint, payload, fmt)
        topic = f"/{profile.apikey}/{profile.device_id}/cmd"
        if self.publish is None:
            return await self._set(profile, command, ERROR, "the MQTT transport is not enabled")
        if not self.publish(topic, payload):
            return await self._set(profile, command, ERROR, "the MQTT broker is not reachable")
        return CommandStatus(profile.entity_id, command, PENDING)

    async def _push(
        self, profile: Profile, command: str, endpoint: str, payload: bytes, fmt: str
    ) -> CommandStatus:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout)
        content_type = "text/plain" if fmt == "ul" else "application/json"
        try:
            response = await self._http.post(
                endpoint, content=payload, headers={"Content-Type": content_type}
            )
        except httpx.HTTPError as exc:
            return await self._set(profile, command, ERROR, f"device unreachable: {exc}")
        if response.status_code >= 300:
            return await self._set(
                profile, command, ERROR, f"the device answered HTTP {response.status_code}"
            )
        result: Any = response.text
        try:
            if fmt == "ul":
                result = ultralight.parse_command_result(response.text).result
            else:
                result = jsonpayload.parse_command_result(response.content).get(command, result)
        except ValueError:
            pass
        status, info = _verdict(result)
        return await self._set(profile, command, status, info)

    async def _set(self, profile: Profile, command: str, status: str, info: Any) -> CommandStatus:
        change = Change(
            profile.entity_id, status_mutation(profile, command, status, info, iso_now())
        )
        [outcome] = await self.broker.store.mutate(profile.tenant, [change])
        self.broker.tenant_written(profile.tenant)
        if outcome.error is not None:
            log.error("command status of %s not stored: %s", profile.entity_id, outcome.error)
        if status == ERROR:
            self.stats.count("commandsFailed")
        return CommandStatus(profile.entity_id, command, status, info)

    def take_polled(self, profile: Profile) -> tuple[dict[str, Any], list[Change]]:
        """The commands waiting for a polling device, and the changes marking them DELIVERED."""
        waiting = self._polls.pop((profile.apikey, profile.device_id), {})
        now = iso_now()
        changes = [
            Change(profile.entity_id, status_mutation(profile, name, DELIVERED, None, now))
            for name in waiting
        ]
        return waiting, changes

    def results(self, payload: bytes, fmt: str, profile: Profile) -> list[Change]:
        """The status changes of a device's command results (``cmdexe`` or HTTP)."""
        now = iso_now()
        answers: dict[str, Any]
        try:
            if fmt == "ul":
                parsed = ultralight.parse_command_result(payload.decode("utf-8"))
                answers = {parsed.command: parsed.result}
            else:
                answers = jsonpayload.parse_command_result(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MeasureError("malformed", f"command result: {exc}") from None
        changes = []
        for command, result in answers.items():
            if command not in profile.commands:
                raise MeasureError(
                    "unknown-command",
                    f"device {profile.device_id!r} has no command {command!r}",
                )
            status, info = _verdict(result)
            changes.append(
                Change(profile.entity_id, status_mutation(profile, command, status, info, now))
            )
            self.stats.count("commandResults")
        return changes
