"""``cityverse import history FILE``: past readings into the history, at storage speed.

    cityverse import history readings.csv
    cityverse import history berkane.json --tenant berkane --context context.jsonld

Only the history is written (as ``POST /temporal/entities`` would); the current
entities are left alone. Names are expanded with the NGSI-LD core @context, or with the
one ``--context`` names (a JSON-LD file or a URL); a JSON entity's own ``@context`` wins.

CSV (``--format csv``, or a ``.csv`` file): a header row names the columns, then one
instance per row, each a Property. A large file is cut into blocks of whole records,
which ``--workers`` processes parse while this one writes (in the file's order):

==============  ==============================  =============================================
column          also accepted                   holds
==============  ==============================  =============================================
``id``          ``entityId``, ``entity_id``     the entity id, a URI
``type``        ``entityType``, ``entity_type``  the entity type, a name or an IRI
``attribute``   ``attr``, ``attrName``          the attribute name
``observedAt``  ``observed_at``, ``timestamp``  an ISO 8601 date-time with ``Z`` or an offset
``value``                                       a number, ``true``/``false``, JSON (an object,
                                                an array or a "quoted" string) or plain text
``unitCode``    ``unit_code``, ``unit``         optional: a UN/CEFACT unit code
``datasetId``   ``dataset_id``                  optional: the instance's datasetId, a URI
==============  ==============================  =============================================

JSON (``--format json``, or ``.json``/``.jsonld``): an entity or an array of entities
in the temporal representation (GS CIM 009 clause 4.5.7): each attribute an array of
instances, normalized or concise, each with its ``observedAt``; the simplified
representation (clause 4.5.9, ``{"type": "Property", "values": [[value, time], ...]}``)
is read too. A JSON file is read whole; a CSV file streams.

Every row or instance that cannot be imported is reported with its line (or entity and
instance) and the reason; the others are imported.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import csv
import io
import math
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import orjson

from cityverse.broker.request import parse_tenant
from cityverse.core.context import Context, ContextResolver
from cityverse.core.entity import (
    ENTITY_MEMBERS,
    RESERVED_NAMES,
    iso_now,
    parse_attribute,
    valid_name,
    valid_uri,
)
from cityverse.core.errors import BadRequestData, NgsiError
from cityverse.core.model import Instance
from cityverse.settings import Settings
from cityverse.store.base import open_store
from cityverse.store.history import ms_of, now_ms
from cityverse.store.temporal import ImportChunk, ImportRow
from cityverse.store.timeseries import Reading, plain_instance, prepare_readings

LISTED = 20
"""Rejected rows listed one by one on the command line; the rest are counted."""
KEPT = 1000
"""Rejected rows a report keeps (with their reasons) for whoever reads it."""

COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id", "entityid", "entity_id"),
    "type": ("type", "entitytype", "entity_type"),
    "attribute": ("attribute", "attr", "attrname"),
    "observedAt": ("observedat", "observed_at", "timestamp"),
    "value": ("value",),
    "unitCode": ("unitcode", "unit_code", "unit"),
    "datasetId": ("datasetid", "dataset_id"),
}
"""CSV columns: the name used here -> the header names accepted (case-insensitive)."""
REQUIRED = ("id", "type", "attribute", "observedAt", "value")

SIMPLIFIED = {
    "values": ("Property", "value"),
    "objects": ("Relationship", "object"),
    "languageMaps": ("LanguageProperty", "languageMap"),
    "vocabs": ("VocabProperty", "vocab"),
    "valueLists": ("ListProperty", "valueList"),
    "objectLists": ("ListRelationship", "objectList"),
    "jsons": ("JsonProperty", "json"),
}
"""Simplified temporal representation (4.5.9): the member of pairs -> type and member."""


@dataclass
class HistoryReport:
    """What an import read, added and refused, with the reasons."""

    read: int = 0
    """Instances read from the file and handed to the store."""
    imported: int = 0
    """Instances the store added."""
    entities: set[str] = field(default_factory=set)
    rejected: int = 0
    reasons: list[tuple[str, str]] = field(default_factory=list)

    def reject(self, where: str, reason: str) -> None:
        """Count one refused row (keeping the first reasons)."""
        self.rejected += 1
        if len(self.reasons) < KEPT:
            self.reasons.append((where, reason))

    def lines(self, source: str, seconds: float) -> list[str]:
        """The report as text, for the command line."""
        rate = f", {self.imported / seconds:,.0f} instances/s" if seconds > 0 else ""
        out = [
            f"imported {self.imported:,} instances of {len(self.entities):,} entities from "
            f"{source} in {seconds:.1f} s{rate}; rejected {self.rejected:,}"
        ]
        out += [f"  rejected {where}: {reason}" for where, reason in self.reasons[:LISTED]]
        if self.rejected > LISTED:
            out.append(f"  ... and {self.rejected - LISTED:,} more rejected")
        return out


# -- CSV ---------------------------------------------------------------------------------


def csv_columns(header: list[str]) -> dict[str, int]:
    """Where each known column is in ``header``; ValueError when a required one lacks."""
    seen = {name.strip().lower(): i for i, name in enumerate(header)}
    found: dict[str, int] = {}
    for column, names in COLUMNS.items():
        for name in names:
            if name in seen:
                found[column] = seen[name]
                break
    missing = [column for column in REQUIRED if column not in found]
    if missing:
        raise ValueError(
            f"the CSV header {header!r} has no column for {', '.join(missing)} "
            f"(expected {', '.join(REQUIRED)}, optionally unitCode and datasetId)"
        )
    return found


def csv_rows(stream: TextIO, ctx: Context, report: HistoryReport) -> Iterator[ImportRow]:
    """The instances of a CSV file (header first); bad rows go to ``report``."""
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        raise ValueError("the file is empty: a CSV import needs a header row")
    for entity_id, types, attr, observed, value, unit, dataset in _csv_readings(
        reader, header, _Names(ctx), report, 0
    ):
        instance = plain_instance(value, unit, dataset)
        yield ImportRow(entity_id, types, attr, observed, instance, dataset)


def _csv_readings(
    reader: Any, header: list[str], names: _Names, report: HistoryReport, before: int
) -> Iterator[Reading]:
    """The readings of the rows ``reader`` gives under ``header`` (``before``: the
    lines of the file before the reader's first)."""
    columns = csv_columns(header)
    width = len(header)
    at_id, at_type, at_attr = columns["id"], columns["type"], columns["attribute"]
    at_time, at_value = columns["observedAt"], columns["value"]
    at_unit, at_dataset = columns.get("unitCode"), columns.get("datasetId")
    entities = report.entities
    last_text, last_ms = "", 0
    for row in _guarded(reader, before):
        if len(row) != width:
            if not row:
                continue
            report.reject(
                f"line {before + reader.line_num}", f"{len(row)} columns, the header has {width}"
            )
            continue
        try:
            entity_id = names.entity_id(row[at_id])
            types = names.types(row[at_type])
            attr = names.attribute(row[at_attr])
            text = row[at_time]
            if text != last_text:
                last_ms, last_text = ms_of(text.strip()), text
            value = _scalar(row[at_value])
            unit = dataset = None
            if at_unit is not None and row[at_unit]:
                unit = names.unit(row[at_unit])
            if at_dataset is not None and row[at_dataset]:
                dataset = names.dataset(row[at_dataset])
        except (BadRequestData, ValueError) as exc:
            report.reject(f"line {before + reader.line_num}", _reason(exc))
            continue
        entities.add(entity_id)
        report.read += 1
        yield entity_id, types, attr, last_ms, value, unit, dataset


def _guarded(reader: Any, before: int) -> Iterator[list[str]]:
    """The reader's rows; a malformed file stops with the line where it broke."""
    try:
        yield from reader
    except csv.Error as exc:
        raise ValueError(f"line {before + reader.line_num}: {exc}") from None


# -- CSV in parallel: blocks of lines parsed in other processes ------------------------------

BLOCK = 8 << 20
"""Bytes of CSV a parser process turns into one chunk (about 100,000 rows)."""


def csv_blocks(stream: BinaryIO, size: int = BLOCK) -> Iterator[tuple[int, bytes]]:
    """A CSV file's bytes in blocks of about ``size`` that end where a record ends (at a
    line end outside any quoted field), each with the number of its first line."""
    line = 1
    carry = b""
    while data := stream.read(size):
        block = carry + data
        cut = _records_end(block)
        if cut == 0:
            # One record longer than the block: read on.
            carry = block
            continue
        yield line, block[:cut]
        line += block.count(b"\n", 0, cut)
        carry = block[cut:]
    if carry:
        yield line, carry


def _records_end(block: bytes, first: bool = False) -> int:
    """Where the last (or, with ``first``, the first) whole record of ``block`` ends:
    after a line end with an even number of quotes before it; 0 when none does."""
    if b'"' not in block:
        end = block.find(b"\n") if first else block.rfind(b"\n")
        return end + 1
    if first:
        end = block.find(b"\n")
        while end >= 0 and block.count(b'"', 0, end) % 2:
            end = block.find(b"\n", end + 1)
        return end + 1
    end = block.rfind(b"\n")
    while end >= 0 and block.count(b'"', 0, end) % 2:
        end = block.rfind(b"\n", 0, end)
    return end + 1


_parser: tuple[list[str], _Names, int] | None = None
"""In a parser process: the header, the names seen and the import's time."""


def _start_parser(header: list[str], ctx: Context, now: int) -> None:
    global _parser
    _parser = (header, _Names(ctx), now)
    # Ctrl-C reaches the whole process group: the command stops its parsers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _parse_block(line: int, block: bytes) -> tuple[ImportChunk, HistoryReport]:
    """In a parser process: one block's rows as a prepared chunk, and what was refused."""
    assert _parser is not None
    header, names, now = _parser
    report = HistoryReport()
    reader = csv.reader(io.StringIO(block.decode("utf-8", "surrogateescape"), newline=""))
    chunk = prepare_readings(_csv_readings(reader, header, names, report, line - 1), now)
    # The command counts the entities from the chunk's series: the set need not travel.
    report.entities = set()
    return chunk, report


async def parallel_csv_chunks(
    stream: BinaryIO,
    ctx: Context,
    report: HistoryReport,
    workers: int,
    now: int,
    block_size: int = BLOCK,
) -> AsyncIterator[ImportChunk]:
    """The instances of a CSV file as prepared chunks, in the file's order, its blocks
    parsed by ``workers`` processes while the store writes the chunks before."""
    blocks = csv_blocks(stream, block_size)
    first = next(blocks, None)
    if first is None:
        raise ValueError("the file is empty: a CSV import needs a header row")
    _, block = first
    block = block.removeprefix(codecs.BOM_UTF8)
    end = _records_end(block, first=True) or len(block)
    header = next(csv.reader(io.StringIO(block[:end].decode("utf-8", "surrogateescape"))), [])
    csv_columns(header)
    rest = [(1 + block.count(b"\n", 0, end), block[end:])] if block[end:] else []
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_parser,
        initargs=(header, ctx, now),
    )
    try:
        pending: deque[asyncio.Future[tuple[ImportChunk, HistoryReport]]] = deque()
        for line, data in chain(rest, blocks):
            pending.append(loop.run_in_executor(pool, _parse_block, line, data))
            if len(pending) > 2 * workers:
                yield _counted(await pending.popleft(), report)
        while pending:
            yield _counted(await pending.popleft(), report)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _counted(parsed: tuple[ImportChunk, HistoryReport], report: HistoryReport) -> ImportChunk:
    chunk, part = parsed
    report.read += part.read
    report.entities.update(entity_id for entity_id, _, _, _ in chunk.series)
    report.rejected += part.rejected
    report.reasons.extend(part.reasons[: KEPT - len(report.reasons)])
    return chunk


