"""Tests of the NGSI-LD query languages: q (4.9), entity type selection (4.17), scopeQ
(4.19) and attribute lists (4.6.2 names), evaluated on the stored entity shape."""

from __future__ import annotations

import operator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityverse.core.errors import BadRequestData, NgsiError
from cityverse.core.model import Entity
from cityverse.core.query import (
    MAX_DEPTH,
    And,
    Comparison,
    Exists,
    NotExists,
    Or,
    Path,
    Range,
    Temporal,
    parse_attr_list,
    parse_q,
    parse_scope_q,
    parse_type_expr,
)

EX = "https://ex.org/"


def expand(term: str) -> str:
    """A stand-in for a @context: short names go under EX, IRIs stay as they are."""
    return term if ":" in term else EX + term


def entity(
    *,
    id: str = "urn:ngsi-ld:Thing:1",
    types: tuple[str, ...] = ("Thing",),
    scope: list[str] | None = None,
    **attrs: Any,
) -> Entity:
    """A stored entity; each keyword is an attribute (one instance or a list of them)."""
    e: Entity = {
        "id": id,
        "type": [expand(t) for t in types],
        "createdAt": "2026-01-01T00:00:00.000Z",
        "modifiedAt": "2026-01-02T00:00:00.000Z",
        "attrs": {
            expand(name): inst if isinstance(inst, list) else [inst] for name, inst in attrs.items()
        },
    }
    if scope is not None:
        e["scope"] = scope
    return e


def prop(value: Any, **members: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **members}


def rel(obj: Any, **members: Any) -> dict[str, Any]:
    return {"type": "Relationship", "object": obj, **members}


def q(text: str, e: Entity) -> bool:
    return parse_q(text, expand).matches(e)


# --- 4.9 examples -------------------------------------------------------------------


def test_example_0_existence() -> None:
    """4.9 example 0: ?q=temperature checks for the existence of the attribute."""
    assert q("temperature", entity(temperature=prop(20)))
    assert not q("temperature", entity(speed=prop(20)))


@pytest.mark.parametrize("stored", [20, 20.0])
def test_example_1_number_equal(stored: float) -> None:
    """4.9 example 1: ?q=temperature==20 (numbers compare by value, int or float)."""
    assert q("temperature==20", entity(temperature=prop(stored)))
    assert not q("temperature==20", entity(temperature=prop(stored + 1)))


def test_example_2_string_unequal() -> None:
    """4.9 example 2: ?q=brandName!="Mercedes"."""
    assert q('brandName!="Mercedes"', entity(brandName=prop("Volvo")))
    assert not q('brandName!="Mercedes"', entity(brandName=prop("Mercedes")))
    assert not q('brandName!="Mercedes"', entity(speed=prop(1))), "the target must exist"


def test_example_3_relationship_object() -> None:
    """4.9 example 3: ?q=isParked=="urn:ngsi-ld:OffStreetParking:Downtown1", quoted or not."""
    parked = entity(isParked=rel("urn:ngsi-ld:OffStreetParking:Downtown1"))
    assert q('isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"', parked)
    assert q("isParked==urn:ngsi-ld:OffStreetParking:Downtown1", parked)
    assert not q('isParked=="urn:ngsi-ld:OffStreetParking:Other"', parked)


def test_example_4_and() -> None:
    """4.9 example 4: ?q=speed>50;brandName!="Mercedes"."""
    text = 'speed>50;brandName!="Mercedes"'
    assert q(text, entity(speed=prop(80), brandName=prop("Volvo")))
    assert not q(text, entity(speed=prop(40), brandName=prop("Volvo")))
    assert not q(text, entity(speed=prop(80), brandName=prop("Mercedes")))


def test_example_5_relationship_existence() -> None:
    """4.9 example 5: ?q=isMonitoredBy."""
    assert q("isMonitoredBy", entity(isMonitoredBy=rel("urn:ngsi-ld:Camera:1")))
    assert q("!isMonitoredBy", entity(speed=prop(1)))


@pytest.mark.parametrize("speed", [40, 60])
@pytest.mark.parametrize("rpm", [2000, 4000])
@pytest.mark.parametrize("brand", ["Mercedes", "Volvo"])
def test_example_6_nested_association(speed: int, rpm: int, brand: str) -> None:
    """4.9 example 6: ?q=((speed>50|rpm>3000);brandName=="Mercedes")."""
    e = entity(speed=prop(speed), rpm=prop(rpm), brandName=prop(brand))
    expected = (speed > 50 or rpm > 3000) and brand == "Mercedes"
    assert q('((speed>50|rpm>3000);brandName=="Mercedes")', e) is expected


