"""Tests of core/entity.py: parsing every representation of GS CIM 009 v1.8 clause 4.5 into
the stored shape of core/model.py, validating it, and rendering it back."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityverse.core.entity import (
    MAX_DEPTH,
    MAX_NAME_BYTES,
    NGSI_NULL,
    iso_now,
    normalise_datetime,
    parse_attribute,
    parse_attributes,
    parse_entity,
    render_entity,
    render_geojson,
    valid_name,
    valid_uri,
)
from cityverse.core.errors import BadRequestData, NgsiError
from cityverse.core.model import LOCATION, NGSI_LD, VALUE_MEMBER

NOW = "2026-11-21T08:31:26.123Z"
BASE = "https://ex.org/"
VOCAB = "https://vocab.ex.org/"
SDM = Path("/work/shared/smart-data-models")
POINT = {"type": "Point", "coordinates": [-2.32, 34.92]}


class FakeMapper:
    """A @context stand-in: terms live under BASE (or VOCAB for vocab values)."""

    def __init__(self, terms: dict[str, str] | None = None) -> None:
        self.terms = {"location": LOCATION, **(terms or {})}
        self.iris = {iri: term for term, iri in self.terms.items()}

    def expand(self, term: str) -> str:
        if term in self.terms:
            return self.terms[term]
        return term if ":" in term else BASE + term

    def compact(self, iri: str) -> str:
        if iri in self.iris:
            return self.iris[iri]
        return iri.removeprefix(BASE) if iri.startswith(BASE) else iri

    def expand_vocab(self, value: str) -> str:
        return value if ":" in value else VOCAB + value

    def compact_vocab(self, iri: str) -> str:
        return iri.removeprefix(VOCAB) if iri.startswith(VOCAB) else iri


CTX = FakeMapper()


def entity(**attrs: Any) -> dict[str, Any]:
    return {"id": "urn:ngsi-ld:Thing:1", "type": "Thing", **attrs}


def one(body: Any, name: str = "a") -> dict[str, Any]:
    """The single stored instance of attribute ``name`` of ``body`` parsed as an entity."""
    [instance] = parse_entity(entity(**{name: body}), CTX, now=NOW)["attrs"][CTX.expand(name)]
    return instance


def detail(excinfo: pytest.ExceptionInfo[BadRequestData]) -> str:
    return excinfo.value.detail


# ------------------------------------------------------------------ 4.5.1 normalized


NORMALIZED_CASES = [
    ({"type": "Property", "value": 21.5}, {"type": "Property", "value": 21.5}),
    (
        {"type": "Property", "value": {"x": [1, None]}},
        {"type": "Property", "value": {"x": [1, None]}},
    ),
    (
        {"type": "Relationship", "object": "urn:ngsi-ld:Pipe:1"},
        {"type": "Relationship", "object": "urn:ngsi-ld:Pipe:1"},
    ),
    (
        {"type": "Relationship", "object": ["urn:a:1", "urn:a:2"], "objectType": "Pipe"},
        {"type": "Relationship", "object": ["urn:a:1", "urn:a:2"], "objectType": VOCAB + "Pipe"},
    ),
    (
        {"type": "LanguageProperty", "languageMap": {"fr": "Rue", "ar-MA": ["زنقة"], "@none": "x"}},
        {"type": "LanguageProperty", "languageMap": {"fr": "Rue", "ar-MA": ["زنقة"], "@none": "x"}},
    ),
    (
        {"type": "VocabProperty", "vocab": "nonCommercial"},
        {"type": "VocabProperty", "vocab": VOCAB + "nonCommercial"},
    ),
    (
        {"type": "VocabularyProperty", "vocab": ["a", "https://o.org/b"]},
        {"type": "VocabProperty", "vocab": [VOCAB + "a", "https://o.org/b"]},
    ),
    (
        {"type": "ListProperty", "valueList": [300, 300, 120]},
        {"type": "ListProperty", "valueList": [300, 300, 120]},
    ),
    (
        {"type": "ListRelationship", "objectList": [{"object": "urn:c:1"}, "urn:c:2"]},
        {"type": "ListRelationship", "objectList": ["urn:c:1", "urn:c:2"]},
    ),
    (
        {"type": "JsonProperty", "json": {"@id": "x", "nested": {"type": "Property"}}},
        {"type": "JsonProperty", "json": {"@id": "x", "nested": {"type": "Property"}}},
    ),
]


@pytest.mark.parametrize(("body", "stored"), NORMALIZED_CASES)
def test_normalized_attribute_of_every_type_4_5_1(
    body: dict[str, Any], stored: dict[str, Any]
) -> None:
    """4.5.1 normalized representation: each attribute type keeps its one value member."""
    assert one(body) == {**stored, "createdAt": NOW, "modifiedAt": NOW}


def test_normalized_geoproperty_4_5_1() -> None:
    """4.5.1 / 4.7: a GeoProperty's value is a validated GeoJSON geometry."""
    assert one({"type": "GeoProperty", "value": POINT}, "location")["value"] == POINT