class _Names:
    """Checks and expands the names of rows, once per distinct name."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._ids: dict[str, str] = {}
        self._types: dict[str, tuple[str, ...]] = {}
        self._attrs: dict[str, str] = {}
        self._units: dict[str, str] = {}
        self._datasets: dict[str, str] = {}

    def entity_id(self, text: str) -> str:
        found = self._ids.get(text)
        if found is None:
            found = text.strip()
            if not valid_uri(found) or not _clean(found):
                raise ValueError(f"entity id {text!r} is not an absolute URI")
            self._ids[text] = found
        return found

    def types(self, text: str) -> tuple[str, ...]:
        found = self._types.get(text)
        if found is None:
            name = text.strip()
            if not valid_name(name) or not _clean(name):
                raise ValueError(f"entity type {text!r} is not a valid name or IRI")
            found = self._types[text] = (self.ctx.expand(name),)
        return found

    def attribute(self, text: str) -> str:
        found = self._attrs.get(text)
        if found is None:
            name = text.strip()
            if not valid_name(name) or name in RESERVED_NAMES or not _clean(name):
                raise ValueError(f"attribute name {text!r} is not a valid name or IRI")
            found = self._attrs[text] = self.ctx.expand(name)
        return found

    def unit(self, text: str) -> str:
        found = self._units.get(text)
        if found is None:
            found = text.strip()
            if not found or not _clean(found):
                raise ValueError(f"unitCode {text!r} is not a unit code")
            self._units[text] = found
        return found

    def dataset(self, text: str) -> str:
        found = self._datasets.get(text)
        if found is None:
            found = text.strip()
            if not valid_uri(found) or not _clean(found):
                raise ValueError(f"datasetId {text!r} is not an absolute URI")
            self._datasets[text] = found
        return found


def _clean(text: str) -> bool:
    # No NUL (PostgreSQL cannot store it) and no undecodable bytes (kept as surrogates).
    return "\x00" not in text and not any("\udc80" <= c <= "\udcff" for c in text)


def _scalar(text: str) -> Any:
    """A CSV value: a number, a boolean, JSON, or the text itself."""
    if not text:
        raise ValueError("the value is empty")
    first = text[0]
    if first in "-+.0123456789":
        try:
            if "." in text or "e" in text or "E" in text:
                number = float(text)
                if math.isfinite(number):
                    return number
            else:
                return int(text)
        except ValueError:
            pass
    elif first in '{["':
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    elif text == "true":
        return True
    elif text == "false":
        return False
    if not _clean(text):
        raise ValueError("the value holds a NUL character or bytes that are not UTF-8")
    return text


def _reason(exc: Exception) -> str:
    return exc.detail if isinstance(exc, NgsiError) else str(exc)


# -- JSON --------------------------------------------------------------------------------


async def json_entities(
    data: bytes, resolver: ContextResolver, default: Context
) -> list[tuple[int, Any, Context | Exception]]:
    """The entities of a temporal JSON document, each with its @context resolved."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the file is not JSON: {exc}") from None
    entities = document if isinstance(document, list) else [document]
    resolved: dict[bytes, Context | Exception] = {}
    out: list[tuple[int, Any, Context | Exception]] = []
    for index, body in enumerate(entities):
        ctx: Context | Exception = default
        if isinstance(body, dict) and "@context" in body:
            key = orjson.dumps(body["@context"], option=orjson.OPT_SORT_KEYS)
            if key not in resolved:
                try:
                    resolved[key] = await resolver.resolve(body["@context"])
                except NgsiError as exc:
                    resolved[key] = exc
            ctx = resolved[key]
        out.append((index, body, ctx))
    return out