@pytest.mark.parametrize("temperature", [15, 22, 30])
@pytest.mark.parametrize("capacity", [5, 50])
def test_example_7_association_before_or(temperature: int, capacity: int) -> None:
    """4.9 example 7: ?q=(temperature>=20;temperature<=25)|capacity<=10."""
    e = entity(temperature=prop(temperature), capacity=prop(capacity))
    expected = (20 <= temperature <= 25) or capacity <= 10
    assert q("(temperature>=20;temperature<=25)|capacity<=10", e) is expected


def test_example_8_observed_at() -> None:
    """4.9 example 8: ?q=temperature.observedAt>=2017-12-24T12:00:00Z."""
    text = "temperature.observedAt>=2017-12-24T12:00:00Z"
    assert q(text, entity(temperature=prop(20, observedAt="2017-12-24T12:00:00.000Z")))
    assert q(text, entity(temperature=prop(20, observedAt="2018-01-01T00:00:00.000Z")))
    assert not q(text, entity(temperature=prop(20, observedAt="2017-12-24T11:59:59.999Z")))
    assert not q(text, entity(temperature=prop(20)))


def test_example_9_path_into_value() -> None:
    """4.9 example 9: ?q=address[city]=="Berlin"."""
    place = entity(address=prop({"city": "Berlin", "street": "Ulrich Strasse"}))
    assert q('address[city]=="Berlin"', place)
    assert not q('address[city]=="Paris"', place)
    assert not q('address[zip]=="Berlin"', place)


def test_example_10_sub_attribute_and_path() -> None:
    """4.9 example 10: ?q=sensor.rawdata[airquality.particulate]==40."""
    raw = prop({"airquality": {"particulate": 40, "PM20": 85}})
    e = entity(sensor=prop(40, sub={expand("rawdata"): raw}))
    assert q("sensor.rawdata[airquality.particulate]==40", e)
    assert not q("sensor.rawdata[airquality.PM20]==40", e)
    assert not q("sensor.other[airquality.particulate]==40", e)


def test_example_11_json_property() -> None:
    """4.9 example 11: ?q=parkingTickets[value]=="Overstay 60 minutes" on a JsonProperty."""
    tickets = {"type": "JsonProperty", "json": {"id": "85a6", "value": "Overstay 60 minutes"}}
    e = entity(parkingTickets=tickets)
    assert q('parkingTickets[value]=="Overstay 60 minutes"', e)
    assert not q('parkingTickets[id]=="Overstay 60 minutes"', e)


def test_example_12_vocab_property() -> None:
    """4.9 example 12: ?q=gender==Male; VocabProperty values are stored expanded."""
    e = entity(gender={"type": "VocabProperty", "vocab": expand("Male")})
    assert q("gender==Male", e)
    assert q(f'gender=="{EX}Male"', e)
    assert not q("gender==Female", e)
    assert q("gender!=Female", e)


# --- each operator -------------------------------------------------------------------

NUMERIC_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@pytest.mark.parametrize("op", sorted(NUMERIC_OPS))
@pytest.mark.parametrize("stored", [-5, 0, 9.5, 10, 10.5, 1e6])
def test_operators_on_numbers(op: str, stored: float) -> None:
    """4.9 operators equal, unequal, greater, greaterEq, less, lessEq on numbers."""
    assert q(f"level{op}10", entity(level=prop(stored))) is NUMERIC_OPS[op](stored, 10)


@pytest.mark.parametrize("op", sorted(NUMERIC_OPS))
@pytest.mark.parametrize("stored", ["apple", "kiwi", "pear"])
def test_operators_on_strings(op: str, stored: str) -> None:
    """4.9: strings compare as strings (RFC 8259 8.3: code unit order)."""
    assert q(f'fruit{op}"kiwi"', entity(fruit=prop(stored))) is NUMERIC_OPS[op](stored, "kiwi")


@pytest.mark.parametrize("op", [">", ">=", "<", "<=", "=="])
def test_different_data_types_never_match(op: str) -> None:
    """4.9: if the target and query value data types differ, there is no match."""
    assert not q(f'level{op}"10"', entity(level=prop(10)))
    assert not q(f"level{op}10", entity(level=prop("10")))
    assert not q(f"flag{op}1", entity(flag=prop(True)))


