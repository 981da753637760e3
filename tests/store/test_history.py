"""What a change records in the history (store/history.py), a pure function.

GS CIM 009 clause 4.5.7 (temporal representation of a Property) and 5.6 (entity
operations): every create, update, merge, append or delete of an attribute leaves an
instance in the history; a deletion shows the NGSI-LD Null and ``deletedAt``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityverse.core.entity import format_utc
from cityverse.core.errors import BadRequestData
from cityverse.core.model import Entity, Instance
from cityverse.store.history import (
    INSTANCE_PREFIX,
    NO_TIME,
    entity_history,
    instance_number,
    loaded,
    ms_of,
    split_number,
    stored_doc,
    utc_of,
)

TEMP = "https://example.org/temperature"
HUMIDITY = "https://example.org/humidity"
OWNER = "https://example.org/owner"
NAME = "https://example.org/name"
SENSOR = "https://example.org/Sensor"
T0 = "2026-03-01T10:00:00.000Z"
T1 = "2026-03-01T10:05:00.000Z"
NOW = ms_of("2026-03-01T11:00:00.000Z")


def prop(value: Any, at: str = T0, **members: Any) -> Instance:
    return {
        "type": "Property",
        "value": value,
        "observedAt": at,
        "createdAt": T0,
        "modifiedAt": at,
        **members,
    }


def sensor(**attrs: list[Instance]) -> Entity:
    return {
        "id": "urn:ngsi-ld:Sensor:1",
        "type": [SENSOR],
        "createdAt": T0,
        "modifiedAt": T0,
        "attrs": {name: value for name, value in attrs.items()},
    }


def by_name(**attrs: list[Instance]) -> Entity:
    return sensor(**{"https://example.org/" + k: v for k, v in attrs.items()})


def test_creation_records_every_instance_with_its_times() -> None:
    new = by_name(temperature=[prop(21.5)], humidity=[prop(40, unitCode="P1")])
    change = entity_history(None, new, NOW)
    assert change is not None
    assert change.id == "urn:ngsi-ld:Sensor:1" and change.types == [SENSOR]
    assert change.deleted_at is None
    assert {r.attr for r in change.records} == {TEMP, HUMIDITY}
    [temp] = [r for r in change.records if r.attr == TEMP]
    assert temp.observed == ms_of(T0) == temp.created == temp.modified
    assert temp.deleted is None and temp.dataset_id is None
    assert temp.instance["value"] == 21.5


def test_merge_records_only_what_it_touched() -> None:
    """5.6.17: a merge changes some attributes; the others are not recorded again, even
    when the stored entity went through JSON (equal, not identical, instances)."""
    old = by_name(temperature=[prop(21.5)], humidity=[prop(40)])
    reread = orjson.loads(orjson.dumps(old))
    new = copy.deepcopy(reread)
    new["attrs"][TEMP] = [prop(22.0, at=T1)]
    change = entity_history(reread, new, NOW)
    assert change is not None
    assert [(r.attr, r.instance["value"]) for r in change.records] == [(TEMP, 22.0)]


def test_a_new_modified_at_alone_is_a_change() -> None:
    old = by_name(temperature=[prop(21.5)])
    new = copy.deepcopy(old)
    new["attrs"][TEMP][0]["modifiedAt"] = T1
    change = entity_history(old, new, NOW)
    assert change is not None
    [only] = change.records
    assert only.modified == ms_of(T1) and only.instance["value"] == 21.5


def test_unchanged_entity_records_nothing() -> None:
    old = by_name(temperature=[prop(21.5)])
    assert entity_history(old, old, NOW) is None
    assert entity_history(None, None, NOW) is None
    same = entity_history(old, copy.deepcopy(old), NOW)
    assert same is not None and same.records == []


def test_a_sub_attribute_change_is_a_change() -> None:
    accuracy = "https://example.org/accuracy"
    old = by_name(temperature=[prop(21.5, sub={accuracy: {"type": "Property", "value": 0.1}})])
    new = copy.deepcopy(old)
    new["attrs"][TEMP][0]["sub"][accuracy]["value"] = 0.2
    change = entity_history(old, new, NOW)
    assert change is not None and len(change.records) == 1


def test_datasets_are_recorded_apart() -> None:
    """4.5.5: instances of one attribute with different datasetIds are separate series."""
    a, b = "urn:ngsi-ld:Dataset:a", "urn:ngsi-ld:Dataset:b"
    old = by_name(temperature=[prop(20), prop(21, datasetId=a)])
    new = by_name(temperature=[prop(20), prop(22, datasetId=b)])
    change = entity_history(old, new, NOW)
    assert change is not None
    recorded = {(r.dataset_id, r.deleted is not None) for r in change.records}
    assert recorded == {(b, False), (a, True)}


@pytest.mark.parametrize(
    ("instance", "member", "null"),
    [
        ({"type": "Property", "value": 5}, "value", "urn:ngsi-ld:null"),
        ({"type": "Relationship", "object": "urn:ngsi-ld:P:1"}, "object", "urn:ngsi-ld:null"),
        (
            {"type": "LanguageProperty", "languageMap": {"en": "x"}},
            "languageMap",
            {"@none": "urn:ngsi-ld:null"},
        ),
        ({"type": "ListProperty", "valueList": [1, 2]}, "valueList", ["urn:ngsi-ld:null"]),
        ({"type": "VocabProperty", "vocab": "https://x/v"}, "vocab", "urn:ngsi-ld:null"),
    ],
)
def test_deleting_an_attribute_records_the_null_and_deleted_at(
    instance: Instance, member: str, null: Any
) -> None:
    """5.6.5 Delete Entity Attribute; 4.5.7: the deletion shows the NGSI-LD Null."""
    held = {**instance, "createdAt": T0, "modifiedAt": T0}
    old = sensor(**{OWNER: [held]})
    new = sensor()
    change = entity_history(old, new, NOW)
    assert change is not None
    [gone] = change.records
    assert gone.instance == {"type": instance["type"], member: null}
    assert gone.deleted == NOW == gone.modified
    assert gone.created == ms_of(T0)
    assert gone.observed == NO_TIME


def test_deleting_the_entity_records_its_deletion_and_keeps_its_types() -> None:
    """5.6.6 Delete Entity: the history keeps the entity's types and scope."""
    old = {**by_name(temperature=[prop(1)], humidity=[prop(2)]), "scope": ["/Berkane"]}
    change = entity_history(old, None, NOW)
    assert change is not None
    assert change.deleted_at == NOW
    assert change.types == [SENSOR] and change.scope == ["/Berkane"]
    assert sorted(r.attr for r in change.records) == sorted([TEMP, HUMIDITY])
    assert all(
        r.deleted == NOW and r.instance["value"] == "urn:ngsi-ld:null" for r in change.records
    )


