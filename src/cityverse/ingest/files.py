"""``cityverse import geojson`` and ``cityverse import entities``: files into the twin.

    cityverse import geojson lamps.geojson --type Streetlight --id-property lampId
    cityverse import entities example-normalized.jsonld      # an entity, a list, JSON lines

GeoJSON features become NGSI-LD entities: the id from a property (``--id-property``),
else the feature's id; the type from ``--type``, else the feature's ``type`` property;
the geometry as the ``location`` GeoProperty and the other properties as Properties.
Entity files (Smart Data Models examples, NGSI-LD payloads) hold one entity, an array
of them, or one per line, normalized or keyValues, each with its own ``@context`` or
the one given with ``--context``. Every row that cannot be imported is reported with
its reason; the others are written (replacing an entity of the same id, unless
``--no-overwrite``) in batches of one ``store.mutate`` call.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from cityverse.broker.entities import creation
from cityverse.broker.request import parse_tenant
from cityverse.core.context import Context, ContextResolver
from cityverse.core.entity import iso_now, parse_entity, valid_uri
from cityverse.core.errors import NgsiError
from cityverse.core.model import Entity
from cityverse.settings import Settings
from cityverse.store.base import Change, EntityStore, Mutation, open_store

CHUNK = 1000
"""Entities written per ``store.mutate`` call."""

Row = tuple[str, Any]
"""Where a row comes from (``line 3``, ``feature 7``) and the row, or an Exception."""


@dataclass
class ImportReport:
    """What an import wrote and what it refused, with the reasons."""

    imported: list[str] = field(default_factory=list)
    created: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def lines(self, source: str) -> list[str]:
        """The report as text, for the command line."""
        out = [
            f"imported {len(self.imported)} entities from {source} "
            f"({self.created} new, {len(self.imported) - self.created} replaced); "
            f"rejected {len(self.rejected)}"
        ]
        out += [f"  rejected {where}: {reason}" for where, reason in self.rejected]
        return out


# -- reading ---------------------------------------------------------------------------


def read_json_rows(text: bytes) -> Iterator[Row]:
    """The items of a JSON document (one value or an array), or of JSON lines."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        document = None
        lines = text.splitlines()
        if len(lines) < 2:
            yield "file", ValueError("not valid JSON, nor JSON lines")
            return
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield f"line {number}", orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield f"line {number}", ValueError(f"not valid JSON: {exc}")
        return
    if isinstance(document, list):
        for index, item in enumerate(document, 1):
            yield f"item {index}", item
    else:
        yield "item 1", document


def entity_rows(text: bytes) -> Iterator[Row]:
    """NGSI-LD entities (normalized or keyValues) from an entity file."""
    for where, item in read_json_rows(text):
        if isinstance(item, dict) and item.get("type") in ("FeatureCollection", "Feature"):
            item = ValueError("this is GeoJSON: use 'cityverse import geojson'")
        yield where, item


def feature_rows(
    text: bytes, *, entity_type: str | None = None, id_property: str | None = None
) -> Iterator[Row]:
    """NGSI-LD entities (before parsing) from the features of a GeoJSON document."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        yield "file", ValueError(f"not valid JSON: {exc}")
        return
    if isinstance(document, dict) and document.get("type") == "FeatureCollection":
        features = document.get("features")
        if not isinstance(features, list):
            yield "file", ValueError("a FeatureCollection needs a 'features' array")
            return
    elif isinstance(document, dict) and document.get("type") == "Feature":
        features = [document]
    elif isinstance(document, list):
        features = document
    else:
        yield "file", ValueError("not a GeoJSON Feature or FeatureCollection")
        return
    for index, feature in enumerate(features, 1):
        where = f"feature {index}"
        try:
            yield where, feature_entity(feature, entity_type, id_property)
        except ValueError as exc:
            yield where, exc


def feature_entity(feature: Any, entity_type: str | None, id_property: str | None) -> Any:
    """The NGSI-LD entity (normalized, compact names) of one GeoJSON feature."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise ValueError("not a GeoJSON Feature")
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise ValueError("'properties' must be an object")
    kind = entity_type or props.get("type")
    if not isinstance(kind, str) or not kind:
        raise ValueError("no entity type: give --type or a 'type' property")
    raw_id = props.get(id_property) if id_property else feature.get("id", props.get("id"))
    if raw_id is None or raw_id == "":
        where = f"property {id_property!r}" if id_property else "id (feature id or 'id' property)"
        raise ValueError(f"no entity id: the feature has no {where}")
    entity_id = str(raw_id)
    if not valid_uri(entity_id):
        entity_id = f"urn:ngsi-ld:{kind}:{quote(entity_id, safe=':-._~')}"
    entity: dict[str, Any] = {"id": entity_id, "type": kind}
    for name, value in props.items():
        if name in ("id", "type", id_property) or value is None:
            continue
        entity[name] = {"type": "Property", "value": value}
    geometry = feature.get("geometry")
    if geometry is not None:
        entity["location"] = {"type": "GeoProperty", "value": geometry}
    return entity


# -- writing ---------------------------------------------------------------------------