def test_different_data_types_are_unequal() -> None:
    """4.9 unequal: values of different data types are considered unequal."""
    assert q('level!="10"', entity(level=prop(10)))
    assert q("flag!=1", entity(flag=prop(True)))


def test_booleans() -> None:
    """4.9 OtherValue: true and false."""
    assert q("open==true", entity(open=prop(True)))
    assert not q("open==true", entity(open=prop(False)))
    assert q("open!=true", entity(open=prop(False)))


def test_quoted_string_escapes() -> None:
    """4.9 quotedStr is a JSON string: escapes are decoded, ';' and '|' are literal."""
    assert q(r'label=="say \"hi\"; a|b\u00e9"', entity(label=prop('say "hi"; a|bé')))


def test_pattern_operators() -> None:
    """4.9 patternOp / notPatternOp: regular expressions over string values."""
    e = entity(name=prop("Berkane Centre"))
    assert q("name~=^Berk", e)
    assert q("name~=Centre", e), "the pattern may match anywhere in the value"
    assert not q("name~=^Centre", e)
    assert q('name~="(?i)berkane"', e)
    assert q("name!~=^Oujda", e)
    assert not q("name!~=Centre", e)
    assert q("name~=^(Berkane|Oujda) ", e), "parentheses and '|' inside a regex"
    assert q('name~="e C;?"', e), "quoted, a regex may hold ';'"


def test_pattern_operators_on_non_strings() -> None:
    """4.9: pattern operators on a value that is not a String do not match."""
    e = entity(level=prop(10))
    assert not q("level~=1", e)
    assert not q("level!~=x", e)


# --- arrays, lists, ranges ---------------------------------------------------------------


def test_equal_includes_array_elements() -> None:
    """4.9 equal: the query value is included in the target value if it is an array."""
    e = entity(color=prop(["blue", "red", "green"]))
    assert q('color=="red"', e)
    assert not q('color=="black"', e)


def test_unequal_excludes_array_elements() -> None:
    """4.9 unequal: the query value is not included in the target array."""
    assert not q('color!="red"', entity(color=prop(["blue", "red", "green"])))
    assert q('color!="red"', entity(color=prop(["blue", "black", "green"])))


def test_value_list() -> None:
    """4.9 ValueList: equal to any of the values; unequal to all of them."""
    text_eq, text_ne = 'color=="black","red"', 'color!="black","red"'
    assert q(text_eq, entity(color=prop("red")))
    assert q(text_eq, entity(color=prop(["red", "blue"])))
    assert not q(text_eq, entity(color=prop("blue")))
    assert q(text_ne, entity(color=prop("blue")))
    assert q(text_ne, entity(color=prop(["blue", "yellow", "green"])))
    assert not q(text_ne, entity(color=prop(["blue", "red", "green"])))
    assert q("level==1,2,3", entity(level=prop(2)))


@pytest.mark.parametrize("stored", [9, 10, 15, 20, 20.5])
def test_range(stored: float) -> None:
    """4.9 Range: temperature==10..20 includes both ends; != is outside it."""
    inside = 10 <= stored <= 20
    assert q("temperature==10..20", entity(temperature=prop(stored))) is inside
    assert q("temperature!=10..20", entity(temperature=prop(stored))) is not inside


def test_string_and_datetime_ranges() -> None:
    """4.9 Range over strings and DateTimes (temporal order)."""
    assert q('code=="b".."d"', entity(code=prop("c")))
    assert not q('code=="b".."d"', entity(code=prop("e")))
    observed = entity(t=prop(1, observedAt="2026-03-10T10:00:00.000Z"))
    assert q("t.observedAt==2026-03-10T00:00:00Z..2026-03-11T00:00:00Z", observed)
    assert not q("t.observedAt==2026-03-11T00:00:00Z..2026-03-12T00:00:00Z", observed)


# --- attribute kinds ------------------------------------------------------------------


def test_multi_attribute_any_instance() -> None:
    """4.9: with several instances (datasetId), the target value is any of them."""
    e = entity(
        temperature=[prop(20), prop(30, datasetId="urn:ngsi-ld:Dataset:b")],
    )
    assert q("temperature==30", e)
    assert q("temperature==20", e)
    assert q('temperature.datasetId=="urn:ngsi-ld:Dataset:b"', e)
    assert q("temperature>25;temperature<25", e), "each term may match another instance"


