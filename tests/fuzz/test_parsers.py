"""Property-based fuzzing of every parser that reads what a client or a device sends.

Whatever the text or JSON, a parser either answers or raises its own documented error:
``NgsiError`` (``BadRequestData``, so a 400) for the NGSI-LD languages, payloads and
times, ``UltralightError``/``JsonPayloadError`` for device payloads, ``ExpressionError``
for a measure expression that does not compile (and ``Missing`` when one is evaluated
without a variable it needs). Anything else would be a 500 or a crashed ingest.

What parses is also used: a q, scopeQ, type or geo-query is evaluated against stored
entities, an expression against measures, and neither may raise.

Each test tries ``CITYVERSE_FUZZ_EXAMPLES`` cases (200 by default); bench/fuzz_parsers.py
runs them with tens of thousands.
"""

from __future__ import annotations

import contextlib
import os
import string
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cityverse.core.context import ContextResolver
from cityverse.core.entity import normalise_datetime, parse_attributes, parse_entity
from cityverse.core.errors import NgsiError
from cityverse.core.geo import parse_geo_query, validate_geometry
from cityverse.core.model import Entity
from cityverse.core.query import parse_attr_list, parse_q, parse_scope_q, parse_type_expr
from cityverse.core.temporal import (
    parse_duration,
    parse_temporal_attributes,
    parse_temporal_entity,
    parse_temporal_query,
    to_millis,
)
from cityverse.ingest.iot import jsonpayload, ultralight
from cityverse.ingest.iot.expressions import ExpressionError, Missing, compile_expression

EXAMPLES = int(os.environ.get("CITYVERSE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

CTX = ContextResolver().core
NOW = "2026-11-21T10:00:00.000Z"


def _entity(body: dict[str, Any]) -> Entity:
    return parse_entity(body, CTX, now=NOW)


ENTITIES = [
    _entity(
        {
            "id": "urn:ngsi-ld:Streetlight:1",
            "type": "Streetlight",
            "scope": ["/Berkane/Centre", "/Berkane/Nord/A"],
            "illuminanceLevel": {"type": "Property", "value": 0.8, "observedAt": NOW},
            "status": {"type": "Property", "value": "on", "unitCode": "C62"},
            "name": {"type": "LanguageProperty", "languageMap": {"fr": "Lampe", "ar": "مصباح"}},
            "address": {
                "type": "Property",
                "value": {"streetAddress": "Rue 1", "postalCode": 60000, "tags": [1, "a"]},
            },
            "refZone": {"type": "Relationship", "object": "urn:ngsi-ld:Zone:1"},
            "category": {"type": "VocabProperty", "vocab": "street"},
            "readings": {"type": "ListProperty", "valueList": [1, 2.5, None, "x"]},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [2, 34]}},
        }
    ),
    _entity(
        {
            "id": "urn:ngsi-ld:Zone:1",
            "type": ["Zone", "https://example.org/Area"],
            "temperature": [
                {"type": "Property", "value": 21, "datasetId": "urn:ds:a"},
                {"type": "Property", "value": True, "datasetId": "urn:ds:b"},
            ],
            "location": {
                "type": "GeoProperty",
                "value": {
                    "type": "Polygon",
                    "coordinates": [[[1, 33], [3, 33], [3, 35], [1, 35], [1, 33]]],
                },
            },
            "config": {"type": "JsonProperty", "json": {"a": [1, {"b": None}]}},
        }
    ),
]

# Text made of the characters a language uses, so that cases get past the first token.
Q_TEXT = st.text(
    alphabet=string.ascii_letters[:8] + string.digits[:4] + "._:;|()=!<>~\"'[],-+ /*#", max_size=60
)
Q_TOKENS = st.lists(
    st.sampled_from(
        [
            "temperature",
            "status",
            "address",
            "address[postalCode]",
            "address.streetAddress",
            "name",
            "refZone",
            "illuminanceLevel",
            "readings",
            "config",
            "category",
            "observedAt",
            ".observedAt",
            "[",
            "]",
            ".",
            "==",
            "!=",
            ">",
            ">=",
            "<",
            "<=",
            "~=",
            "!~=",
            "!",
            ";",
            "|",
            "(",
            ")",
            ",",
            "..",
            '"on"',
            '"x"',
            "'a'",
            "1",
            "-2.5",
            "1e308",
            "1e999",
            "true",
            "false",
            "null",
            "2026-11-21T10:00:00Z",
            "10:00:00",
            "2026-11-21",
            "urn:ngsi-ld:Zone:1",
            "(?i).*",
            "[a-",
            "\\",
            " ",
        ]
    ),
    max_size=14,
).map("".join)
ANY_TEXT = st.text(max_size=120)
Q_INPUT = st.one_of(ANY_TEXT, Q_TEXT, Q_TOKENS)