# ------------------------------------------------------------------ 4.5.x concise


CONCISE_CASES = [
    (21.5, {"type": "Property", "value": 21.5}),
    ("text", {"type": "Property", "value": "text"}),
    (False, {"type": "Property", "value": False}),
    (["car", "bus"], {"type": "Property", "value": ["car", "bus"]}),
    ([], {"type": "Property", "value": []}),
    (
        {"streetAddress": "Rue 1", "type": "PostalAddress"},
        {"type": "Property", "value": {"streetAddress": "Rue 1", "type": "PostalAddress"}},
    ),
    ({"value": 3, "unitCode": "MTR"}, {"type": "Property", "value": 3, "unitCode": "MTR"}),
    ({"object": "urn:x:1"}, {"type": "Relationship", "object": "urn:x:1"}),
    ({"languageMap": {"en": "hi"}}, {"type": "LanguageProperty", "languageMap": {"en": "hi"}}),
    ({"vocab": "red"}, {"type": "VocabProperty", "vocab": VOCAB + "red"}),
    ({"valueList": [1, 2]}, {"type": "ListProperty", "valueList": [1, 2]}),
    ({"objectList": ["urn:x:1"]}, {"type": "ListRelationship", "objectList": ["urn:x:1"]}),
    ({"json": [1, {"a": None}]}, {"type": "JsonProperty", "json": [1, {"a": None}]}),
]


@pytest.mark.parametrize(("body", "stored"), CONCISE_CASES)
def test_concise_attribute_of_every_type(body: Any, stored: dict[str, Any]) -> None:
    """4.5 concise representation: the attribute type is implied by the value member."""
    assert one(body) == {**stored, "createdAt": NOW, "modifiedAt": NOW}


def test_concise_geoproperty_bare_geometry_and_value() -> None:
    """4.5 concise: a bare GeoJSON geometry, or a 'value' holding one, is a GeoProperty."""
    assert one(POINT, "location") == {"type": "GeoProperty", "value": POINT, **STAMPS}
    with_meta = one({"value": POINT, "observedAt": "2024-01-01T00:00:00Z"}, "location")
    assert with_meta["type"] == "GeoProperty"
    assert with_meta["observedAt"] == "2024-01-01T00:00:00.000Z"


STAMPS = {"createdAt": NOW, "modifiedAt": NOW}


# ------------------------------------------------------------------ metadata and sub-attributes


def test_metadata_members_4_5_2() -> None:
    """4.5.2: observedAt (normalised to UTC), unitCode, datasetId; instanceId ignored."""
    stored = one(
        {
            "type": "Property",
            "value": 1,
            "observedAt": "2024-05-01T12:00:00+02:00",
            "unitCode": "CEL",
            "datasetId": "urn:ngsi-ld:Dataset:raw",
            "instanceId": "urn:ngsi-ld:instance:9",
            "createdAt": "1999-01-01T00:00:00Z",
        }
    )
    assert stored == {
        "type": "Property",
        "value": 1,
        "observedAt": "2024-05-01T10:00:00.000Z",
        "unitCode": "CEL",
        "datasetId": "urn:ngsi-ld:Dataset:raw",
        **STAMPS,
    }


def test_sub_attributes_are_expanded_and_recursive_4_5_2() -> None:
    """4.5.2: other members of an attribute are sub-attributes, in any representation."""
    stored = one(
        {
            "type": "Relationship",
            "object": "urn:x:1",
            "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Person:Bob"},
            "accuracy": {"value": 0.1, "method": "calibrated"},
            "https://o.org/tag": ["a"],
        }
    )
    assert stored["sub"] == {
        BASE + "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Person:Bob"},
        BASE + "accuracy": {
            "type": "Property",
            "value": 0.1,
            "sub": {BASE + "method": {"type": "Property", "value": "calibrated"}},
        },
        "https://o.org/tag": {"type": "Property", "value": ["a"]},
    }


def nested(depth: int) -> Any:
    body: Any = 1
    for _ in range(depth - 1):
        body = {"value": 1, "s": body}
    return body


def test_sub_attribute_depth_limit() -> None:
    """4.5.2: sub-attributes nest, up to a limit that keeps parsing bounded."""
    assert one(nested(MAX_DEPTH))["type"] == "Property"
    with pytest.raises(BadRequestData) as excinfo:
        one(nested(MAX_DEPTH + 1))
    assert "attribute 'a'" in detail(excinfo) and "deeper" in detail(excinfo)


