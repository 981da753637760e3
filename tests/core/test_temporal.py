"""The temporal query language and representations (GS CIM 009 v1.8 4.5.7, 4.5.8, 4.5.9,
4.5.19, 4.11 and the temporal pagination of 6.3.10), as pure functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityverse.core.context import ContextResolver
from cityverse.core.errors import BadRequestData
from cityverse.core.model import DEFAULT_CONTEXT_VOCAB
from cityverse.core.temporal import (
    AGGREGATED_VALUES,
    AGGREGATION_METHODS,
    CONCISE,
    NORMALIZED,
    TEMPORAL_VALUES,
    TIME_PROPERTIES,
    Duration,
    Range,
    Shown,
    TemporalQuery,
    Window,
    clip,
    cut_range,
    format_millis,
    merge_ranges,
    parse_aggr_methods,
    parse_duration,
    parse_last_n,
    parse_representation,
    parse_temporal_query,
    parse_timeproperty,
    parse_window,
    render_aggregated,
    render_temporal,
    render_temporal_values,
    render_values,
    to_millis,
)
from cityverse.store import temporal as store_temporal

CTX = ContextResolver().core
SPEED = DEFAULT_CONTEXT_VOCAB + "speed"
T0 = "2026-01-01T00:00:00.000Z"
MS_T0 = 1_767_225_600_000
DAY = 86_400_000


def bad(fn: Any, *args: Any) -> str:
    with pytest.raises(BadRequestData) as info:
        fn(*args)
    return info.value.detail


# ------------------------------------------------------------------------------ times


def test_times_round_trip_in_milliseconds() -> None:
    assert to_millis("2026-01-01T00:00:00Z") == MS_T0
    assert to_millis("2026-01-01T01:00:00+01:00") == MS_T0
    assert to_millis("2026-01-01T00:00:00.5Z") == MS_T0 + 500
    assert format_millis(MS_T0 + 500) == "2026-01-01T00:00:00.500Z"
    assert format_millis(0) == "1970-01-01T00:00:00.000Z"


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))
def test_format_then_parse_is_identity(millis: int) -> None:
    assert to_millis(format_millis(millis)) == millis


def test_bad_times_name_the_parameter() -> None:
    assert "timeAt" in bad(to_millis, "yesterday", "timeAt")
    assert "timeAt" in bad(to_millis, "2026-13-01T00:00:00Z", "timeAt")
    assert "endTimeAt" in bad(to_millis, 17, "endTimeAt")
    assert "endTimeAt" in bad(to_millis, "2026-01-01", "endTimeAt")


# ------------------------------------------------------------------------------ windows


def test_timeproperty() -> None:
    """4.11: timeproperty is observedAt (default), createdAt, modifiedAt or deletedAt."""
    assert parse_timeproperty(None) == "observedAt"
    for prop in TIME_PROPERTIES:
        assert parse_timeproperty(prop) == prop
    assert "timeproperty" in bad(parse_timeproperty, "observedat")
    assert "timeproperty" in bad(parse_timeproperty, "expiresAt")


def test_window_bounds() -> None:
    """4.11: before is t < timeAt, after t > timeAt, between timeAt <= t < endTimeAt."""
    t = "2026-01-01T00:00:00Z"
    e = "2026-01-02T00:00:00Z"
    assert parse_window(None, None, None, "observedAt") == Window("observedAt")
    assert parse_window("before", t, None, "observedAt") == Window("observedAt", None, MS_T0)
    assert parse_window("after", t, None, "createdAt") == Window("createdAt", MS_T0 + 1, None)
    assert parse_window("between", t, e, "observedAt") == Window("observedAt", MS_T0, MS_T0 + DAY)
    # endTimeAt only matters with between, but is still checked.
    assert parse_window("before", t, e, "observedAt") == Window("observedAt", None, MS_T0)
    assert "endTimeAt" in bad(parse_window, "after", t, "soon", "observedAt")


def test_window_errors() -> None:
    """4.11: each missing or inconsistent parameter is a BadRequestData naming it."""
    t = "2026-01-01T00:00:00Z"
    assert "timeAt" in bad(parse_window, "before", None, None, "observedAt")
    assert "timerel" in bad(parse_window, None, t, None, "observedAt")
    assert "endTimeAt" in bad(parse_window, "between", t, None, "observedAt")
    assert "after timeAt" in bad(parse_window, "between", t, "2025-12-31T00:00:00Z", "observedAt")
    assert "after timeAt" in bad(parse_window, "between", t, t, "observedAt")
    assert "timerel" in bad(parse_window, "during", t, None, "observedAt")
    assert "timerel" in bad(parse_window, "Before", t, None, "observedAt")
    assert "timerel" in bad(parse_window, None, None, t, "observedAt")


moments = st.integers(min_value=0, max_value=4_102_444_800_000)


@settings(max_examples=300, deadline=None)
@given(moments, moments, moments)
def test_window_membership_matches_the_relation(a: int, b: int, t: int) -> None:
    """For any times, the window holds exactly the instances its timerel selects."""

    def inside(w: Window) -> bool:
        return (w.start is None or w.start <= t) and (w.end is None or t < w.end)

    at, end = format_millis(a), format_millis(b)
    assert inside(parse_window("before", at, None, "observedAt")) == (t < a)
    assert inside(parse_window("after", at, None, "observedAt")) == (t > a)
    if b > a:
        assert inside(parse_window("between", at, end, "observedAt")) == (a <= t < b)
    else:
        with pytest.raises(BadRequestData):
            parse_window("between", at, end, "observedAt")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=30)), st.text(max_size=30), st.text(max_size=30))
def test_window_parsing_never_fails_otherwise(timerel: Any, at: str, end: str) -> None:
    """Any input gives a window or BadRequestData, nothing else."""
    try:
        window = parse_window(timerel, at, end, "observedAt")
    except BadRequestData as exc:
        assert exc.detail
    else:
        assert window.start is not None or window.end is not None


# ------------------------------------------------------------------------------ lastN, methods


def test_last_n() -> None:
    """lastN is a positive integer (6.3.10)."""
    assert parse_last_n(None) is None
    assert parse_last_n("3") == 3
    assert parse_last_n(7) == 7
    for raw in ("0", "-1", "1.5", "", "three", " 2", 0, -4, True, 2.0, "²"):
        assert "lastN" in bad(parse_last_n, raw)


def test_aggregation_methods() -> None:
    """4.5.19: the eight methods; order follows the specification's list."""
    assert set(AGGREGATION_METHODS) == store_temporal.AGGREGATION_METHODS
    assert parse_aggr_methods("max,avg") == ("avg", "max")
    assert parse_aggr_methods(["sum", "sum"]) == ("sum",)
    assert parse_aggr_methods(",".join(AGGREGATION_METHODS)) == AGGREGATION_METHODS
    assert "median" in bad(parse_aggr_methods, "avg,median")
    assert "empty" in bad(parse_aggr_methods, "avg,")
    assert "empty" in bad(parse_aggr_methods, "")
    assert "aggrMethods" in bad(parse_aggr_methods, 3)


