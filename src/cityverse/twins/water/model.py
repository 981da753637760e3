"""The water network as NGSI-LD entities of the Smart Data Models EPANET types, and back.

An EPANET .inp file becomes one ``WaterNetwork`` entity plus one entity per element
(``Junction``, ``Tank``, ``Reservoir``, ``Pipe``, ``Pump``, ``Valve``, ``Pattern``,
``Curve``), with the attribute names of dataModel.WaterDistributionManagementEPANET::

    wn = read_inp("net.inp")                       # EPANET checks it, WNTR parses it
    bodies = network_entities(wn, "ltown", Placement.anchored(-2.93, 35.17))
    wn2 = model_from_entities(bodies)              # the entities as stored, compacted
    inp_text(wn2)                                  # .inp that EPANET reads identically

Element ids are ``urn:ngsi-ld:<Type>:<network>:<EPANET id>``: the network a element
belongs to is in its id. Links point at their nodes with ``startsAt``/``endsAt``;
demands, patterns and curves with ``demandPattern``, ``headPattern``, ``pumpPattern``,
``energyPattern``, ``headCurve``, ``efficCurve``, ``volumeCurve``, ``valveCurve``.
Values are SI with a unitCode: metres (MTR), millimetres for diameters (MMT), litres
per second for flows and demands (G51). The zone (DMA) of an element is its ``tag``.
What the EPANET types have no attribute for (the full option set, controls and rules,
water quality sources) travels on the ``WaterNetwork`` as JsonProperties
``epanetOptions``, ``epanetControls`` and ``epanetSources``.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from cityverse.twins.water.engine import Engine, EngineError

SDM_CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/"
    "dataModel.WaterDistributionManagementEPANET/master/context.jsonld"
)
DEVICE = "https://smartdatamodels.org/dataModel.Device/"
WATER_CONTEXT: list[Any] = [
    SDM_CONTEXT,
    {
        "Device": DEVICE + "Device",
        "controlledAsset": DEVICE + "controlledAsset",
        "controlledProperty": DEVICE + "controlledProperty",
        "deviceCategory": DEVICE + "deviceCategory",
    },
]
"""The @context of the water twin's entities: the SDM EPANET context plus SDM Device terms."""

NODE_TYPES = ("Junction", "Tank", "Reservoir")
LINK_TYPES = ("Pipe", "Pump", "Valve")
ELEMENT_TYPES = (*NODE_TYPES, *LINK_TYPES, "Pattern", "Curve")
SIMULATED = "urn:ngsi-ld:Dataset:simulated"
"""datasetId of the simulated instance of an attribute (the measured one has none)."""

_FLOW_CURVES = {"HEAD", "HEADLOSS", "EFFICIENCY"}
_log = logging.getLogger("cityverse.water")


class InpError(ValueError):
    """An .inp file that EPANET or the parser refuses; ``line`` when known."""

    def __init__(self, message: str, *, code: int | None = None, line: int | None = None):
        super().__init__(message)
        self.code = code
        self.line = line