# ------------------------------------------------------------------ multi-attributes


def test_multi_attribute_default_instance_first_4_5_5() -> None:
    """4.5.5 multi-attribute: an array of instances, distinguished by datasetId."""
    instances = parse_attribute(
        "speed",
        [
            {"type": "Property", "value": 55, "datasetId": "urn:ngsi-ld:Dataset:gps"},
            {"type": "Property", "value": 54},
            {"value": 56, "datasetId": "urn:ngsi-ld:Dataset:radar"},
        ],
        CTX,
        now=NOW,
    )
    assert [instance["value"] for instance in instances] == [54, 55, 56]
    assert [instance.get("datasetId") for instance in instances] == [
        None,
        "urn:ngsi-ld:Dataset:gps",
        "urn:ngsi-ld:Dataset:radar",
    ]
    assert all(instance["createdAt"] == NOW for instance in instances)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([{"type": "Property", "value": 1}, {"value": 2}], "more than one instance without"),
        (
            [{"value": 1, "datasetId": "urn:d:1"}, {"value": 2, "datasetId": "urn:d:1"}],
            "'urn:d:1' is used by more than one",
        ),
    ],
)
def test_multi_attribute_datasetid_rules_4_5_5(body: Any, message: str) -> None:
    """4.5.5: at most one default instance and unique datasetIds."""
    with pytest.raises(BadRequestData) as excinfo:
        parse_attribute("speed", body, CTX, now=NOW)
    assert message in detail(excinfo) and "attribute 'speed'" in detail(excinfo)


# ------------------------------------------------------------------ entity members


def test_entity_members_and_timestamps_5_6_1() -> None:
    """5.6.1 create: id, expanded types without duplicates, scope, system timestamps."""
    stored = parse_entity(
        {
            "id": "urn:ngsi-ld:Pipe:1",
            "type": ["Pipe", "https://o.org/Asset", "Pipe"],
            "scope": "/Berkane/Centre",
            "@context": "https://ignored.example/context.jsonld",
            "createdAt": "2000-01-01T00:00:00Z",
            "modifiedAt": "2000-01-01T00:00:00Z",
            "diameter": {"type": "Property", "value": 203.0, "unitCode": "MMT"},
        },
        CTX,
        now=NOW,
    )
    assert stored == {
        "id": "urn:ngsi-ld:Pipe:1",
        "type": [BASE + "Pipe", "https://o.org/Asset"],
        "scope": ["/Berkane/Centre"],
        "createdAt": NOW,
        "modifiedAt": NOW,
        "attrs": {
            BASE + "diameter": [{"type": "Property", "value": 203.0, "unitCode": "MMT", **STAMPS}]
        },
    }


ENTITY_ERRORS = [
    ([], "JSON object"),
    ({"type": "T"}, "no 'id'"),
    ({"id": 5, "type": "T"}, "not a valid absolute URI"),
    ({"id": "not a uri", "type": "T"}, "not a valid absolute URI"),
    ({"id": "urn:x:1 2", "type": "T"}, "not a valid absolute URI"),
    ({"id": "urn:x:1"}, "no 'type'"),
    ({"id": "urn:x:1", "type": []}, "non-empty array"),
    ({"id": "urn:x:1", "type": 3}, "non-empty array"),
    ({"id": "urn:x:1", "type": "Bad Type"}, "entity type 'Bad Type'"),
    ({"id": "urn:x:1", "type": "T", "scope": "Berkane"}, "scope 'Berkane'"),
    ({"id": "urn:x:1", "type": "T", "scope": []}, "'scope' must be"),
    ({"id": "urn:x:1", "type": "T", "scope": ["/a/#"]}, "scope '/a/#'"),
]


@pytest.mark.parametrize(("body", "message"), ENTITY_ERRORS)
def test_entity_member_errors_5_6_1(body: Any, message: str) -> None:
    """5.6.1 create / 4.18 scope: a malformed id, type or scope is BadRequestData."""
    with pytest.raises(BadRequestData) as excinfo:
        parse_entity(body, CTX, now=NOW)
    assert message in detail(excinfo)


