"""History of entities in the sqlite store: the TemporalStore half of it.

Layout (times are epoch milliseconds, see ``store/history.py``):

- ``history_entities``: each entity that has or had history (types and scope as JSON,
  ``deleted_at`` once deleted), numbered by ``hid`` in the order they appeared.
- ``history_series``: one row per (entity, attribute, datasetId), numbered by ``sid``;
  ``''`` stands for the default instance. ``template`` is the first document the series
  held: an instance whose document is the same (a sensor's type and unitCode, reading
  after reading) stores NULL instead.
- ``history_instances``: a ``WITHOUT ROWID`` table whose key (sid, observed, iid) keeps
  each series' instances together in observation order, so a window or a lastN reads
  contiguous pages. A number is kept in ``num`` (untyped, so integers stay integers)
  rather than in the document, so that aggregation runs in SQL. ``iid`` comes from
  ``history_counter`` and makes the instanceId.
- ``history_hourly`` / ``history_daily``: rollups per series and UTC hour/day (see
  ``store/timeseries.py``), kept exact by every write.

Writes run on the store's writer thread, inside its transaction; reads on pooled readers.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from cityverse.core.model import Instance
from cityverse.store import timeseries as ts
from cityverse.store.base import EntityFilter, Outcome
from cityverse.store.changes import chunks
from cityverse.store.history import (
    NO_TIME,
    EntityHistory,
    Record,
    instance_number,
    now_ms,
    record,
    split_number,
)
from cityverse.store.states import StateSearch
from cityverse.store.temporal import (
    AttributeHistory,
    Bucket,
    HistoryEntity,
    HistoryPage,
    ImportChunk,
    ImportRow,
    Period,
    TimeWindow,
)
from cityverse.store.timeseries import Aggregation, Pager, Partial, Segments

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS history_entities (
    hid INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    types TEXT NOT NULL,
    scope TEXT,
    deleted_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS history_entities_tenant_id ON history_entities (tenant, id);
CREATE TABLE IF NOT EXISTS history_series (
    sid INTEGER PRIMARY KEY,
    hid INTEGER NOT NULL,
    attr TEXT NOT NULL,
    dataset TEXT NOT NULL,
    template BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS history_series_key ON history_series (hid, attr, dataset);
CREATE TABLE IF NOT EXISTS history_instances (
    sid INTEGER NOT NULL,
    observed INTEGER NOT NULL,
    iid INTEGER NOT NULL,
    created INTEGER,
    modified INTEGER,
    deleted INTEGER,
    num,
    doc BLOB,
    PRIMARY KEY (sid, observed, iid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_hourly (
    sid INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    cnt INTEGER NOT NULL,
    n INTEGER NOT NULL,
    s REAL NOT NULL,
    ss REAL NOT NULL,
    mn REAL,
    mx REAL,
    PRIMARY KEY (sid, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_daily (
    sid INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    cnt INTEGER NOT NULL,
    n INTEGER NOT NULL,
    s REAL NOT NULL,
    ss REAL NOT NULL,
    mn REAL,
    mx REAL,
    PRIMARY KEY (sid, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_counter (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""
"""Tables and indexes of the history, created with the store's own."""

IMPORT_CHUNK = 100_000
"""Instances per transaction of a bulk import."""
FEW = 8
"""Entities or series up to which a write looks each up alone rather than in bulk."""

_INSERT = (
    "INSERT INTO history_instances (sid, observed, iid, created, modified, deleted, num, doc) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_RANGES = (
    "WITH r(k, lo, hi) AS (SELECT value ->> '$[0]', value ->> '$[1]', value ->> '$[2]' "
    "FROM json_each(?)) "
)
# total() rather than sum(): num keeps integers as integers, and total() never overflows.
_RAW = "count(*), count(num), total(num), total(num * num), min(num), max(num)"
# For distinctCount: the number, else the value member as JSON text. A row without its
# own document holds the series' template, given as the parameter (once per member).
_DISTINCT = (
    ", count(DISTINCT coalesce(num, "
    + ", ".join(f"CAST(coalesce(doc, ?) AS TEXT) -> '$.{m}'" for m in ts.VALUE_MEMBERS)
    + "))"
)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _ranges(segments: list[ts.Segment]) -> str:
    return _json([(k, lo, hi) for k, lo, hi in segments])