def test_time_properties_match_the_store() -> None:
    assert TIME_PROPERTIES == store_temporal.TIME_PROPERTIES


# ------------------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "months", "millis"),
    [
        ("P1D", 0, DAY),
        ("PT1H", 0, 3_600_000),
        ("PT15M", 0, 900_000),
        ("P1W", 0, 7 * DAY),
        ("P1M", 1, 0),
        ("P1Y", 12, 0),
        ("P1DT12H", 0, DAY + 12 * 3_600_000),
        ("P1Y2M3DT4H5M6.5S", 14, 3 * DAY + 4 * 3_600_000 + 5 * 60_000 + 6_500),
        ("PT0,25S", 0, 250),
        ("PT90M", 0, 90 * 60_000),
        ("PT0S", 0, 0),
        ("P0D", 0, 0),
    ],
)
def test_durations(text: str, months: int, millis: int) -> None:
    """4.5.19: aggrPeriodDuration is P[n]Y[n]M[n]DT[n]H[n]M[n]S or P[n]W."""
    assert parse_duration(text) == Duration(months, millis)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1DT",
        "1D",
        "p1d",
        "P1H",
        "PT1D",
        "P-1D",
        "P1.5D",
        "P1W1D",
        "PT1S1M",
        "P1D ",
        " P1D",
        "PT0.0001S",
        "P99999999999Y",
        "2026-01-01T00:00:00Z/P1D",
        "R2/P1D",
    ],
)
def test_invalid_durations(text: str) -> None:
    assert "aggrPeriodDuration" in bad(parse_duration, text)