ATTRIBUTE_ERRORS = [
    ({"type": "Property"}, "Property has no 'value'"),
    ({"type": "Property", "value": None}, "NGSI-LD Null"),
    ({"type": "Property", "value": NGSI_NULL}, "NGSI-LD Null"),
    (None, "NGSI-LD Null"),
    ({"type": "Property", "value": 1, "object": "urn:x:1"}, "has no 'object' member"),
    ({"type": "Proprety", "value": 1}, "unknown attribute type 'Proprety'"),
    ({"value": 1, "object": "urn:x:1"}, "has both 'value' and 'object'"),
    ({"type": "Relationship"}, "Relationship has no 'object'"),
    ({"type": "Relationship", "object": "no uri"}, "not a valid absolute URI"),
    ({"type": "Relationship", "object": []}, "non-empty array of URIs"),
    ({"type": "Relationship", "object": 7}, "non-empty array of URIs"),
    ({"type": "GeoProperty", "value": "POINT(1 2)"}, "GeoJSON geometry"),
    ({"type": "LanguageProperty", "languageMap": {}}, "non-empty object"),
    (
        {"type": "LanguageProperty", "languageMap": {"not a tag": "x"}},
        "'not a tag' is not a language tag",
    ),
    ({"type": "LanguageProperty", "languageMap": {"en": 3}}, "languageMap['en']"),
    ({"type": "LanguageProperty", "languageMap": ["en"]}, "non-empty object"),
    ({"type": "VocabProperty", "vocab": 3}, "vocab must be"),
    ({"type": "VocabProperty", "vocab": ["ok", "not ok"]}, "vocab 'not ok'"),
    ({"type": "ListProperty", "valueList": 3}, "valueList must be an array"),
    ({"type": "ListRelationship", "objectList": "urn:x:1"}, "objectList must be an array"),
    ({"type": "ListRelationship", "objectList": [{"obj": "urn:x:1"}]}, "objectList item"),
    ({"type": "JsonProperty"}, "JsonProperty has no 'json'"),
    ({"type": "Property", "value": 1, "observedAt": "yesterday"}, "observedAt"),
    ({"type": "Property", "value": 1, "observedAt": "2024-02-30T00:00:00Z"}, "observedAt"),
    ({"type": "Property", "value": 1, "unitCode": 5}, "unitCode"),
    ({"type": "Property", "value": 1, "datasetId": "raw"}, "datasetId 'raw'"),
    ({"type": "Property", "value": 1, "objectType": "T"}, "objectType"),
    ({"type": "Relationship", "object": "urn:x:1", "objectType": 3}, "objectType must be"),
    ({"type": "Property", "value": 1, "bad name": 2}, "sub-attribute 'bad name'"),
    (
        {"type": "Property", "value": 1, "s": {"type": "Property"}},
        "sub-attribute 's': Property has no",
    ),
    ({"type": "Property", "value": 1, "s": None}, "sub-attribute 's': null"),
]


@pytest.mark.parametrize(("body", "message"), ATTRIBUTE_ERRORS)
def test_attribute_errors_name_the_attribute_4_5(body: Any, message: str) -> None:
    """4.5 / 5.2.1: every malformed attribute is BadRequestData naming the attribute."""
    with pytest.raises(BadRequestData) as excinfo:
        parse_entity(entity(temperature=body), CTX, now=NOW)
    assert "attribute 'temperature'" in detail(excinfo)
    assert message in detail(excinfo)


@pytest.mark.parametrize("name", ["bad name", "a<b", "x(y)", "@foo", "tab\there", "", "a=b", "q;r"])
def test_invalid_attribute_names_4_6_2(name: str) -> None:
    """4.6.2: attribute names are terms without forbidden characters, or IRIs."""
    assert not valid_name(name)
    with pytest.raises(BadRequestData) as excinfo:
        parse_entity(entity(**{name: 1}), CTX, now=NOW)
    assert repr(name) in detail(excinfo)


@pytest.mark.parametrize(
    "name", ["value", "object", "observedAt", "datasetId", "unitCode", "languageMap"]
)
def test_reserved_attribute_names_4_6_3(name: str) -> None:
    """4.6.3: core member names cannot be used as attribute names."""
    with pytest.raises(BadRequestData) as excinfo:
        parse_entity(entity(**{name: 1}), CTX, now=NOW)
    assert "reserved" in detail(excinfo)


@pytest.mark.parametrize(
    "name", ["temperature", "location", "refDevice", "schema:name", "https://o.org/x#y", "ñandú"]
)
def test_valid_attribute_names_4_6_2(name: str) -> None:
    """4.6.2: ordinary terms, compact IRIs and absolute IRIs are valid names."""
    assert valid_name(name)


