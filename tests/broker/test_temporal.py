"""Temporal operations' request handling: the filter a temporal query hands the store,
the parameters of a temporal read, and the caller's gate on every store."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pytest

from cityverse.broker import query, temporal
from cityverse.broker.request import Broker, Call, Treatment
from cityverse.broker.temporal import body_params, history, history_filter, parse_request
from cityverse.core.context import ContextResolver
from cityverse.core.errors import (
    BadRequestData,
    Forbidden,
    OperationNotSupported,
    ResourceNotFound,
)
from cityverse.core.model import DEFAULT_CONTEXT_VOCAB, Instance
from cityverse.core.query import TypeExpr
from cityverse.settings import Settings

CONTEXTS = ContextResolver()
BROKER = Broker(Settings(), object(), CONTEXTS)  # type: ignore[arg-type]
CALL = Call(tenant="", context=CONTEXTS.core)
V = DEFAULT_CONTEXT_VOCAB


def from_params(**params: str) -> Any:
    return history_filter(query.selection_from_params(BROKER, CALL, params).filter)


def from_body(body: dict[str, Any]) -> Any:
    selection, _ = query.selection_from_body(BROKER, CALL, {"type": "Query", **body}, {})
    return history_filter(selection.filter)


def test_plain_types_become_type_names() -> None:
    """type=A,B is tested by the store on the history's types, not as a predicate."""
    flt = from_params(type="Vehicle,Bus")
    assert flt.type_names == {V + "Vehicle", V + "Bus"}
    assert flt.predicates == ()


def test_conjunctions_stay_predicates() -> None:
    """type=(A;B) needs the entity's types together: it stays a predicate."""
    flt = from_params(type="(Vehicle;Bus)|Tram")
    [predicate] = flt.predicates
    assert isinstance(predicate, TypeExpr)


def test_other_predicates_stay() -> None:
    flt = from_params(type="Vehicle", q="speed>3")
    assert len(flt.predicates) == 1 and not isinstance(flt.predicates[0], TypeExpr)


def test_one_entity_info_becomes_fields() -> None:
    """A Query body's single EntityInfo is turned into ids, idPattern and type names."""
    flt = from_body({"entities": [{"id": "urn:a:1", "type": "Vehicle"}]})
    assert flt.ids == {"urn:a:1"} and flt.type_names == {V + "Vehicle"}
    assert flt.predicates == ()
    flt = from_body({"entities": [{"idPattern": "urn:a:.*"}]})
    assert flt.id_pattern is not None and flt.id_pattern.pattern == "urn:a:.*"
    assert flt.predicates == ()


def test_several_entity_infos() -> None:
    """Several EntityInfos of types only are type names; with ids they stay a predicate."""
    flt = from_body({"entities": [{"type": "Vehicle"}, {"type": "Bus"}]})
    assert flt.type_names == {V + "Vehicle", V + "Bus"} and flt.predicates == ()
    flt = from_body({"entities": [{"id": "urn:a:1"}, {"type": "Bus"}]})
    assert len(flt.predicates) == 1


def test_body_params() -> None:
    """temporalQ (5.2.21) gives the temporal parameters; the URL's win."""
    body = {"temporalQ": {"timerel": "before", "timeAt": "2026-01-01T00:00:00Z", "lastN": 3}}
    assert body_params(body, {"lastN": "2"})["lastN"] == "2"
    request = parse_request(CALL, body_params(body, {}))
    assert request.query.last_n == 3 and request.query.timerel == "before"
    with pytest.raises(BadRequestData, match="temporalQ"):
        body_params({"temporalQ": []}, {})


def test_parse_request_attrs_and_options() -> None:
    request = parse_request(CALL, {"attrs": "speed,fuel", "options": "sysAttrs,temporalValues"})
    assert request.attrs == {V + "speed", V + "fuel"}
    assert request.sys_attrs
    assert request.query.representation == "temporalValues"
    with pytest.raises(BadRequestData, match="option"):
        parse_request(CALL, {"options": "sideways"})