def test_non_string_duration() -> None:
    assert "aggrPeriodDuration" in bad(parse_duration, 3600)


components = st.integers(min_value=0, max_value=500)


@settings(max_examples=400, deadline=None)
@given(
    components,
    components,
    components,
    components,
    components,
    components,
    st.integers(min_value=0, max_value=999),
)
def test_duration_components_round_trip(
    y: int, mo: int, d: int, h: int, mi: int, s: int, ms: int
) -> None:
    """Any written duration parses to its months and milliseconds, omitted parts being 0."""
    date = "".join(f"{n}{u}" for n, u in ((y, "Y"), (mo, "M"), (d, "D")) if n)
    seconds = f"{s}.{ms:03d}" if ms else str(s)
    time = "".join(f"{n}{u}" for n, u in ((h, "H"), (mi, "M"), (seconds, "S")) if n not in (0, "0"))
    text = "P" + date + ("T" + time if time else "")
    if text == "P":
        text = "P0D"
    assert parse_duration(text) == Duration(
        12 * y + mo, d * DAY + h * 3_600_000 + mi * 60_000 + s * 1000 + ms
    )


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="PYMWDTHS0123456789.,- ", max_size=14))
def test_duration_parser_total(text: str) -> None:
    """Any text is a duration or a BadRequestData, never another error."""
    try:
        duration = parse_duration(text)
    except BadRequestData as exc:
        assert "aggrPeriodDuration" in exc.detail
    else:
        assert text.startswith("P")
        assert duration.months >= 0 and duration.millis >= 0


# ------------------------------------------------------------------------------ query


def test_representation_from_options() -> None:
    assert parse_representation(set()) == NORMALIZED
    assert parse_representation({"sysAttrs"}) == NORMALIZED
    assert parse_representation({"temporalValues"}) == TEMPORAL_VALUES
    assert parse_representation({"keyValues"}) == TEMPORAL_VALUES
    assert parse_representation(set(), "temporalValues") == TEMPORAL_VALUES
    assert parse_representation({"aggregatedValues", "sysAttrs"}) == AGGREGATED_VALUES
    assert "one temporal representation" in bad(
        parse_representation, {"temporalValues", "aggregatedValues"}
    )
    assert parse_representation({"concise"}) == CONCISE
    assert parse_representation(set(), "concise") == CONCISE
    assert parse_representation(set(), "simplified") == TEMPORAL_VALUES
    assert parse_representation({"concise"}, "concise") == CONCISE
    assert "one temporal representation" in bad(parse_representation, {"concise"}, "simplified")
    assert "one temporal representation" in bad(
        parse_representation, {"concise", "aggregatedValues"}
    )
    assert "format" in bad(parse_representation, set(), "wide")