SCOPE_INPUT = st.one_of(
    ANY_TEXT,
    st.lists(
        st.sampled_from(
            [
                "/",
                "#",
                "+",
                "Berkane",
                "Centre",
                "Nord",
                "A",
                ";",
                ",",
                "|",
                "(",
                ")",
                " ",
                "//",
                "é",
            ]
        ),
        max_size=12,
    ).map("".join),
)
TYPE_INPUT = st.one_of(
    ANY_TEXT,
    st.lists(
        st.sampled_from(
            [
                "Streetlight",
                "Zone",
                "https://example.org/Area",
                ",",
                ";",
                "|",
                "(",
                ")",
                " ",
                "ex:T",
                "@",
            ]
        ),
        max_size=12,
    ).map("".join),
)

# JSON with the member names and values that the NGSI-LD parsers look at.
KEYS = st.one_of(
    st.sampled_from(
        [
            "id",
            "@id",
            "type",
            "@type",
            "scope",
            "@context",
            "value",
            "object",
            "objectType",
            "languageMap",
            "vocab",
            "valueList",
            "objectList",
            "json",
            "observedAt",
            "unitCode",
            "datasetId",
            "createdAt",
            "modifiedAt",
            "instanceId",
            "location",
            "coordinates",
            "geometries",
            "temperature",
            "name",
            "@value",
            "@language",
            "values",
            "objects",
            "languageMaps",
            "Property",
        ]
    ),
    st.text(max_size=8),
)
# What a JSON body can carry once decoded (orjson: no NaN, integers of 64 bits).
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "Property",
            "Relationship",
            "GeoProperty",
            "LanguageProperty",
            "VocabProperty",
            "ListProperty",
            "ListRelationship",
            "JsonProperty",
            "Point",
            "Polygon",
            "LineString",
            "MultiPolygon",
            "GeometryCollection",
            "urn:ngsi-ld:null",
            "urn:ngsi-ld:T:1",
            "2026-11-21T10:00:00Z",
            "9999-12-31T23:59:59+14:00",
            "0000-01-01T00:00:00Z",
            "/Berkane/#",
            "T",
            "",
        ]
    ),
    st.text(max_size=12),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=30,
)
# Coordinates in a URL are read by json.loads, which takes NaN, Infinity and any integer.
NUMBERS = st.one_of(st.integers(-400, 400), st.floats(), st.integers(-(2**70), 2**70))
POSITIONS = st.lists(NUMBERS, min_size=0, max_size=4)
GEO_JSON = st.recursive(POSITIONS, lambda inner: st.lists(inner, max_size=6), max_leaves=40)


def only_ngsi_errors(call: Any, *args: Any, **kwargs: Any) -> Any:
    """The call's result, or None when it raised an NgsiError; anything else propagates."""
    try:
        return call(*args, **kwargs)
    except NgsiError:
        return None


# ------------------------------------------------------------------------- query languages


@FUZZ
@given(Q_INPUT)
# Found by fuzzing: re.compile's FutureWarning on "[[" escaped as an error.
@example("name~=[[a]")
def test_q(text: str) -> None:
    parsed = only_ngsi_errors(parse_q, text, CTX.expand)
    if parsed is not None:
        for entity in ENTITIES:
            assert parsed.matches(entity) in (True, False)


@FUZZ
@given(SCOPE_INPUT)
def test_scope_q(text: str) -> None:
    parsed = only_ngsi_errors(parse_scope_q, text)
    if parsed is not None:
        for entity in ENTITIES:
            assert parsed.matches(entity) in (True, False)


@FUZZ
@given(TYPE_INPUT)
def test_type_selection_and_attribute_lists(text: str) -> None:
    parsed = only_ngsi_errors(parse_type_expr, text, CTX.expand)
    if parsed is not None:
        for entity in ENTITIES:
            assert parsed.matches(entity) in (True, False)
    only_ngsi_errors(parse_attr_list, text, CTX.expand)


