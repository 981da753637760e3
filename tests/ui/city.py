"""A small city seeded through the NGSI-LD API, for the dashboard's browser tests.

Berkane-like coordinates; a few of every layer's types, written with their Smart Data
Models @context (bundled by the server), and pressure history at known times so that
replaying the past shows other values than the live state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

CENTRE = (-2.32, 34.92)
LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
SDM = "https://smart-data-models.github.io/dataModel.{}/context.jsonld"
EPANET = SDM.format("WaterDistributionManagementEPANET")

NOW = datetime.now(UTC).replace(microsecond=0)
PAST = NOW - timedelta(hours=3)
"""When the junctions had their past (healthy) pressure."""
RECENT = NOW - timedelta(minutes=30)
"""When the junctions got their live (low) pressure."""
PAST_PRESSURE = 42.0
LIVE_PRESSURE = 8.0
JUNCTIONS = 12
SIMULATED_JUNCTION = "urn:ngsi-ld:Junction:J5"
SIMULATION = "urn:ngsi-ld:Dataset:simulation"


def iso(when: datetime) -> str:
    """ISO 8601 in UTC with a Z."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _point(dx: float, dy: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [CENTRE[0] + dx, CENTRE[1] + dy]}


def _geo(value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": value}


def _prop(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **extra}


def water() -> list[dict[str, Any]]:
    """Junctions on a line with their past pressure, pipes between them, and a tank."""
    out: list[dict[str, Any]] = []
    for i in range(JUNCTIONS):
        out.append(
            {
                "id": f"urn:ngsi-ld:Junction:J{i}",
                "type": "Junction",
                "name": _prop(f"Junction {i}"),
                "elevation": _prop(150 + i),
                "pressure": _prop(PAST_PRESSURE, observedAt=iso(PAST)),
                "location": _geo(_point(-0.006 + i * 0.001, 0.0)),
            }
        )
    for i in range(JUNCTIONS - 1):
        a, b = out[i]["location"]["value"], out[i + 1]["location"]["value"]
        out.append(
            {
                "id": f"urn:ngsi-ld:Pipe:P{i}",
                "type": "Pipe",
                "diameter": _prop(200),
                "startsAt": {"type": "Relationship", "object": f"urn:ngsi-ld:Junction:J{i}"},
                "endsAt": {"type": "Relationship", "object": f"urn:ngsi-ld:Junction:J{i + 1}"},
                "location": _geo(
                    {"type": "LineString", "coordinates": [a["coordinates"], b["coordinates"]]}
                ),
            }
        )
    out.append(
        {
            "id": "urn:ngsi-ld:Tank:T1",
            "type": "Tank",
            "name": _prop("Château d'eau Nord"),
            "location": _geo(_point(0.0, 0.004)),
        }
    )
    return out


def buildings() -> list[dict[str, Any]]:
    """A row of blocks with heights (core @context: Building has no bundled model)."""
    out = []
    for i in range(6):
        x, y = CENTRE[0] - 0.004 + i * 0.0015, CENTRE[1] + 0.0015
        ring = [[x, y], [x + 0.001, y], [x + 0.001, y + 0.0008], [x, y + 0.0008], [x, y]]
        out.append(
            {
                "id": f"urn:ngsi-ld:Building:B{i}",
                "type": "Building",
                "name": _prop(f"Immeuble {i}"),
                "height": _prop(6 + 6 * i),
                "location": _geo({"type": "Polygon", "coordinates": [ring]}),
            }
        )
    return out


def alerts() -> list[dict[str, Any]]:
    """Two open alerts, one pointing at a junction."""
    return [
        {
            "id": "urn:ngsi-ld:Alert:low-pressure-J3",
            "type": "Alert",
            "category": _prop("water"),
            "subCategory": _prop("lowPressure"),
            "description": _prop("Low pressure at Junction 3"),
            "severity": _prop("high"),
            "status": _prop("open"),
            "dateIssued": _prop(iso(RECENT)),
            "alertSource": {"type": "Relationship", "object": "urn:ngsi-ld:Junction:J3"},
            "location": _geo(_point(-0.003, 0.0)),
        },
        {
            "id": "urn:ngsi-ld:Alert:bin-full",
            "type": "Alert",
            "category": _prop("waste"),
            "description": _prop("Container full"),
            "severity": _prop("medium"),
            "status": _prop("open"),
            "dateIssued": _prop(iso(PAST)),
            "location": _geo(_point(0.002, -0.002)),
        },
    ]


def others() -> list[tuple[str, list[dict[str, Any]]]]:
    """Streetlights, waste containers and parking spots, each with its own @context."""
    lights = [
        {
            "id": f"urn:ngsi-ld:Streetlight:L{i}",
            "type": "Streetlight",
            "powerState": _prop("on" if i % 2 else "off"),
            "location": _geo(_point(-0.004 + i * 0.0008, -0.001)),
        }
        for i in range(8)
    ]
    bins = [
        {
            "id": f"urn:ngsi-ld:WasteContainer:W{i}",
            "type": "WasteContainer",
            "fillingLevel": _prop(i / 5),
            "location": _geo(_point(0.001 + i * 0.0007, -0.002)),
        }
        for i in range(5)
    ]
    spots = [
        {
            "id": f"urn:ngsi-ld:ParkingSpot:S{i}",
            "type": "ParkingSpot",
            "status": _prop("free" if i % 3 else "occupied"),
            "location": _geo(_point(0.003, 0.001 + i * 0.0003)),
        }
        for i in range(6)
    ]
    sensors = [
        {
            "id": "urn:ngsi-ld:Device:pressure-J5",
            "type": "Device",
            "name": _prop("Pressure logger J5"),
            "controlledAsset": {"type": "Relationship", "object": "urn:ngsi-ld:Junction:J5"},
            "location": _geo(_point(-0.001, 0.0003)),
        }
    ]
    return [
        (SDM.format("Streetlighting"), lights),
        (SDM.format("WasteManagement"), bins),
        (SDM.format("Parking"), spots),
        ("", sensors + buildings() + alerts()),
    ]


def seed(base: str) -> None:
    """Write the city through the API, then its live pressures (history at known times)."""
    with httpx.Client(base_url=base, timeout=30) as client:
        batches = [(EPANET, water()), *others()]
        for context, entities in batches:
            headers = {"Link": LINK.format(context)} if context else {}
            r = client.post("/ngsi-ld/v1/entityOperations/upsert", json=entities, headers=headers)
            assert r.status_code in (201, 204), r.text
        for i in range(JUNCTIONS):
            r = client.patch(
                f"/ngsi-ld/v1/entities/urn:ngsi-ld:Junction:J{i}/attrs",
                json={"pressure": _prop(LIVE_PRESSURE + i * 0.1, observedAt=iso(RECENT))},
                headers={"Link": LINK.format(EPANET)},
            )
            assert r.status_code == 204, r.text
        # The water twin's simulated pressure beside the measured one (its own datasetId).
        for hours, value in ((2, 40.0), (1, 30.0), (0, 20.0)):
            r = client.post(
                f"/ngsi-ld/v1/entities/{SIMULATED_JUNCTION}/attrs",
                json={
                    "pressure": _prop(
                        value, observedAt=iso(NOW - timedelta(hours=hours)), datasetId=SIMULATION
                    )
                },
                headers={"Link": LINK.format(EPANET)},
            )
            assert r.status_code == 204, r.text