def test_sub_attributes() -> None:
    """4.9: each further name in the path is a sub-Property or sub-Relationship."""
    e = entity(
        temperature=prop(20, sub={expand("accuracy"): prop(0.2)}),
        isParked=rel(
            "urn:ngsi-ld:OffStreetParking:Downtown1",
            sub={expand("providedBy"): rel("urn:ngsi-ld:Person:Bob")},
        ),
    )
    assert q("temperature.accuracy<0.5", e)
    assert not q("temperature.accuracy>0.5", e)
    assert q('isParked.providedBy=="urn:ngsi-ld:Person:Bob"', e)
    assert q("temperature.accuracy", e)
    assert q("!temperature.precision", e)


def test_relationship_lists() -> None:
    """4.9: a Relationship with several objects and a ListRelationship match any object."""
    e = entity(
        owners=rel(["urn:ngsi-ld:Person:A", "urn:ngsi-ld:Person:B"]),
        route={
            "type": "ListRelationship",
            "objectList": ["urn:ngsi-ld:Stop:1", "urn:ngsi-ld:Stop:2"],
        },
    )
    assert q('owners=="urn:ngsi-ld:Person:B"', e)
    assert q('route=="urn:ngsi-ld:Stop:2"', e)
    assert not q('route!="urn:ngsi-ld:Stop:2"', e)


@pytest.mark.parametrize("op", [">", ">=", "<", "<=", "~="])
def test_relationships_answer_only_equality(op: str) -> None:
    """4.9: Relationships and ListRelationships match only with == and !=."""
    e = entity(
        owner=rel("urn:ngsi-ld:Person:B"),
        route={"type": "ListRelationship", "objectList": ["urn:ngsi-ld:Stop:1"]},
    )
    assert not q(f'owner{op}"urn:ngsi-ld:Person:A"', e)
    assert not q(f'route{op}"urn:ngsi-ld:Stop:0"', e)


def test_language_property() -> None:
    """4.9: a LanguageProperty matches any language, or the one in [lang], or [*]."""
    e = entity(
        color={
            "type": "LanguageProperty",
            "languageMap": {"fr": "rouge", "en": "red", "de": "rot"},
        },
        animal={
            "type": "LanguageProperty",
            "languageMap": {"fr": ["chat", "rouge"], "en": ["red", "cat"]},
        },
    )
    assert q('color=="rouge"', e)
    assert q('color[en]=="red"', e)
    assert not q('color[fr]=="red"', e)
    assert q('color[*]=="rot"', e)
    assert q('color[en]!="black"', e)
    assert q('animal[en]=="cat"', e)
    assert not q('animal[fr]=="cat"', e)
    assert not q('color[es]=="red"', e), "an absent language is no target"


def test_list_property() -> None:
    """4.9: a ListProperty's target value is its valueList (any element matches ==)."""
    e = entity(readings={"type": "ListProperty", "valueList": [3, 7, 11]})
    assert q("readings==7", e)
    assert q("readings>10", e)
    assert not q("readings!=7", e)


def test_datetime_values() -> None:
    """4.6.3 / 4.9: DateTime values compare in temporal order, whatever their offset."""
    e = entity(
        start=prop("2026-05-01T12:00:00Z"),
        end=prop({"@type": "DateTime", "@value": "2026-05-01T14:00:00+02:00"}),
    )
    assert q("start==2026-05-01T13:00:00+01:00", e)
    assert q("start>2026-05-01T11:59:59.999Z", e)
    assert q("end==2026-05-01T12:00:00Z", e)
    assert not q('start=="2026-05-01T13:00:00+01:00"', e), "quoted, it is a string"


def test_date_and_time_values() -> None:
    """4.6.3: Date and Time values compare with values of their own type."""
    e = entity(day=prop("2026-05-01"), opens=prop("08:30:00"))
    assert q("day>=2026-04-30", e)
    assert not q("day>2026-05-01", e)
    assert q("opens<09:00:00", e)
    assert not q("day>2026-04-30T00:00:00Z", e), "a Date is not a DateTime"


