"""The water twin over the store: import, load, sensors, simulated state, scenario records.

Everything here reads and writes the same NGSI-LD entities any client sees, through
``store.mutate``::

    report = await import_network(store, "", "L-TOWN.inp", "ltown", Placement.anchored(...))
    bodies = await load_network(store, "", "ltown")        # normalized, WATER_CONTEXT terms
    await write_state(store, "", network, results, start="2026-07-01T00:00:00Z")

Measured and simulated state share attribute names: a sensor's reading is the default
instance of ``pressure`` (Junction), ``level`` (Tank), ``flow`` (Pipe, Pump, Valve) or
``supply`` (customer meters, on their Junction), with ``observedAt`` and ``observedBy``
its Device; the simulation writes the instance with datasetId
``urn:ngsi-ld:Dataset:simulated`` beside it, plus ``head``, ``velocity`` and ``energyUse``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from cityverse.broker.entities import UpdateResult, appending
from cityverse.core.context import Context, ContextResolver
from cityverse.core.entity import format_utc, iso_now, parse_attributes, parse_entity, render_entity
from cityverse.core.errors import AlreadyExists, BadRequestData, NgsiError, ResourceNotFound
from cityverse.core.model import Entity
from cityverse.store.base import Change, EntityFilter, EntityStore
from cityverse.twins.water.analyse import Topology, derive_zones, disconnected_parts
from cityverse.twins.water.engine import NODE_JUNCTION, NODE_TANK, Engine, Results
from cityverse.twins.water.model import (
    ELEMENT_TYPES,
    LINK_TYPES,
    NODE_TYPES,
    SIMULATED,
    WATER_CONTEXT,
    InpError,
    Placement,
    check_network_name,
    comments,
    element_id,
    inp_text,
    network_entities,
    network_id,
    read_inp,
)
from cityverse.twins.water.simulate import Network

WRITE_BATCH = 20_000
SENSOR_PROPERTIES = {
    "pressure": ("Junction", "Tank", "Reservoir"),
    "level": ("Tank",),
    "flow": ("Pipe", "Pump", "Valve"),
    "supply": ("Junction",),
}
"""What a sensor measures -> the element types that carry that attribute."""
_COMMENT_SENSORS = (
    ("PRESSURE SENSOR", "pressure", "sensor"),
    ("LEVEL SENSOR", "level", "sensor"),
    ("FLOW SENSOR", "flow", "sensor"),
    ("AMR", "supply", "meter"),
)

_context: Context | None = None


async def water_context() -> Context:
    """The processed WATER_CONTEXT (bundled: no network access)."""
    global _context
    if _context is None:
        _context = await ContextResolver().resolve(WATER_CONTEXT)
    return _context


@dataclass(slots=True)
class ImportReport:
    """What an import wrote and what it noticed."""

    network: str
    counts: dict[str, int] = field(default_factory=dict)
    zones: dict[str, int] = field(default_factory=dict)
    disconnected: list[list[str]] = field(default_factory=list)
    replaced: int = 0


def _network_filter(network: str, ctx: Context, kinds: tuple[str, ...]) -> EntityFilter:
    pattern = re.compile(
        rf"urn:ngsi-ld:(?:[A-Za-z]+:{re.escape(network)}:.+|WaterNetwork:{re.escape(network)})"
    )
    return EntityFilter(type_names=frozenset(ctx.expand(k) for k in kinds), id_pattern=pattern)


_ALL_KINDS = ("WaterNetwork", *ELEMENT_TYPES, "Device")


async def import_network(
    store: EntityStore,
    tenant: str,
    path: str | Path,
    network: str,
    placement: Placement,
    *,
    zones: str = "auto",
    sensors: bool = True,
    replace: bool = False,
) -> ImportReport:
    """Import an .inp file as the network ``network``, in one store transaction.

    ``zones``: ``auto`` derives zones when the file tags none, ``tags`` keeps the file's
    tags only. ``sensors`` turns line comments naming sensors (``PRESSURE SENSOR``,
    ``FLOW SENSOR``, ``LEVEL SENSOR``, ``AMR``) into Devices. Without ``replace`` an
    existing network of that name is left alone (AlreadyExists).
    """
    check_network_name(network)
    if zones not in ("auto", "tags"):
        raise ValueError("zones is auto or tags")
    ctx = await water_context()
    existing = await store.get(tenant, network_id(network))
    if existing is not None and not replace:
        raise AlreadyExists(
            f"network {network!r} exists; import with replace to overwrite it",
            instance=network_id(network),
        )
    wn = read_inp(path)
    with Engine.from_text(inp_text(wn, "LPS")) as engine:
        topo = Topology.of(engine)
        tagged = any(wn.get_node(n).tag for n in wn.node_name_list)
        zone_map = derive_zones(topo) if zones == "auto" and not tagged else {}
        report = ImportReport(network, disconnected=disconnected_parts(topo))
    bodies = network_entities(wn, network, placement, zones=zone_map)
    if sensors:
        bodies += _comment_devices(path, network, bodies)
    now = iso_now()
    entities = [parse_entity(body, ctx, now=now) for body in bodies]
    for body in bodies:
        report.counts[body["type"]] = report.counts.get(body["type"], 0) + 1
        if body["type"] == "Junction" and "tag" in body:
            zone = body["tag"]["value"]
            report.zones[zone] = report.zones.get(zone, 0) + 1
    changes = [Change(e["id"], _replacing(e)) for e in entities]
    if existing is not None:
        keep = {e["id"] for e in entities}
        old = await store.query(tenant, _network_filter(network, ctx, _ALL_KINDS), limit=None)
        stale = [e["id"] for e in old.entities if e["id"] not in keep]
        changes += [Change(i, lambda _cur: None) for i in stale]
        report.replaced = len(old.entities)
    # One mutate call is one transaction: the network is there whole or not at all.
    outcomes = await store.mutate(tenant, changes)
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        raise NgsiError(f"the import failed on {failed[0].id}: {failed[0].error}")
    return report


def _replacing(entity: Entity) -> Any:
    def apply(current: Entity | None) -> Entity:
        if current is None:
            return entity
        return {**entity, "createdAt": current["createdAt"]}

    return apply


def _comment_devices(
    path: str | Path, network: str, bodies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    kinds = {(b["type"], b["name"]["value"]): b for b in bodies if "name" in b}
    by_name: dict[tuple[str, str], dict[str, Any]] = {}
    for (kind, name), body in kinds.items():
        group = "node" if kind in NODE_TYPES else "link" if kind in LINK_TYPES else ""
        if group:
            by_name[(group, name)] = body
    devices = []
    for key, note in comments(path).items():
        element = by_name.get(key)
        if element is None:
            continue
        for marker, prop, category in _COMMENT_SENSORS:
            if marker in note.upper() and element["type"] in SENSOR_PROPERTIES[prop]:
                devices.append(sensor_body(network, element, prop, category))
    return devices


def sensor_body(
    network: str, element: dict[str, Any], prop: str, category: str = "sensor"
) -> dict[str, Any]:
    """A Device measuring ``prop`` of a network element (a rendered element body)."""
    name = element["name"]["value"]
    body: dict[str, Any] = {
        "id": element_id("Device", network, f"{prop}-{element['type']}-{name}"),
        "type": "Device",
        "name": {"type": "Property", "value": f"{prop} {category} at {name}"},
        "controlledAsset": {"type": "Relationship", "object": element["id"]},
        "controlledProperty": {"type": "Property", "value": [prop]},
        "deviceCategory": {"type": "Property", "value": [category]},
    }
    location = element.get("location")
    if location and location["value"]["type"] == "Point":
        body["location"] = location
    return body


async def attach_sensor(
    store: EntityStore, tenant: str, network: str, element: str, prop: str, category: str
) -> str:
    """Create the Device for a sensor or meter on an element; its id."""
    kinds = SENSOR_PROPERTIES.get(prop)
    if kinds is None:
        raise BadRequestData(f"a sensor measures one of {', '.join(SENSOR_PROPERTIES)}")
    if category not in ("sensor", "meter"):
        raise BadRequestData("deviceCategory is sensor or meter")
    ctx = await water_context()
    target = None
    for kind in kinds:
        found = await store.get(tenant, element_id(kind, network, element))
        if found is not None:
            target = render_entity(found, ctx)
            break
    if target is None:
        raise ResourceNotFound(
            f"network {network!r} has no {' or '.join(kinds)} {element!r} to carry {prop}"
        )
    body = sensor_body(network, target, prop, category)
    entity = parse_entity(body, ctx, now=iso_now())
    [outcome] = await store.mutate(tenant, [Change(entity["id"], _replacing(entity))])
    if outcome.error is not None:
        raise outcome.error
    return str(entity["id"])


async def load_network(store: EntityStore, tenant: str, network: str) -> list[dict[str, Any]]:
    """Every entity of a network, rendered normalized with WATER_CONTEXT."""
    check_network_name(network)
    ctx = await water_context()
    page = await store.query(tenant, _network_filter(network, ctx, _ALL_KINDS), limit=None)
    bodies = [render_entity(e, ctx) for e in page.entities]
    if not any(b["type"] == "WaterNetwork" for b in bodies):
        raise ResourceNotFound(f"no water network {network!r}", instance=network_id(network))
    return bodies


async def open_network(store: EntityStore, tenant: str, network: str) -> Network:
    """The network as a run needs it, from the store."""
    bodies = await load_network(store, tenant, network)
    try:
        return Network.from_entities(network, bodies)
    except (InpError, ValueError, KeyError) as exc:
        raise BadRequestData(
            f"network {network!r} cannot be built from its entities: {exc}"
        ) from None


async def list_networks(store: EntityStore, tenant: str) -> list[dict[str, Any]]:
    """The WaterNetwork entities of a tenant, rendered."""
    ctx = await water_context()
    flt = EntityFilter(type_names=frozenset({ctx.expand("WaterNetwork")}))
    page = await store.query(tenant, flt, limit=None)
    return [render_entity(e, ctx, fmt="keyValues", omit=_bulky(ctx)) for e in page.entities]


def _bulky(ctx: Context) -> set[str]:
    return {ctx.expand(n) for n in ("epanetOptions", "epanetControls", "epanetSources")}


# -- simulated state -------------------------------------------------------------------


def day_start(moment: datetime | None = None) -> datetime:
    """Midnight UTC of the day of ``moment`` (default now): a run's default clock start."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _instance(value: float, unit: str, when: str) -> dict[str, Any]:
    return {
        "type": "Property",
        "value": round(float(value), 4),
        "unitCode": unit,
        "datasetId": SIMULATED,
        "observedAt": when,
    }


