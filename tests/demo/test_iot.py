"""The demo's devices as the IoT agent knows them: groups, devices and their payloads."""

from __future__ import annotations

from typing import Any

import orjson

from cityverse.demo import iot
from cityverse.ingest.iot import jsonpayload, ultralight
from cityverse.ingest.iot.provisioning import parse_device, parse_group


def test_every_device_of_the_city_is_provisioned_on_its_entity(city: list[dict[str, Any]]) -> None:
    groups, devices = iot.provisioning(city)
    assert {g["apikey"] for g in groups} == {k.apikey for k in iot.KINDS.values()}
    for body in groups:
        parse_group(body, "", "/")  # the agent's own schema accepts it
    ids = {e["id"]: e["type"] for e in city}
    counted: dict[str, int] = {}
    for body in devices:
        device = parse_device(body, "", "/")
        assert ids[body["entity_name"]] == body["entity_type"]
        counted[device.apikey] = counted.get(device.apikey, 0) + 1
    kinds = {k.apikey: k.entity_type for k in iot.KINDS.values()}
    for apikey, entity_type in kinds.items():
        if entity_type is not None:
            assert counted[apikey] == sum(t == entity_type for t in ids.values())
    assert counted[iot.KINDS["water"].apikey] == 37  # L-Town's sensors, not its meters
    assert len({(d["apikey"], d["device_id"]) for d in devices}) == len(devices)


def test_json_and_ultralight_payloads_parse_as_the_agent_reads_them() -> None:
    stamp = "2026-06-21T04:31:00.000Z"
    path, body, content_type = iot.payload(
        iot.KINDS["light"], "light-h3-2-4-1", [{"TimeInstant": stamp, "p": "on", "i": 0.5}]
    )
    assert path == "/iot/d?k=berkane-lights&i=light-h3-2-4-1"
    assert content_type == "text/plain"
    assert ultralight.parse_measures(body.decode()) == [
        {"TimeInstant": stamp, "p": "on", "i": "0.5"}
    ]
    week = [{"TimeInstant": f"2026-06-21T04:{m:02d}:00.000Z", "p": 40 + m / 10} for m in (0, 5)]
    path, body, content_type = iot.payload(iot.KINDS["water"], "pressure-Junction-n1", week)
    assert path == "/iot/json?k=berkane-water&i=pressure-Junction-n1"
    assert content_type == "application/json"
    assert jsonpayload.parse_measures(body) == week
    _, single, _ = iot.payload(iot.KINDS["water"], "pressure-Junction-n1", week[:1])
    assert orjson.loads(single) == week[0]