def test_instance_metadata() -> None:
    """4.9: instance members unitCode, createdAt, modifiedAt in a path."""
    e = entity(level=prop(3, unitCode="MTR", modifiedAt="2026-02-01T00:00:00.000Z"))
    assert q('level.unitCode=="MTR"', e)
    assert q("level.modifiedAt>2026-01-31T00:00:00Z", e)
    assert q("level.unitCode", e)
    assert q("!level.observedAt", e)


def test_entity_members() -> None:
    """Entity id, type, createdAt and modifiedAt can be queried like attributes."""
    e = entity(id="urn:ngsi-ld:Pipe:7", types=("Pipe", "Asset"))
    assert q('id=="urn:ngsi-ld:Pipe:7"', e)
    assert q("type==Asset", e)
    assert not q("type==Tank", e)
    assert q("createdAt<2026-01-01T00:00:01Z", e)
    assert parse_q("type==Asset;createdAt", expand).attribute_names == frozenset()


def test_expansion_errors() -> None:
    """5.5.7: a name that cannot be expanded is an error; a value that cannot be is
    compared as it is."""

    def strict(term: str) -> str:
        if term.startswith("bad"):
            raise BadRequestData(f"cannot expand {term!r}")
        return expand(term)

    with pytest.raises(BadRequestData, match="cannot expand"):
        parse_q("badName==1", strict)
    assert parse_q('name=="badValue"', strict).matches(entity(name=prop("badValue")))


# --- structure ------------------------------------------------------------------------


def test_tree_is_inspectable() -> None:
    """4.9 grammar: the parsed tree mirrors the expression, AND binding tighter than OR."""
    expr = parse_q('a==1|b>=2.5;!c;d=="x","y";e==1..9;f', expand)
    assert expr.root == Or(
        (
            Comparison(Path(EX + "a"), "==", 1),
            And(
                (
                    Comparison(Path(EX + "b"), ">=", 2.5),
                    NotExists(Path(EX + "c")),
                    Comparison(Path(EX + "d"), "==", ("x", "y")),
                    Comparison(Path(EX + "e"), "==", Range(1, 9)),
                    Exists(Path(EX + "f")),
                )
            ),
        )
    )
    assert expr.attribute_names == frozenset(EX + n for n in "abcdef")


def test_paths_and_values_in_tree() -> None:
    """4.9: paths keep sub-attributes, metadata and trailing paths apart, expanded."""
    expr = parse_q("t.acc.observedAt>2026-01-01T00:00:00+01:00", expand)
    assert expr.root == Comparison(
        Path(EX + "t", (EX + "acc",), "observedAt"),
        ">",
        Temporal("DateTime", "2025-12-31T23:00:00.000Z"),
    )
    keyed = parse_q("addr.geo[a.b]", expand).root
    assert keyed == Exists(Path(EX + "addr", (EX + "geo",), None, ("a", "b")))


def test_depth_limit() -> None:
    """Parentheses nest up to MAX_DEPTH; deeper is BadRequestData, not a crash."""
    assert parse_q("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH, expand).matches(entity(a=prop(1)))
    with pytest.raises(BadRequestData, match="nested"):
        parse_q("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), expand)
    with pytest.raises(BadRequestData):
        parse_q("(" * 100_000, expand)


def test_long_expressions() -> None:
    """Very long flat expressions parse and evaluate without deep recursion."""
    n = 20_000
    expr = parse_q("|".join(f"a{i}==1" for i in range(n)), expand)
    assert expr.matches(entity(**{f"a{n - 1}": prop(1)}))
    assert not parse_q(";".join(["a==1"] * n), expand).matches(entity(a=prop(2)))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "a==",
        "==1",
        "a=1",
        "(a==1",
        "a==1)",
        "a==1;",
        "|a",
        "a;;b",
        "()",
        "a==1 2",
        'a=="unterminated',
        "a>1..2",
        "a>1,2",
        "a>true",
        "a==1..2..3",
        "a==1..x",
        "a==true..false",
        "a==1,2..3",
        "a~=(",
        "a~=",
        "a[b",
        "a[]",
        "a.",
        "1a==2",
        "a.observedAt.b",
        "a.observedAt[x]",
        "id.x==1",
        "a==2026-13-01T00:00:00Z",
        "a==2026-02-30",
        "a==25:00:00",
        "a==1e999",
        "a==" + "1" * 5000,
        "a b",
        "a#==1",
    ],
)
def test_invalid_q(text: str) -> None:
    """4.9 grammar violations are BadRequestData saying where the problem is."""
    with pytest.raises(BadRequestData) as info:
        parse_q(text, expand)
    assert "q" in info.value.detail
    if text.strip():
        assert "position" in info.value.detail