class SqliteTemporal:
    """TemporalStore methods, mixed into the sqlite store."""

    if TYPE_CHECKING:

        async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T: ...

        def _read(self, fn: Callable[..., T], *args: Any) -> T: ...

        def _check_open(self) -> None: ...

    async def _reading(self, fn: Callable[..., T], *args: Any) -> T:
        self._check_open()
        return await asyncio.to_thread(self._read, fn, *args)

    async def history_entities(
        self,
        tenant: str,
        flt: EntityFilter,
        *,
        limit: int | None,
        offset: int = 0,
        count: bool = False,
        window: TimeWindow | None = None,
    ) -> HistoryPage:
        """Entities with history matching ``flt``, predicates tested on the states they
        held in ``window``, oldest first."""
        search = StateSearch.of(flt, window, now=now_ms())
        return await self._reading(_history_entities, tenant, search, limit, offset, count)

    async def instances(
        self,
        tenant: str,
        entity_id: str,
        attrs: frozenset[str] | None,
        window: TimeWindow,
        *,
        last_n: int | None,
        limit: int,
    ) -> dict[str, AttributeHistory]:
        """Per attribute (all when ``attrs`` is None), its instances in ``window``."""
        return await self._reading(_instances, tenant, entity_id, attrs, window, last_n, limit)

    async def aggregate(
        self,
        tenant: str,
        entity_id: str,
        attrs: frozenset[str] | None,
        window: TimeWindow,
        period: Period | None,
        methods: frozenset[str],
    ) -> dict[str, list[Bucket]]:
        """Per attribute, ``methods`` over each period of ``window``."""
        return await self._reading(_aggregate, tenant, entity_id, attrs, window, period, methods)

    async def append_history(
        self, tenant: str, entity_id: str, types: list[str], attrs: dict[str, list[Instance]]
    ) -> None:
        """Add instances to an entity's history (creating it), leaving the current
        entity alone."""
        now = now_ms()
        records = [record(name, i, now) for name, instances in attrs.items() for i in instances]
        change = EntityHistory(entity_id, list(types), None, None, records)
        await self._write(lambda conn: _append(conn, tenant, [change], merge_types=True))

    async def delete_history(
        self,
        tenant: str,
        entity_id: str,
        attr: str | None = None,
        *,
        dataset_id: str | None = None,
        delete_all: bool = False,
    ) -> bool:
        """Delete an entity's whole history, or one attribute's; False if there was none."""
        return await self._write(
            lambda conn: _delete_history(conn, tenant, entity_id, attr, dataset_id, delete_all)
        )

    async def modify_instance(
        self, tenant: str, entity_id: str, attr: str, instance_id: str, instance: Instance
    ) -> bool:
        """Replace one history instance, keeping its instanceId; False if not found."""
        number_ = instance_number(instance_id)
        if number_ is None:
            return False
        replacement = record(attr, instance, now_ms())
        return await self._write(
            lambda conn: _modify(conn, tenant, entity_id, attr, number_, replacement)
        )

    async def delete_instance(
        self, tenant: str, entity_id: str, attr: str, instance_id: str
    ) -> bool:
        """Delete one history instance; False if not found."""
        number_ = instance_number(instance_id)
        if number_ is None:
            return False
        return await self._write(lambda conn: _modify(conn, tenant, entity_id, attr, number_, None))

    async def import_history(self, tenant: str, rows: Iterable[ImportRow]) -> int:
        """Add many instances at storage speed; returns how many were added.

        Rows are taken in chunks (read and prepared in a worker thread while the writer
        stores the previous chunk); each chunk commits with its rollups, so an
        interrupted import keeps whole chunks only.
        """
        self._check_open()
        return await self.import_chunks(tenant, ts.prepared_chunks(rows, now_ms(), IMPORT_CHUNK))

    async def import_chunks(self, tenant: str, chunks: AsyncIterable[ImportChunk]) -> int:
        """Add prepared chunks, each in one transaction; the next chunk is awaited while
        the writer stores the one before."""
        self._check_open()
        added = 0
        pending: asyncio.Future[int] | None = None
        try:
            async for chunk in chunks:
                if pending is not None:
                    stored, pending = pending, None
                    added += await stored
                if chunk.size:
                    pending = asyncio.ensure_future(self._write(_importer(tenant, chunk)))
            if pending is not None:
                stored, pending = pending, None
                added += await stored
            return added
        finally:
            if pending is not None:
                # Reading failed while the writer stored the previous chunk: let it finish.
                await asyncio.shield(pending)

    async def apply_retention(self, tenant: str, keep: dict[str, int], now: int) -> int:
        """Delete instances older than ``now - keep[type]`` (type ``*``: every other
        type); returns how many were deleted. Rollups stay exact."""
        if not keep:
            return 0
        return await self._write(lambda conn: _retention(conn, tenant, keep, now))