def test_temporal_query() -> None:
    q = parse_temporal_query(
        {
            "timerel": "between",
            "timeAt": "2026-01-01T00:00:00Z",
            "endTimeAt": "2026-01-02T00:00:00Z",
            "lastN": "5",
            "aggrMethods": "max,min",
            "aggrPeriodDuration": "PT1H",
        },
        {"aggregatedValues"},
    )
    assert q == TemporalQuery(
        window=Window("observedAt", MS_T0, MS_T0 + DAY),
        timerel="between",
        time_at=MS_T0,
        end_time_at=MS_T0 + DAY,
        last_n=5,
        representation=AGGREGATED_VALUES,
        methods=("min", "max"),
        period=Duration(0, 3_600_000),
    )
    after = parse_temporal_query({"timerel": "after", "timeAt": T0}, set())
    assert after.time_at == MS_T0 and after.window.start == MS_T0 + 1
    before = parse_temporal_query({"timerel": "before", "timeAt": T0}, set())
    assert before.time_at == MS_T0 and before.window.end == MS_T0


def test_zero_period_is_the_whole_window() -> None:
    """4.5.19: a duration of zero is one period spanning the whole time range."""
    q = parse_temporal_query(
        {"aggrMethods": "sum", "aggrPeriodDuration": "PT0S"}, {"aggregatedValues"}
    )
    assert q.period is None
    assert parse_temporal_query({"aggrMethods": "sum"}, {"aggregatedValues"}).period is None


def test_aggregated_values_need_methods() -> None:
    """4.5.19: aggregatedValues without aggrMethods is refused."""
    assert "aggrMethods" in bad(parse_temporal_query, {}, {"aggregatedValues"})
    # Methods are checked even when not used.
    assert "median" in bad(parse_temporal_query, {"aggrMethods": "median"}, set())
    assert "aggrPeriodDuration" in bad(parse_temporal_query, {"aggrPeriodDuration": "1D"}, set())


# ------------------------------------------------------------------------------ rendering


def inst(value: Any, at: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "Property",
        "value": value,
        "observedAt": at,
        "createdAt": at,
        "modifiedAt": at,
        "instanceId": f"urn:ngsi-ld:attribute:instance:{n}",
        **extra,
    }


HISTORY = [
    inst(120, "2018-08-01T12:03:00.000Z", 1),
    inst(80, "2018-08-01T12:05:00.000Z", 2),
    inst(100, "2018-08-01T12:07:00.000Z", 3, datasetId="urn:ngsi-ld:Dataset:gps"),
]
VEHICLE = DEFAULT_CONTEXT_VOCAB + "Vehicle"


def test_normalized_temporal_representation() -> None:
    """4.5.7: each attribute is an array of instances, each with its instanceId."""
    body = render_temporal("urn:ngsi-ld:Vehicle:B9211", [VEHICLE], {SPEED: HISTORY[:1]}, CTX)
    assert body == {
        "id": "urn:ngsi-ld:Vehicle:B9211",
        "type": "Vehicle",
        "speed": [
            {
                "type": "Property",
                "value": 120,
                "observedAt": "2018-08-01T12:03:00.000Z",
                "instanceId": "urn:ngsi-ld:attribute:instance:1",
            }
        ],
    }
    full = render_temporal("urn:x:1", [VEHICLE], {SPEED: HISTORY}, CTX, shown=Shown(sys_attrs=True))
    assert [i["instanceId"][-1] for i in full["speed"]] == ["1", "2", "3"]
    assert full["speed"][2]["datasetId"] == "urn:ngsi-ld:Dataset:gps"
    assert full["speed"][0]["createdAt"] == "2018-08-01T12:03:00.000Z"