def test_ids_and_names_are_at_most_1024_bytes() -> None:
    """An id, a type, an attribute name or a datasetId longer than 1,024 bytes of UTF-8
    is refused with its length named; one of exactly 1,024 bytes is accepted."""
    at_limit = "urn:x:" + "a" * (MAX_NAME_BYTES - 6)
    assert valid_uri(at_limit) and not valid_uri(at_limit + "a")
    # Two bytes a character: 600 characters are 1,200 bytes.
    assert not valid_name("é" * 600) and valid_name("é" * 512)
    parse_entity({**entity(), "id": at_limit}, CTX, now=NOW)
    cases = [
        {**entity(), "id": at_limit + "a"},
        {**entity(), "type": "T" * (MAX_NAME_BYTES + 1)},
        entity(**{"n" * (MAX_NAME_BYTES + 1): 1}),
        entity(a={"type": "Property", "value": 1, "datasetId": at_limit + "b"}),
    ]
    for body in cases:
        with pytest.raises(BadRequestData) as excinfo:
            parse_entity(body, CTX, now=NOW)
        assert f"longer than {MAX_NAME_BYTES} bytes" in detail(excinfo)
        assert len(detail(excinfo)) < 300


def test_names_expanding_to_the_same_iri_are_rejected() -> None:
    """4.5: two members naming the same expanded attribute would silently overwrite."""
    with pytest.raises(BadRequestData) as excinfo:
        parse_attributes({"a": 1, BASE + "a": 2}, CTX, now=NOW)
    assert BASE + "a" in detail(excinfo)


# ------------------------------------------------------------------ fragments and NGSI-LD Null


def test_fragment_skips_entity_members_5_6_17() -> None:
    """5.6.17 merge: id, type, scope and @context in a fragment are left to the caller."""
    attrs = parse_attributes(
        {"id": "urn:x:1", "type": "T", "scope": "/a", "@context": [], "n": 1}, CTX, now=NOW
    )
    assert attrs == {BASE + "n": [{"type": "Property", "value": 1, **STAMPS}]}


@pytest.mark.parametrize(
    "body",
    [
        None,
        NGSI_NULL,
        {"type": "Property", "value": NGSI_NULL},
        {"value": None},
        {"type": "Relationship", "object": NGSI_NULL},
        {"type": "LanguageProperty", "languageMap": {"@none": NGSI_NULL}},
        {"vocab": NGSI_NULL},
        {"valueList": [NGSI_NULL]},
        {"objectList": [{"object": NGSI_NULL}]},
        {"json": NGSI_NULL},
    ],
)
def test_ngsi_ld_null_deletes_in_merge_5_2_1(body: Any) -> None:
    """5.2.1 / 5.6.17: the NGSI-LD Null marks a deletion (an empty list) in a merge-patch."""
    assert parse_attributes({"a": body, "b": 2}, CTX, now=NOW, allow_null=True)[BASE + "a"] == []
    with pytest.raises(BadRequestData):
        parse_attributes({"a": body}, CTX, now=NOW)


def test_ngsi_ld_null_sub_attribute_in_merge_5_6_17() -> None:
    """5.6.17: a sub-attribute set to the NGSI-LD Null is kept as None for the merge to drop."""
    [instance] = parse_attribute("a", {"value": 1, "s": NGSI_NULL}, CTX, now=NOW, allow_null=True)
    assert instance["sub"] == {BASE + "s": None}
    rendered = render_entity(
        {"id": "urn:x:1", "type": ["T"], "attrs": {BASE + "a": [instance]}}, CTX
    )
    assert rendered["a"] == {"type": "Property", "value": 1}


def test_ngsi_ld_null_on_one_dataset_instance_is_rejected() -> None:
    """5.6.17: deleting one datasetId instance is not expressible as a merge deletion here."""
    with pytest.raises(BadRequestData) as excinfo:
        parse_attribute(
            "a", {"value": NGSI_NULL, "datasetId": "urn:d:1"}, CTX, now=NOW, allow_null=True
        )
    assert "datasetId" in detail(excinfo)


# ------------------------------------------------------------------ date-times


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T10:00Z", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T10:00:00.123456789Z", "2024-05-01T10:00:00.123Z"),
        ("2024-05-01T01:30:00+02:00", "2024-04-30T23:30:00.000Z"),
        ("2024-05-01T23:30:00-0130", "2024-05-02T01:00:00.000Z"),
        ("2024-05-01t10:00:00.5z", "2024-05-01T10:00:00.500Z"),
    ],
)
def test_normalise_datetime_annex_f(text: str, normalised: str) -> None:
    """Annex F / 4.8: date-times are stored in UTC with milliseconds, so they compare as strings."""
    assert normalise_datetime(text) == normalised


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01",
        "2024-05-01T10:00:00",
        "2024-13-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "2024-05-01T25:00:00Z",
        20240501,
        None,
    ],
)
def test_normalise_datetime_rejects_invalid_annex_f(text: Any) -> None:
    """Annex F: a date-time without offset or out of range is BadRequestData."""
    with pytest.raises(BadRequestData):
        normalise_datetime(text)


def test_iso_now_format() -> None:
    """Annex F: system timestamps are UTC with milliseconds and a Z."""
    now = iso_now()
    assert normalise_datetime(now) == now