def record_history(conn: Any, tenant: str, outcomes: list[Outcome]) -> None:
    """Append the instances the committed outcomes created, in their transaction."""
    changes = ts.changes_of(outcomes)
    if changes:
        _append(conn, tenant, changes, merge_types=False)


# -- writes (on the writer thread, inside its transaction) --------------------------------


_Key = tuple[int, str, str]
"""A series: (hid, attribute, datasetId or '')."""

KNOWN_LIMIT = 1_000_000
"""Most series the writer remembers before it starts over."""


class Known:
    """What the writer connection knows of the history's entity and series rows, so
    that a live write to known series looks nothing up: per entity its hid and the row
    last written, per series its sid, per sid its template.

    It only ever learns what its own writes wrote. It forgets everything when a write
    fails (the rows it learnt may have been rolled back), when history rows are deleted,
    and when another connection has committed (``PRAGMA data_version``: another server
    process on the same file); an import or appended history forgets the entities whose
    types it merges. Forgetting costs lookups, never correctness.
    """

    def __init__(self) -> None:
        self.entities: dict[tuple[str, str], tuple[int, tuple[Any, ...]]] = {}
        self.sids: dict[_Key, int] = {}
        self.templates: dict[int, bytes | None] = {}
        self._version: int | None = None

    def begin(self, conn: sqlite3.Connection) -> None:
        """At the start of a write transaction: forget if another connection wrote."""
        (version,) = conn.execute("PRAGMA data_version").fetchone()
        if version != self._version or len(self.sids) > KNOWN_LIMIT:
            self.forget()
            self._version = version

    def forget(self) -> None:
        """Forget every row (after a rollback, a deletion or an import)."""
        self.entities.clear()
        self.sids.clear()
        self.templates.clear()


class WriterConnection(sqlite3.Connection):
    """The writer thread's connection, with what it knows of the history's rows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known = Known()


def _known(conn: sqlite3.Connection) -> Known:
    """The writer's memory, or an empty one for any other connection."""
    return conn.known if isinstance(conn, WriterConnection) else Known()


def _forget(conn: sqlite3.Connection) -> None:
    if isinstance(conn, WriterConnection):
        conn.known.forget()


class _Series:
    """The series rows are written to: their sids and the document each one omits."""

    def __init__(self, conn: sqlite3.Connection, keys: set[_Key]) -> None:
        known = _known(conn)
        self.sids = known.sids
        self.templates = known.templates
        self._new: list[tuple[bytes, int]] = []
        missing = [key for key in keys if key not in self.sids]
        if len(missing) <= FEW:
            # The usual live write: a lookup (or an insert) per series not yet known.
            for key in sorted(missing):
                row = conn.execute(
                    "SELECT sid, template FROM history_series "
                    "WHERE hid = ? AND attr = ? AND dataset = ?",
                    key,
                ).fetchone()
                if row is None:
                    row = conn.execute(
                        "INSERT INTO history_series (hid, attr, dataset) VALUES (?, ?, ?) "
                        "RETURNING sid, template",
                        key,
                    ).fetchone()
                self.sids[key] = row[0]
                self.templates[row[0]] = row[1]
            return
        ordered = sorted(missing)
        conn.executemany(
            "INSERT OR IGNORE INTO history_series (hid, attr, dataset) VALUES (?, ?, ?)", ordered
        )
        rows = conn.execute(
            "SELECT hid, attr, dataset, sid, template FROM history_series "
            "WHERE hid IN (SELECT value FROM json_each(?))",
            (_json(sorted({hid for hid, _, _ in ordered})),),
        )
        for hid, attr, dataset, sid, template in rows:
            self.sids[(hid, attr, dataset)] = sid
            self.templates[sid] = template

    def doc(self, sid: int, doc: bytes) -> bytes | None:
        """What a row stores for ``doc``: None when it is the series' template (the
        first document the series held), so that a sensor's repeated metadata is kept
        once."""
        template = self.templates.get(sid)
        if template is None:
            self.templates[sid] = doc
            self._new.append((doc, sid))
            return None
        return None if template == doc else doc

    def save(self, conn: sqlite3.Connection) -> None:
        """Store the templates given to new series."""
        if self._new:
            conn.executemany(
                "UPDATE history_series SET template = ? WHERE sid = ? AND template IS NULL",
                self._new,
            )
            self._new.clear()