def test_concise_temporal_representation() -> None:
    """4.5.8: the normalized form without each instance's type where its value member
    tells it; instances stay objects, with their instanceId and time."""
    body = render_temporal("urn:x:1", [VEHICLE], {SPEED: HISTORY[:1]}, CTX, concise=True)
    assert body["speed"] == [
        {
            "value": 120,
            "observedAt": "2018-08-01T12:03:00.000Z",
            "instanceId": "urn:ngsi-ld:attribute:instance:1",
        }
    ]
    at = "2026-01-01T00:00:00.000Z"
    point = {"type": "Point", "coordinates": [-2.0, 34.7]}
    attrs = {
        SPEED: HISTORY,
        SPEED + "Rel": [{"type": "Relationship", "object": "urn:a:1", "instanceId": "urn:i:1"}],
        SPEED + "Geo": [{"type": "GeoProperty", "value": point, "instanceId": "urn:i:2"}],
        SPEED + "Shape": [{"type": "Property", "value": point, "instanceId": "urn:i:3"}],
    }
    # On the modifiedAt axis a lone instance has no observedAt: it still is an object.
    body = render_temporal("urn:x:1", [VEHICLE], attrs, CTX, prop="modifiedAt", concise=True)
    assert [i["value"] for i in body["speed"]] == [120, 80, 100]
    assert all("type" not in i for i in body["speed"])
    assert body["speed"][2]["datasetId"] == "urn:ngsi-ld:Dataset:gps"
    assert body["speedRel"] == [{"object": "urn:a:1", "instanceId": "urn:i:1"}]
    assert body["speedGeo"] == [{"value": point, "instanceId": "urn:i:2"}]
    # A Property holding a geometry keeps its type, or it would read back as a GeoProperty.
    assert body["speedShape"] == [{"type": "Property", "value": point, "instanceId": "urn:i:3"}]
    deleted = {**HISTORY[0], "deletedAt": at}
    gone = render_temporal("urn:x:1", [VEHICLE], {SPEED: [deleted]}, CTX, concise=True)
    assert gone["speed"][0]["value"] == "urn:ngsi-ld:null" and "type" not in gone["speed"][0]


def test_pick_and_omit_id_and_type() -> None:
    """v1.8 pick/omit may leave out the entity's id or type."""
    no_id = render_temporal("urn:x:1", [VEHICLE], {SPEED: HISTORY}, CTX, shown=Shown(keep_id=False))
    assert "id" not in no_id and no_id["type"] == "Vehicle"
    bare = render_temporal_values(
        "urn:x:1", [VEHICLE], {SPEED: HISTORY[:1]}, CTX, shown=Shown(keep_id=False, keep_type=False)
    )
    assert list(bare) == ["speed"]
    scoped = render_aggregated(
        "urn:x:1", [VEHICLE], {}, ("avg",), CTX, shown=Shown(scope=["/a"], keep_type=False)
    )
    assert scoped == {"id": "urn:x:1", "scope": "/a"}


def test_time_axis_is_shown_without_sys_attrs() -> None:
    """With timeproperty=modifiedAt every instance shows its modifiedAt."""
    body = render_temporal("urn:x:1", [VEHICLE], {SPEED: HISTORY}, CTX, prop="modifiedAt")
    assert all("modifiedAt" in i and "createdAt" not in i for i in body["speed"])


def test_deleted_instances_show_null() -> None:
    """A deletion is an instance with deletedAt whose value is the NGSI-LD Null."""
    deleted = {**HISTORY[1], "deletedAt": "2018-08-01T13:00:00.000Z"}
    rel = {
        "type": "Relationship",
        "object": "urn:ngsi-ld:Parking:1",
        "objectType": DEFAULT_CONTEXT_VOCAB + "Parking",
        "deletedAt": "2018-08-01T13:00:00.000Z",
        "instanceId": "urn:i:9",
    }
    body = render_temporal("urn:x:1", [VEHICLE], {SPEED: [deleted], SPEED + "2": [rel]}, CTX)
    assert body["speed"][0]["value"] == "urn:ngsi-ld:null"
    assert body["speed"][0]["deletedAt"] == "2018-08-01T13:00:00.000Z"
    assert body["speed2"][0]["object"] == "urn:ngsi-ld:null"
    values = render_values([deleted], CTX, prop="deletedAt")
    assert values == {"type": "Property", "values": [["urn:ngsi-ld:null", deleted["deletedAt"]]]}