# --- scopeQ (4.19) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "expected"),
    [("/Madrid", True), ("/Madrid/Gardens", False), ("/Barcelona", False)],
)
def test_scope_example_1(scope: str, expected: bool) -> None:
    """4.19 example 1: /Madrid matches exactly that scope."""
    assert parse_scope_q("/Madrid").matches(entity(scope=[scope])) is expected


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("/Madrid/Gardens", True),
        ("/Madrid/Gardens/ParqueNorte", True),
        ("/Madrid/Gardens/ParqueNorte/Parterre1", True),
        ("/Madrid/GardensX", False),
        ("/Madrid", False),
    ],
)
def test_scope_example_2_subtree(scope: str, expected: bool) -> None:
    """4.19 example 2: /Madrid/Gardens/# matches the scope and the tree below it."""
    assert parse_scope_q("/Madrid/Gardens/#").matches(entity(scope=[scope])) is expected


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("/Madrid/Gardens/ParqueNorte", True),
        ("/Madrid/Sights/ParqueNorte", True),
        ("/Madrid/ParqueNorte", False),
        ("/Madrid/a/b/ParqueNorte", False),
    ],
)
def test_scope_example_3_one_level_wildcard(scope: str, expected: bool) -> None:
    """4.19 example 3: /Madrid/+/ParqueNorte, '+' is exactly one level."""
    assert parse_scope_q("/Madrid/+/ParqueNorte").matches(entity(scope=[scope])) is expected


def test_scope_examples_4_and_5() -> None:
    """4.19 examples 4 and 5: (/Madrid/Districts;/CompanyA) and its disjunction with
    /CompanyB, written with '|' or ','."""
    both = entity(scope=["/Madrid/Districts", "/CompanyA"])
    one = entity(scope=["/Madrid/Districts"])
    b = entity(scope=["/CompanyB"])
    assert parse_scope_q("(/Madrid/Districts;/CompanyA)").matches(both)
    assert not parse_scope_q("(/Madrid/Districts;/CompanyA)").matches(one)
    for text in (
        "(/Madrid/Districts;/CompanyA)|/CompanyB",
        "(/Madrid/Districts;/CompanyA),/CompanyB",
    ):
        expr = parse_scope_q(text)
        assert expr.matches(both)
        assert expr.matches(b)
        assert not expr.matches(one)


def test_scope_any() -> None:
    """4.19: /# matches any non-empty scope, i.e. only entities with explicit scopes."""
    expr = parse_scope_q("/#")
    assert expr.matches(entity(scope=["/x"]))
    assert not expr.matches(entity())
    assert not expr.matches(entity(scope=[]))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Madrid",
        "/",
        "//a",
        "/a//b",
        "/a/#/b",
        "/a/b#",
        "(/a",
        "/a)",
        "/a;",
        "/a|",
        "/a b",
        "/#/a",
    ],
)
def test_invalid_scope_q(text: str) -> None:
    """4.19 grammar violations are BadRequestData."""
    with pytest.raises(BadRequestData, match="scopeQ"):
        parse_scope_q(text)


# --- entity type selection (4.17) ----------------------------------------------------------


@pytest.mark.parametrize("text", ["Building|House", "Building,House"])
def test_type_example_1(text: str) -> None:
    """4.17 example 1: Building|House, alternatively Building,House."""
    expr = parse_type_expr(text, expand)
    assert expr.matches(entity(types=("House",)))
    assert expr.matches(entity(types=("Building", "Other")))
    assert not expr.matches(entity(types=("Shed",)))
    assert expr.names == {EX + "Building", EX + "House"}


def test_type_example_2() -> None:
    """4.17 example 2: (Home;Vehicle) needs both types."""
    expr = parse_type_expr("(Home;Vehicle)", expand)
    assert expr.matches(entity(types=("Home", "Vehicle")))
    assert not expr.matches(entity(types=("Home",)))
    assert len(expr.names) == 1 and expr.names <= {EX + "Home", EX + "Vehicle"}


