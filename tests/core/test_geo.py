"""Tests of GeoJSON geometry validation (4.7, RFC 7946) and geo-queries (4.10)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod

from cityverse.core.errors import BadRequestData, NgsiError
from cityverse.core.geo import (
    GEOMETRY_TYPES,
    GeoQuery,
    parse_geo_query,
    validate_geometry,
)
from cityverse.core.model import LOCATION, Entity

BERKANE = [-2.32, 34.92]  # lon, lat
OUJDA = [-1.91, 34.68]
# A square of about 22 km around Berkane.
AROUND_BERKANE = [[[-2.45, 34.82], [-2.2, 34.82], [-2.2, 35.02], [-2.45, 35.02], [-2.45, 34.82]]]
OBSERVATION_SPACE = "https://uri.etsi.org/ngsi-ld/observationSpace"


def located(geometry: dict[str, Any], name: str = LOCATION, **extra: Any) -> Entity:
    """A stored entity whose GeoProperty ``name`` holds ``geometry``."""
    return {
        "id": "urn:ngsi-ld:Thing:1",
        "type": ["https://ex.org/Thing"],
        "attrs": {name: [{"type": "GeoProperty", "value": geometry, **extra}]},
    }


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def geo(georel: str, geometry: str, coordinates: Any, geoproperty: str = LOCATION) -> GeoQuery:
    return parse_geo_query(georel, geometry, coordinates, geoproperty)


def haversine(a: list[float], b: list[float]) -> float:
    """Great-circle metres on the mean Earth sphere: an independent estimate (within 0.5 %)."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


# --- validate_geometry --------------------------------------------------------------------

VALID = [
    {"type": "Point", "coordinates": BERKANE},
    {"type": "Point", "coordinates": [-2.32, 34.92, 150]},
    {"type": "MultiPoint", "coordinates": [BERKANE, OUJDA]},
    {"type": "LineString", "coordinates": [BERKANE, OUJDA]},
    {"type": "MultiLineString", "coordinates": [[BERKANE, OUJDA], [[0, 0], [1, 1], [2, 0]]]},
    {"type": "Polygon", "coordinates": AROUND_BERKANE},
    {
        "type": "Polygon",
        "coordinates": [
            [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]],
            [[2, 2], [2, 4], [4, 4], [4, 2], [2, 2]],
        ],
    },
    {"type": "MultiPolygon", "coordinates": [AROUND_BERKANE, [[[0, 0], [1, 0], [1, 1], [0, 0]]]]},
    {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [180, -90]}]},
]


@pytest.mark.parametrize("geometry", VALID, ids=lambda g: g["type"])
def test_valid_geometries(geometry: dict[str, Any]) -> None:
    """4.7 / RFC 7946 3.1: each geometry type is accepted, with floats for numbers."""
    got = validate_geometry(geometry)
    assert got["type"] == geometry["type"]
    if "coordinates" in geometry:
        assert json.dumps(got["coordinates"]) == json.dumps(_floats(geometry["coordinates"]))


def _floats(value: Any) -> Any:
    return [_floats(v) for v in value] if isinstance(value, list) else float(value)


def test_unknown_members_are_dropped() -> None:
    """RFC 7946 3.1: the normalised geometry holds only type and coordinates."""
    got = validate_geometry({"type": "Point", "coordinates": (1, 2), "bbox": [1, 2, 1, 2], "x": 1})
    assert got == {"type": "Point", "coordinates": [1.0, 2.0]}