def json_rows(
    entities: list[tuple[int, Any, Context | Exception]], report: HistoryReport
) -> Iterator[ImportRow]:
    """The instances of temporal entities; bad entities and instances go to ``report``."""
    now = iso_now()
    for index, body, ctx in entities:
        where = f"entity {index}"
        if isinstance(body, dict) and isinstance(body.get("id"), str):
            where += f" ({body['id']})"
        try:
            if isinstance(ctx, Exception):
                raise ctx
            entity_id, types = _identity(body, ctx)
        except (BadRequestData, ValueError) as exc:
            report.reject(where, _reason(exc))
            continue
        for name, raw in body.items():
            if name in ENTITY_MEMBERS:
                continue
            for n, item in enumerate(_instances(raw)):
                here = f"{where}, attribute {name!r}, instance {n}"
                try:
                    instance = _instance(name, item, ctx, now)
                    observed = ms_of(instance.pop("observedAt"))
                    attr = ctx.expand(name)
                except (BadRequestData, ValueError, KeyError) as exc:
                    reason = (
                        "the instance has no observedAt"
                        if isinstance(exc, KeyError)
                        else (_reason(exc))
                    )
                    report.reject(here, reason)
                    continue
                report.read += 1
                report.entities.add(entity_id)
                yield ImportRow(
                    entity_id, types, attr, observed, instance, instance.get("datasetId")
                )