# -- placement on the map ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placement:
    """How the file's x/y coordinates map to WGS84: a CRS, or local metres anchored."""

    crs: str

    @classmethod
    def from_crs(cls, crs: str) -> Placement:
        """Coordinates in a named CRS such as ``EPSG:26191`` (Merchich / Nord Maroc)."""
        import pyproj

        try:
            pyproj.CRS.from_user_input(crs)
        except pyproj.exceptions.CRSError as exc:
            raise ValueError(f"unknown CRS {crs!r}: {exc}") from None
        return cls(crs)

    @classmethod
    def anchored(
        cls, lon: float, lat: float, offset: tuple[float, float] = (0.0, 0.0)
    ) -> Placement:
        """Local metres whose point ``offset`` (x, y) lies at ``lon``, ``lat``."""
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(f"anchor {lon},{lat} is not a longitude,latitude pair")
        x0, y0 = offset
        return cls(
            f"+proj=aeqd +lat_0={lat!r} +lon_0={lon!r} +x_0={x0!r} +y_0={y0!r} "
            "+datum=WGS84 +units=m +no_defs"
        )

    def _transformer(self, inverse: bool = False) -> Any:
        import pyproj

        a, b = (self.crs, "EPSG:4326") if not inverse else ("EPSG:4326", self.crs)
        return pyproj.Transformer.from_crs(a, b, always_xy=True)

    def to_wgs84(self, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """File coordinates to (lon, lat)."""
        if not points:
            return []
        xs, ys = zip(*points, strict=True)
        lons, lats = self._transformer().transform(xs, ys)
        return [
            (round(float(lo), 9), round(float(la), 9)) for lo, la in zip(lons, lats, strict=True)
        ]

    def from_wgs84(self, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """(lon, lat) back to file coordinates."""
        if not points:
            return []
        lons, lats = zip(*points, strict=True)
        xs, ys = self._transformer(inverse=True).transform(lons, lats)
        return [(round(float(x), 4), round(float(y), 4)) for x, y in zip(xs, ys, strict=True)]


# -- ids -------------------------------------------------------------------------------

_NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-.]{0,63}")


def check_network_name(name: str) -> str:
    """The name if it can be part of entity ids, else ValueError."""
    if not _NETWORK_NAME.fullmatch(name):
        raise ValueError(
            f"network name {name!r}: use 1 to 64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def network_id(network: str) -> str:
    """The id of the WaterNetwork entity."""
    return f"urn:ngsi-ld:WaterNetwork:{network}"


def element_id(kind: str, network: str, name: str) -> str:
    """The id of a network element, from its EPANET id."""
    return f"urn:ngsi-ld:{kind}:{network}:{quote(name, safe='-._~!$()*+,=@')}"


def element_name(entity_id: str) -> str:
    """The EPANET id inside an element's entity id."""
    return unquote(entity_id.rsplit(":", 1)[1])


# -- reading and writing .inp ----------------------------------------------------------


def read_inp(path: str | Path) -> Any:
    """Parse an .inp file into a WNTR model after EPANET itself accepted it."""
    import wntr

    path = Path(path)
    if not path.is_file():
        raise InpError(f"no such file: {path}")
    try:
        Engine.open(path).close()
    except EngineError as exc:
        raise InpError(str(exc), code=exc.code, line=exc.line) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return wntr.network.WaterNetworkModel(str(path))
    except Exception as exc:  # WNTR raises many kinds; all mean "cannot read this file"
        raise InpError(f"cannot read {path.name}: {exc}") from None


def read_inp_text(text: str) -> Any:
    """Parse .inp text (see ``read_inp``)."""
    with tempfile.TemporaryDirectory(prefix="cityverse-inp-") as tmp:
        path = Path(tmp) / "network.inp"
        path.write_text(text)
        return read_inp(path)


def inp_text(wn: Any, units: str | None = None) -> str:
    """The model as .inp text, in its own flow units or ``units`` (e.g. ``LPS``)."""
    import wntr

    with tempfile.TemporaryDirectory(prefix="cityverse-inp-") as tmp:
        path = Path(tmp) / "network.inp"
        wntr.network.write_inpfile(wn, str(path), units=units)
        return path.read_text()


def comments(path: str | Path) -> dict[tuple[str, str], str]:
    """(``node``|``link``, EPANET id) -> the comment after its line in the file."""
    found: dict[tuple[str, str], str] = {}
    section = ""
    kinds = {
        "[JUNCTIONS]": "node",
        "[RESERVOIRS]": "node",
        "[TANKS]": "node",
        "[PIPES]": "link",
        "[PUMPS]": "link",
        "[VALVES]": "link",
    }
    for raw in Path(path).read_text(errors="replace").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = kinds.get(line.split()[0].upper(), "")
            continue
        if not section or line.startswith(";") or ";" not in line:
            continue
        body, _, note = line.partition(";")
        fields = body.split()
        if fields and note.strip():
            found[(section, fields[0])] = note.strip()
    return found


# -- model -> entities -----------------------------------------------------------------


def _num(value: Any, digits: int = 9) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"value {value!r} is not a finite number")
    return round(number, digits)


def _prop(value: Any, unit: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Property", "value": value}
    if unit:
        out["unitCode"] = unit
    return out


def _rel(target: str) -> dict[str, Any]:
    return {"type": "Relationship", "object": target}


def _json(value: Any) -> dict[str, Any]:
    return {"type": "JsonProperty", "json": value}


def _plain(value: Any) -> Any:
    """WNTR values as plain JSON (numpy numbers, tuples)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_OPTION_TERMS: dict[str, tuple[str, str, str | None]] = {
    # SDM term -> (options section, key, unitCode): editable knobs over epanetOptions.
    "duration": ("time", "duration", "SEC"),
    "hydraulicTimeStep": ("time", "hydraulic_timestep", "SEC"),
    "patternStep": ("time", "pattern_timestep", "SEC"),
    "reportStep": ("time", "report_timestep", "SEC"),
    "flowUnits": ("hydraulic", "inpfile_units", None),
    "headlossFormula": ("hydraulic", "headloss", None),
    "demandModel": ("hydraulic", "demand_model", None),
    "minimumPressure": ("hydraulic", "minimum_pressure", "MTR"),
    "requiredPressure": ("hydraulic", "required_pressure", "MTR"),
    "pressureExponent": ("hydraulic", "pressure_exponent", "C62"),
    "emitterExponent": ("hydraulic", "emitter_exponent", "C62"),
}


def network_entities(
    wn: Any,
    network: str,
    placement: Placement,
    *,
    zones: dict[str, str] | None = None,
    description: str | None = None,
) -> list[dict[str, Any]]:
    """Normalized NGSI-LD bodies (WATER_CONTEXT terms) for every part of the network."""
    import wntr

    check_network_name(network)
    model = wntr.network.to_dict(wn)
    zones = zones or {}
    node_names = [n["name"] for n in model["nodes"]]
    lonlat = dict(
        zip(
            node_names,
            placement.to_wgs84([tuple(n["coordinates"]) for n in model["nodes"]]),
            strict=True,
        )
    )
    nid = network_id(network)
    pattern_id = {p["name"]: element_id("Pattern", network, p["name"]) for p in model["patterns"]}
    curve_id = {c["name"]: element_id("Curve", network, c["name"]) for c in model["curves"]}
    node_kind = {n["name"]: n["node_type"] for n in model["nodes"]}
    bodies: list[dict[str, Any]] = []
    step = int(model["options"]["time"]["pattern_timestep"])
    for pattern in model["patterns"]:
        bodies.append(
            {
                "id": pattern_id[pattern["name"]],
                "type": "Pattern",
                "name": _prop(pattern["name"]),
                "multipliers": _prop([_num(v) for v in pattern["multipliers"]], "C62"),
                "timeStep": _prop(step, "SEC"),
            }
        )
    for curve in model["curves"]:
        scale = 1000.0 if curve["curve_type"] in _FLOW_CURVES else 1.0
        bodies.append(
            {
                "id": curve_id[curve["name"]],
                "type": "Curve",
                "name": _prop(curve["name"]),
                "curveType": _prop(curve["curve_type"]),
                "xData": _prop([_num(x * scale) for x, _ in curve["points"]]),
                "yData": _prop([_num(y) for _, y in curve["points"]]),
            }
        )
    for node in model["nodes"]:
        kind = node["node_type"]
        name = node["name"]
        body: dict[str, Any] = {
            "id": element_id(kind, network, name),
            "type": kind,
            "name": _prop(name),
            "location": {"type": "GeoProperty", "value": _point(lonlat[name])},
        }
        zone = node.get("tag") or zones.get(name)
        if zone:
            body["tag"] = _prop(str(zone))
        if node.get("initial_quality"):
            body["initialQuality"] = _prop(_num(node["initial_quality"]))
        if kind == "Junction":
            body["elevation"] = _prop(_num(node["elevation"]), "MTR")
            demands = []
            for i, demand in enumerate(node.get("demand_timeseries_list") or []):
                item: dict[str, Any] = {
                    "type": "Property",
                    "value": demand.get("category") or f"demand {i + 1}",
                    "datasetId": f"urn:ngsi-ld:Dataset:Demand:{i + 1}",
                    "baseDemand": _prop(_num(demand["base_val"] * 1000.0), "G51"),
                }
                if demand.get("pattern_name"):
                    item["demandPattern"] = _rel(pattern_id[demand["pattern_name"]])
                demands.append(item)
            if demands:
                body["demandCategory"] = demands
            if node.get("emitter_coefficient"):
                body["emitterCoefficient"] = _prop(_num(node["emitter_coefficient"] * 1000.0))
        elif kind == "Tank":
            body["elevation"] = _prop(_num(node["elevation"]), "MTR")
            body["initLevel"] = _prop(_num(node["init_level"]), "MTR")
            body["minLevel"] = _prop(_num(node["min_level"]), "MTR")
            body["maxLevel"] = _prop(_num(node["max_level"]), "MTR")
            body["nominalDiameter"] = _prop(_num(node["diameter"]), "MTR")
            body["minVolume"] = _prop(_num(node["min_vol"]), "MTQ")
            if node.get("vol_curve_name"):
                body["volumeCurve"] = _rel(curve_id[node["vol_curve_name"]])
            if node.get("mixing_model"):
                body["mixingModel"] = _prop(str(node["mixing_model"]))
            if node.get("mixing_fraction") is not None:
                body["mixingFraction"] = _prop(_num(node["mixing_fraction"]))
            if node.get("bulk_coeff") is not None:
                body["bulkReactionCoefficient"] = _prop(_num(node["bulk_coeff"]))
            if node.get("overflow"):
                body["overflow"] = _prop(True)
        else:
            body["reservoirHead"] = _prop(_num(node["base_head"]), "MTR")
            if node.get("head_pattern_name"):
                body["headPattern"] = _rel(pattern_id[node["head_pattern_name"]])
        bodies.append(body)
    for link in model["links"]:
        bodies.append(
            _link_body(link, network, lonlat, node_kind, pattern_id, curve_id, placement, zones)
        )
    bodies.append(_network_body(model, network, nid, list(lonlat.values()), placement, description))
    return bodies


def _link_body(
    link: dict[str, Any],
    network: str,
    lonlat: dict[str, tuple[float, float]],
    node_kind: dict[str, str],
    pattern_id: dict[str, str],
    curve_id: dict[str, str],
    placement: Placement,
    zones: dict[str, str],
) -> dict[str, Any]:
    kind = link["link_type"]
    name = link["name"]
    start, end = link["start_node_name"], link["end_node_name"]
    inner = placement.to_wgs84([tuple(v) for v in link.get("vertices") or []])
    line = [lonlat[start], *inner, lonlat[end]]
    body: dict[str, Any] = {
        "id": element_id(kind, network, name),
        "type": kind,
        "name": _prop(name),
        "startsAt": _rel(element_id(node_kind[start], network, start)),
        "endsAt": _rel(element_id(node_kind[end], network, end)),
        "location": {
            "type": "GeoProperty",
            "value": {"type": "LineString", "coordinates": [list(p) for p in line]},
        },
    }
    if inner:
        body["vertices"] = {
            "type": "GeoProperty",
            "value": {"type": "MultiPoint", "coordinates": [list(p) for p in inner]},
        }
    # A link belongs to the zone of its downstream end: valves and pumps feed that zone.
    zone = link.get("tag") or zones.get(end) or zones.get(start)
    if zone:
        body["tag"] = _prop(str(zone))
    status = str(link.get("initial_status") or "Open").upper()
    if kind == "Pipe":
        body["length"] = _prop(_num(link["length"]), "MTR")
        body["diameter"] = _prop(_num(link["diameter"] * 1000.0), "MMT")
        body["roughness"] = _prop(_num(link["roughness"]))
        body["minorLoss"] = _prop(_num(link["minor_loss"]), "C62")
        body["initialStatus"] = _prop("CV" if link.get("check_valve") else status)
        if link.get("bulk_coeff") is not None:
            body["bulkCoeff"] = _prop(_num(link["bulk_coeff"]))
        if link.get("wall_coeff") is not None:
            body["wallCoeff"] = _prop(_num(link["wall_coeff"]))
    elif kind == "Pump":
        body["initialStatus"] = _prop(status)
        body["speed"] = _prop(_num(link.get("base_speed") or 1.0), "C62")
        if link.get("pump_type") == "POWER":
            body["power"] = _prop(_num(link["power"] / 1000.0), "KWT")
        elif link.get("pump_curve_name"):
            body["headCurve"] = _rel(curve_id[link["pump_curve_name"]])
        if link.get("speed_pattern_name"):
            body["pumpPattern"] = _rel(pattern_id[link["speed_pattern_name"]])
        if link.get("efficiency_curve_name"):
            body["efficCurve"] = _rel(curve_id[link["efficiency_curve_name"]])
        if link.get("energy_pattern"):
            body["energyPattern"] = _rel(pattern_id[link["energy_pattern"]])
        if link.get("energy_price") is not None:
            body["energyPrice"] = _prop(_num(link["energy_price"]))
    else:
        valve_type = str(link["valve_type"])
        body["valveType"] = _prop(valve_type)
        body["diameter"] = _prop(_num(link["diameter"] * 1000.0), "MMT")
        body["minorLoss"] = _prop(_num(link["minor_loss"]), "C62")
        body["initialStatus"] = _prop(status)
        if valve_type == "GPV":
            body["valveCurve"] = _rel(curve_id[link["headloss_curve_name"]])
        elif link.get("initial_setting") is not None:
            scale = 1000.0 if valve_type == "FCV" else 1.0
            body["setting"] = _prop(_num(link["initial_setting"] * scale))
    return body


def _network_body(
    model: dict[str, Any],
    network: str,
    nid: str,
    points: list[tuple[float, float]],
    placement: Placement,
    description: str | None,
) -> dict[str, Any]:
    options = _plain(model["options"])
    body: dict[str, Any] = {
        "id": nid,
        "type": "WaterNetwork",
        "name": _prop(network),
        "crs": _prop(placement.crs),
        "epanetOptions": _json(options),
        "epanetControls": _json(_plain(model["controls"])),
        "epanetSources": _json(_plain(model["sources"])),
    }
    text = description or " ".join(model.get("comment") or []) or model.get("name") or network
    body["description"] = _prop(str(text)[:1000])
    for term, (section, key, unit) in _OPTION_TERMS.items():
        value = options.get(section, {}).get(key)
        if value is not None:
            body[term] = _prop(value, unit)
    if points:
        lons = [p[0] for p in points]
        lats = [p[1] for p in points]
        w, e, s, n = min(lons), max(lons), min(lats), max(lats)
        if w < e and s < n:
            ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
            body["location"] = {
                "type": "GeoProperty",
                "value": {"type": "Polygon", "coordinates": [ring]},
            }
    return body


def _point(p: tuple[float, float]) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [p[0], p[1]]}


# -- entities -> model -----------------------------------------------------------------


def _value(body: dict[str, Any], name: str, default: Any = None) -> Any:
    attr = body.get(name)
    if attr is None:
        return default
    if isinstance(attr, list):
        attr = next((a for a in attr if "datasetId" not in a), attr[0])
    for member in ("value", "object", "json"):
        if member in attr:
            return attr[member]
    return default


def _target(body: dict[str, Any], name: str) -> str | None:
    target = _value(body, name)
    return element_name(target) if isinstance(target, str) else None


def model_from_entities(bodies: list[dict[str, Any]]) -> Any:
    """A WNTR model from the network's entities (rendered normalized, WATER_CONTEXT)."""
    import wntr

    by_type: dict[str, list[dict[str, Any]]] = {}
    for body in bodies:
        kind = body["type"] if isinstance(body["type"], str) else body["type"][0]
        by_type.setdefault(kind, []).append(body)
    [net] = by_type.get("WaterNetwork", [None]) or [None]
    if net is None:
        raise ValueError("the network has no WaterNetwork entity")
    placement = Placement(str(_value(net, "crs")))
    options = _value(net, "epanetOptions", {}) or {}
    for term, (section, key, _) in _OPTION_TERMS.items():
        value = _value(net, term)
        if value is not None:
            options.setdefault(section, {})[key] = value
    patterns = [
        {"name": _value(b, "name"), "multipliers": list(_value(b, "multipliers", []))}
        for b in by_type.get("Pattern", [])
    ]
    curves = []
    for b in by_type.get("Curve", []):
        kind = _value(b, "curveType")
        scale = 1000.0 if kind in _FLOW_CURVES else 1.0
        points = list(zip(_value(b, "xData", []), _value(b, "yData", []), strict=True))
        curves.append(
            {
                "name": _value(b, "name"),
                "curve_type": kind,
                "points": [(x / scale, y) for x, y in points],
            }
        )
    node_bodies = [b for kind in NODE_TYPES for b in by_type.get(kind, [])]
    coords = placement.from_wgs84(
        [tuple(_value(b, "location")["coordinates"][:2]) for b in node_bodies]
    )
    nodes = [_node_dict(b, xy) for b, xy in zip(node_bodies, coords, strict=True)]
    links = [_link_dict(b, placement) for kind in LINK_TYPES for b in by_type.get(kind, [])]
    model = {
        "version": "wntr-1.0.0",
        "comment": [str(_value(net, "description", ""))],
        "name": str(_value(net, "name", "")),
        "references": [],
        "options": options,
        "curves": curves,
        "patterns": patterns,
        "nodes": nodes,
        "links": links,
        "sources": _value(net, "epanetSources", []) or [],
        "controls": _value(net, "epanetControls", []) or [],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return wntr.network.from_dict(model)


def _node_dict(b: dict[str, Any], xy: tuple[float, float]) -> dict[str, Any]:
    kind = b["type"]
    node: dict[str, Any] = {
        "name": _value(b, "name"),
        "node_type": kind,
        "coordinates": xy,
        "tag": _value(b, "tag"),
        "initial_quality": _value(b, "initialQuality", 0.0),
    }
    if kind == "Junction":
        node["elevation"] = _value(b, "elevation", 0.0)
        demands = b.get("demandCategory") or []
        if isinstance(demands, dict):
            demands = [demands]
        node["demand_timeseries_list"] = [
            {
                "base_val": _value(d, "baseDemand", 0.0) / 1000.0,
                "pattern_name": _target(d, "demandPattern"),
                "category": None
                if re.fullmatch(r"demand \d+", str(d.get("value")))
                else d.get("value"),
            }
            for d in sorted(demands, key=lambda d: _dataset_order(d.get("datasetId")))
        ]
        emitter = _value(b, "emitterCoefficient")
        node["emitter_coefficient"] = None if emitter is None else emitter / 1000.0
    elif kind == "Tank":
        node.update(
            elevation=_value(b, "elevation", 0.0),
            init_level=_value(b, "initLevel", 0.0),
            min_level=_value(b, "minLevel", 0.0),
            max_level=_value(b, "maxLevel", 0.0),
            diameter=_value(b, "nominalDiameter", 0.0),
            min_vol=_value(b, "minVolume", 0.0),
            vol_curve_name=_target(b, "volumeCurve"),
            mixing_model=_value(b, "mixingModel"),
            mixing_fraction=_value(b, "mixingFraction"),
            bulk_coeff=_value(b, "bulkReactionCoefficient"),
            overflow=bool(_value(b, "overflow", False)),
        )
    else:
        node["base_head"] = _value(b, "reservoirHead", 0.0)
        node["head_pattern_name"] = _target(b, "headPattern")
    return node


def _dataset_order(dataset: Any) -> int:
    tail = str(dataset or "0").rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _link_dict(b: dict[str, Any], placement: Placement) -> dict[str, Any]:
    kind = b["type"]
    vertices = _value(b, "vertices")
    link: dict[str, Any] = {
        "name": _value(b, "name"),
        "link_type": kind,
        "start_node_name": _target(b, "startsAt"),
        "end_node_name": _target(b, "endsAt"),
        "tag": _value(b, "tag"),
        "vertices": placement.from_wgs84([tuple(p[:2]) for p in vertices["coordinates"]])
        if vertices
        else [],
    }
    status = str(_value(b, "initialStatus", "OPEN")).upper()
    if kind == "Pipe":
        link.update(
            length=_value(b, "length", 0.0),
            diameter=_value(b, "diameter", 0.0) / 1000.0,
            roughness=_value(b, "roughness", 100.0),
            minor_loss=_value(b, "minorLoss", 0.0),
            check_valve=status == "CV",
            initial_status="Closed" if status == "CLOSED" else "Open",
            bulk_coeff=_value(b, "bulkCoeff"),
            wall_coeff=_value(b, "wallCoeff"),
        )
    elif kind == "Pump":
        power = _value(b, "power")
        link.update(
            pump_type="POWER" if power is not None else "HEAD",
            power=None if power is None else power * 1000.0,
            pump_curve_name=_target(b, "headCurve"),
            base_speed=_value(b, "speed", 1.0),
            speed_pattern_name=_target(b, "pumpPattern"),
            efficiency_curve_name=_target(b, "efficCurve"),
            energy_pattern=_target(b, "energyPattern"),
            energy_price=_value(b, "energyPrice"),
            initial_status="Closed" if status == "CLOSED" else "Open",
        )
    else:
        valve_type = _value(b, "valveType", "TCV")
        setting = _value(b, "setting", 0.0)
        link.update(
            valve_type=valve_type,
            diameter=_value(b, "diameter", 0.0) / 1000.0,
            minor_loss=_value(b, "minorLoss", 0.0),
            initial_setting=setting / 1000.0 if valve_type == "FCV" else setting,
            initial_status={"CLOSED": "Closed", "OPEN": "Open"}.get(status, "Active"),
            headloss_curve_name=_target(b, "valveCurve"),
        )
    return link