INVALID = [
    ("not an object", "must be an object"),
    ({"coordinates": [1, 2]}, "unknown geometry type"),
    ({"type": "Circle", "coordinates": [1, 2]}, "unknown geometry type"),
    ({"type": "Point"}, "needs 'coordinates'"),
    ({"type": "Point", "coordinates": "1,2"}, "array of numbers"),
    ({"type": "Point", "coordinates": [1]}, "2 or 3 numbers"),
    ({"type": "Point", "coordinates": [1, 2, 3, 4]}, "2 or 3 numbers"),
    ({"type": "Point", "coordinates": [1, "2"]}, "expected a number"),
    ({"type": "Point", "coordinates": [True, 2]}, "expected a number"),
    ({"type": "Point", "coordinates": [1, None]}, "expected a number"),
    ({"type": "Point", "coordinates": [float("nan"), 2]}, "finite"),
    ({"type": "Point", "coordinates": [1, float("inf")]}, "finite"),
    ({"type": "Point", "coordinates": [10**400, 0]}, "finite"),
    ({"type": "Point", "coordinates": [180.5, 0]}, "longitude"),
    ({"type": "Point", "coordinates": [-181, 0]}, "longitude"),
    ({"type": "Point", "coordinates": [34.92, -2.32 - 90]}, "latitude"),
    ({"type": "Point", "coordinates": [0, 90.01]}, "latitude"),
    ({"type": "MultiPoint", "coordinates": []}, "at least 1"),
    ({"type": "LineString", "coordinates": [BERKANE]}, "at least 2"),
    ({"type": "LineString", "coordinates": BERKANE}, "array of numbers"),
    ({"type": "MultiLineString", "coordinates": [[BERKANE]]}, "at least 2"),
    ({"type": "Polygon", "coordinates": []}, "at least 1 linear rings"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "at least 4"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, "closed"),
    (
        {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]},
        "Self-intersection",
    ),
    ({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 1]]]]}, "closed"),
    (
        {"type": "MultiPolygon", "coordinates": [AROUND_BERKANE, AROUND_BERKANE]},
        "not a valid MultiPolygon",
    ),
    ({"type": "GeometryCollection"}, "geometries"),
    (
        {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [0, 91]}]},
        "latitude",
    ),
]


@pytest.mark.parametrize(("geometry", "fragment"), INVALID)
def test_invalid_geometries(geometry: Any, fragment: str) -> None:
    """4.7 / RFC 7946: invalid geometries are BadRequestData with a precise detail."""
    with pytest.raises(BadRequestData) as info:
        validate_geometry(geometry)
    assert fragment in info.value.detail


def test_invalid_position_is_located() -> None:
    """The detail names where in the coordinates the problem is."""
    with pytest.raises(BadRequestData, match=r"coordinates\[0\]\[2\]: latitude"):
        validate_geometry({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 95], [0, 0]]]})


def test_nested_collections_are_bounded() -> None:
    """RFC 7946 3.1.8: deeply nested GeometryCollections are refused, not recursed into."""
    g: dict[str, Any] = {"type": "Point", "coordinates": [0, 0]}
    for _ in range(50):
        g = {"type": "GeometryCollection", "geometries": [g]}
    with pytest.raises(BadRequestData, match="nested"):
        validate_geometry(g)


# --- parse_geo_query ---------------------------------------------------------------------


def test_example_1() -> None:
    """4.10 example 1: georel=near;maxDistance==2000&geometry=Point&coordinates=[8,40]
    &geoproperty=observationSpace."""
    query = geo("near;maxDistance==2000", "Point", "[8,40]", OBSERVATION_SPACE)
    assert (query.relation, query.modifier, query.distance) == ("near", "maxDistance", 2000.0)
    assert query.matches(located(point(8, 40.01), OBSERVATION_SPACE))  # about 1.1 km
    assert not query.matches(located(point(8, 40.03), OBSERVATION_SPACE))  # about 3.3 km
    assert not query.matches(located(point(8, 40.0)))  # location is not observationSpace


def test_example_2() -> None:
    """4.10 example 2: georel=within&geometry=Polygon&coordinates=[[[100.0,0.0],...]]."""
    query = geo(
        "within", "Polygon", "[[[100.0,0.0],[101.0,0.0],[101.0,1.0],[100.0,1.0], [100.0,0.0]]]"
    )
    assert query.matches(located(point(100.5, 0.5)))
    assert not query.matches(located(point(102, 0.5)))