def _identity(body: Any, ctx: Context) -> tuple[str, tuple[str, ...]]:
    if not isinstance(body, dict):
        raise ValueError("a temporal entity must be a JSON object")
    entity_id = body.get("id")
    if not isinstance(entity_id, str) or not valid_uri(entity_id) or not _clean(entity_id):
        raise ValueError(f"the entity id {entity_id!r} is not an absolute URI")
    raw = body.get("type")
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names:
        raise ValueError("the entity has no type")
    for name in names:
        if not valid_name(name) or not _clean(name):
            raise ValueError(f"entity type {name!r} is not a valid name or IRI")
    return entity_id, tuple(dict.fromkeys(ctx.expand(name) for name in names))


def _instances(raw: Any) -> list[Any]:
    """An attribute's instances: an array, one instance, or simplified pairs."""
    if isinstance(raw, dict):
        for member, (kind, value_member) in SIMPLIFIED.items():
            pairs = raw.get(member)
            if isinstance(pairs, list):
                extra = {k: v for k, v in raw.items() if k not in (member, "type")}
                return [
                    {**extra, "type": kind, value_member: p[0], "observedAt": p[1]}
                    if isinstance(p, list) and len(p) == 2
                    else p
                    for p in pairs
                ]
        return [raw]
    if isinstance(raw, list):
        return raw
    return [raw]