def _append(
    conn: sqlite3.Connection, tenant: str, changes: list[EntityHistory], *, merge_types: bool
) -> None:
    hids = _entities(conn, tenant, changes, merge_types)
    records = [(hids[change.id], r) for change in changes for r in change.records]
    if records:
        series = _Series(conn, {(hid, r.attr, r.dataset_id or "") for hid, r in records})
        iid = _take_ids(conn, len(records))
        rows = []
        sids = series.sids
        for i, (hid, r) in enumerate(records, start=iid):
            sid = sids[(hid, r.attr, r.dataset_id or "")]
            doc, num = split_number(r.instance)
            rows.append(
                (sid, r.observed, i, r.created, r.modified, r.deleted, num, series.doc(sid, doc))
            )
        series.save(conn)
        _insert(conn, rows)
    if merge_types:
        # mutate records the tenant itself; a temporal write must too.
        conn.execute("INSERT OR IGNORE INTO tenants (name) VALUES (?)", (tenant,))


def _insert(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert new instance rows and add their figures to the rollups. The rows are
    staged in a temporary table, so that the insert in key order and the rollups'
    sums run in SQL rather than row by row in Python."""
    if len(rows) <= FEW:
        # An update of a few attributes: the statements themselves cost less.
        conn.executemany(_INSERT, rows)
        timed = [(row[0], row[1], row[6]) for row in rows if row[1] != NO_TIME]
        for table, params in ts.increments(timed).items():
            conn.executemany(ts.UPSERTS[table], params)
        return
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS history_staged (sid INTEGER, observed INTEGER, "
        "iid INTEGER, created INTEGER, modified INTEGER, deleted INTEGER, num, doc BLOB)"
    )
    conn.executemany(_INSERT.replace("history_instances", "temp.history_staged"), rows)
    conn.execute(
        "INSERT INTO history_instances SELECT * FROM temp.history_staged "
        "ORDER BY sid, observed, iid"
    )
    _roll_up(conn, "observed", _RAW, f"temp.history_staged WHERE observed <> {NO_TIME}")
    conn.execute("DELETE FROM temp.history_staged")


def _entities(
    conn: sqlite3.Connection, tenant: str, changes: list[EntityHistory], merge_types: bool
) -> dict[str, int]:
    """Record the entities (types, scope, deletion) and return their hids. With
    ``merge_types`` the types are added to those known and nothing else changes."""
    final = {change.id: change for change in changes}
    known = _known(conn).entities
    if merge_types:
        # Types merged with those stored make rows the writer has not seen.
        for entity_id in final:
            known.pop((tenant, entity_id), None)
        conn.executemany(
            "INSERT INTO history_entities (tenant, id, types) VALUES (?, ?, '[]') "
            "ON CONFLICT (tenant, id) DO NOTHING",
            [(tenant, entity_id) for entity_id in final],
        )
        return _merge_types(conn, tenant, final)
    hids: dict[str, int] = {}
    changed: dict[str, tuple[Any, ...]] = {}
    for c in final.values():
        row = _entity_row(tenant, c)
        seen = known.get((tenant, c.id))
        if seen is not None and seen[1] == row:
            hids[c.id] = seen[0]
        else:
            changed[c.id] = row
    if len(changed) <= FEW:
        # The usual live write: one statement per entity whose row changed, if any.
        for entity_id, row in changed.items():
            (hids[entity_id],) = conn.execute(
                "INSERT INTO history_entities (tenant, id, types, scope, deleted_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, id) DO UPDATE SET "
                "types = excluded.types, scope = excluded.scope, "
                "deleted_at = excluded.deleted_at RETURNING hid",
                row,
            ).fetchone()
    else:
        conn.executemany(
            "INSERT INTO history_entities (tenant, id, types, scope, deleted_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, id) DO UPDATE SET "
            "types = excluded.types, scope = excluded.scope, deleted_at = excluded.deleted_at "
            "WHERE (types, scope, deleted_at) IS NOT (excluded.types, excluded.scope, "
            "excluded.deleted_at)",
            list(changed.values()),
        )
        for entity_id, hid, _ in _stored_entities(conn, tenant, list(changed)):
            hids[entity_id] = hid
    for entity_id, row in changed.items():
        known[(tenant, entity_id)] = (hids[entity_id], row)
    return hids


def _merge_types(
    conn: sqlite3.Connection, tenant: str, final: dict[str, EntityHistory]
) -> dict[str, int]:
    """Add each entity's types to those its (existing) row holds; their hids."""
    hids: dict[str, int] = {}
    updates = []
    for entity_id, hid, types in _stored_entities(conn, tenant, list(final)):
        hids[entity_id] = hid
        stored = orjson.loads(types)
        merged = list(dict.fromkeys([*stored, *final[entity_id].types]))
        if merged != stored:
            updates.append((_json(merged), hid))
    if updates:
        conn.executemany("UPDATE history_entities SET types = ? WHERE hid = ?", updates)
    return hids


def _stored_entities(
    conn: sqlite3.Connection, tenant: str, ids: list[str]
) -> list[tuple[str, int, str]]:
    """(id, hid, types) of the entities' history rows."""
    rows: list[tuple[str, int, str]] = []
    for part in chunks(ids):
        rows += conn.execute(
            "SELECT id, hid, types FROM history_entities WHERE tenant = ? "
            f"AND id IN ({','.join('?' * len(part))})",
            (tenant, *part),
        ).fetchall()
    return rows


def _entity_row(tenant: str, c: EntityHistory) -> tuple[Any, ...]:
    scope = None if c.scope is None else _json(c.scope)
    return (tenant, c.id, _json(c.types), scope, c.deleted_at)


def _take_ids(conn: sqlite3.Connection, count: int) -> int:
    """Reserve ``count`` instance numbers; returns the first. Numbers are never reused."""
    (top,) = conn.execute(
        "INSERT INTO history_counter (name, value) VALUES ('instance', ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value RETURNING value",
        (count,),
    ).fetchone()
    return int(top) - count + 1


def _rebuild(conn: sqlite3.Connection, sid: int, lo: int, hi: int) -> None:
    for statement, params in ts.rebuild_steps(sid, lo, hi, _RAW):
        conn.execute(statement, params)


def _entity_series(
    conn: sqlite3.Connection, tenant: str, entity_id: str
) -> tuple[int | None, list[tuple[int, str, str]]]:
    row = conn.execute(
        "SELECT hid FROM history_entities WHERE tenant = ? AND id = ?", (tenant, entity_id)
    ).fetchone()
    if row is None:
        return None, []
    series = conn.execute(
        "SELECT sid, attr, dataset FROM history_series WHERE hid = ? ORDER BY attr, dataset",
        (row[0],),
    ).fetchall()
    return row[0], series


def _drop_series(conn: sqlite3.Connection, sids: list[int]) -> None:
    _forget(conn)
    for table in ("history_instances", "history_hourly", "history_daily", "history_series"):
        conn.executemany(f"DELETE FROM {table} WHERE sid = ?", [(sid,) for sid in sids])


def _delete_history(
    conn: sqlite3.Connection,
    tenant: str,
    entity_id: str,
    attr: str | None,
    dataset_id: str | None,
    delete_all: bool,
) -> bool:
    hid, series = _entity_series(conn, tenant, entity_id)
    if hid is None:
        return False
    if attr is None:
        _drop_series(conn, [sid for sid, _, _ in series])
        conn.execute("DELETE FROM history_entities WHERE hid = ?", (hid,))
        return True
    chosen = ts.chosen_series(series, attr, dataset_id, delete_all)
    _drop_series(conn, chosen)
    return bool(chosen)


def _modify(
    conn: sqlite3.Connection,
    tenant: str,
    entity_id: str,
    attr: str,
    iid: int,
    replacement: Record | None,
) -> bool:
    hid, series = _entity_series(conn, tenant, entity_id)
    sids = [sid for sid, name, _ in series if name == attr]
    if hid is None or not sids:
        return False
    found = conn.execute(
        "SELECT sid, observed, created FROM history_instances "
        "WHERE sid IN (SELECT value FROM json_each(?)) AND iid = ?",
        (_json(sids), iid),
    ).fetchone()
    if found is None:
        return False
    sid, observed, created = found
    conn.execute(
        "DELETE FROM history_instances WHERE sid = ? AND observed = ? AND iid = ?",
        (sid, observed, iid),
    )
    if observed != NO_TIME:
        _rebuild(conn, sid, observed, observed)
    if replacement is None:
        return True
    r = replacement
    key = (hid, attr, r.dataset_id or "")
    target = _Series(conn, {key})
    new_sid = target.sids[key]
    doc, num = split_number(r.instance)
    stored = target.doc(new_sid, doc)
    target.save(conn)
    kept = r.created if "createdAt" in r.instance else created
    conn.execute(_INSERT, (new_sid, r.observed, iid, kept, r.modified, r.deleted, num, stored))
    if r.observed != NO_TIME:
        _rebuild(conn, new_sid, r.observed, r.observed)
    return True


def _retention(conn: sqlite3.Connection, tenant: str, keep: dict[str, int], now: int) -> int:
    removed = 0
    entities = conn.execute(
        "SELECT hid, types, deleted_at FROM history_entities WHERE tenant = ?", (tenant,)
    ).fetchall()
    for hid, types, deleted_at in entities:
        kept = ts.kept_for(orjson.loads(types), keep)
        if kept is None:
            continue
        cut = now - kept
        series = conn.execute("SELECT sid FROM history_series WHERE hid = ?", (hid,)).fetchall()
        for (sid,) in series:
            [expire, *rollups] = ts.expire_steps(sid, cut)
            removed += conn.execute(*expire).rowcount
            for statement, params in rollups:
                conn.execute(statement, params)
            _rebuild(conn, sid, cut, cut)
            if conn.execute("SELECT 1 FROM history_instances WHERE sid = ?", (sid,)).fetchone():
                continue
            _drop_series(conn, [sid])
        # A deleted entity whose whole history has expired is forgotten.
        expired = deleted_at is not None and deleted_at < cut
        if (
            expired
            and not conn.execute("SELECT 1 FROM history_series WHERE hid = ?", (hid,)).fetchone()
        ):
            conn.execute("DELETE FROM history_entities WHERE hid = ?", (hid,))
            _forget(conn)
    return removed


# -- bulk import --------------------------------------------------------------------------


def _importer(tenant: str, chunk: ImportChunk) -> Callable[[sqlite3.Connection], int]:
    return lambda conn: _import_chunk(conn, tenant, chunk)


_STAGE_IMPORT = (
    "CREATE TEMP TABLE IF NOT EXISTS import_rows (k INTEGER, observed INTEGER, "
    "created INTEGER, modified INTEGER, deleted INTEGER, num, doc BLOB);"
    "CREATE TEMP TABLE IF NOT EXISTS import_series (k INTEGER PRIMARY KEY, sid INTEGER, "
    "template BLOB);"
    "CREATE TEMP TABLE IF NOT EXISTS import_sums (k INTEGER, hour INTEGER, cnt INTEGER, "
    "n INTEGER, s REAL, ss REAL, mn, mx)"
)
_FROM_STAGED = "FROM temp.import_rows r JOIN temp.import_series m ON m.k = r.k"


def _import_chunk(conn: sqlite3.Connection, tenant: str, chunk: ImportChunk) -> int:
    """Store a prepared chunk. Its rows go as they are into a temporary table; the
    series numbers, the templates and the instance numbers are then set in SQL, and the
    chunk's hourly sums added to the rollups, so that no Python runs per instance here."""
    changes = [EntityHistory(i, list(t), None, None, []) for i, t in ts.chunk_types(chunk).items()]
    hids = _entities(conn, tenant, changes, merge_types=True)
    keys = [(hids[entity_id], attr, dataset) for entity_id, _, attr, dataset in chunk.series]
    series = _Series(conn, set(keys))
    sids = [series.sids[key] for key in keys]
    for statement in _STAGE_IMPORT.split(";"):
        conn.execute(statement)
    now = int(chunk.now)
    conn.executemany(
        "INSERT INTO temp.import_rows (k, observed, num, doc, created, modified) "
        f"VALUES (?, ?, ?, ?, {now}, {now})",
        chunk.rows,
    )
    conn.executemany("INSERT INTO temp.import_rows VALUES (?, ?, ?, ?, ?, ?, ?)", chunk.timed)
    # A new series takes its first document as its template (the document rows equal to
    # it do not repeat).
    fresh = [(k, sid) for k, sid in enumerate(sids) if series.templates.get(sid) is None]
    for k, sid in fresh:
        (template,) = conn.execute(
            "UPDATE history_series SET template = (SELECT doc FROM temp.import_rows "
            "WHERE k = ? ORDER BY rowid LIMIT 1) WHERE sid = ? RETURNING template",
            (k, sid),
        ).fetchone()
        series.templates[sid] = template
    conn.executemany(
        "INSERT INTO temp.import_series VALUES (?, ?, ?)",
        [(k, sid, series.templates[sid]) for k, sid in enumerate(sids)],
    )
    first = _take_ids(conn, chunk.size)
    (lowest,) = conn.execute("SELECT min(rowid) FROM temp.import_rows").fetchone()
    conn.execute(
        "INSERT INTO history_instances (sid, observed, iid, created, modified, deleted, num, "
        "doc) SELECT m.sid, r.observed, ? + r.rowid, r.created, r.modified, r.deleted, r.num, "
        f"CASE WHEN r.doc = m.template THEN NULL ELSE r.doc END {_FROM_STAGED} "
        "ORDER BY m.sid, r.observed, r.rowid",
        (first - lowest,),
    )
    conn.executemany("INSERT INTO temp.import_sums VALUES (?, ?, ?, ?, ?, ?, ?, ?)", chunk.sums)
    _roll_up(
        conn,
        "hour",
        ts.SUMMED_FIGURES,
        "(SELECT m.sid, u.* FROM temp.import_sums u JOIN temp.import_series m ON m.k = u.k) "
        "WHERE true",
    )
    for table in ("import_rows", "import_series", "import_sums"):
        conn.execute(f"DELETE FROM temp.{table}")
    conn.execute("INSERT OR IGNORE INTO tenants (name) VALUES (?)", (tenant,))
    return chunk.size


def _roll_up(conn: sqlite3.Connection, time: str, figures: str, source: str) -> None:
    """Add the figures of ``source``'s rows to the hourly and daily rollups."""
    for statement in ts.rollup_upserts(time, figures, source):
        conn.execute(statement)


# -- reads (on a reader connection, in a worker thread) -----------------------------------


def _history_entities(
    conn: sqlite3.Connection,
    tenant: str,
    search: StateSearch,
    limit: int | None,
    offset: int,
    count: bool,
) -> HistoryPage:
    flt = search.flt
    where = ["h.tenant = ?"]
    params: list[Any] = [tenant]
    if flt.ids is not None:
        where.append("h.id IN (SELECT value FROM json_each(?))")
        params.append(_json(sorted(flt.ids)))
    if flt.type_names is not None:
        where.append(
            "EXISTS (SELECT 1 FROM json_each(h.types) t "
            "WHERE t.value IN (SELECT value FROM json_each(?)))"
        )
        params.append(_json(sorted(flt.type_names)))
    if flt.attrs is not None:
        where.append(
            "EXISTS (SELECT 1 FROM history_series s WHERE s.hid = h.hid "
            "AND s.attr IN (SELECT value FROM json_each(?)))"
        )
        params.append(_json(sorted(flt.attrs)))
    if flt.predicates:
        current = "e.doc"
        join = " LEFT JOIN entities e ON e.tenant = h.tenant AND e.id = h.id"
    else:
        current, join = "NULL", ""
    sql = (
        f"SELECT h.id, h.types, h.scope, h.deleted_at, {current} FROM history_entities h{join} "
        f"WHERE {' AND '.join(where)} ORDER BY h.hid"
    )
    page = Pager(limit, offset, count)
    for entity_id, types, scope, deleted_at, doc in conn.execute(sql, params):
        scopes = None if scope is None else orjson.loads(scope)
        candidate = HistoryEntity(entity_id, orjson.loads(types), deleted_at, scopes)
        if not _selected(conn, tenant, search, candidate, doc):
            continue
        if page.add(candidate):
            break
    return page.result()


def _selected(
    conn: sqlite3.Connection,
    tenant: str,
    search: StateSearch,
    candidate: HistoryEntity,
    doc: bytes | None,
) -> bool:
    verdict = search.quick(candidate, None if doc is None else orjson.loads(doc))
    if verdict is not None:
        return verdict
    series = _series(conn, tenant, candidate.id, search.attrs)
    for screen in search.screens:
        if not any(
            conn.execute(statement, params).fetchone()
            for sid, _, _ in series.get(screen.attr, ())
            for statement, params in search.screen_reads(sid, screen)
        ):
            return False
    fetched = [
        (kind, sid, conn.execute(statement, params).fetchall())
        for found in series.values()
        for sid, _, _ in found
        for kind, statement, params in search.reads(sid)
    ]
    return search.verdict(candidate, series, fetched)


_Found = tuple[int, str | None, bytes | None]
"""A series read: sid, datasetId, template."""


def _series(
    conn: sqlite3.Connection, tenant: str, entity_id: str, attrs: frozenset[str] | None
) -> dict[str, list[_Found]]:
    sql = (
        "SELECT s.sid, s.attr, s.dataset, s.template FROM history_entities h "
        "JOIN history_series s ON s.hid = h.hid WHERE h.tenant = ? AND h.id = ?"
    )
    params: list[Any] = [tenant, entity_id]
    if attrs is not None:
        sql += " AND s.attr IN (SELECT value FROM json_each(?))"
        params.append(_json(sorted(attrs)))
    out: dict[str, list[_Found]] = {}
    for sid, attr, dataset, template in conn.execute(sql + " ORDER BY s.attr, s.dataset", params):
        out.setdefault(attr, []).append((sid, dataset or None, template))
    return out


def _instances(
    conn: sqlite3.Connection,
    tenant: str,
    entity_id: str,
    attrs: frozenset[str] | None,
    window: TimeWindow,
    last_n: int | None,
    limit: int,
) -> dict[str, AttributeHistory]:
    read = ts.InstanceRead.of(window, last_n, limit)
    out: dict[str, AttributeHistory] = {}
    for attr, series in _series(conn, tenant, entity_id, attrs).items():
        answer = read.answer(
            (
                conn.execute(read.statement, read.params(sid)).fetchall(),
                int(conn.execute(*read.count(sid)).fetchone()[0]),
                template,
            )
            for sid, _, template in series
        )
        if answer is not None:
            out[attr] = answer
    return out


def _aggregate(
    conn: sqlite3.Connection,
    tenant: str,
    entity_id: str,
    attrs: frozenset[str] | None,
    window: TimeWindow,
    period: Period | None,
    methods: frozenset[str],
) -> dict[str, list[Bucket]]:
    column, lo, hi = ts.window_bounds(window)
    out: dict[str, list[Bucket]] = {}
    for attr, series in _series(conn, tenant, entity_id, attrs).items():
        spans = [conn.execute(*ts.span_sql(sid, column, lo, hi)).fetchone() for sid, _, _ in series]
        plan = ts.plan_of(spans, window, period, methods)
        if plan is None:
            continue
        buckets: list[Bucket] = []
        for sid, dataset, template in series:
            figures = _series_figures(conn, sid, template, plan)
            buckets.extend(plan.buckets(figures, dataset))
        if buckets:
            out[attr] = buckets
    return out


def _series_figures(
    conn: sqlite3.Connection, sid: int, template: bytes | None, plan: Aggregation
) -> dict[int, Partial]:
    if plan.step is not None:
        column = plan.column
        extra, templates = _distinct(plan.distinct, template)
        rows = conn.execute(
            f"SELECT ({column} - ?) / ?, {_RAW}{extra} FROM history_instances "
            f"WHERE sid = ? AND {column} >= ? AND {column} < ? GROUP BY 1",
            (plan.start, plan.step, *templates, sid, plan.start, plan.end),
        )
        return ts.partials(rows, plan.distinct)
    assert plan.segments is not None
    return _figures(conn, sid, template, plan.column, plan.segments, plan.distinct)


def _distinct(distinct: bool, template: bytes | None) -> tuple[str, tuple[Any, ...]]:
    if not distinct:
        return "", ()
    return _DISTINCT, (template,) * len(ts.VALUE_MEMBERS)


def _figures(
    conn: sqlite3.Connection,
    sid: int,
    template: bytes | None,
    column: str,
    plan: Segments,
    distinct: bool,
) -> dict[int, Partial]:
    out: dict[int, Partial] = {}
    for table, segments in (("history_daily", plan.daily), ("history_hourly", plan.hourly)):
        if segments:
            rows = conn.execute(
                _RANGES + "SELECT r.k, sum(cnt), sum(n), sum(s), sum(ss), min(mn), max(mx) "
                f"FROM r CROSS JOIN {table} d WHERE d.sid = ? AND d.bucket >= r.lo "
                "AND d.bucket < r.hi GROUP BY r.k",
                (_ranges(segments), sid),
            )
            ts.partials(rows, False, out)
    if plan.raw:
        extra, templates = _distinct(distinct, template)
        rows = conn.execute(
            _RANGES + f"SELECT r.k, {_RAW}{extra} FROM r CROSS JOIN history_instances i "
            f"WHERE i.sid = ? AND i.{column} >= r.lo AND i.{column} < r.hi GROUP BY r.k",
            (_ranges(plan.raw), *templates, sid),
        )
        ts.partials(rows, distinct, out)
    return out