def test_coordinates_as_parsed_list() -> None:
    """POST query bodies carry coordinates as JSON arrays, not strings."""
    assert geo("intersects", "Point", BERKANE).geometry == {"type": "Point", "coordinates": BERKANE}


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "fragment"),
    [
        ("", "Point", "[8,40]", "georel is missing"),
        ("nearby", "Point", "[8,40]", "unknown georel"),
        ("near", "Point", "[8,40]", "needs one distance"),
        ("near;maxDistance", "Point", "[8,40]", "needs one distance"),
        ("near;maxDistance==", "Point", "[8,40]", "positive"),
        ("near;maxDistance==-5", "Point", "[8,40]", "positive"),
        ("near;maxDistance==0", "Point", "[8,40]", "positive"),
        ("near;maxDistance==abc", "Point", "[8,40]", "positive"),
        ("near;maxDistance==inf", "Point", "[8,40]", "positive"),
        ("near;maxDistance==nan", "Point", "[8,40]", "positive"),
        ("near;maxDistance==1;minDistance==2", "Point", "[8,40]", "needs one distance"),
        ("near;distance==5", "Point", "[8,40]", "needs one distance"),
        ("within;maxDistance==5", "Polygon", "[8,40]", "takes no modifier"),
        ("within", "", "[8,40]", "geometry is missing"),
        ("within", "Circle", "[8,40]", "not one of"),
        ("within", "GeometryCollection", "[8,40]", "not one of"),
        ("within", "Point", "", "not a JSON array"),
        ("within", "Point", "[8,40", "not a JSON array"),
        ("within", "Point", "[8,400]", "latitude"),
        ("within", "Point", "[[8,40]]", "2 or 3 numbers"),
        ("within", "LineString", "[[8,40]]", "at least 2"),
        ("within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1]]]", "closed"),
        ("within", "Point", "[" * 100_000, "not a JSON array"),
    ],
)
def test_invalid_geo_queries(georel: str, geometry: str, coordinates: str, fragment: str) -> None:
    """4.10: an invalid georel, geometry or coordinates is BadRequestData."""
    with pytest.raises(BadRequestData) as info:
        parse_geo_query(georel, geometry, coordinates, LOCATION)
    assert fragment in info.value.detail


def test_missing_geoproperty_and_coordinates() -> None:
    """4.10: geoproperty names an attribute; coordinates are required."""
    with pytest.raises(BadRequestData, match="geoproperty"):
        parse_geo_query("within", "Point", "[8,40]", "")
    with pytest.raises(BadRequestData, match="coordinates are missing"):
        parse_geo_query("within", "Point", None, LOCATION)  # type: ignore[arg-type]


# --- relations -------------------------------------------------------------------------


def test_within_polygon_around_berkane() -> None:
    """4.10 within: the target geometry is within the reference polygon."""
    query = geo("within", "Polygon", json.dumps(AROUND_BERKANE))
    assert query.matches(located(point(*BERKANE)))
    assert not query.matches(located(point(*OUJDA)))
    assert not query.matches(located({"type": "LineString", "coordinates": [BERKANE, OUJDA]}))


def test_contains() -> None:
    """4.10 contains: the target geometry contains the reference geometry."""
    query = geo("contains", "Point", json.dumps(BERKANE))
    assert query.matches(located({"type": "Polygon", "coordinates": AROUND_BERKANE}))
    assert not query.matches(located(point(*OUJDA)))


def test_intersects_and_disjoint_are_complements() -> None:
    """4.10 intersects / disjoint on a line crossing, and one missing, the polygon."""
    crossing = located({"type": "LineString", "coordinates": [BERKANE, OUJDA]})
    away = located({"type": "LineString", "coordinates": [OUJDA, [-1.8, 34.6]]})
    polygon = json.dumps(AROUND_BERKANE)
    assert geo("intersects", "Polygon", polygon).matches(crossing)
    assert not geo("disjoint", "Polygon", polygon).matches(crossing)
    assert not geo("intersects", "Polygon", polygon).matches(away)
    assert geo("disjoint", "Polygon", polygon).matches(away)


def test_overlaps() -> None:
    """4.10 overlaps: polygons sharing part of their interiors, neither within the other."""
    query = geo("overlaps", "Polygon", "[[[0,0],[2,0],[2,2],[0,2],[0,0]]]")
    assert query.matches(
        located({"type": "Polygon", "coordinates": [[[1, 1], [3, 1], [3, 3], [1, 3], [1, 1]]]})
    )
    assert not query.matches(
        located({"type": "Polygon", "coordinates": [[[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 0.5]]]})
    )


def test_equals_is_topological() -> None:
    """4.10 equals (Simple Features): the same polygon starting at another vertex is equal."""
    query = geo("equals", "Polygon", "[[[0,0],[2,0],[2,2],[0,2],[0,0]]]")
    assert query.matches(
        located({"type": "Polygon", "coordinates": [[[2, 2], [0, 2], [0, 0], [2, 0], [2, 2]]]})
    )
    assert not query.matches(
        located({"type": "Polygon", "coordinates": [[[0, 0], [3, 0], [3, 3], [0, 3], [0, 0]]]})
    )