def test_types_and_scope_follow_the_entity() -> None:
    old = by_name(temperature=[prop(1)])
    new = {**old, "type": [SENSOR, "https://example.org/Device"], "scope": ["/A"]}
    change = entity_history(old, new, NOW)
    assert change is not None
    assert change.types == [SENSOR, "https://example.org/Device"] and change.scope == ["/A"]
    assert change.records == []


def test_missing_times_become_now() -> None:
    new = sensor(**{NAME: [{"type": "Property", "value": "x"}]})
    change = entity_history(None, new, NOW)
    assert change is not None
    [r] = change.records
    assert r.created == NOW == r.modified and r.observed == NO_TIME


# -- stored form ---------------------------------------------------------------------------

_scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # what JSON (orjson) holds
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.booleans(),
)
_moments = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(format_utc)


@st.composite
def _instances(draw: st.DrawFn) -> Instance:
    kind = draw(st.sampled_from(["Property", "Relationship", "JsonProperty"]))
    if kind == "Property":
        instance: Instance = {"type": kind, "value": draw(_scalars)}
    elif kind == "Relationship":
        instance = {"type": kind, "object": "urn:ngsi-ld:X:" + draw(st.text("ab", max_size=3))}
    else:
        instance = {"type": kind, "json": draw(st.dictionaries(st.text(max_size=3), _scalars))}
    if draw(st.booleans()):
        instance["unitCode"] = draw(st.sampled_from(["CEL", "MTR"]))
    if draw(st.booleans()):
        instance["datasetId"] = "urn:ngsi-ld:Dataset:x"
    if draw(st.booleans()):
        instance["sub"] = {NAME: {"type": "Property", "value": draw(_scalars)}}
    for member in ("observedAt", "createdAt", "modifiedAt"):
        if draw(st.booleans()):
            instance[member] = draw(_moments)
    return instance


@given(_instances(), st.booleans())
def test_stored_form_round_trips(instance: Instance, ints: bool) -> None:
    """What a store keeps (document, number, times) gives back the very instance."""
    doc, number = split_number(instance, ints=ints)
    times = [instance.get(m) for m in ("observedAt", "createdAt", "modifiedAt")]
    observed, created, modified = (None if t is None else ms_of(t) for t in times)
    back = loaded(
        doc, 7, NO_TIME if observed is None else observed, created, modified, None, number
    )
    assert back == {**instance, "instanceId": INSTANCE_PREFIX + "7"}
    assert type(back.get("value")) is type(instance.get("value"))
    numeric = instance["type"] == "Property" and type(instance.get("value")) in (int, float)
    if numeric and -(2**63) <= instance["value"] < 2**63:
        assert number == instance["value"]
    elif not numeric:
        assert number is None


def test_stored_document_leaves_times_out() -> None:
    doc = orjson.loads(stored_doc(prop(1, instanceId="urn:x")))
    assert doc == {"type": "Property", "value": 1}
    with pytest.raises(BadRequestData):
        split_number({"type": "Property", "value": 2**70})


@given(_moments)
def test_times_round_trip_as_milliseconds(moment: str) -> None:
    assert utc_of(ms_of(moment)) == moment


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
_LAST_MS = (datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC) - _EPOCH) // timedelta(
    milliseconds=1
)


@given(st.integers(_FIRST_MS, _LAST_MS))
def test_times_format_as_datetimes_do(ms: int) -> None:
    """utc_of's arithmetic agrees with datetime's calendar, before 1970 too."""
    assert utc_of(ms) == format_utc(_EPOCH + timedelta(milliseconds=ms))


def test_times_accept_offsets_and_reject_nonsense() -> None:
    assert ms_of("2026-03-01T12:00:00+02:00") == ms_of(T0)
    assert ms_of("1970-01-01T00:00:00.001Z") == 1
    with pytest.raises(BadRequestData):
        ms_of("yesterday")


def test_instance_ids() -> None:
    assert instance_number(INSTANCE_PREFIX + "42") == 42
    for other in ("urn:x:42", INSTANCE_PREFIX + "-1", INSTANCE_PREFIX + "4a", INSTANCE_PREFIX):
        assert instance_number(other) is None
    assert instance_number(INSTANCE_PREFIX + "9" * 30) is None