# ------------------------------------------------------------------ rendering


VEHICLE = {
    "id": "urn:ngsi-ld:Vehicle:A4567",
    "type": "Vehicle",
    "scope": "/Berkane",
    "brandName": {"type": "Property", "value": "Mercedes"},
    "street": {
        "type": "LanguageProperty",
        "languageMap": {"fr": "Grand Place", "nl": "Grote Markt", "@none": "Place"},
    },
    "isParked": {
        "type": "Relationship",
        "objectType": "OffStreetParking",
        "object": "urn:ngsi-ld:OffStreetParking:Downtown1",
        "observedAt": "2017-07-29T12:00:04.000Z",
        "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Person:Bob"},
    },
    "category": {"type": "VocabProperty", "vocab": "non-commercial"},
    "tyreTreadDepths": {"type": "ListProperty", "valueList": [300, 300, 120, 6], "unitCode": "MMT"},
    "route": {
        "type": "ListRelationship",
        "objectList": [
            {"object": "urn:ngsi-ld:City:Antwerp"},
            {"object": "urn:ngsi-ld:City:Rotterdam"},
        ],
    },
    "config": {"type": "JsonProperty", "json": {"a": [1, 2], "type": "Property"}},
    "speed": [
        {"type": "Property", "value": 55, "datasetId": "urn:ngsi-ld:Dataset:gps"},
        {"type": "Property", "value": 54},
    ],
    "address": {"type": "Property", "value": {"type": "PostalAddress", "streetLocality": "x"}},
    "location": {"type": "GeoProperty", "value": POINT},
    "footprint": {"type": "Property", "value": POINT},
    "wrapped": {"type": "Property", "value": {"value": 1}},
}


@pytest.fixture
def vehicle() -> dict[str, Any]:
    return parse_entity(copy.deepcopy(VEHICLE), CTX, now=NOW)


def test_round_trip_normalized_4_5_1(vehicle: dict[str, Any]) -> None:
    """4.5.1: the normalized representation is lossless (system members aside)."""
    expected = copy.deepcopy(VEHICLE)
    expected["speed"].reverse()  # the default instance comes first
    assert render_entity(vehicle, CTX) == expected


def test_round_trip_concise(vehicle: dict[str, Any]) -> None:
    """4.5 concise: rendering is terse and reads back to the same stored entity."""
    concise = render_entity(vehicle, CTX, fmt="concise")
    assert concise["brandName"] == "Mercedes"
    assert concise["location"] == POINT
    assert concise["street"] == {"languageMap": VEHICLE["street"]["languageMap"]}
    assert concise["category"] == {"vocab": "non-commercial"}
    assert concise["isParked"]["providedBy"] == {"object": "urn:ngsi-ld:Person:Bob"}
    assert concise["address"] == VEHICLE["address"]["value"]
    assert concise["footprint"]["type"] == "Property"
    assert concise["wrapped"] == {"value": {"value": 1}}
    assert parse_entity(concise, CTX, now=NOW) == vehicle


def test_render_key_values_4_5_4(vehicle: dict[str, Any]) -> None:
    """4.5.4 simplified: values only; the default instance of a multi-attribute."""
    kv = render_entity(vehicle, CTX, fmt="keyValues")
    assert kv["brandName"] == "Mercedes"
    assert kv["isParked"] == "urn:ngsi-ld:OffStreetParking:Downtown1"
    assert kv["speed"] == 54
    assert kv["location"] == POINT
    assert kv["street"] == {"languageMap": VEHICLE["street"]["languageMap"]}
    assert kv["category"] == {"vocab": "non-commercial"}
    assert kv["tyreTreadDepths"] == {"valueList": [300, 300, 120, 6]}
    assert kv["route"] == {"objectList": ["urn:ngsi-ld:City:Antwerp", "urn:ngsi-ld:City:Rotterdam"]}
    assert kv["config"] == {"json": VEHICLE["config"]["json"]}
    assert kv["type"] == "Vehicle" and kv["scope"] == "/Berkane"


def test_render_sys_attrs_6_3_6(vehicle: dict[str, Any]) -> None:
    """6.3.6 options=sysAttrs: createdAt/modifiedAt on the entity and attribute instances."""
    out = render_entity(vehicle, CTX, sys_attrs=True)
    assert out["createdAt"] == out["modifiedAt"] == NOW
    assert out["brandName"]["createdAt"] == NOW
    assert "createdAt" not in render_entity(vehicle, CTX)["brandName"]
    assert render_entity(vehicle, CTX, fmt="keyValues", sys_attrs=True)["createdAt"] == NOW