GEOREL = st.one_of(
    ANY_TEXT,
    st.sampled_from(["near", "within", "contains", "intersects", "equals", "disjoint", "overlaps"]),
    st.tuples(
        st.sampled_from(["near;", "near; ", "within;", ""]),
        st.sampled_from(["maxDistance==", "minDistance==", "maxDistance=", "distance=="]),
        st.one_of(st.text(alphabet="0123456789.e-+naif", max_size=8), NUMBERS.map(str)),
    ).map("".join),
)
GEOMETRY = st.one_of(
    ANY_TEXT,
    st.sampled_from(
        ["Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon"]
    ),
)
COORDINATES = st.one_of(ANY_TEXT, GEO_JSON.map(lambda c: str(c).replace("'", '"')), GEO_JSON, JSON)


@FUZZ
@given(GEOREL, GEOMETRY, COORDINATES, st.one_of(st.just("location"), ANY_TEXT))
def test_geo_query(georel: str, geometry: str, coordinates: Any, geoproperty: str) -> None:
    parsed = only_ngsi_errors(
        parse_geo_query,
        georel,
        geometry,
        coordinates,
        CTX.expand(geoproperty) if geoproperty else "",
    )
    if parsed is not None:
        for entity in ENTITIES:
            assert parsed.matches(entity) in (True, False)
        parsed.to_postgis()


@FUZZ
@given(st.one_of(JSON, st.fixed_dictionaries({"type": GEOMETRY, "coordinates": GEO_JSON})))
def test_geometry(value: Any) -> None:
    only_ngsi_errors(validate_geometry, value)


# ------------------------------------------------------------------------------- payloads


ENTITY_BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(["urn:ngsi-ld:T:1", "x", "http://e.org/1"]),
            "type": st.one_of(st.just("T"), JSON),
        },
        optional={"scope": JSON, "a": JSON, "b": JSON, "location": JSON, "@context": JSON},
    ),
    st.dictionaries(KEYS, st.dictionaries(KEYS, JSON, max_size=4), max_size=4),
)


@FUZZ
@given(ENTITY_BODIES)
def test_entity_payloads(body: Any) -> None:
    only_ngsi_errors(parse_entity, body, CTX, now=NOW)


@FUZZ
@given(ENTITY_BODIES, st.booleans())
def test_attribute_payloads(body: Any, allow_null: bool) -> None:
    only_ngsi_errors(parse_attributes, body, CTX, now=NOW, allow_null=allow_null)


@FUZZ
@given(ENTITY_BODIES)
# Found by fuzzing: a non-string type beside [value, time] pairs raised TypeError.
@example({"id": "urn:ngsi-ld:T:1", "type": "T", "a": {"type": [], "objects": []}})
def test_temporal_payloads(body: Any) -> None:
    only_ngsi_errors(parse_temporal_entity, body, CTX, now=NOW)
    only_ngsi_errors(parse_temporal_attributes, body, CTX, now=NOW)


# ---------------------------------------------------------------------------------- times

DATETIME_TEXT = st.one_of(
    ANY_TEXT,
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.text(alphabet="0123456789-:T.Zz+ ", max_size=32),
    st.tuples(
        st.integers(0, 99999).map(lambda y: f"{y:04d}"),
        st.integers(0, 99).map(lambda m: f"{m:02d}"),
        st.integers(0, 99).map(lambda d: f"{d:02d}"),
        st.sampled_from(["T", "t", " "]),
        st.integers(0, 99).map(lambda h: f"{h:02d}"),
        st.sampled_from([":00", ":59:60", ":00:00.123456789", ":61:61", ""]),
        st.sampled_from(["Z", "+14:00", "-23:59", "+99:99", "+0530", ""]),
    ).map(lambda parts: "{}-{}-{}{}{}{}{}".format(*parts)),
)
DURATION_TEXT = st.one_of(
    ANY_TEXT,
    st.text(alphabet="PTYMWDHS0123456789.,-", max_size=24),
    st.tuples(
        st.sampled_from(["P", "PT", "P1DT", "-P"]),
        st.integers(0, 10**13).map(str),
        st.sampled_from(["Y", "M", "W", "D", "H", "S", ".5S", ",000001S", ""]),
    ).map("".join),
)


