"""Temporal operations' request handling: the filter a temporal query hands the store."""

from __future__ import annotations

from typing import Any

import pytest

from cityverse.broker import query
from cityverse.broker.request import Broker, Call
from cityverse.broker.temporal import body_params, history, history_filter, parse_request
from cityverse.core.context import ContextResolver
from cityverse.core.errors import BadRequestData, OperationNotSupported
from cityverse.core.model import DEFAULT_CONTEXT_VOCAB
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