@pytest.mark.parametrize(
    "georel",
    ["within", "contains", "intersects", "equals", "disjoint", "overlaps", "near;minDistance==1"],
)
def test_entities_without_the_geoproperty_never_match(georel: str) -> None:
    """4.10: entities which do not convey the target GeoProperty are non-matching."""
    entity: Entity = {"id": "urn:x:1", "type": ["https://ex.org/T"], "attrs": {}}
    assert not geo(georel, "Point", "[0,0]").matches(entity)
    not_geo: Entity = {**entity, "attrs": {LOCATION: [{"type": "Property", "value": point(0, 0)}]}}
    assert not geo(georel, "Point", "[0,0]").matches(not_geo)


def test_any_instance_of_a_multi_attribute() -> None:
    """4.5.5: any instance (datasetId) of the GeoProperty may satisfy the query."""
    entity = located(point(*OUJDA))
    entity["attrs"][LOCATION].append(
        {"type": "GeoProperty", "value": point(*BERKANE), "datasetId": "urn:ngsi-ld:Dataset:gps"}
    )
    assert geo("within", "Polygon", json.dumps(AROUND_BERKANE)).matches(entity)


def test_altitude_is_ignored_by_relations() -> None:
    """RFC 7946 3.1.1: an altitude does not change the planar relations."""
    assert geo("within", "Polygon", json.dumps(AROUND_BERKANE)).matches(
        located(point(*BERKANE) | {"coordinates": [*BERKANE, 120.0]})
    )


# --- near --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0, 0], [1, 0]),  # one degree of longitude on the equator: 111.32 km
        ([0, 0], [0, 1]),  # one degree of latitude at the equator: 110.57 km
        (BERKANE, OUJDA),
        ([-7.59, 33.57], [-6.84, 34.02]),  # Casablanca - Rabat
    ],
)
def test_near_point_distances(a: list[float], b: list[float]) -> None:
    """4.10 near: maxDistance / minDistance in metres, checked against great-circle
    distances within 1 %."""
    d = haversine(a, b)
    target = located(point(*b))
    assert geo(f"near;maxDistance=={d * 1.01}", "Point", json.dumps(a)).matches(target)
    assert not geo(f"near;maxDistance=={d * 0.99}", "Point", json.dumps(a)).matches(target)
    assert geo(f"near;minDistance=={d * 0.99}", "Point", json.dumps(a)).matches(target)
    assert not geo(f"near;minDistance=={d * 1.01}", "Point", json.dumps(a)).matches(target)


def test_near_polygon_target() -> None:
    """4.10 near: the distance to a polygon is to its nearest edge (here the meridian at
    longitude 1, one degree east of the reference point on the equator)."""
    square = located(
        {"type": "Polygon", "coordinates": [[[1, -0.5], [2, -0.5], [2, 0.5], [1, 0.5], [1, -0.5]]]}
    )
    d = haversine([0, 0], [1, 0])
    assert geo(f"near;maxDistance=={d * 1.01}", "Point", "[0,0]").matches(square)
    assert not geo(f"near;maxDistance=={d * 0.99}", "Point", "[0,0]").matches(square)
    inside = geo("near;maxDistance==1", "Point", "[1.5,0]")
    assert inside.matches(square), "a point inside the polygon is at distance 0"


def test_near_line_reference() -> None:
    """4.10 near: the reference geometry may be a LineString (buffer around it)."""
    line = json.dumps([[0, -1], [0, 1]])
    d = haversine([0, 0], [0.5, 0])
    assert geo(f"near;maxDistance=={d * 1.01}", "LineString", line).matches(located(point(0.5, 0)))
    assert not geo(f"near;maxDistance=={d * 0.99}", "LineString", line).matches(
        located(point(0.5, 0))
    )


def test_near_multipoint_target_uses_closest_point() -> None:
    """4.10 near: a MultiPoint is near when its closest point is."""
    target = located({"type": "MultiPoint", "coordinates": [[10, 10], OUJDA]})
    d = haversine(BERKANE, OUJDA)
    assert geo(f"near;maxDistance=={d * 1.01}", "Point", json.dumps(BERKANE)).matches(target)


# --- push-down helpers -------------------------------------------------------------------------