@pytest.mark.parametrize(
    ("lang", "tag", "text"),
    [
        ("nl", "nl", "Grote Markt"),
        ("de,fr;q=0.5", "fr", "Grand Place"),
        ("fr;q=0.2,nl;q=0.9", "nl", "Grote Markt"),
        ("fr-BE", "fr", "Grand Place"),
        ("de", "@none", "Place"),
        ("*", "@none", "Place"),
    ],
)
def test_render_lang_4_15(vehicle: dict[str, Any], lang: str, tag: str, text: str) -> None:
    """4.15 lang: a LanguageProperty becomes a Property with the best-matching string."""
    assert render_entity(vehicle, CTX, lang=lang)["street"] == {
        "type": "Property",
        "value": text,
        "lang": tag,
    }
    assert render_entity(vehicle, CTX, lang=lang, fmt="keyValues")["street"] == text


def test_render_lang_without_none_falls_back_to_first_4_15() -> None:
    """4.15 lang: with no match and no @none, the first language is returned."""
    stored = parse_entity(entity(n={"languageMap": {"ar": "x", "fr": "y"}}), CTX, now=NOW)
    assert render_entity(stored, CTX, lang="de", fmt="concise")["n"] == {"value": "x", "lang": "ar"}


def test_render_attrs_and_omit_4_21(vehicle: dict[str, Any]) -> None:
    """4.21 attrs/pick and omit: projection on expanded attribute names, id and type."""
    picked = render_entity(vehicle, CTX, attrs={BASE + "brandName"}, keep_type=False)
    assert picked == {"id": VEHICLE["id"], "scope": "/Berkane", "brandName": VEHICLE["brandName"]}
    dropped = render_entity(vehicle, CTX, omit={BASE + "brandName", LOCATION}, keep_id=False)
    assert "brandName" not in dropped and "location" not in dropped and "id" not in dropped
    assert dropped["street"] == VEHICLE["street"]


def test_render_several_types_and_compaction() -> None:
    """4.5.1: several types render as an array; names and vocab values are compacted."""
    ctx = FakeMapper({"Bus": "https://o.org/Bus"})
    stored = parse_entity(
        {"id": "urn:x:1", "type": ["Vehicle", "Bus"], "c": {"vocab": ["a", "b"]}}, ctx, now=NOW
    )
    assert stored["type"] == [BASE + "Vehicle", "https://o.org/Bus"]
    out = render_entity(stored, ctx)
    assert out["type"] == ["Vehicle", "Bus"]
    assert out["c"] == {"type": "VocabProperty", "vocab": ["a", "b"]}


def test_render_unknown_format_is_an_error(vehicle: dict[str, Any]) -> None:
    """6.3.7 options: an unknown representation is rejected, not guessed."""
    with pytest.raises(NgsiError):
        render_entity(vehicle, CTX, fmt="simplified")


def test_render_geojson_4_5_16(vehicle: dict[str, Any]) -> None:
    """4.5.16 GeoJSON representation: a Feature whose geometry is the geoproperty's value."""
    feature = render_geojson(vehicle, CTX, fmt="keyValues")
    assert feature["type"] == "Feature" and feature["id"] == VEHICLE["id"]
    assert feature["geometry"] == POINT
    assert feature["properties"]["type"] == "Vehicle"
    assert feature["properties"]["brandName"] == "Mercedes"
    assert "id" not in feature["properties"]
    other = render_geojson(vehicle, CTX, geoproperty=BASE + "footprint")
    assert other["geometry"] is None  # a Property, not a GeoProperty
    assert other["properties"]["location"] == VEHICLE["location"]


def test_key_values_round_trip_4_5_4() -> None:
    """4.5.4: a key-value body parsed as concise renders back as the same keyValues."""
    body = {
        "id": "urn:x:1",
        "type": "T",
        "name": "n",
        "list": [1, 2],
        "objects": [{"dayOfWeek": "Monday"}],
        "address": {"type": "PostalAddress", "addressCountry": "MA"},
        "location": POINT,
    }
    assert render_entity(parse_entity(body, CTX, now=NOW), CTX, fmt="keyValues") == body


# ------------------------------------------------------------------ Smart Data Models examples


SYSTEM_MEMBERS = ("createdAt", "modifiedAt", "deletedAt", "instanceId")
VALUE_MEMBERS = frozenset(VALUE_MEMBER.values())