def state_attributes(
    network: Network,
    engine_nodes: list[str],
    engine_links: list[str],
    node_types: Any,
    results: Results,
    row: int,
    when: str,
) -> dict[str, dict[str, Any]]:
    """Entity id -> simulated attributes (compact) at one reported time."""
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(engine_nodes):
        entity = network.node_entities.get(name)
        if entity is None:
            continue
        attrs = {"head": _instance(results.head[row, i], "MTR", when)}
        if node_types[i] == NODE_TANK:
            attrs["level"] = _instance(results.pressure[row, i], "MTR", when)
        attrs["pressure"] = _instance(results.pressure[row, i], "MTR", when)
        if node_types[i] == NODE_JUNCTION:
            attrs["supply"] = _instance(results.consumption[row, i], "G51", when)
        out[entity] = attrs
    for j, name in enumerate(engine_links):
        entity = network.link_entities.get(name)
        if entity is None:
            continue
        attrs = {
            "flow": _instance(results.flow[row, j], "G51", when),
            "velocity": _instance(results.velocity[row, j], "MTS", when),
        }
        if entity.startswith("urn:ngsi-ld:Pump:"):
            attrs["energyUse"] = _instance(results.energy[row, j], "KWT", when)
        out[entity] = attrs
    return out


async def write_state(
    store: EntityStore,
    tenant: str,
    network: Network,
    engine: Engine,
    results: Results,
    *,
    start: datetime,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write a run as the twin's simulated state (the reported time closest to ``now``)
    and, where the store keeps history, every reported time as history."""
    ctx = await water_context()
    moment = now or datetime.now(UTC)
    offset = (moment - start).total_seconds()
    row = int(
        np.clip(np.searchsorted(results.times, offset, side="right") - 1, 0, len(results.times) - 1)
    )
    when = format_utc(start + timedelta(seconds=int(results.times[row])))
    stamp = iso_now()
    attrs = state_attributes(
        network, engine.node_ids, engine.link_ids, engine.node_types, results, row, when
    )
    changes = []
    for entity_id, compact in attrs.items():
        patch = parse_attributes(compact, ctx, now=stamp)
        changes.append(
            Change(
                entity_id, appending(entity_id, patch, stamp, overwrite=True, result=UpdateResult())
            )
        )
    outcomes = await store.mutate(tenant, changes)
    errors = [o for o in outcomes if o.error is not None]
    history = await _write_history(store, tenant, network, engine, results, start, ctx, row)
    return {"stateAt": when, "entities": len(outcomes) - len(errors), "historyRows": history}


async def _write_history(
    store: EntityStore,
    tenant: str,
    network: Network,
    engine: Engine,
    results: Results,
    start: datetime,
    ctx: Context,
    written: int,
) -> int | None:
    importer = getattr(store, "import_history", None)
    if importer is None:
        return None
    from cityverse.store.temporal import ImportRow

    base_ms = int(start.timestamp() * 1000)
    types = {k: (ctx.expand(k),) for k in (*NODE_TYPES, *LINK_TYPES)}
    rows: list[Any] = []
    stamp = iso_now()
    for r, t in enumerate(results.times):
        if r == written:
            continue  # the state written above is in the history already
        when = format_utc(start + timedelta(seconds=int(t)))
        attrs = state_attributes(
            network, engine.node_ids, engine.link_ids, engine.node_types, results, r, when
        )
        for entity_id, compact in attrs.items():
            kind = entity_id.split(":")[2]
            for name, instances in parse_attributes(compact, ctx, now=stamp).items():
                rows.extend(
                    ImportRow(
                        entity_id, types[kind], name, base_ms + int(t) * 1000, inst, SIMULATED
                    )
                    for inst in instances
                )
    return int(await importer(tenant, rows))


def compare_state(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Measured (default instance) beside simulated values, attribute by attribute."""
    out = []
    for body in bodies:
        for prop in ("pressure", "level", "flow", "supply"):
            attr = body.get(prop)
            if attr is None:
                continue
            instances = attr if isinstance(attr, list) else [attr]
            measured = next((i for i in instances if "datasetId" not in i), None)
            simulated = next((i for i in instances if i.get("datasetId") == SIMULATED), None)
            if measured is None:
                continue
            row: dict[str, Any] = {
                "entity": body["id"],
                "attribute": prop,
                "measured": measured.get("value"),
                "measuredAt": measured.get("observedAt"),
                "observedBy": (measured.get("observedBy") or {}).get("object"),
            }
            if simulated is not None:
                row["simulated"] = simulated.get("value")
                row["simulatedAt"] = simulated.get("observedAt")
                if isinstance(row["measured"], int | float):
                    row["difference"] = round(float(row["measured"]) - float(row["simulated"]), 4)
            out.append(row)
    return out
