"""The demo city, generated from a seed: streets, blocks, buildings and street furniture.

The town is laid out around the water network: a street grid (with a little jitter, as
real towns have) covers L-Town's extent, and a block is built when the network serves
it. Every entity is a Smart Data Models type in NGSI-LD normalised form, with its
``@context``; the same seed gives the same city, entity for entity::

    entities = generate(seed=2026)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cityverse.demo import water
from cityverse.demo.contexts import hosted_url
from cityverse.demo.frame import BERKANE, LocalFrame

DEFAULT_SEED = 2026
SDM = "https://raw.githubusercontent.com/smart-data-models/dataModel.{}/master/context.jsonld"
STREETLIGHTING = SDM.format("Streetlighting")
WASTE = SDM.format("WasteManagement")
PARKING = SDM.format("Parking")
WEATHER = SDM.format("Weather")

BLOCK_X = 110.0
"""Street spacing west to east (metres), centre line to centre line."""
BLOCK_Y = 90.0
"""Street spacing south to north (metres)."""
STREET_WIDTH = 12.0
JITTER = 6.0
LIGHT_SPACING = 45.0
PARKING_RADIUS = 250.0
"""On-street parking is marked within this distance of the town centre."""
SPOT_LENGTH = 6.0

# fmt: off
STREET_NAMES = (
    "Boulevard Mohammed V", "Boulevard Hassan II", "Avenue Mohammed VI", "Rue Ibn Khaldoun",
    "Rue Al Massira", "Rue Oujda", "Rue Saïdia", "Rue Ahfir", "Rue Tafoughalt", "Rue Zegzel",
    "Rue Moulouya", "Rue Al Andalous", "Rue Ibn Sina", "Rue Al Farabi", "Rue Ibn Rochd",
    "Rue Al Qods", "Rue Annasr", "Rue Al Wahda", "Rue Al Amal", "Rue Al Fath",
    "Rue Oued Cherraa", "Rue Beni Snassen", "Rue Ain Regada", "Rue Madagh", "Rue Laatamna",
    "Rue Sidi Slimane", "Rue Chraka", "Rue Fès", "Rue Rabat", "Rue Tanger", "Rue Nador",
    "Rue Taza", "Rue Errachidia", "Rue Figuig", "Rue Agadir", "Rue Marrakech", "Rue Meknès",
    "Rue Tétouan", "Rue Laayoune", "Rue Dakhla", "Rue Al Jadida", "Rue Safi", "Rue Ifrane",
    "Rue Azrou", "Rue Khouribga", "Rue Larache", "Rue Guercif", "Rue Taourirt",
)
# fmt: on


@dataclass(frozen=True)
class Grid:
    """The street grid: jittered intersections and the blocks the network serves."""

    nx: int
    ny: int
    x0: float
    y0: float
    corners: dict[tuple[int, int], tuple[float, float]]
    built: frozenset[tuple[int, int]]

    def corner(self, i: int, j: int) -> tuple[float, float]:
        """The intersection of vertical street ``i`` and horizontal street ``j``."""
        return self.corners[(i, j)]


def generate(
    seed: int = DEFAULT_SEED, *, anchor: tuple[float, float] = BERKANE, base: str = ""
) -> list[dict[str, Any]]:
    """Every entity of the demo city: the water network, then the town around it.

    ``base`` is the broker's URL (``http://host:port``) under which the demo's hosted
    @contexts are named.
    """
    frame = LocalFrame(anchor)
    rng = random.Random(seed)
    grid = _grid(rng)
    entities = water.water_twin_importer(anchor)
    entities += list(_streets(grid, frame, base))
    entities += list(_buildings(grid, frame, rng, base))
    entities += list(_streetlights(grid, frame, rng))
    entities += list(_waste_containers(grid, frame, rng))
    entities += list(_parking_spots(grid, frame))
    entities.append(weather_station(frame))
    return entities


def _grid(rng: random.Random) -> Grid:
    xmin, ymin, xmax, ymax = water.local_extent()
    margin = 60.0
    nx = math.ceil((xmax - xmin + 2 * margin) / BLOCK_X) + 1
    ny = math.ceil((ymax - ymin + 2 * margin) / BLOCK_Y) + 1
    x0 = (xmin + xmax) / 2 - (nx - 1) * BLOCK_X / 2
    y0 = (ymin + ymax) / 2 - (ny - 1) * BLOCK_Y / 2
    corners = {
        (i, j): (
            x0 + i * BLOCK_X + rng.uniform(-JITTER, JITTER),
            y0 + j * BLOCK_Y + rng.uniform(-JITTER, JITTER),
        )
        for i in range(nx)
        for j in range(ny)
    }
    served = set()
    for x, y in water.node_points():
        i, j = int((x - x0) // BLOCK_X), int((y - y0) // BLOCK_Y)
        if 0 <= i < nx - 1 and 0 <= j < ny - 1:
            served.add((i, j))
    return Grid(nx, ny, x0, y0, corners, frozenset(served))


def _segments(grid: Grid) -> Iterator[tuple[str, int, tuple[int, int], tuple[int, int]]]:
    """Street segments between intersections that border a built block, per street line."""
    for j in range(grid.ny):  # west-east streets
        for i in range(grid.nx - 1):
            if (i, j) in grid.built or (i, j - 1) in grid.built:
                yield "h", j, (i, j), (i + 1, j)
    for i in range(grid.nx):  # south-north streets
        for j in range(grid.ny - 1):
            if (i, j) in grid.built or (i - 1, j) in grid.built:
                yield "v", i, (i, j), (i, j + 1)


def _street_name(axis: str, line: int, grid: Grid) -> str:
    number = line if axis == "h" else grid.ny + line
    if number < len(STREET_NAMES):
        return STREET_NAMES[number]
    return f"Rue {number + 1}"


def _streets(grid: Grid, frame: LocalFrame, base: str) -> Iterator[dict[str, Any]]:
    context = hosted_url(base, "Transportation")
    roads: dict[tuple[str, int], list[str]] = {}
    lengths: dict[tuple[str, int], float] = {}
    segments = []
    for axis, line, a, b in _segments(grid):
        road = f"urn:ngsi-ld:Road:berkane-{axis}{line}"
        seg_id = f"urn:ngsi-ld:RoadSegment:berkane-{axis}{line}-{a[0]}-{a[1]}"
        pa, pb = grid.corner(*a), grid.corner(*b)
        length = round(math.dist(pa, pb), 1)
        roads.setdefault((axis, line), []).append(seg_id)
        lengths[(axis, line)] = lengths.get((axis, line), 0.0) + length
        main = _is_main(axis, line, grid)
        segments.append(
            {
                "id": seg_id,
                "type": "RoadSegment",
                "name": _prop(_street_name(axis, line, grid)),
                "refRoad": _rel(road),
                "location": _geo("LineString", frame.line([pa, pb])),
                "startPoint": _geo("Point", list(frame.lonlat(*pa))),
                "endPoint": _geo("Point", list(frame.lonlat(*pb))),
                "length": _prop(length, "MTR"),
                "width": _prop(STREET_WIDTH, "MTR"),
                "totalLaneNumber": _prop(4 if main else 2),
                "maximumAllowedSpeed": _prop(50 if main else 30, "KMH"),
                "@context": context,
            }
        )
    for (axis, line), members in roads.items():
        yield {
            "id": f"urn:ngsi-ld:Road:berkane-{axis}{line}",
            "type": "Road",
            "name": _prop(_street_name(axis, line, grid)),
            "roadClass": _prop("primary" if _is_main(axis, line, grid) else "residential"),
            "length": _prop(round(lengths[(axis, line)], 1), "MTR"),
            "refRoadSegment": _rel(members),
            "@context": context,
        }
    yield from segments


def _is_main(axis: str, line: int, grid: Grid) -> bool:
    """The two boulevards crossing at the town centre."""
    return line == (grid.ny // 2 if axis == "h" else grid.nx // 2)


def _block_interior(grid: Grid, i: int, j: int) -> tuple[float, float, float, float]:
    """The buildable rectangle of block (i, j): inside the street and its pavements."""
    inset = STREET_WIDTH / 2 + 3.0
    xs = [grid.corner(i, j)[0], grid.corner(i, j + 1)[0]]
    xe = [grid.corner(i + 1, j)[0], grid.corner(i + 1, j + 1)[0]]
    ys = [grid.corner(i, j)[1], grid.corner(i + 1, j)[1]]
    ye = [grid.corner(i, j + 1)[1], grid.corner(i + 1, j + 1)[1]]
    return max(xs) + inset, max(ys) + inset, min(xe) - inset, min(ye) - inset


def _buildings(
    grid: Grid, frame: LocalFrame, rng: random.Random, base: str
) -> Iterator[dict[str, Any]]:
    context = hosted_url(base, "Building")
    cx, cy = grid.corner(grid.nx // 2, grid.ny // 2)
    for i, j in sorted(grid.built):
        x1, y1, x2, y2 = _block_interior(grid, i, j)
        central = math.dist(((x1 + x2) / 2, (y1 + y2) / 2), (cx, cy)) < PARKING_RADIUS
        for n, (bx1, by1, bx2, by2) in enumerate(_lots(x1, y1, x2, y2, rng)):
            if rng.random() < 0.08:
                continue  # an empty plot
            floors = rng.choice((1, 2, 2, 3, 3, 4, 5) if central else (1, 1, 2, 2, 3))
            ring = [(bx1, by1), (bx2, by1), (bx2, by2), (bx1, by2), (bx1, by1)]
            category = "commercial" if central and rng.random() < 0.3 else "residential"
            yield {
                "id": f"urn:ngsi-ld:Building:berkane-{i}-{j}-{n}",
                "type": "Building",
                "category": _prop([category]),
                "floorsAboveGround": _prop(floors),
                "height": _prop(round(floors * 3.2 + rng.uniform(0.3, 1.2), 1), "MTR"),
                "address": _prop({"addressLocality": "Berkane", "addressCountry": "MA"}),
                "location": _geo("Polygon", [frame.line(ring)]),
                "@context": context,
            }


def _lots(
    x1: float, y1: float, x2: float, y2: float, rng: random.Random
) -> Iterator[tuple[float, float, float, float]]:
    """Plots round the edge of a block: terraced houses on the street, a courtyard inside."""
    if x2 - x1 < 20 or y2 - y1 < 20:
        return
    depth = min(16.0, (y2 - y1) / 2 - 2)
    for south in (True, False):
        x = x1
        while x2 - x > 8:
            width = min(rng.uniform(9.0, 16.0), x2 - x)
            yield (x, y1, x + width, y1 + depth) if south else (x, y2 - depth, x + width, y2)
            x += width
    side = min(14.0, (x2 - x1) / 2 - 2)
    for west in (True, False):
        y = y1 + depth + 1
        while (y2 - depth - 1) - y > 8:
            height = min(rng.uniform(9.0, 15.0), y2 - depth - 1 - y)
            yield (x1, y, x1 + side, y + height) if west else (x2 - side, y, x2, y + height)
            y += height


def _streetlights(grid: Grid, frame: LocalFrame, rng: random.Random) -> Iterator[dict[str, Any]]:
    for axis, line, a, b in _segments(grid):
        pa, pb = grid.corner(*a), grid.corner(*b)
        length = math.dist(pa, pb)
        count = max(1, round(length / LIGHT_SPACING))
        ux, uy = (pb[0] - pa[0]) / length, (pb[1] - pa[1]) / length
        for k in range(count):
            t = (k + 0.5) / count
            side = 1 if k % 2 == 0 else -1
            x = pa[0] + t * (pb[0] - pa[0]) - uy * side * (STREET_WIDTH / 2 + 1)
            y = pa[1] + t * (pb[1] - pa[1]) + ux * side * (STREET_WIDTH / 2 + 1)
            main = _is_main(axis, line, grid)
            yield {
                "id": f"urn:ngsi-ld:Streetlight:berkane-{axis}{line}-{a[0]}-{a[1]}-{k}",
                "type": "Streetlight",
                "location": _geo("Point", list(frame.lonlat(x, y))),
                "status": _prop("ok"),
                "powerState": _prop("off"),
                "illuminanceLevel": _prop(0.0),
                "lanternHeight": _prop(10 if main else 8, "MTR"),
                "locationCategory": _prop("façade" if rng.random() < 0.2 else "sidewalk"),
                "@context": STREETLIGHTING,
            }


def _waste_containers(
    grid: Grid, frame: LocalFrame, rng: random.Random
) -> Iterator[dict[str, Any]]:
    for i, j in sorted(grid.built):
        x1, y1, x2, _ = _block_interior(grid, i, j)
        x = rng.uniform(x1 + 5, max(x1 + 6, x2 - 5))
        yield {
            "id": f"urn:ngsi-ld:WasteContainer:berkane-{i}-{j}",
            "type": "WasteContainer",
            "location": _geo("Point", list(frame.lonlat(x, y1 - 2))),
            "fillingLevel": _prop(round(rng.uniform(0.05, 0.6), 2)),
            "status": _prop("ok"),
            "storedWasteKind": _prop(["organic", "inorganic"]),
            "@context": WASTE,
        }


def _parking_spots(grid: Grid, frame: LocalFrame) -> Iterator[dict[str, Any]]:
    centre = grid.corner(grid.nx // 2, grid.ny // 2)
    for axis, line, a, b in _segments(grid):
        pa, pb = grid.corner(*a), grid.corner(*b)
        mid = ((pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2)
        if math.dist(mid, centre) > PARKING_RADIUS:
            continue
        length = math.dist(pa, pb)
        ux, uy = (pb[0] - pa[0]) / length, (pb[1] - pa[1]) / length
        for k in range(int((length - 2 * STREET_WIDTH) // SPOT_LENGTH)):
            along = STREET_WIDTH + (k + 0.5) * SPOT_LENGTH
            x = pa[0] + ux * along - uy * (STREET_WIDTH / 2 - 1.2)
            y = pa[1] + uy * along + ux * (STREET_WIDTH / 2 - 1.2)
            yield {
                "id": f"urn:ngsi-ld:ParkingSpot:berkane-{axis}{line}-{a[0]}-{a[1]}-{k}",
                "type": "ParkingSpot",
                "location": _geo("Point", list(frame.lonlat(x, y))),
                "status": _prop("free"),
                "category": _prop(["onStreet"]),
                "length": _prop(SPOT_LENGTH - 1, "MTR"),
                "width": _prop(2.2, "MTR"),
                "@context": PARKING,
            }


WEATHER_STATION = "urn:ngsi-ld:WeatherObserved:berkane-centre"


def weather_station(frame: LocalFrame) -> dict[str, Any]:
    """The town's weather station, at the town hall (the anchor)."""
    return {
        "id": WEATHER_STATION,
        "type": "WeatherObserved",
        "name": _prop("Berkane centre"),
        "location": _geo("Point", list(frame.lonlat(0.0, 0.0))),
        "address": _prop({"addressLocality": "Berkane", "addressCountry": "MA"}),
        "dateObserved": _prop("2026-06-21T00:00:00.000Z"),
        "temperature": _prop(20.0, "CEL"),
        "@context": WEATHER,
    }


def _prop(value: Any, unit: str | None = None) -> dict[str, Any]:
    attr: dict[str, Any] = {"type": "Property", "value": value}
    if unit:
        attr["unitCode"] = unit
    return attr


def _rel(target: str | list[str]) -> dict[str, Any]:
    return {"type": "Relationship", "object": target}


def _geo(kind: str, coordinates: Any) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": kind, "coordinates": coordinates}}