def test_bbox() -> None:
    """A store may pre-filter on bbox: it covers the reference geometry (and the distance
    for near;maxDistance); there is none for disjoint and minDistance."""
    assert geo("within", "Polygon", json.dumps(AROUND_BERKANE)).bbox == (-2.45, 34.82, -2.2, 35.02)
    assert geo("disjoint", "Point", "[0,0]").bbox is None
    assert geo("near;minDistance==5", "Point", "[0,0]").bbox is None
    west, south, east, north = geo(
        "near;maxDistance==10000", "Point", json.dumps(BERKANE)
    ).bbox or (0, 0, 0, 0)
    wgs84 = Geod(ellps="WGS84")
    for azimuth in (0, 90, 180, 270):
        lon, lat, _ = wgs84.fwd(BERKANE[0], BERKANE[1], azimuth, 10_000)
        assert west <= lon <= east and south <= lat <= north


def test_bbox_near_the_poles_and_antimeridian() -> None:
    """Boxes that would wrap the antimeridian or reach a pole keep every longitude."""
    assert geo("near;maxDistance==50000", "Point", "[179.9,0]").bbox == pytest.approx(
        (-180, -0.46, 180, 0.46), abs=0.01
    )
    box = geo("near;maxDistance==50000", "Point", "[0,89.9]").bbox
    assert box is not None and box[0] == -180 and box[2] == 180 and box[3] == 90


def test_to_postgis() -> None:
    """The SQL fragment carries the reference geometry as GeoJSON and the distance."""
    sql, params = geo("near;maxDistance==1000", "Point", "[8,40]").to_postgis()
    assert "ST_DWithin" in sql and sql.count("%s") == len(params) == 2
    assert json.loads(params[0]) == {"type": "Point", "coordinates": [8.0, 40.0]}
    assert params[1] == 1000.0
    sql, params = geo("near;minDistance==1000", "Point", "[8,40]").to_postgis()
    assert sql.startswith("NOT ST_DWithin")
    for rel, function in [
        ("within", "ST_Within"),
        ("contains", "ST_Contains"),
        ("equals", "ST_Equals"),
    ]:
        sql, params = geo(rel, "Point", "[8,40]").to_postgis()
        assert sql.startswith(function + "(geom,") and len(params) == 1


# --- properties ---------------------------------------------------------------------------

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(["type", "coordinates", "geometries"]), inner, max_size=3)
    ),
    max_leaves=30,
)


@FAST
@given(st.sampled_from([*GEOMETRY_TYPES, "GeometryCollection", "Nope"]), json_values)
def test_validate_geometry_raises_only_bad_request(kind: str, coordinates: Any) -> None:
    """Any JSON given as a geometry is either a valid geometry or BadRequestData."""
    try:
        got = validate_geometry(
            {"type": kind, "coordinates": coordinates, "geometries": coordinates}
        )
    except BadRequestData:
        return
    assert got["type"] == kind


@FAST
@given(
    st.text(max_size=30),
    st.text(max_size=12) | st.sampled_from(GEOMETRY_TYPES),
    st.text(max_size=30) | json_values.map(json.dumps),
)
def test_parse_geo_query_raises_only_ngsi_errors(
    georel: str, geometry: str, coordinates: str
) -> None:
    """Any text given as georel, geometry and coordinates parses or raises an NgsiError."""
    try:
        query = parse_geo_query(georel, geometry, coordinates, LOCATION)
    except NgsiError:
        return
    assert query.matches(located(point(0, 0))) in (True, False)


lons = st.floats(-179, 179)
lats = st.floats(-80, 80)


@FAST
@given(lons, lats, st.floats(-2, 2), st.floats(-2, 2), st.floats(10, 500_000))
def test_near_agrees_with_great_circle(
    lon: float, lat: float, dlon: float, dlat: float, metres: float
) -> None:
    """4.10 near;maxDistance: matches when clearly closer than the distance, not when
    clearly farther (the bounding-box pre-filter never drops a match)."""
    target = [max(-180.0, min(180.0, lon + dlon)), max(-90.0, min(90.0, lat + dlat))]
    d = haversine([lon, lat], target)
    query = geo(f"near;maxDistance=={metres}", "Point", json.dumps([lon, lat]))
    if d < metres * 0.99:
        assert query.matches(located(point(*target)))
    elif d > metres * 1.01:
        assert not query.matches(located(point(*target)))
