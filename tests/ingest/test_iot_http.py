"""Devices over HTTP (``/iot/d`` UltraLight, ``/iot/json`` JSON): measures into the twin,
every bad input counted with its reason, the rate limit, and commands pushed over HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cityverse.store.base import EntityStore
from tests.ingest.iot_support import FIWARE, Running, running

GROUP = {
    "apikey": "k1",
    "resource": "/iot/d",
    "entity_type": "WeatherObserved",
    "attributes": [
        {
            "object_id": "t",
            "name": "temperature",
            "type": "Number",
            "metadata": {"unitCode": {"type": "Text", "value": "CEL"}},
        },
        {
            "object_id": "h",
            "name": "relativeHumidity",
            "type": "Number",
            "expression": "value / 100",
        },
    ],
}


async def _provision(app: Running, **changes: Any) -> None:
    r = await app.client.post(
        "/iot/services", headers=FIWARE, json={"services": [{**GROUP, **changes}]}
    )
    assert r.status_code == 201, r.text


async def test_ultralight_measure_shows_in_the_entity(store: EntityStore, tmp_path: Path) -> None:
    """A measure becomes Properties with value, unitCode and observedAt (GS CIM 009 4.5.2)."""
    async with running(store, tmp_path) as app:
        await _provision(app)
        r = await app.client.post(
            "/iot/d", params={"k": "k1", "i": "ws1"}, content=b"2024-05-01T10:00:00Z|t|21.5|h|64"
        )
        assert r.status_code == 200, r.text
        r = await app.entity("urn:ngsi-ld:WeatherObserved:ws1")
        assert r.status_code == 200
        body = r.json()
        assert body["type"] == "WeatherObserved"
        assert body["temperature"] == {
            "type": "Property",
            "value": 21.5,
            "unitCode": "CEL",
            "observedAt": "2024-05-01T10:00:00.000Z",
        }
        assert body["relativeHumidity"]["value"] == 0.64


async def test_json_measures_in_order_and_without_timestamp(
    store: EntityStore, tmp_path: Path
) -> None:
    async with running(store, tmp_path) as app:
        await _provision(app)
        r = await app.client.post(
            "/iot/json", params={"k": "k1", "i": "ws2"}, json=[{"t": 1}, {"t": 2}]
        )
        assert r.status_code == 200, r.text
        body = (await app.entity("urn:ngsi-ld:WeatherObserved:ws2")).json()
        assert body["temperature"]["value"] == 2
        assert body["temperature"]["observedAt"].endswith("Z")  # the arrival time
        stats = await app.stats()
        assert (
            stats["counts"]["entitiesCreated"] == 1
            and stats["counts"]["devicesAutoprovisioned"] == 1
        )


async def test_same_value_and_time_again_leaves_the_entity_untouched(
    store: EntityStore, tmp_path: Path
) -> None:
    """A redelivered measure (same value, same device time) is not a new observation."""
    async with running(store, tmp_path) as app:
        await _provision(app)
        measure = {"t": 20, "TimeInstant": "2024-05-01T10:00:00Z"}
        await app.client.post("/iot/json", params={"k": "k1", "i": "ws3"}, json=measure)
        first = (await app.entity("urn:ngsi-ld:WeatherObserved:ws3", options="sysAttrs")).json()
        await app.client.post("/iot/json", params={"k": "k1", "i": "ws3"}, json=measure)
        again = (await app.entity("urn:ngsi-ld:WeatherObserved:ws3", options="sysAttrs")).json()
        assert again == first
        assert (await app.stats())["counts"]["duplicatesIgnored"] == 1


async def test_a_new_measure_keeps_when_the_attribute_was_created(
    store: EntityStore, tmp_path: Path
) -> None:
    """A later measure replaces the value and the modification time of the attribute, not
    its creation time (5.6.3 with overwrite); attributes it does not carry stay."""
    async with running(store, tmp_path) as app:
        await _provision(app)
        params = {"k": "k1", "i": "ws4"}
        first = {"t": 20, "h": 50, "TimeInstant": "2024-05-01T10:00:00Z"}
        assert (await app.client.post("/iot/json", params=params, json=first)).status_code == 200
        before = (await app.entity("urn:ngsi-ld:WeatherObserved:ws4", options="sysAttrs")).json()
        await asyncio.sleep(0.01)
        later = {"t": 21, "TimeInstant": "2024-05-01T10:05:00Z"}
        assert (await app.client.post("/iot/json", params=params, json=later)).status_code == 200
        after = (await app.entity("urn:ngsi-ld:WeatherObserved:ws4", options="sysAttrs")).json()
        t0, t1 = before["temperature"], after["temperature"]
        assert t1["value"] == 21 and t1["observedAt"] == "2024-05-01T10:05:00.000Z"
        assert t1["createdAt"] == t0["createdAt"]
        assert t1["modifiedAt"] > t0["modifiedAt"]
        assert after["modifiedAt"] == t1["modifiedAt"]
        assert after["relativeHumidity"] == before["relativeHumidity"]


@pytest.mark.parametrize(
    ("params", "payload", "status", "name", "reason"),
    [
        ({"k": "nope", "i": "d1"}, b"t|1", 404, "DEVICE_GROUP_NOT_FOUND", "unknown-apikey"),
        ({"k": "k1", "i": "d1"}, b"t|", 400, "PARSE_ERROR", "malformed"),
        ({"k": "k1", "i": "d1"}, b"t|warm", 400, "WRONG_TYPE", "wrong-type"),
        ({"k": "k1", "i": "d1"}, b"yesterday|t|1", 400, "BAD_TIMESTAMP", "bad-timestamp"),
    ],
)
async def test_bad_input_is_rejected_counted_and_kept(
    store: EntityStore,
    tmp_path: Path,
    params: dict[str, str],
    payload: bytes,
    status: int,
    name: str,
    reason: str,
) -> None:
    async with running(store, tmp_path) as app:
        await _provision(app)
        r = await app.client.post("/iot/d", params=params, content=payload)
        assert r.status_code == status, r.text
        assert r.json()["name"] == name
        stats = await app.stats()
        assert stats["rejected"] == {reason: 1}
        last = stats["lastRejections"][0]
        assert last["reason"] == reason and last["deviceId"] == "d1" and last["detail"]
        # The agent goes on: a good measure from the same device still lands.
        if reason != "unknown-apikey":
            r = await app.client.post("/iot/d", params={"k": "k1", "i": "d1"}, content=b"t|3")
            assert r.status_code == 200
            assert (await app.entity("urn:ngsi-ld:WeatherObserved:d1")).json()["temperature"][
                "value"
            ] == 3


async def test_unknown_device_when_the_group_does_not_autoprovision(
    store: EntityStore, tmp_path: Path
) -> None:
    async with running(store, tmp_path) as app:
        await _provision(app, autoprovision=False)
        r = await app.client.post("/iot/d", params={"k": "k1", "i": "stranger"}, content=b"t|1")
        assert r.status_code == 404 and r.json()["name"] == "DEVICE_NOT_FOUND"
        assert (await app.stats())["rejected"] == {"unknown-device": 1}
        assert (await app.entity("urn:ngsi-ld:WeatherObserved:stranger")).status_code == 404
        # A provisioned device of that group is welcome.
        await app.client.post(
            "/iot/devices",
            headers=FIWARE,
            json={"devices": [{"device_id": "known", "apikey": "k1"}]},
        )
        assert (
            await app.client.post("/iot/d", params={"k": "k1", "i": "known"}, content=b"t|1")
        ).status_code == 200


async def test_missing_parameters(store: EntityStore, tmp_path: Path) -> None:
    async with running(store, tmp_path) as app:
        r = await app.client.post("/iot/d", params={"k": "k1"}, content=b"t|1")
        assert r.status_code == 400 and r.json()["name"] == "MANDATORY_PARAMS_NOT_FOUND"


async def test_one_bad_value_does_not_spoil_the_others(store: EntityStore, tmp_path: Path) -> None:
    async with running(store, tmp_path) as app:
        await _provision(app)
        r = await app.client.post("/iot/d", params={"k": "k1", "i": "ws4"}, content=b"t|hot|h|50")
        assert r.status_code == 200
        body = (await app.entity("urn:ngsi-ld:WeatherObserved:ws4")).json()
        assert "temperature" not in body and body["relativeHumidity"]["value"] == 0.5
        assert (await app.stats())["rejected"] == {"wrong-type": 1}


async def test_rate_limit_per_device(store: EntityStore, tmp_path: Path) -> None:
    async with running(store, tmp_path, iot_rate_limit=3.0) as app:
        await _provision(app)
        codes = [
            (
                await app.client.post(
                    "/iot/d", params={"k": "k1", "i": "noisy"}, content=f"t|{n}".encode()
                )
            ).status_code
            for n in range(8)
        ]
        assert codes[:3] == [200, 200, 200]
        assert 429 in codes[3:]
        # Another device is not affected.
        assert (
            await app.client.post("/iot/d", params={"k": "k1", "i": "quiet"}, content=b"t|1")
        ).status_code == 200
        assert (await app.stats())["rejected"]["rate-limited"] == codes.count(429)


class _Lamp(BaseHTTPRequestHandler):
    """A device that takes UltraLight commands over HTTP and answers synchronously."""

    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Lamp.received.append(body)
        device, _, rest = body.decode().partition("@")
        command = rest.split("|")[0]
        reply = f"{device}@{command}|dimmed".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def lamp_endpoint() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Lamp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Lamp.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


async def test_command_pushed_over_http(
    store: EntityStore, tmp_path: Path, lamp_endpoint: str
) -> None:
    async with running(store, tmp_path) as app:
        device = {
            "device_id": "lamp9",
            "apikey": "k1",
            "entity_type": "Streetlight",
            "protocol": "IoTA-UL",
            "transport": "HTTP",
            "endpoint": lamp_endpoint,
            "commands": [{"name": "dim", "type": "command"}],
        }
        await _provision(app)
        assert (
            await app.client.post("/iot/devices", headers=FIWARE, json={"devices": [device]})
        ).status_code == 201
        r = await app.client.post("/iot/devices/lamp9/commands", headers=FIWARE, json={"dim": 40})
        assert r.status_code == 200, r.text
        assert r.json()["commands"][0]["status"] == "OK"
        assert _Lamp.received == [b"lamp9@dim|40"]
        body = (await app.entity("urn:ngsi-ld:Streetlight:lamp9")).json()
        assert body["dim_status"]["value"] == "OK" and body["dim_info"]["value"] == "dimmed"
        r = await app.client.post(
            "/iot/devices/lamp9/commands", headers=FIWARE, json={"explode": 1}
        )
        assert r.status_code == 404 and r.json()["name"] == "COMMAND_NOT_FOUND"


async def test_polled_command_over_http(store: EntityStore, tmp_path: Path) -> None:
    async with running(store, tmp_path) as app:
        device = {
            "device_id": "v1",
            "apikey": "k2",
            "entity_type": "Valve",
            "protocol": "IoTA-JSON",
            "transport": "HTTP",
            "commands": [{"name": "open", "type": "command"}],
        }
        await app.client.post("/iot/devices", headers=FIWARE, json={"devices": [device]})
        r = await app.client.post("/iot/devices/v1/commands", headers=FIWARE, json={"open": 75})
        assert r.json()["commands"][0]["status"] == "PENDING"
        r = await app.client.get("/iot/json", params={"k": "k2", "i": "v1", "getCmd": "1"})
        assert r.status_code == 200 and r.json() == {"open": 75}
        assert (await app.entity("urn:ngsi-ld:Valve:v1")).json()["open_status"][
            "value"
        ] == "DELIVERED"
        r = await app.client.post(
            "/iot/json/commands", params={"k": "k2", "i": "v1"}, json={"open": "opened"}
        )
        assert r.status_code == 200, r.text
        body = (await app.entity("urn:ngsi-ld:Valve:v1")).json()
        assert body["open_status"]["value"] == "OK" and body["open_info"]["value"] == "opened"


async def test_notification_drives_a_command(
    store: EntityStore, tmp_path: Path, lamp_endpoint: str
) -> None:
    """An NGSI-LD notification (GS CIM 009 5.3.1) naming a command attribute sends it."""
    async with running(store, tmp_path) as app:
        device = {
            "device_id": "lamp5",
            "apikey": "k1",
            "entity_type": "Streetlight",
            "protocol": "IoTA-UL",
            "endpoint": lamp_endpoint,
            "commands": [{"name": "dim", "type": "command"}],
        }
        await app.client.post("/iot/devices", headers=FIWARE, json={"devices": [device]})
        notification = {
            "id": "urn:ngsi-ld:Notification:1",
            "type": "Notification",
            "subscriptionId": "urn:s:1",
            "notifiedAt": "2026-01-01T00:00:00Z",
            "data": [
                {
                    "id": "urn:ngsi-ld:Streetlight:lamp5",
                    "type": "Streetlight",
                    "dim": {"type": "Property", "value": 70},
                }
            ],
        }
        r = await app.client.post(
            "/iot/notify", headers={"NGSILD-Tenant": "openiot"}, json=notification
        )
        assert r.status_code == 200, r.text
        assert _Lamp.received == [b"lamp5@dim|70"]
