"""GeoJSON geometries (RFC 7946; GS CIM 009 v1.8, 4.7) and geo-queries (4.10).

``validate_geometry`` checks and normalises what a client sends as a GeoProperty value
or as a reference geometry; ``parse_geo_query`` turns the four geo-query parameters
into a predicate over stored entities::

    geo = parse_geo_query("near;maxDistance==2000", "Point", "[-2.32,34.92]", LOCATION)
    geo.matches(entity)     # any GeoProperty instance of entity["attrs"][LOCATION] is near
    geo.bbox                # (min_lon, min_lat, max_lon, max_lat) a match must intersect
    geo.to_postgis()        # ("ST_DWithin(geom::geography, ...)", [geojson, 2000.0])

Relations are planar (shapely, in longitude/latitude) as in 4.10's reference [14]
(Simple Features); ``near`` distances are in metres on the WGS84 ellipsoid: exact
geodesics between points, a local azimuthal equidistant projection centred on the
reference geometry otherwise.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from cityverse.core.errors import BadRequestData
from cityverse.core.model import Entity

GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
)
"""Geometry types of reference geometries (4.10: all but GeometryCollection)."""

RELATIONS = ("near", "within", "contains", "intersects", "equals", "disjoint", "overlaps")

MAX_COLLECTION_DEPTH = 4
"""Deepest nesting of GeometryCollections accepted (RFC 7946 3.1.8 advises none)."""

_NEAR_RE = re.compile(r"(maxDistance|minDistance)(?:==|:)(.*)")

# Fewest metres in a degree of latitude, and in a degree of longitude at the equator
# divided by cos(latitude), rounded down so that bounding boxes err on the large side.
_METRES_PER_DEGREE = 110_000.0


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


# --- validation -----------------------------------------------------------------------


def _position(value: Any, where: str) -> list[float]:
    if not isinstance(value, list | tuple):
        raise BadRequestData(
            f"{where}: a position must be an array of numbers, not {_json_type(value)}"
        )
    if len(value) not in (2, 3):
        raise BadRequestData(
            f"{where}: a position has 2 or 3 numbers (longitude, latitude[, altitude]), "
            f"not {len(value)}"
        )
    out: list[float] = []
    for i, n in enumerate(value):
        if not isinstance(n, int | float) or isinstance(n, bool):
            raise BadRequestData(f"{where}[{i}]: expected a number, not {_json_type(n)}")
        try:
            f = float(n)
        except OverflowError:  # an integer beyond the float range
            f = math.inf
        if not math.isfinite(f):
            raise BadRequestData(f"{where}[{i}]: {n} is not a finite number")
        out.append(f)
    if not -180.0 <= out[0] <= 180.0:
        raise BadRequestData(f"{where}: longitude {out[0]} is outside [-180, 180]")
    if not -90.0 <= out[1] <= 90.0:
        raise BadRequestData(
            f"{where}: latitude {out[1]} is outside [-90, 90] (positions are [longitude, latitude])"
        )
    return out


def _array(value: Any, where: str, what: str, minimum: int) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise BadRequestData(f"{where}: expected an array of {what}, not {_json_type(value)}")
    if len(value) < minimum:
        raise BadRequestData(f"{where}: needs at least {minimum} {what}, has {len(value)}")
    return value


def _positions(value: Any, where: str, minimum: int) -> list[list[float]]:
    items = _array(value, where, "positions", minimum)
    return [_position(p, f"{where}[{i}]") for i, p in enumerate(items)]


def _line(value: Any, where: str) -> list[list[float]]:
    return _positions(value, where, 2)


def _ring(value: Any, where: str) -> list[list[float]]:
    ring = _positions(value, where, 4)
    if ring[0] != ring[-1]:
        raise BadRequestData(
            f"{where}: a linear ring must be closed (its last position equal to its first)"
        )
    return ring


def _polygon(value: Any, where: str) -> list[list[list[float]]]:
    rings = _array(value, where, "linear rings", 1)
    return [_ring(r, f"{where}[{i}]") for i, r in enumerate(rings)]


def _coordinates(kind: str, value: Any, where: str) -> Any:
    if kind == "Point":
        return _position(value, where)
    if kind == "MultiPoint":
        return _positions(value, where, 1)
    if kind == "LineString":
        return _line(value, where)
    if kind == "MultiLineString":
        lines = _array(value, where, "line strings", 1)
        return [_line(v, f"{where}[{i}]") for i, v in enumerate(lines)]
    if kind == "Polygon":
        return _polygon(value, where)
    polygons = _array(value, where, "polygons", 1)
    return [_polygon(v, f"{where}[{i}]") for i, v in enumerate(polygons)]


def _flat(coordinates: Any) -> Any:
    """The coordinates without altitudes, so that 2D and 3D positions mix."""
    if coordinates and isinstance(coordinates[0], int | float):
        return coordinates[:2]
    return [_flat(c) for c in coordinates]


def to_shape(geometry: dict[str, Any]) -> BaseGeometry:
    """The (2D) shapely geometry of a validated GeoJSON geometry."""
    if geometry["type"] == "GeometryCollection":
        return shapely.GeometryCollection([to_shape(g) for g in geometry["geometries"]])
    return shape({"type": geometry["type"], "coordinates": _flat(geometry["coordinates"])})


def _validate(obj: Any, where: str, depth: int) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadRequestData(
            f"{where}: a GeoJSON geometry must be an object, not {_json_type(obj)}"
        )
    kind = obj.get("type")
    if kind == "GeometryCollection":
        if depth >= MAX_COLLECTION_DEPTH:
            raise BadRequestData(f"{where}: GeometryCollections nested too deeply")
        members = _array(obj.get("geometries"), f"{where}.geometries", "geometries", 0)
        return {
            "type": kind,
            "geometries": [
                _validate(g, f"{where}.geometries[{i}]", depth + 1) for i, g in enumerate(members)
            ],
        }
    if kind not in GEOMETRY_TYPES:
        expected = ", ".join((*GEOMETRY_TYPES, "GeometryCollection"))
        raise BadRequestData(
            f"{where}: unknown geometry type {kind!r} (expected one of {expected})"
        )
    if "coordinates" not in obj:
        raise BadRequestData(f"{where}: a {kind} needs 'coordinates'")
    geometry = {
        "type": kind,
        "coordinates": _coordinates(kind, obj["coordinates"], f"{where}.coordinates"),
    }
    if kind in ("Polygon", "MultiPolygon"):
        try:
            reason = shapely.is_valid_reason(to_shape(geometry))
        except (shapely.errors.GEOSException, ValueError) as exc:
            raise BadRequestData(f"{where}: not a valid {kind} ({exc})") from None
        if reason != "Valid Geometry":
            raise BadRequestData(f"{where}: not a valid {kind}: {reason}")
    return geometry


def validate_geometry(obj: Any) -> dict[str, Any]:
    """The GeoJSON geometry, normalised (floats, known members only); BadRequestData if invalid."""
    return _validate(obj, "geometry", 0)


# --- geo-queries ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def _geod() -> Geod:
    return Geod(ellps="WGS84")


@lru_cache(maxsize=256)
def _aeqd(lon: float, lat: float) -> Transformer:
    """Longitude/latitude to metres in an azimuthal equidistant projection at (lon, lat)."""
    return Transformer.from_crs(
        "EPSG:4326",
        f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m",
        always_xy=True,
    )


def _project(geom: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    def forward(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, forward)


def _parse_georel(georel: Any) -> tuple[str, str | None, float | None]:
    if not isinstance(georel, str) or not georel.strip():
        raise BadRequestData("Invalid geo-query: georel is missing")
    rel, *modifiers = georel.strip().split(";")
    if rel not in RELATIONS:
        raise BadRequestData(
            f"Invalid geo-query: unknown georel {rel!r} (expected one of {', '.join(RELATIONS)})"
        )
    if rel != "near":
        if modifiers:
            raise BadRequestData(f"Invalid geo-query: georel {rel!r} takes no modifier")
        return rel, None, None
    match = _NEAR_RE.fullmatch(modifiers[0]) if len(modifiers) == 1 else None
    if match is None:
        raise BadRequestData(
            "Invalid geo-query: georel near needs one distance: "
            "near;maxDistance==<metres> or near;minDistance==<metres>"
        )
    try:
        distance = float(match.group(2))
    except ValueError:
        distance = math.nan
    if not math.isfinite(distance) or distance <= 0:
        raise BadRequestData(
            f"Invalid geo-query: {match.group(1)} must be a positive number of metres, "
            f"not {match.group(2)!r}"
        )
    return rel, match.group(1), distance


def _parse_coordinates(coordinates: Any) -> Any:
    if isinstance(coordinates, str):
        try:
            return json.loads(coordinates)
        except (ValueError, RecursionError):
            raise BadRequestData(
                f"Invalid geo-query: coordinates {coordinates[:60]!r} are not a JSON array "
                "(e.g. [8,40])"
            ) from None
    if isinstance(coordinates, list | tuple):
        return coordinates
    if coordinates is None:
        raise BadRequestData("Invalid geo-query: coordinates are missing")
    raise BadRequestData(
        f"Invalid geo-query: coordinates must be an array, not {_json_type(coordinates)}"
    )


def _pad(
    bounds: tuple[float, float, float, float], metres: float
) -> tuple[float, float, float, float]:
    """A lon/lat box holding every point within ``metres`` of the box ``bounds``."""
    min_lon, min_lat, max_lon, max_lat = bounds
    dlat = metres / _METRES_PER_DEGREE
    south, north = max(-90.0, min_lat - dlat), min(90.0, max_lat + dlat)
    widest = max(abs(south), abs(north))
    if widest >= 89.0:
        return (-180.0, south, 180.0, north)
    dlon = metres / (_METRES_PER_DEGREE * math.cos(math.radians(widest)))
    west, east = min_lon - dlon, max_lon + dlon
    if west < -180.0 or east > 180.0:  # wraps the antimeridian: keep every longitude
        return (-180.0, south, 180.0, north)
    return (west, south, east, north)


class GeoQuery:
    """A parsed geo-query (4.10); a ``store.base.Predicate``.

    ``relation`` is one of ``RELATIONS``; for ``near``, ``modifier`` is
    ``maxDistance`` or ``minDistance`` and ``distance`` is in metres. ``geometry`` is
    the validated reference geometry and ``geoproperty`` the expanded attribute name.
    """

    __slots__ = (
        "_projected_ref",
        "_ref",
        "_transformer",
        "bbox",
        "distance",
        "geometry",
        "geoproperty",
        "modifier",
        "relation",
    )

    def __init__(
        self,
        relation: str,
        geometry: dict[str, Any],
        geoproperty: str,
        modifier: str | None = None,
        distance: float | None = None,
    ) -> None:
        self.relation = relation
        self.geometry = geometry
        self.geoproperty = geoproperty
        self.modifier = modifier
        self.distance = distance
        self._ref = to_shape(geometry)
        shapely.prepare(self._ref)
        bounds: tuple[float, float, float, float] = tuple(self._ref.bounds)
        self.bbox: tuple[float, float, float, float] | None
        if relation == "disjoint" or modifier == "minDistance":
            self.bbox = None
        elif relation == "near":
            assert distance is not None
            self.bbox = _pad(bounds, distance)
        else:
            self.bbox = bounds
        self._transformer: Transformer | None = None
        self._projected_ref: BaseGeometry | None = None

    def __repr__(self) -> str:
        near = f";{self.modifier}=={self.distance}" if self.modifier else ""
        return f"GeoQuery({self.relation}{near}, {self.geometry['type']}, {self.geoproperty!r})"

    def matches(self, entity: Entity) -> bool:
        """True when any GeoProperty instance of the target attribute satisfies the relation."""
        attrs = entity.get("attrs")
        instances = attrs.get(self.geoproperty) if isinstance(attrs, dict) else None
        if not isinstance(instances, list):
            return False
        for inst in instances:
            if not isinstance(inst, dict) or inst.get("type") != "GeoProperty":
                continue
            target = _stored_shape(inst.get("value"))
            if target is not None and self._test(target):
                return True
        return False

    def _test(self, target: BaseGeometry) -> bool:
        if self.bbox is not None:
            west, south, east, north = self.bbox
            t_west, t_south, t_east, t_north = target.bounds
            if t_west > east or t_east < west or t_south > north or t_north < south:
                return False
        ref, rel = self._ref, self.relation
        if rel == "near":
            assert self.distance is not None
            gap = self.distance_to(target)
            return gap <= self.distance if self.modifier == "maxDistance" else gap > self.distance
        # The prepared reference geometry goes first, so relations are read backwards.
        if rel == "within":
            return bool(shapely.contains(ref, target))
        if rel == "contains":
            return bool(shapely.within(ref, target))
        if rel == "intersects":
            return bool(shapely.intersects(ref, target))
        if rel == "disjoint":
            return bool(shapely.disjoint(ref, target))
        if rel == "overlaps":
            return bool(shapely.overlaps(ref, target))
        return bool(shapely.equals(ref, target))

    def distance_to(self, target: BaseGeometry) -> float:
        """Metres between the reference geometry and a lon/lat geometry."""
        ref = self._ref
        if ref.geom_type == "Point" and target.geom_type in ("Point", "MultiPoint"):
            xy = shapely.get_coordinates(target)
            n = len(xy)
            _, _, metres = _geod().inv(np.full(n, ref.x), np.full(n, ref.y), xy[:, 0], xy[:, 1])
            return float(np.min(metres))
        if self._transformer is None:
            centre = ref if ref.geom_type == "Point" else ref.centroid
            self._transformer = _aeqd(centre.x, centre.y)
            self._projected_ref = _project(ref, self._transformer)
        assert self._projected_ref is not None
        return float(_project(target, self._transformer).distance(self._projected_ref))

    def to_postgis(self) -> tuple[str, list[Any]]:
        """An SQL condition on a ``geom`` column (geometry, SRID 4326), with its parameters."""
        ref = "ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326)"
        params: list[Any] = [json.dumps(self.geometry)]
        if self.relation == "near":
            sql = f"ST_DWithin(geom::geography, {ref}::geography, %s)"
            params.append(self.distance)
            return (sql if self.modifier == "maxDistance" else f"NOT {sql}"), params
        function = {
            "within": "ST_Within",
            "contains": "ST_Contains",
            "intersects": "ST_Intersects",
            "disjoint": "ST_Disjoint",
            "overlaps": "ST_Overlaps",
            "equals": "ST_Equals",
        }[self.relation]
        return f"{function}(geom, {ref})", params


def _stored_shape(value: Any) -> BaseGeometry | None:
    """The shapely geometry of a stored GeoProperty value, None if it is not one."""
    if not isinstance(value, dict):
        return None
    try:
        return to_shape(value)
    except Exception:  # stored values were validated; a bad one must not fail a query
        return None


def parse_geo_query(
    georel: str, geometry: str, coordinates: str | list[Any], geoproperty: str
) -> GeoQuery:
    """Parse the four geo-query parameters (4.10); BadRequestData if any is invalid."""
    relation, modifier, distance = _parse_georel(georel)
    if not isinstance(geometry, str) or not geometry:
        raise BadRequestData("Invalid geo-query: geometry is missing")
    if geometry not in GEOMETRY_TYPES:
        raise BadRequestData(
            f"Invalid geo-query: geometry {geometry[:40]!r} is not one of "
            + ", ".join(GEOMETRY_TYPES)
        )
    if not isinstance(geoproperty, str) or not geoproperty:
        raise BadRequestData("Invalid geo-query: geoproperty is empty")
    value = _parse_coordinates(coordinates)
    try:
        reference = validate_geometry({"type": geometry, "coordinates": value})
    except BadRequestData as exc:
        raise BadRequestData(f"Invalid geo-query reference {exc.detail}") from None
    return GeoQuery(relation, reference, geoproperty, modifier, distance)