@FUZZ
@given(st.one_of(DATETIME_TEXT, JSON))
# Found by fuzzing: an offset of 24 hours or more made datetime raise ValueError.
@example("2026-11-21T10:00:00+99:99")
@example("2026-11-21T10:00:00-24:00")
def test_date_times(text: Any) -> None:
    only_ngsi_errors(normalise_datetime, text)
    only_ngsi_errors(to_millis, text)


@FUZZ
@given(st.one_of(DURATION_TEXT, JSON))
def test_durations(text: Any) -> None:
    only_ngsi_errors(parse_duration, text)


TEMPORAL_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "timerel": st.one_of(st.sampled_from(["before", "after", "between"]), JSON),
        "timeAt": st.one_of(DATETIME_TEXT, JSON),
        "endTimeAt": st.one_of(DATETIME_TEXT, JSON),
        "timeproperty": st.one_of(st.sampled_from(["observedAt", "createdAt", "modifiedAt"]), JSON),
        "lastN": st.one_of(st.text(alphabet="0123456789-+ ", max_size=6), JSON),
        "aggrMethods": st.one_of(st.sampled_from(["sum,avg", "max", "totalCount,,min", "x"]), JSON),
        "aggrPeriodDuration": st.one_of(DURATION_TEXT, JSON),
        # A URL parameter only, so always text.
        "format": st.one_of(
            st.sampled_from(["temporalValues", "aggregatedValues", "simplified"]), ANY_TEXT
        ),
    },
)
OPTIONS = st.sets(
    st.sampled_from(["temporalValues", "aggregatedValues", "concise", "sysAttrs", "keyValues"])
)


@FUZZ
@given(TEMPORAL_PARAMS, OPTIONS)
def test_temporal_query_parameters(params: dict[str, Any], options: set[str]) -> None:
    only_ngsi_errors(parse_temporal_query, params, options)


# ---------------------------------------------------------------------------------- IoT

UL_TEXT = st.one_of(
    ANY_TEXT,
    st.text(alphabet="tah|#@=12 .-\n\r\t", max_size=40),
)


@FUZZ
@given(UL_TEXT)
def test_ultralight(payload: str) -> None:
    try:
        groups = ultralight.parse_measures(payload)
    except ultralight.UltralightError:
        groups = []
    assert all(isinstance(k, str) and isinstance(v, str) for g in groups for k, v in g.items())
    with contextlib.suppress(ultralight.UltralightError):
        ultralight.parse_command_result(payload)


@FUZZ
@given(st.one_of(ANY_TEXT, st.binary(max_size=60), JSON.map(lambda v: str(v))))
def test_json_payloads(payload: str | bytes) -> None:
    for parse in (jsonpayload.parse_measures, jsonpayload.parse_command_result):
        with contextlib.suppress(jsonpayload.JsonPayloadError):
            parse(payload)
    jsonpayload.parse_value(payload)


EXPRESSION_TEXT = st.one_of(
    ANY_TEXT,
    st.lists(
        st.sampled_from(
            [
                "value",
                "t",
                "h",
                "location",
                "@value",
                "${",
                "}",
                " ",
                "+",
                "-",
                "*",
                "/",
                "%",
                "**",
                "==",
                "!=",
                "===",
                "<",
                ">=",
                "&&",
                "||",
                "!",
                "?",
                ":",
                "(",
                ")",
                "[",
                "]",
                "{",
                "}",
                ",",
                ".",
                "|",
                "round",
                "tofixed(2)",
                "toisodate",
                "substr(1, 2)",
                "split(',')",
                "parseint",
                "typeof",
                "indexOf('a')",
                "0",
                "1",
                "2.5",
                "1e308",
                "9" * 30,
                "'a'",
                '"b"',
                "true",
                "null",
                "undefined",
                "type: 'Point'",
                "lambda",
                "__class__",
                "x if y else z",
                "f'{x}'",
                "1j",
                "b'x'",
                "...",
            ]
        ),
        max_size=16,
    ).map("".join),
)
VARIABLES = st.dictionaries(
    st.sampled_from(["value", "t", "h", "location", "x", "y", "z"]),
    st.one_of(SCALARS, JSON, st.text(alphabet="0123456789.-e ", max_size=10)),
    max_size=5,
)


@FUZZ
@given(EXPRESSION_TEXT, VARIABLES)
def test_expressions(text: str, variables: dict[str, Any]) -> None:
    try:
        expression = compile_expression(text)
    except ExpressionError:
        return
    try:
        expression.evaluate(variables)
    except Missing as missing:
        assert str(missing) in expression.names