def test_simplified_temporal_representation() -> None:
    """4.5.9: temporalValues gives [value, time] pairs per datasetId."""
    body = render_temporal_values("urn:x:1", [VEHICLE], {SPEED: HISTORY[:2]}, CTX)
    assert body["speed"] == {
        "type": "Property",
        "values": [[120, "2018-08-01T12:03:00.000Z"], [80, "2018-08-01T12:05:00.000Z"]],
    }
    multi = render_temporal_values("urn:x:1", [VEHICLE], {SPEED: HISTORY}, CTX)
    assert multi["speed"] == [
        {
            "type": "Property",
            "values": [[120, "2018-08-01T12:03:00.000Z"], [80, "2018-08-01T12:05:00.000Z"]],
        },
        {
            "type": "Property",
            "values": [[100, "2018-08-01T12:07:00.000Z"]],
            "datasetId": "urn:ngsi-ld:Dataset:gps",
        },
    ]


def test_simplified_members_per_type() -> None:
    """4.5.9: objects, languageMaps, vocabs... name the pairs of each attribute type."""
    at = "2026-01-01T00:00:00.000Z"
    rel = render_values([{"type": "Relationship", "object": "urn:a:1", "observedAt": at}], CTX)
    assert rel == {"type": "Relationship", "objects": [["urn:a:1", at]]}
    lang = render_values(
        [{"type": "LanguageProperty", "languageMap": {"fr": "rue"}, "observedAt": at}], CTX
    )
    assert lang == {"type": "LanguageProperty", "languageMaps": [[{"fr": "rue"}, at]]}
    vocab = render_values(
        [{"type": "VocabProperty", "vocab": DEFAULT_CONTEXT_VOCAB + "open", "observedAt": at}], CTX
    )
    assert vocab == {"type": "VocabProperty", "vocabs": [["open", at]]}


@dataclass
class B:
    start: int
    end: int
    values: dict[str, Any] = field(default_factory=dict)
    dataset_id: str | None = None


def test_aggregated_temporal_representation() -> None:
    """4.5.19: per method, [value, startAt, endAt] per period."""
    buckets = [
        B(MS_T0, MS_T0 + DAY, {"avg": 2.5, "max": 4}),
        B(MS_T0 + 2 * DAY, MS_T0 + 3 * DAY, {"avg": 7.0, "max": 7}),
    ]
    body = render_aggregated(
        "urn:x:1", [VEHICLE], {SPEED: buckets, SPEED + "2": []}, ("avg", "max"), CTX
    )
    assert body == {
        "id": "urn:x:1",
        "type": "Vehicle",
        "speed": {
            "type": "Property",
            "avg": [
                [2.5, "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z"],
                [7.0, "2026-01-03T00:00:00.000Z", "2026-01-04T00:00:00.000Z"],
            ],
            "max": [
                [4, "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z"],
                [7, "2026-01-03T00:00:00.000Z", "2026-01-04T00:00:00.000Z"],
            ],
        },
    }
    gps = "urn:ngsi-ld:Dataset:gps"
    both = render_aggregated(
        "urn:x:1",
        [VEHICLE],
        {SPEED: [*buckets, B(MS_T0, MS_T0 + DAY, {"avg": 1}, gps)]},
        ("avg",),
        CTX,
    )
    assert both["speed"][1] == {
        "type": "Property",
        "avg": [[1, "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z"]],
        "datasetId": gps,
    }
    assert len(both["speed"][0]["avg"]) == 2
    typed = render_aggregated(
        "urn:x:1", [VEHICLE], {SPEED: buckets}, ("avg",), CTX, attr_types={SPEED: "Relationship"}
    )
    assert typed["speed"]["type"] == "Relationship"


# ------------------------------------------------------------------------------ paging