_PLAIN = frozenset({"type", "value", "observedAt", "unitCode", "instanceId"})


def _instance(name: str, item: Any, ctx: Context, now: str) -> Instance:
    if not valid_name(name) or name in RESERVED_NAMES or not _clean(name):
        raise ValueError(f"attribute name {name!r} is not a valid name or IRI")
    if (
        type(item) is dict
        and item.get("type") == "Property"
        and item.keys() <= _PLAIN
        and type(item.get("value")) in (int, float, str, bool)
        and type(item.get("unitCode", "")) is str
    ):
        # The common case, a plain reading: no need for the general parser.
        value = item["value"]
        if type(value) is str and not _clean(value):
            raise ValueError("the value holds a NUL character")
        instance: Instance = {"type": "Property", "value": value}
        if "unitCode" in item:
            instance["unitCode"] = item["unitCode"]
        observed = item.get("observedAt")
        if observed is None:
            raise KeyError("observedAt")
        if not isinstance(observed, str):
            raise ValueError(f"observedAt {observed!r} is not a date-time")
        instance["observedAt"] = observed
        return instance
    if b"\\u0000" in orjson.dumps(item):
        raise ValueError("the instance holds a NUL character")
    instances = parse_attribute(name, item, ctx, now=now)
    if len(instances) != 1:
        raise ValueError("an instance must be one attribute instance")
    [instance] = instances
    instance.pop("createdAt", None)
    instance.pop("modifiedAt", None)
    if "observedAt" not in instance:
        raise KeyError("observedAt")
    return instance