def test_store_without_history() -> None:
    """A store that keeps no history answers OperationNotSupported (422), not a 500."""
    with pytest.raises(OperationNotSupported):
        history(BROKER)


# -- the caller's gate -----------------------------------------------------------------------

VEHICLE, PERSON = V + "Vehicle", V + "Person"
CAR, OWNER = "urn:ngsi-ld:Vehicle:g1", "urn:ngsi-ld:Person:g1"


class FakeGate:
    """A gate deciding by fixed lists: which types are hidden, how each attribute shows,
    which types may be written and deleted; it records what it was told was shown."""

    restricted = True

    def __init__(
        self,
        *,
        hidden: frozenset[str] = frozenset(),
        treatments: dict[str, Treatment] | None = None,
        writable: frozenset[str] = frozenset({VEHICLE}),
        deletable: frozenset[str] = frozenset(),
    ) -> None:
        self.hidden = hidden
        self.treatments = treatments or {}
        self.writable = writable
        self.deletable = deletable
        self.shown: list[tuple[str, str]] = []

    def hides(self, types: Sequence[str]) -> bool:
        return any(t in self.hidden for t in types)

    def attribute(self, types: Sequence[str], name: str) -> Treatment:
        return self.treatments.get(name, "show")

    def pseudonym(self, value: Any) -> str:
        return "p:" + hashlib.sha256(repr(value).encode()).hexdigest()[:8]

    def may_write(self, types: Sequence[str], *, delete: bool = False) -> bool:
        allowed = self.deletable if delete else self.writable
        return all(t in allowed for t in types)

    def disclosed(self, entity_id: str, name: str) -> None:
        self.shown.append((entity_id, name))


def reading(value: Any, minute: int, **extra: Any) -> dict[str, Any]:
    at = f"2026-01-01T12:{minute:02d}:00Z"
    return {"type": "Property", "value": value, "observedAt": at, **extra}


@pytest.fixture
async def gated(store: Any) -> Broker:
    """A car (speed, driver, plate) and its owner, written by a caller who may do all."""
    broker = Broker(Settings(), store, CONTEXTS)
    car = {
        "id": CAR,
        "type": "Vehicle",
        "speed": [reading(50, 1), reading(70, 2)],
        "driver": [reading("Amina", 1), reading("Amina", 2), reading("Youssef", 3)],
        "plate": [reading("12345-A-6", 1)],
    }
    owner = {"id": OWNER, "type": "Person", "age": [reading(41, 1)]}
    for body in (car, owner):
        await temporal.create(broker, CALL, body)
    return broker


def as_(gate: FakeGate) -> Call:
    return Call(tenant="", context=CONTEXTS.core, gate=gate)


async def test_gate_shapes_what_temporal_reads_show(gated: Broker) -> None:
    """Hidden attributes are left out, personal ones show stable pseudonyms, and the
    gate hears which attributes were shown as they are."""
    gate = FakeGate(treatments={V + "plate": "hide", V + "driver": "pseudonymise"})
    call = as_(gate)
    body = (await temporal.retrieve(gated, call, CAR, parse_request(call, {}))).body
    assert "plate" not in body
    assert [i["value"] for i in body["speed"]] == [50, 70]
    drivers = [i["value"] for i in body["driver"]]
    assert drivers[0] == drivers[1] == gate.pseudonym("Amina") != drivers[2]
    assert all(i["instanceId"] and i["observedAt"] for i in body["driver"])
    assert gate.shown == [(CAR, V + "speed")]
    simple = parse_request(call, {"options": "temporalValues"})
    values = (await temporal.retrieve(gated, call, CAR, simple)).body
    assert values["driver"]["values"][2][0] == gate.pseudonym("Youssef")
    # Open to everyone, the same read shows everything.
    open_body = (await temporal.retrieve(gated, CALL, CAR, parse_request(CALL, {}))).body
    assert [i["value"] for i in open_body["driver"]] == ["Amina", "Amina", "Youssef"]