@dataclass
class H:
    instances: list[dict[str, Any]]
    total: int
    first: int | None = None
    last: int | None = None
    wanted: int | None = None


def series(n: int, start: int = MS_T0, step: int = 60_000) -> list[dict[str, Any]]:
    return [inst(i, format_millis(start + i * step), i) for i in range(n)]


def page(items: list[dict[str, Any]], total: int) -> H:
    return H(items, total, to_millis(items[0]["observedAt"]), to_millis(items[-1]["observedAt"]))


def test_no_range_when_whole() -> None:
    """6.3.10: an answer that holds every instance is not partial."""
    q = TemporalQuery()
    assert cut_range({SPEED: page(series(3), 3)}, q) is None
    assert cut_range({}, q) is None
    # lastN itself is not a cut: the client asked for the last 2.
    assert cut_range({SPEED: page(series(2), 10)}, TemporalQuery(last_n=2)) is None


def test_forward_range() -> None:
    """6.3.10: without lastN a cut answer pages forwards, up to the earliest cut end."""
    all_a, all_b = series(10), series(10, step=30_000)
    histories = {SPEED: page(all_a[:4], 10), SPEED + "2": page(all_b[:6], 6)}
    r = cut_range(histories, TemporalQuery())
    assert r == Range(MS_T0, MS_T0 + 3 * 60_000, False)
    assert r.header() == ("date-time 2026-01-01T00:00:00.000Z-2026-01-01T00:03:00.000Z/*")
    # The other attribute is clipped to the same range.
    assert len(clip(all_b[:6], r, "observedAt")) == 6
    assert len(clip(series(10, step=45_000), r, "observedAt")) == 5
    after = TemporalQuery(timerel="after", time_at=MS_T0 - DAY)
    assert cut_range(histories, after) == Range(MS_T0 - DAY, MS_T0 + 3 * 60_000, False)


def test_backward_range() -> None:
    """6.3.10: with lastN a cut answer pages backwards, from the latest to the cut."""
    a = series(10)
    q = TemporalQuery(last_n=8)
    r = cut_range({SPEED: page(a[-4:], 10)}, q)
    assert r == Range(MS_T0 + 9 * 60_000, MS_T0 + 6 * 60_000, True, 8)
    assert r.header().endswith("/8")
    assert [i["value"] for i in clip(a, r, "observedAt")] == [6, 7, 8, 9]
    between = TemporalQuery(timerel="between", time_at=MS_T0, end_time_at=MS_T0 + DAY, last_n=8)
    assert cut_range({SPEED: page(a[-4:], 10)}, between).start == MS_T0 + DAY


def test_last_n_of_each_dataset() -> None:
    """lastN counts per datasetId: an attribute of two datasets asks for up to 2 x lastN
    instances, and is cut only when it holds fewer than that."""
    a = series(10)
    whole = page(a[-6:], 10)
    whole.wanted = 6  # two datasets, lastN=3 each
    assert cut_range({SPEED: whole}, TemporalQuery(last_n=3)) is None
    cut = page(a[-4:], 10)
    cut.wanted = 6
    r = cut_range({SPEED: cut}, TemporalQuery(last_n=3))
    assert r == Range(MS_T0 + 9 * 60_000, MS_T0 + 6 * 60_000, True, 3)


def test_merge_ranges() -> None:
    forward = [Range(5, 20, False), None, Range(3, 10, False)]
    assert merge_ranges(forward) == Range(3, 10, False)
    backward = [Range(50, 20, True, 4), Range(40, 30, True, 4)]
    assert merge_ranges(backward) == Range(50, 30, True, 4)
    assert merge_ranges([None]) is None


def test_range_header_format() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    r = Range(MS_T0, MS_T0 + (timedelta(hours=1) // timedelta(milliseconds=1)), False)
    assert r.header() == f"date-time {start:%Y-%m-%dT%H:%M:%S}.000Z-2026-01-01T01:00:00.000Z/*"