@pytest.mark.parametrize("text", ["(Home;Vehicle)|Motorhome", "(Home;Vehicle),Motorhome"])
def test_type_example_3(text: str) -> None:
    """4.17 example 3: (Home;Vehicle)|Motorhome."""
    expr = parse_type_expr(text, expand)
    assert expr.matches(entity(types=("Vehicle", "Home")))
    assert expr.matches(entity(types=("Motorhome",)))
    assert not expr.matches(entity(types=("Vehicle",)))
    for types in (("Vehicle", "Home"), ("Motorhome",)):
        assert expr.names.intersection(expand(t) for t in types)


def test_type_uris() -> None:
    """4.17: an entity type is a 4.6.2 name or a URI."""
    expr = parse_type_expr("https://smartdatamodels.org/Pipe,ex:Tank", expand)
    assert expr.matches(entity(types=("https://smartdatamodels.org/Pipe",)))
    assert expr.matches(entity(types=("ex:Tank",)))


@pytest.mark.parametrize(
    "text", ["", ",", "A,", "A,,B", "(A", "A)", "A;", "1A", "A B", "A-B", "()"]
)
def test_invalid_type_expr(text: str) -> None:
    """4.17 grammar violations are BadRequestData."""
    with pytest.raises(BadRequestData, match="entity type"):
        parse_type_expr(text, expand)


# --- attribute lists (attrs, pick, omit) -------------------------------------------------------


def test_attr_list() -> None:
    """attrs / pick / omit: comma-separated names, expanded, in order, without duplicates."""
    got = parse_attr_list("temperature,ex:x,https://ex.org/temperature,speed", expand)
    assert got == [EX + "temperature", "ex:x", EX + "speed"]


@pytest.mark.parametrize("name", ["wind-speed", "a.b", "1a"])
def test_attr_list_accepts_every_storable_name(name: str) -> None:
    """attrs / pick / omit take any name an entity may carry (4.6.2), so that every stored
    attribute can be projected, even one the q grammar cannot name."""
    from cityverse.core.entity import valid_name

    assert valid_name(name)
    assert parse_attr_list(name, expand) == [EX + name]


@pytest.mark.parametrize("text", ["", "a,", ",a", "a,,b", "a b", "a<b", "@id"])
def test_invalid_attr_list(text: str) -> None:
    """4.6.2: empty items and names with forbidden characters are BadRequestData."""
    with pytest.raises(BadRequestData):
        parse_attr_list(text, expand)


# --- properties ----------------------------------------------------------------------

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Q_ALPHABET = st.sampled_from(list('abcxyz019.;|()[]!=<>~",*:/#+-_ TZé\\'))


@FAST
@given(st.text(Q_ALPHABET, max_size=40) | st.text(max_size=40))
def test_parsers_raise_only_ngsi_errors(text: str) -> None:
    """Any text given to q, scopeQ, type selections and attribute lists either parses
    or raises an NgsiError; a parsed q evaluates on an entity without error."""
    e = entity(a=prop(1), b=rel("urn:x:1"), c=prop({"x": [1, "s"]}), scope=["/a"])
    for parse in (
        lambda t: parse_q(t, expand),
        parse_scope_q,
        lambda t: parse_type_expr(t, expand),
        lambda t: parse_attr_list(t, expand),
    ):
        try:
            result = parse(text)
        except NgsiError:
            continue
        if hasattr(result, "matches"):
            assert result.matches(e) in (True, False)


