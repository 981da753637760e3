"""The demo's devices as the IoT agent knows them: service groups, devices and payloads.

Every simulated device of the demo city is provisioned in the server's IoT agent
(``/iot/services``, ``/iot/devices``, see docs/iot.md) and sends its measures over the
agent's HTTP southbound, as a real device would: JSON to ``/iot/json?k=&i=`` for the
water sensors, the weather station and the waste containers; UltraLight 2.0 to
``/iot/d?k=&i=`` for the parking sensors and the street lights. Each device is bound to
the entity the city already holds (``entity_name``), and its short measure names map to
that entity's Smart Data Models attributes, with their units::

    groups, devices = provisioning(entities)
    path, body, content_type = payload(KINDS["light"], "light-h3-2-4-1", measures)
    # "/iot/d?k=berkane-lights&i=light-h3-2-4-1",
    # b"2026-06-21T04:31:00.000Z|p|on|i|0.5", "text/plain"

A water sensor's attribute carries ``observedBy`` its Device through the provisioned
``metadata``, so that each reading says which Device took it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from cityverse.demo.city import PARKING, STREETLIGHTING, WASTE, WEATHER
from cityverse.twins.water.model import SDM_CONTEXT

JSON_RESOURCE = "/iot/json"
UL_RESOURCE = "/iot/d"


@dataclass(frozen=True)
class Attribute:
    """A measure the devices of a kind send: its short name and the attribute it feeds."""

    object_id: str
    name: str
    type: str
    unit: str | None = None

    def provisioned(self, **metadata: Any) -> dict[str, Any]:
        """The attribute as the provisioning API takes it."""
        body: dict[str, Any] = {"object_id": self.object_id, "name": self.name, "type": self.type}
        meta = dict(metadata)
        if self.unit is not None:
            meta["unitCode"] = {"type": "Text", "value": self.unit}
        if meta:
            body["metadata"] = meta
        return body


@dataclass(frozen=True)
class Kind:
    """One kind of demo device: its service group (apikey, resource, entity type,
    @context) and the measures it sends."""

    key: str
    apikey: str
    resource: str
    entity_type: str | None
    context: str
    attributes: tuple[Attribute, ...]

    @property
    def protocol(self) -> str:
        """The FIWARE name of the payload format."""
        return "IoTA-UL" if self.resource == UL_RESOURCE else "IoTA-JSON"

    def attribute(self, name: str) -> Attribute:
        """The measure feeding attribute ``name``."""
        return next(a for a in self.attributes if a.name == name)

    def group(self) -> dict[str, Any]:
        """The service group, as ``POST /iot/services`` takes it."""
        body: dict[str, Any] = {
            "apikey": self.apikey,
            "resource": self.resource,
            "jsonLdContext": self.context,
            "attributes": [a.provisioned() for a in self.attributes],
            "autoprovision": False,
        }
        if self.entity_type is not None:
            body["entity_type"] = self.entity_type
        return body


KINDS = {
    kind.key: kind
    for kind in (
        Kind(
            "water",
            "berkane-water",
            JSON_RESOURCE,
            None,  # each sensor's entity is a Junction, a Tank, a Pipe or a Pump
            SDM_CONTEXT,
            (
                Attribute("p", "pressure", "Number", "MTR"),
                Attribute("l", "level", "Number", "MTR"),
                Attribute("q", "flow", "Number", "G51"),
            ),
        ),
        Kind(
            "weather",
            "berkane-weather",
            JSON_RESOURCE,
            "WeatherObserved",
            WEATHER,
            (
                Attribute("d", "dateObserved", "Text"),
                Attribute("t", "temperature", "Number", "CEL"),
                Attribute("h", "relativeHumidity", "Number"),
                Attribute("ws", "windSpeed", "Number", "MTS"),
                Attribute("wd", "windDirection", "Number", "DD"),
                Attribute("ap", "atmosphericPressure", "Number", "A97"),
                Attribute("r", "precipitation", "Number", "MMT"),
            ),
        ),
        Kind(
            "waste",
            "berkane-waste",
            JSON_RESOURCE,
            "WasteContainer",
            WASTE,
            (
                Attribute("f", "fillingLevel", "Number"),
                Attribute("s", "status", "Text"),
                Attribute("e", "dateLastEmptying", "Text"),
            ),
        ),
        Kind(
            "parking",
            "berkane-parking",
            UL_RESOURCE,
            "ParkingSpot",
            PARKING,
            (Attribute("s", "status", "Text"),),
        ),
        Kind(
            "light",
            "berkane-lights",
            UL_RESOURCE,
            "Streetlight",
            STREETLIGHTING,
            (Attribute("p", "powerState", "Text"), Attribute("i", "illuminanceLevel", "Number")),
        ),
    )
}
"""The demo's kinds of device, by key."""

_BY_TYPE = {"WeatherObserved": "weather", "WasteContainer": "waste", "ParkingSpot": "parking"}
_BY_TYPE["Streetlight"] = "light"


def device_id(kind: str, entity_id: str) -> str:
    """The device id of the device of ``kind`` behind an entity (or a water sensor's
    Device): ``light-h3-2-4-1`` for ``urn:ngsi-ld:Streetlight:berkane-h3-2-4-1``,
    ``pressure-Junction-n1`` for ``urn:ngsi-ld:Device:L-Town:pressure-Junction-n1``."""
    last = entity_id.rsplit(":", 1)[-1]
    if kind == "water":
        return last
    return f"{kind}-{last.removeprefix('berkane-')}"


def provisioning(
    entities: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The service groups and the devices of the demo city's entities."""
    devices: list[dict[str, Any]] = []
    water = KINDS["water"]
    types = {e["id"]: e["type"] for e in entities}
    for entity in entities:
        kind_key = _BY_TYPE.get(entity["type"])
        if kind_key is not None:
            kind = KINDS[kind_key]
            devices.append(
                {
                    "device_id": device_id(kind_key, entity["id"]),
                    "apikey": kind.apikey,
                    "entity_name": entity["id"],
                    "entity_type": entity["type"],
                    "protocol": kind.protocol,
                    "transport": "HTTP",
                }
            )
        elif entity["type"] == "Device" and "sensor" in entity["deviceCategory"]["value"]:
            element = entity["controlledAsset"]["object"]
            [prop] = entity["controlledProperty"]["value"]
            observed_by = {"type": "Relationship", "value": entity["id"]}
            devices.append(
                {
                    "device_id": device_id("water", entity["id"]),
                    "apikey": water.apikey,
                    "entity_name": element,
                    "entity_type": types[element],
                    "protocol": water.protocol,
                    "transport": "HTTP",
                    "attributes": [water.attribute(prop).provisioned(observedBy=observed_by)],
                }
            )
    return [kind.group() for kind in KINDS.values()], devices


def payload(kind: Kind, device: str, measures: list[dict[str, Any]]) -> tuple[str, bytes, str]:
    """(path with query, body, content type) of one message carrying ``measures`` (each
    a dict of short names with its ``TimeInstant``) from ``device``."""
    path = f"{kind.resource}?{urlencode({'k': kind.apikey, 'i': device})}"
    if kind.resource == UL_RESOURCE:
        groups = []
        for measure in measures:
            fields = [str(measure["TimeInstant"])] if "TimeInstant" in measure else []
            for key, value in measure.items():
                if key != "TimeInstant":
                    fields += [key, _ul(value)]
            groups.append("|".join(fields))
        return path, "#".join(groups).encode(), "text/plain"
    body = measures[0] if len(measures) == 1 else measures
    return path, orjson.dumps(body), "application/json"


def _ul(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
