"""The demo's water network: L-Town (BattLeDIM 2020, shipped in the EPyT wheel) laid on Berkane.

The network's entities are the water twin's own (``water_twin_importer``): the same
bodies ``cityverse import epanet L-TOWN.inp --name L-Town`` writes, with the zones (DMAs)
derived from the hydraulics and a Device for each sensor and customer meter the file's
comments name. L-Town's coordinates are metres in a local plane; the demo centres them
on the town's anchor, and the town around them is laid out in the same local metres
(``local_extent``, ``node_points``). The sensors the demo plays are the ones L-Town's
file marks in its comments (pressure, level, flow)::

    entities = water_twin_importer(BERKANE)
    entity_id("Junction", "n1")          # urn:ngsi-ld:Junction:L-Town:n1
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from cityverse.demo.frame import BERKANE
from cityverse.twins.water import analyse, model
from cityverse.twins.water.engine import Engine
from cityverse.twins.water.twin import SENSOR_PROPERTIES, sensor_body

NETWORK = "L-Town"
"""The network's name: part of every element's id."""
CONTEXT = model.WATER_CONTEXT
"""The @context of the network's entities and of the sensors' readings."""
_MARKERS = (
    ("PRESSURE SENSOR", "pressure", "sensor"),
    ("LEVEL SENSOR", "level", "sensor"),
    ("FLOW SENSOR", "flow", "sensor"),
    ("AMR", "supply", "meter"),
)
"""What a comment in L-Town's file says is on an element: as the twin's importer reads it."""


def ltown_path() -> Path:
    """The L-Town .inp file inside the installed EPyT package (nothing is downloaded)."""
    return Path(str(resources.files("epyt").joinpath("networks", "L-TOWN.inp")))


@dataclass(frozen=True)
class Sensor:
    """A metered point of the network: what it measures, on which element of which type."""

    element: str
    kind: str  # "pressure", "level" or "flow"
    element_type: str  # "Junction", "Tank", "Pipe", "Pump", ...

    @property
    def entity_id(self) -> str:
        """The id of the element whose attribute the sensor's readings update."""
        return entity_id(self.element_type, self.element)


@cache
def _model() -> Any:
    return model.read_inp(ltown_path())


def _element_types() -> dict[tuple[str, str], str]:
    wn = _model()
    types = {("node", name): node.node_type for name, node in wn.nodes()}
    types.update({("link", name): link.link_type for name, link in wn.links()})
    return types


def _marked() -> list[tuple[str, str, str, str]]:
    """(element, element type, property, device category) for every comment marker."""
    types = _element_types()
    found = []
    for key, note in model.comments(ltown_path()).items():
        kind = types.get(key)
        for marker, prop, category in _MARKERS:
            if kind is not None and marker in note.upper() and kind in SENSOR_PROPERTIES[prop]:
                found.append((key[1], kind, prop, category))
    return found


def sensors() -> list[Sensor]:
    """The pressure, level and flow sensors of L-Town, in file order."""
    return [
        Sensor(element, prop, kind)
        for element, kind, prop, category in _marked()
        if category == "sensor"
    ]


def entity_id(kind: str, name: str) -> str:
    """The id of the network element of SDM type ``kind`` and EPANET id ``name``."""
    return model.element_id(kind, NETWORK, name)


def placement(anchor: tuple[float, float] = BERKANE) -> model.Placement:
    """L-Town's file coordinates on the map, with the network's centre at ``anchor``.

    The projection is ``LocalFrame(anchor)``'s (azimuthal equidistant on the anchor),
    with the centre of the file's coordinates as false origin; the town is drawn in
    the same local metres, so streets and pipes line up.
    """
    lon, lat = anchor
    cx, cy = _centre()
    return model.Placement.from_crs(
        f"+proj=aeqd +lat_0={lat!r} +lon_0={lon!r} +x_0={cx!r} +y_0={cy!r} "
        "+datum=WGS84 +units=m +no_defs"
    )


def water_twin_importer(anchor: tuple[float, float] = BERKANE) -> list[dict[str, Any]]:
    """L-Town as the water twin's EPANET importer makes it: every element, the network,
    its zones (DMAs) and the Devices of its sensors and meters, each with its @context."""
    wn = _model()
    with Engine.open(ltown_path()) as engine:
        zones = analyse.derive_zones(analyse.Topology.of(engine))
    bodies = model.network_entities(wn, NETWORK, placement(anchor), zones=zones)
    elements = {(b["type"], b["name"]["value"]): b for b in bodies if "name" in b}
    for element, kind, prop, category in _marked():
        bodies.append(sensor_body(NETWORK, elements[(kind, element)], prop, category))
    for body in bodies:
        body["@context"] = CONTEXT
    return bodies


def local_extent() -> tuple[float, float, float, float]:
    """The network's bounding box in the demo's local metres (centred on the anchor)."""
    xs, ys = zip(*node_points(), strict=True)
    return min(xs), min(ys), max(xs), max(ys)


def node_points() -> list[tuple[float, float]]:
    """Every node of the network in local metres (the town is laid out around them)."""
    cx, cy = _centre()
    return [(node.coordinates[0] - cx, node.coordinates[1] - cy) for _, node in _model().nodes()]


@cache
def _centre() -> tuple[float, float]:
    coords = [node.coordinates for _, node in _model().nodes()]
    xs = [c[0] for c in coords]
    ys = [c[1] for c in coords]
    return (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