def expected_normalized(body: dict[str, Any]) -> dict[str, Any]:
    """A normalized body as it renders once stored: no @context nor system members, UTC
    observedAt, and a one-instance array written as that instance."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key == "@context" or key in SYSTEM_MEMBERS:
            continue
        if key in ("id", "type", "scope"):
            out[key] = value
            continue
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        out[key] = (
            [expected_instance(item) for item in value]
            if isinstance(value, list)
            else expected_instance(value)
        )
    return out


def expected_instance(instance: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in instance.items():
        if key in SYSTEM_MEMBERS:
            continue
        if key == "observedAt":
            out[key] = normalise_datetime(value)
        elif key in VALUE_MEMBERS or key in ("type", "unitCode", "datasetId", "objectType"):
            out[key] = value
        else:
            out[key] = expected_instance(value)
    return out


def sdm_examples(name: str) -> list[Path]:
    return sorted(SDM.glob(f"*/*/examples/{name}"))


# Examples of the corpus that break GS CIM 009 and must be refused, with the reason.
NOT_NGSI_LD = {
    "FloodMonitoring/example-normalized.jsonld": "unknown attribute type 'string'",
    "PhreaticObserved/example-normalized.jsonld": "observedAt",  # "2020-03-17TT08:45:00Z"
    "WaterObserved/example-normalized.jsonld": "Relationship object",  # a date-time
}


def example_id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.name}"


def parse_example(path: Path) -> dict[str, Any] | None:
    """Parse an example, or check that it is refused for the reason it breaks the spec."""
    body = json.loads(path.read_text())
    key = example_id(path)
    if key in NOT_NGSI_LD or not valid_uri(body.get("id")):
        reason = NOT_NGSI_LD.get(key, "is not a valid absolute URI")
        with pytest.raises(BadRequestData) as excinfo:
            parse_entity(body, CTX, now=NOW)
        assert reason in detail(excinfo)
        return None
    return body


@pytest.mark.parametrize("path", sdm_examples("example-normalized.jsonld"), ids=example_id)
def test_smart_data_models_normalized_round_trip(path: Path) -> None:
    """4.5.1: every valid Smart Data Models normalized example renders back unchanged."""
    body = parse_example(path)
    if body is not None:
        stored = parse_entity(body, CTX, now=NOW)
        assert render_entity(stored, CTX) == expected_normalized(body)


@pytest.mark.parametrize("path", sdm_examples("example.jsonld"), ids=example_id)
def test_smart_data_models_key_values_round_trip(path: Path) -> None:
    """4.5.4: every valid Smart Data Models key-value example parses and renders back.

    A member such as {"value": 0.5, "sourceType": "MASS"} reads, by the concise rules
    of 4.5, as a Property with sub-attributes, whose keyValues form is its value alone.
    """
    body = parse_example(path)
    if body is None:
        return
    body.pop("@context", None)
    rendered = render_entity(parse_entity(body, CTX, now=NOW), CTX, fmt="keyValues")
    assert rendered.keys() == body.keys()
    for name, value in body.items():
        if isinstance(value, dict) and "value" in value:
            assert rendered[name] == value["value"]
        else:
            assert rendered[name] == value, name


def test_smart_data_models_examples_are_present() -> None:
    """The example corpus used by the two tests above is where it is expected."""
    assert sdm_examples("example-normalized.jsonld") and sdm_examples("example.jsonld")


# ------------------------------------------------------------------ property-based


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from([NGSI_NULL, "urn:x:1", "Point", "en", *VALUE_MEMBER, *VALUE_MEMBER.values()]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "value",
                    "object",
                    "languageMap",
                    "vocab",
                    "valueList",
                    "objectList",
                    "json",
                    "datasetId",
                    "observedAt",
                    "unitCode",
                    "objectType",
                    "coordinates",
                    "id",
                    "scope",
                    "a",
                    "b c",
                    "@none",
                    "en",
                    NGSI_LD + "x",
                ]
            )
            | st.text(max_size=6),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5), json_values)
def test_random_json_only_raises_ngsi_errors(members: dict[str, Any], extra: Any) -> None:
    """4.5: arbitrary JSON is either accepted or rejected with an NgsiError, never a crash."""
    body = {"id": "urn:x:1", "type": "T", **members}
    for call in (
        lambda: parse_entity(body, CTX, now=NOW),
        lambda: parse_entity(extra, CTX, now=NOW),
        lambda: parse_attributes(members, CTX, now=NOW, allow_null=True),
        lambda: parse_attributes(extra, CTX, now=NOW),
    ):
        with contextlib.suppress(NgsiError):
            call()


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), json_values, max_size=3))
def test_accepted_entities_round_trip_through_normalized(members: dict[str, Any]) -> None:
    """4.5.1: whatever is accepted renders to normalized JSON that parses to the same entity."""
    try:
        stored = parse_entity({"id": "urn:x:1", "type": "T", **members}, CTX, now=NOW)
    except NgsiError:
        return
    for fmt in ("normalized", "concise"):
        assert parse_entity(render_entity(stored, CTX, fmt=fmt), CTX, now=NOW) == stored
