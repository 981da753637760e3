"""JSON payloads, measure expressions and the conversion of measures to attribute instances."""

from __future__ import annotations

from typing import Any

import pytest

from cityverse.core.context import ContextResolver
from cityverse.ingest.iot.expressions import ExpressionError, Missing, compile_expression
from cityverse.ingest.iot.jsonpayload import (
    JsonPayloadError,
    format_command,
    parse_command_result,
    parse_measures,
    parse_value,
)
from cityverse.ingest.iot.mapping import MeasureError, Profile, entity_id_for
from cityverse.ingest.iot.provisioning import IotError, parse_device, parse_group

NOW = "2026-01-01T00:00:00.000Z"
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"


def test_json_measure_object_or_array() -> None:
    assert parse_measures(b'{"t": 25, "h": 60}') == [{"t": 25, "h": 60}]
    assert parse_measures(b'[{"t": 1}, {"t": 2}]') == [{"t": 1}, {"t": 2}]


@pytest.mark.parametrize("payload", [b"", b"{", b"25", b"[]", b"[1, 2]", b'"text"', b"null"])
def test_json_measure_refused(payload: bytes) -> None:
    with pytest.raises(JsonPayloadError):
        parse_measures(payload)


def test_single_value_and_commands() -> None:
    assert parse_value(b"21.5") == 21.5
    assert parse_value(b"on") == "on"
    assert format_command("dim", 50) == b'{"dim":50}'
    assert parse_command_result(b'{"dim": "done"}') == {"dim": "done"}
    with pytest.raises(JsonPayloadError):
        parse_command_result(b"[1]")


@pytest.mark.parametrize(
    ("expression", "variables", "expected"),
    [
        ("value * 0.1", {"value": "250"}, 25.0),
        ("${@value * 0.1}", {"value": 250}, 25.0),
        ("(f - 32) * 5 / 9", {"f": 212}, 100),
        ("t | round", {"t": 24.6}, 25),
        ("level / 100 | tofixed(2)", {"level": 85.3}, "0.85"),
        ("name + ' is ' + value", {"name": "P1", "value": 3}, "P1 is 3"),
        (
            "{type: 'Point', coordinates: [lon, lat]}",
            {"lon": -2.3, "lat": 34.9},
            {"type": "Point", "coordinates": [-2.3, 34.9]},
        ),
        ("location | split(', ')[1] | parsefloat", {"location": "40.4, -3.7"}, -3.7),
        ("a > 2 && !b", {"a": "3", "b": False}, True),
        ("x / 0", {"x": 1}, None),
        ("x * 2", {"x": "not a number"}, None),
    ],
)
def test_expressions(expression: str, variables: dict[str, Any], expected: Any) -> None:
    assert compile_expression(expression).evaluate(variables) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "open('/etc/passwd')",
        "x.y()",
        "a ? b : c",
        "x; y",
        "x | nosuch",
        "[i for i in x]",
        "lambda: 1",
    ],
)
def test_expressions_outside_the_language_are_refused(expression: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(expression)


def test_missing_variable_is_reported() -> None:
    expression = compile_expression("level / 100")
    assert expression.names == {"level"}
    with pytest.raises(Missing):
        expression.evaluate({})


def _profile(attributes: list[dict[str, Any]], **group: Any) -> Profile:
    body = {
        "apikey": "k",
        "resource": "/iot/json",
        "entity_type": "Sensor",
        "attributes": attributes,
    }
    body.update(group)
    return Profile(parse_group(body, "t", "/"), None, "s1", "k", ContextResolver().core)


def test_measures_become_typed_instances() -> None:
    profile = _profile(
        [
            {
                "object_id": "t",
                "name": "temperature",
                "type": "Number",
                "metadata": {"unitCode": {"type": "Text", "value": "CEL"}},
            },
            {"object_id": "n", "name": "count", "type": "Integer"},
            {"object_id": "on", "name": "active", "type": "Boolean"},
            {"object_id": "p", "name": "position", "type": "geo:point"},
            {"object_id": "o", "name": "owner", "type": "Relationship"},
            {"object_id": "d", "name": "installed", "type": "DateTime"},
        ]
    )
    problems: list[tuple[str, str]] = []
    instances, timed = profile.instances(
        {
            "t": "21.5",
            "n": "3",
            "on": "true",
            "p": "34.9, -2.3",
            "o": "urn:ngsi-ld:Org:1",
            "d": "2024-01-01T00:00:00+01:00",
            "extra": "x",
        },
        arrival=NOW,
        now=NOW,
        problems=problems,
    )
    assert not problems and not timed
    assert instances[VOCAB + "temperature"] == {
        "type": "Property",
        "value": 21.5,
        "unitCode": "CEL",
        "observedAt": NOW,
        "createdAt": NOW,
        "modifiedAt": NOW,
    }
    assert instances[VOCAB + "count"]["value"] == 3
    assert instances[VOCAB + "active"]["value"] is True
    assert instances[VOCAB + "position"]["value"] == {"type": "Point", "coordinates": [-2.3, 34.9]}
    assert instances[VOCAB + "owner"]["object"] == "urn:ngsi-ld:Org:1"
    assert instances[VOCAB + "installed"]["value"] == {
        "@type": "DateTime",
        "@value": "2023-12-31T23:00:00.000Z",
    }
    # A measure that is not provisioned keeps its name and value (explicitAttrs is false).
    assert instances[VOCAB + "extra"]["value"] == "x"


def test_provisioned_metadata_becomes_sub_attributes() -> None:
    """As iotagent-node-lib does for NGSI-LD: metadata other than unitCode are
    sub-attributes of every instance the measure sets (a Relationship, a Property)."""
    profile = _profile(
        [
            {
                "object_id": "p",
                "name": "pressure",
                "type": "Number",
                "metadata": {
                    "unitCode": {"type": "Text", "value": "MTR"},
                    "observedBy": {"type": "Relationship", "value": "urn:ngsi-ld:Device:p1"},
                    "accuracy": {"type": "Number", "value": 0.02},
                    "owner": {"type": "Relationship", "value": "not a URI"},
                },
            }
        ]
    )
    instances, _ = profile.instances({"p": 41.5}, arrival=NOW, now=NOW, problems=[])
    instance = instances[VOCAB + "pressure"]
    assert instance["unitCode"] == "MTR" and instance["value"] == 41.5
    assert instance["sub"] == {
        VOCAB + "observedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Device:p1"},
        VOCAB + "accuracy": {"type": "Property", "value": 0.02},
    }