async def test_gate_keeps_only_counts_of_personal_values(gated: Broker) -> None:
    gate = FakeGate(treatments={V + "speed": "pseudonymise"})
    call = as_(gate)
    request = parse_request(
        call, {"options": "aggregatedValues", "aggrMethods": "totalCount,avg,max"}
    )
    body = (await temporal.retrieve(gated, call, CAR, request)).body
    assert body["speed"]["totalCount"][0][0] == 2
    assert "avg" not in body["speed"] and "max" not in body["speed"]
    assert body["plate"]["totalCount"][0][0] == 1


async def test_gate_hides_entities(gated: Broker) -> None:
    """An entity of a hidden type does not exist for the caller: 404 on retrieval, left
    out of queries (and of their count), refused writes answer 404 too."""
    call = as_(FakeGate(hidden=frozenset({PERSON}), writable=frozenset({VEHICLE, PERSON})))
    with pytest.raises(ResourceNotFound):
        await temporal.retrieve(gated, call, OWNER, parse_request(call, {}))
    selection = query.selection_from_params(
        gated, call, {"type": "Vehicle,Person", "count": "true"}
    )
    answer = await temporal.query(gated, call, selection, parse_request(call, {}))
    assert [e["id"] for e in answer.body] == [CAR] and answer.total == 1
    by_q = query.selection_from_params(gated, call, {"q": "age>1;speed>1|age>1"})
    assert (await temporal.query(gated, call, by_q, parse_request(call, {}))).body == []
    for write in (
        temporal.append_attrs(gated, call, OWNER, {"age": [reading(42, 5)]}),
        temporal.create(gated, call, {"id": OWNER, "type": "Person", "age": reading(9, 9)}),
        temporal.delete(gated, call, OWNER),
        temporal.delete_attr(gated, call, OWNER, "age"),
    ):
        with pytest.raises(ResourceNotFound):
            await write
    assert [i["value"] for i in await ages(gated)] == [41]


async def ages(broker: Broker) -> list[Instance]:
    body = (await temporal.retrieve(broker, CALL, OWNER, parse_request(CALL, {}))).body
    return list(body["age"])


async def test_gate_decides_temporal_writes(gated: Broker) -> None:
    """Writes need may_write on the entity's types; deleting history needs delete."""
    call = as_(FakeGate(writable=frozenset({VEHICLE})))
    [first] = await ages(gated)
    forbidden = [
        temporal.create(gated, call, {"id": OWNER, "type": "Person", "age": reading(9, 9)}),
        temporal.create(gated, call, {"id": CAR, "type": "Person", "speed": reading(9, 9)}),
        temporal.append_attrs(gated, call, OWNER, {"age": [reading(42, 5)]}),
        temporal.modify_instance(gated, call, OWNER, "age", first["instanceId"], reading(1, 1)),
        temporal.delete_instance(gated, call, OWNER, "age", first["instanceId"]),
        temporal.delete_attr(gated, call, CAR, "speed"),
        temporal.delete(gated, call, CAR),
    ]
    for write in forbidden:
        with pytest.raises(Forbidden):
            await write
    assert [i["value"] for i in await ages(gated)] == [41]
    # What the gate allows goes through.
    await temporal.append_attrs(gated, call, CAR, {"speed": [reading(90, 9)]})
    created = await temporal.create(
        gated, call, {"id": CAR + "b", "type": "Vehicle"} | {"speed": reading(1, 1)}
    )
    assert created == (CAR + "b", True)
    deleter = as_(FakeGate(deletable=frozenset({VEHICLE})))
    await temporal.delete_attr(gated, deleter, CAR, "speed")
    body = (await temporal.retrieve(gated, CALL, CAR, parse_request(CALL, {}))).body
    assert "speed" not in body and "plate" in body