# -- the command line -----------------------------------------------------------------------


def register(commands: Any) -> None:
    """Add the ``history`` kind to ``cityverse import``."""
    parser = commands.add_parser(
        "history",
        help="past readings (CSV or NGSI-LD temporal JSON) into the history",
        description="Import instances into the entities' history, at storage speed. CSV "
        "columns: id, type, attribute, observedAt, value, optionally unitCode and datasetId.",
    )
    parser.add_argument("file", help="a .csv file, or a .json file in the temporal representation")
    parser.add_argument("--store", help="store URL (default: the settings' store)")
    parser.add_argument("--tenant", default="", help="NGSI-LD tenant (default: the default)")
    parser.add_argument(
        "--format", choices=["csv", "json"], help="file format (default: from the extension)"
    )
    parser.add_argument(
        "--context",
        help="@context for short names: a JSON-LD file or a URL (default: the core context)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes that parse a large CSV file while this one writes (default: one per "
        "core; 0: parse here)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """``cityverse import history``: 0 when all was imported, 1 when rows were rejected,
    2 when the import could not run, 130 when it was interrupted (Ctrl-C)."""
    name = "cityverse import history"
    path = Path(args.file)
    kind = args.format or _format_of(path)
    if kind is None:
        print(
            f"{name}: cannot tell the format of {path}: give --format csv or json", file=sys.stderr
        )
        return 2
    if not path.is_file():
        print(f"{name}: cannot read {path}: no such file", file=sys.stderr)
        return 2
    report = HistoryReport()
    started = time.perf_counter()
    try:
        settings = Settings.from_env(store=args.store)
        asyncio.run(_import(settings, args, path, kind, report))
    except (Exception, KeyboardInterrupt) as exc:
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else _failure(exc, path)
        print(f"{name}: {why}", file=sys.stderr)
        if report.read:
            print(
                f"{name}: the import stopped after reading {report.read:,} instances; those "
                "of whole chunks already committed stay in the history",
                file=sys.stderr,
            )
        return 130 if isinstance(exc, KeyboardInterrupt) else 2
    for line in report.lines(str(path), time.perf_counter() - started):
        print(line)
    return 1 if report.rejected else 0


def _failure(exc: Exception, path: Path) -> str:
    if isinstance(exc, NgsiError):
        return exc.detail
    if isinstance(exc, (ValueError, RuntimeError)):
        return str(exc)
    if isinstance(exc, OSError):
        return f"cannot read {path}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _format_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".json", ".jsonld"):
        return "json"
    return None


async def _import(
    settings: Settings, args: argparse.Namespace, path: Path, kind: str, report: HistoryReport
) -> None:
    tenant = parse_tenant(args.tenant)
    resolver = ContextResolver(timeout=settings.context_timeout, cache_size=1)
    ctx = await _context(resolver, args.context)
    entities = await json_entities(path.read_bytes(), resolver, ctx) if kind == "json" else None
    store: Any = open_store(settings.store_url)
    if not hasattr(store, "import_history"):
        raise ValueError(f"the store {settings.store_url} keeps no history")
    await store.open()
    try:
        if entities is not None:
            report.imported = await store.import_history(tenant, json_rows(entities, report))
            return
        if args.workers > 0 and path.stat().st_size > 2 * BLOCK:
            with path.open("rb") as binary:
                chunks = parallel_csv_chunks(binary, ctx, report, args.workers, now_ms())
                report.imported = await store.import_chunks(tenant, chunks)
            return
        with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as stream:
            report.imported = await store.import_history(tenant, csv_rows(stream, ctx, report))
    finally:
        await store.close()


async def _context(resolver: ContextResolver, given: str | None) -> Context:
    if given is None:
        return resolver.core
    path = Path(given)
    if path.is_file():
        try:
            document = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"the @context file {given} is not JSON: {exc}") from None
        return await resolver.resolve(document)
    if "://" not in given:
        raise ValueError(f"--context {given!r} is neither a file nor a URL")
    return await resolver.resolve(given)