NAMES = ["a", "b", "c"]
stored_values = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["x", "y", "2026-01-01T00:00:00Z", "urn:a:1"]),
    st.booleans(),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.sampled_from(["k", "m"]), st.integers(-5, 5), max_size=2),
)
instances = st.one_of(
    stored_values.map(prop),
    st.sampled_from(["urn:a:1", ["urn:a:1", "urn:a:2"]]).map(rel),
    st.builds(
        lambda v: {"type": "ListProperty", "valueList": v}, st.lists(st.integers(-5, 5), max_size=3)
    ),
    st.builds(
        lambda v: {"type": "LanguageProperty", "languageMap": {"en": v}},
        st.sampled_from(["x", "y"]),
    ),
    st.builds(lambda v: {"type": "VocabProperty", "vocab": expand(v)}, st.sampled_from(["x", "y"])),
    st.builds(lambda v: {"type": "JsonProperty", "json": {"k": v}}, st.integers(-5, 5)),
)
entities = st.dictionaries(st.sampled_from(NAMES), st.lists(instances, min_size=1, max_size=2)).map(
    lambda attrs: entity(**attrs)
)
query_values = st.sampled_from(
    [
        "1",
        "-2.5",
        '"x"',
        "x",
        "true",
        "1..3",
        '"a".."z"',
        "1,2,3",
        "2026-01-01T00:00:00Z",
        "urn:a:1",
    ]
)
query_terms = st.one_of(
    st.builds(
        lambda n, p: n + p,
        st.sampled_from(NAMES),
        st.sampled_from(["", "[k]", "[en]", ".observedAt"]),
    ),
    st.builds(lambda n: "!" + n, st.sampled_from(NAMES)),
    st.builds(
        lambda n, op, v: f"{n}{op}{v}",
        st.sampled_from(NAMES),
        st.sampled_from(["==", "!="]),
        query_values,
    ),
    st.builds(
        lambda n, op, v: f"{n}{op}{v}",
        st.sampled_from(NAMES),
        st.sampled_from([">", ">=", "<", "<="]),
        st.sampled_from(["1", "-2.5", '"x"', "2026-01-01T00:00:00Z"]),
    ),
    st.builds(
        lambda n, op, v: f"{n}{op}{v}",
        st.sampled_from(NAMES),
        st.sampled_from(["~=", "!~="]),
        st.sampled_from(["^x", '"y|z"', "urn"]),
    ),
)
query_texts = st.recursive(
    query_terms,
    lambda inner: st.builds(
        lambda parts, ops: parts[0] + "".join(o + p for o, p in zip(ops, parts[1:], strict=False)),
        st.lists(inner.map(lambda t: f"({t})"), min_size=1, max_size=3),
        st.lists(st.sampled_from([";", "|"]), min_size=2, max_size=2),
    ),
    max_leaves=8,
)


@FAST
@given(query_texts, entities)
def test_valid_queries_evaluate(text: str, e: Entity) -> None:
    """4.9: every expression of the grammar parses and evaluates on any stored entity."""
    expr = parse_q(text, expand)
    assert expr.matches(e) in (True, False)
    assert expr.attribute_names <= {EX + n for n in NAMES}


Tree = Any  # a name (str) or ("!", name) or (";" | "|", [Tree, ...])

trees: st.SearchStrategy[Tree] = st.recursive(
    st.sampled_from(NAMES) | st.sampled_from(NAMES).map(lambda n: ("!", n)),
    lambda inner: st.tuples(st.sampled_from([";", "|"]), st.lists(inner, min_size=2, max_size=3)),
    max_leaves=10,
)


def render(tree: Tree, top: bool = True) -> str:
    if isinstance(tree, str):
        return tree
    if tree[0] == "!":
        return "!" + tree[1]
    text = tree[0].join(render(t, top=False) for t in tree[1])
    return text if top else f"({text})"


def evaluate(tree: Tree, present: set[str]) -> bool:
    if isinstance(tree, str):
        return tree in present
    if tree[0] == "!":
        return tree[1] not in present
    results = [evaluate(t, present) for t in tree[1]]
    return all(results) if tree[0] == ";" else any(results)


@FAST
@given(trees, st.sets(st.sampled_from(NAMES)))
def test_logical_structure(tree: Tree, present: set[str]) -> None:
    """4.9: ';' is AND, '|' is OR and parentheses group, whatever the nesting."""
    e = entity(**{n: prop(1) for n in present})
    assert parse_q(render(tree), expand).matches(e) is evaluate(tree, present)


@FAST
@given(
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=6),
    st.lists(st.sampled_from("|;"), min_size=5, max_size=5),
    st.sets(st.sampled_from(NAMES)),
)
def test_and_binds_tighter_than_or(names: list[str], ops: list[str], present: set[str]) -> None:
    """4.9: without parentheses, AND takes precedence over OR (as Python's and/or)."""
    text = names[0] + "".join(o + n for o, n in zip(ops, names[1:], strict=False))
    python = text.replace(";", " and ").replace("|", " or ")
    expected = eval(python, {}, {n: n in present for n in NAMES})
    assert parse_q(text, expand).matches(entity(**{n: prop(1) for n in present})) is expected


@pytest.mark.parametrize("text", ["temperature>>3", "a===1", "a!=!b", "a<=<2", "a==~x"])
def test_values_cannot_start_with_operator_characters(text: str) -> None:
    """4.9: a doubled or misplaced operator is a syntax error, not a bare-word value."""
    with pytest.raises(BadRequestData, match="cannot start with"):
        parse_q(text, lambda t: "https://ex.org/" + t)