def _replacing(entity: Entity) -> Mutation:
    def apply(current: Entity | None) -> Entity:
        if current is None:
            return entity
        return {**entity, "createdAt": current["createdAt"]}

    return apply


async def import_rows(
    store: EntityStore,
    tenant: str,
    rows: Iterator[Row],
    contexts: ContextResolver,
    *,
    context: Any = None,
    overwrite: bool = True,
) -> ImportReport:
    """Parse every row into an entity and write the good ones, reporting the others."""
    report = ImportReport()
    default = await contexts.resolve(context)
    pending: list[tuple[str, Change]] = []
    now = iso_now()
    for where, row in rows:
        if isinstance(row, Exception):
            report.rejected.append((where, str(row)))
            continue
        try:
            entity = parse_entity(row, await _context_of(row, contexts, default), now=now)
        except NgsiError as exc:
            report.rejected.append((_named(where, row), exc.detail))
            continue
        except Exception as exc:  # a row must never stop the import
            report.rejected.append((_named(where, row), f"{type(exc).__name__}: {exc}"))
            continue
        mutation = _replacing(entity) if overwrite else creation(entity)
        pending.append((where, Change(entity["id"], mutation)))
        if len(pending) >= CHUNK:
            await _flush(store, tenant, pending, report)
    await _flush(store, tenant, pending, report)
    return report


async def _context_of(row: Any, contexts: ContextResolver, default: Context) -> Context:
    if isinstance(row, dict) and "@context" in row:
        return await contexts.resolve(row["@context"])
    return default


def _named(where: str, row: Any) -> str:
    if isinstance(row, dict) and isinstance(row.get("id"), str):
        return f"{where} ({row['id']})"
    return where


async def _flush(
    store: EntityStore, tenant: str, pending: list[tuple[str, Change]], report: ImportReport
) -> None:
    if not pending:
        return
    outcomes = await store.mutate(tenant, [change for _, change in pending])
    for (where, _), outcome in zip(pending, outcomes, strict=True):
        if outcome.error is not None:
            report.rejected.append((f"{where} ({outcome.id})", outcome.error.detail))
        else:
            report.imported.append(outcome.id)
            if outcome.old is None:
                report.created += 1
    pending.clear()


# -- the command line ------------------------------------------------------------------


def register(commands: Any) -> None:
    """Add the ``geojson`` and ``entities`` kinds to ``cityverse import``."""
    geo = commands.add_parser(
        "geojson",
        help="GeoJSON features as NGSI-LD entities",
        description="Import GeoJSON features: geometry as location, properties as Properties.",
    )
    geo.add_argument("file", help="a .geojson file (FeatureCollection or Feature)")
    geo.add_argument("--type", help="entity type (default: each feature's 'type' property)")
    geo.add_argument("--id-property", help="property holding the entity id (default: feature id)")
    geo.set_defaults(run=_run_geojson)
    entities = commands.add_parser(
        "entities",
        help="NGSI-LD / Smart Data Models entities (JSON, array or JSON lines)",
        description="Import NGSI-LD entities, normalized or keyValues, with their @context.",
    )
    entities.add_argument("file", help="a .json/.jsonld file: an entity, an array, or JSON lines")
    entities.set_defaults(run=_run_entities)
    for parser in (geo, entities):
        parser.add_argument("--context", help="@context URL for rows without their own")
        parser.add_argument("--tenant", default="", help="NGSI-LD tenant (default: the default)")
        parser.add_argument("--store", help="store URL (default: the settings' store)")
        parser.add_argument(
            "--no-overwrite",
            action="store_true",
            help="reject entities whose id exists instead of replacing them",
        )


def _run_geojson(args: argparse.Namespace) -> int:
    def rows(text: bytes) -> Iterator[Row]:
        return feature_rows(text, entity_type=args.type, id_property=args.id_property)

    return _run("geojson", args, rows)


def _run_entities(args: argparse.Namespace) -> int:
    return _run("entities", args, entity_rows)


def _run(kind: str, args: argparse.Namespace, rows: Any) -> int:
    name = f"cityverse import {kind}"
    path = Path(args.file)
    try:
        settings = Settings.from_env(store=args.store)
        text = path.read_bytes()
    except ValueError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{name}: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(_import(settings, args, rows(text)))
    except (NgsiError, ValueError, OSError) as exc:
        detail = exc.detail if isinstance(exc, NgsiError) else str(exc)
        print(f"{name}: {detail}", file=sys.stderr)
        return 2
    for line in report.lines(str(path)):
        print(line)
    return 1 if report.rejected else 0


async def _import(
    settings: Settings, args: argparse.Namespace, rows: Iterator[Row]
) -> ImportReport:
    contexts = ContextResolver(
        timeout=settings.context_timeout, cache_size=settings.context_cache_size
    )
    tenant = parse_tenant(args.tenant)
    store = open_store(settings.store_url)
    await store.open()
    try:
        return await import_rows(
            store,
            tenant,
            rows,
            contexts,
            context=args.context,
            overwrite=not args.no_overwrite,
        )
    finally:
        await store.close()