def test_values_of_the_wrong_type_are_left_out_with_a_reason() -> None:
    profile = _profile(
        [
            {"object_id": "t", "name": "temperature", "type": "Number"},
            {"object_id": "h", "name": "humidity", "type": "Number"},
        ]
    )
    problems: list[tuple[str, str]] = []
    instances, _ = profile.instances(
        {"t": "warm", "h": 60}, arrival=NOW, now=NOW, problems=problems
    )
    assert list(instances) == [VOCAB + "humidity"]
    assert problems and problems[0][0] == "wrong-type" and "temperature" in problems[0][1]


def test_device_timestamp_becomes_observed_at_and_a_bad_one_rejects() -> None:
    profile = _profile([])
    instances, timed = profile.instances(
        {"t": 1, "TimeInstant": "2024-05-01T12:00:00+02:00"}, arrival=NOW, now=NOW, problems=[]
    )
    assert timed and instances[VOCAB + "t"]["observedAt"] == "2024-05-01T10:00:00.000Z"
    with pytest.raises(MeasureError) as caught:
        profile.instances({"t": 1, "observedAt": "yesterday"}, arrival=NOW, now=NOW, problems=[])
    assert caught.value.reason == "bad-timestamp"


def test_expressions_scale_and_derive() -> None:
    profile = _profile(
        [
            {
                "object_id": "p",
                "name": "power",
                "type": "Number",
                "expression": "${@value * 0.1}",
                "unitCode": "KWT",
            },
            {"name": "fillingLevel", "type": "Number", "expression": "level / 100"},
        ]
    )
    instances, _ = profile.instances({"p": "600", "level": 85}, arrival=NOW, now=NOW, problems=[])
    assert instances[VOCAB + "power"]["value"] == 60.0
    assert instances[VOCAB + "power"]["unitCode"] == "KWT"
    assert instances[VOCAB + "fillingLevel"]["value"] == 0.85


def test_explicit_attrs_drop_what_is_not_provisioned() -> None:
    profile = _profile(
        [{"object_id": "t", "name": "temperature", "type": "Number"}], explicitAttrs=True
    )
    instances, _ = profile.instances({"t": 1, "other": 2}, arrival=NOW, now=NOW, problems=[])
    assert list(instances) == [VOCAB + "temperature"]


def test_entity_ids() -> None:
    assert entity_id_for(None, "Streetlight", "lamp1") == "urn:ngsi-ld:Streetlight:lamp1"
    assert (
        entity_id_for("urn:ngsi-ld:Streetlight:L-7", "Streetlight", "x")
        == "urn:ngsi-ld:Streetlight:L-7"
    )
    assert entity_id_for(None, "Streetlight", "a b") == "urn:ngsi-ld:Streetlight:a%20b"


@pytest.mark.parametrize(
    "body",
    [
        {"resource": "/iot/d"},
        {"apikey": "k"},
        {"apikey": "k", "resource": "/iot/d", "attributes": [{"name": "t"}]},
        {
            "apikey": "k",
            "resource": "/iot/d",
            "attributes": [{"name": "bad name", "type": "Number"}],
        },
        {
            "apikey": "k",
            "resource": "/iot/d",
            "attributes": [{"name": "t", "type": "Number", "expression": "os.system('x')"}],
        },
        {"apikey": "k", "resource": "/iot/d", "autoprovision": "yes"},
        {"apikey": "k", "resource": "/iot/d", "transport": "CoAP"},
    ],
)
def test_bad_groups_are_wrong_syntax(body: dict[str, Any]) -> None:
    with pytest.raises(IotError) as caught:
        parse_group(body, "t", "/")
    assert (caught.value.status, caught.value.name) == (400, "WRONG_SYNTAX")


def test_bad_device_ids_are_wrong_syntax() -> None:
    for device_id in ("", "a/b", "a+b", "#"):
        with pytest.raises(IotError):
            parse_device({"device_id": device_id}, "t", "/")
