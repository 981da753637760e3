"""The embedded store: one SQLite file in WAL mode.

All writes go through one writer thread fed by a queue. It drains every pending
request, applies them inside one ``BEGIN IMMEDIATE`` transaction (each under its own
savepoint) and commits once, so that many small concurrent updates share one commit.
Point reads run directly on a connection of the calling thread (a primary-key lookup
costs microseconds, less than a thread hop); queries, which may scan, run in worker
threads on pooled reader connections. ``busy_timeout`` lets several server processes
share the file.

    store = SqliteStore.from_url("sqlite:///data/cityverse.db")
    await store.open()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson

from cityverse.core.model import Entity
from cityverse.store.base import DEFAULT_TENANT, Change, EntityFilter, Outcome, Page
from cityverse.store.changes import Pager, chunks, logger, plan_changes, reshaped
from cityverse.store.sqlite_outbox import SCHEMA as OUTBOX_SCHEMA
from cityverse.store.sqlite_outbox import SqliteOutbox, record_changes
from cityverse.store.sqlite_temporal import SCHEMA as HISTORY_SCHEMA
from cityverse.store.sqlite_temporal import SqliteTemporal, WriterConnection, record_history
from cityverse.store.sqlq import sqlite_condition

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
FETCH = 256
WRITER_CACHE_KIB = 32 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entities (
    seq INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS entities_tenant_id ON entities (tenant, id);
CREATE INDEX IF NOT EXISTS entities_tenant_seq ON entities (tenant, seq);
CREATE TABLE IF NOT EXISTS entity_types (
    tenant TEXT NOT NULL,
    type TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (tenant, type, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shapes (tenant TEXT PRIMARY KEY, version INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contexts (
    id TEXT PRIMARY KEY,
    doc BLOB NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
"""

T = TypeVar("T")
_Job = Callable[[sqlite3.Connection], Any]
_Request = tuple[_Job, "concurrent.futures.Future[Any]"]


class SqliteStore(SqliteTemporal, SqliteOutbox):
    """Entities, their history, subscriptions and @context documents in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._point_readers: dict[int, sqlite3.Connection] = {}
        self._idle_readers: list[sqlite3.Connection] = []
        self._closed = True

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        """A store for ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        prefix = "sqlite:///"
        if not url.lower().startswith(prefix) or len(url) == len(prefix):
            raise ValueError(
                f"a SQLite store URL looks like sqlite:///path/to/file.db, not {url!r}"
            )
        path = url[len(prefix) :].split("?", 1)[0]
        if path == ":memory:":
            raise ValueError("the SQLite store needs a file (several connections share it)")
        return cls(path)

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file and schema if needed and start the writer thread."""
        if not self._closed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write_loop, args=(ready,), name=f"sqlite-writer:{self.path.name}"
        )
        self._writer.daemon = True
        self._writer.start()
        await asyncio.wrap_future(ready)
        self._closed = False

    async def close(self) -> None:
        """Finish pending writes, stop the writer thread and close every connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        with self._lock:
            # Readers busy in a query close themselves when they finish.
            for conn in [*self._point_readers.values(), *self._idle_readers]:
                conn.close()
            self._point_readers.clear()
            self._idle_readers.clear()

    # -- reads -------------------------------------------------------------------------

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        """The stored entity, or None."""
        row = (
            self._point_reader()
            .execute("SELECT doc FROM entities WHERE tenant = ? AND id = ?", (tenant, entity_id))
            .fetchone()
        )
        return None if row is None else orjson.loads(row[0])

    async def query(
        self,
        tenant: str,
        flt: EntityFilter,
        *,
        limit: int | None,
        offset: int = 0,
        count: bool = False,
    ) -> Page:
        """Entities matching ``flt`` in creation order; ``limit=None`` returns all."""
        self._check_open()
        return await asyncio.to_thread(self._read, _scan, tenant, flt, limit, offset, count)

    async def tenants(self) -> list[str]:
        """Tenants that hold or held data (the default tenant always exists)."""
        rows = self._point_reader().execute("SELECT name FROM tenants").fetchall()
        return sorted({DEFAULT_TENANT, *(name for (name,) in rows)})

    async def shape_version(self, tenant: str) -> int:
        """A number that grows with every write that may change what discovery tells."""
        row = (
            self._point_reader()
            .execute("SELECT version FROM shapes WHERE tenant = ?", (tenant,))
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    async def get_context(self, context_id: str) -> dict[str, Any] | None:
        """The hosted @context document, or None."""
        row = (
            self._point_reader()
            .execute("SELECT doc FROM contexts WHERE id = ?", (context_id,))
            .fetchone()
        )
        return None if row is None else orjson.loads(row[0])

    async def list_contexts(self) -> list[tuple[str, dict[str, Any]]]:
        """Every hosted @context document, oldest first."""
        rows = self._point_reader().execute("SELECT id, doc FROM contexts ORDER BY created_at, id")
        return [(context_id, orjson.loads(doc)) for context_id, doc in rows]

    # -- writes ------------------------------------------------------------------------

    async def mutate(self, tenant: str, changes: Sequence[Change]) -> list[Outcome]:
        """Apply the changes in one transaction (creating the tenant); one outcome each."""
        if not changes:
            return []
        return await self._write(lambda conn: _mutate(conn, tenant, changes))

    async def put_context(self, context_id: str, document: dict[str, Any]) -> None:
        """Store a hosted @context document under ``context_id`` (replacing)."""
        blob = orjson.dumps(document)
        now = dt.datetime.now(dt.UTC).isoformat()

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO contexts (id, doc, created_at) VALUES (?, ?, ?) ON CONFLICT (id) "
                "DO UPDATE SET doc = excluded.doc, created_at = excluded.created_at",
                (context_id, blob, now),
            )

        await self._write(job)

    async def delete_context(self, context_id: str) -> bool:
        """Delete a hosted @context document; False if there was none."""
        return await self._write(
            lambda conn: (
                conn.execute("DELETE FROM contexts WHERE id = ?", (context_id,)).rowcount > 0
            )
        )

    # -- machinery ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the SQLite store {self.path} is not open")

    def _connect(
        self, factory: type[sqlite3.Connection] = sqlite3.Connection
    ) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, factory=factory
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _point_reader(self) -> sqlite3.Connection:
        # One connection per event-loop thread, used without awaiting in between, so a
        # point read never leaves the loop's thread.
        self._check_open()
        key = threading.get_ident()
        conn = self._point_readers.get(key)
        if conn is None:
            conn = self._connect()
            with self._lock:
                self._point_readers[key] = conn
        return conn

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            conn = self._idle_readers.pop() if self._idle_readers else None
        if conn is None:
            conn = self._connect()
        try:
            return fn(conn, *args)
        finally:
            with self._lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle_readers.append(conn)

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((job, future))
        return await asyncio.wrap_future(future)

    def _write_loop(self, ready: concurrent.futures.Future[None]) -> None:
        conn = None
        try:
            conn = self._connect(WriterConnection)
            assert isinstance(conn, WriterConnection)
            conn.execute("PRAGMA journal_mode = WAL")
            # Bulk writes touch many pages; a larger cache keeps them from spilling early.
            conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
            # Bulk writes stage their rows in temporary tables, emptied in the same
            # transaction: memory, not a file.
            conn.execute("PRAGMA temp_store = MEMORY")
            _create_schema(conn)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            stop = False
            while not stop:
                batch: list[_Request] = []
                request = self._queue.get()
                while request is not None:
                    batch.append(request)
                    try:
                        request = self._queue.get_nowait()
                    except queue.Empty:
                        break
                stop = request is None
                if batch:
                    _run_batch(conn, batch)
        finally:
            conn.close()


def _run_batch(conn: WriterConnection, batch: list[_Request]) -> None:
    """Run queued jobs in one transaction, each under a savepoint, and commit once."""
    results: list[tuple[concurrent.futures.Future[Any], bool, Any]] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.known.begin(conn)
        for job, future in batch:
            # A request whose caller was cancelled before we got to it is dropped; once
            # running, it can no longer be cancelled, so setting its result is safe.
            if not future.set_running_or_notify_cancel():
                continue
            conn.execute("SAVEPOINT job")
            try:
                results.append((future, True, job(conn)))
            except Exception as exc:
                conn.execute("ROLLBACK TO job")
                conn.known.forget()
                results.append((future, False, exc))
            conn.execute("RELEASE job")
        conn.execute("COMMIT")
    except Exception as exc:
        conn.known.forget()
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        logger.exception("SQLite write transaction failed")
        for _, future in batch:
            if future.running():
                future.set_exception(exc)
        return
    for future, ok, value in results:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for statement in (_SCHEMA + HISTORY_SCHEMA + OUTBOX_SCHEMA).split(";"):
        if statement.strip():
            conn.execute(statement)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    elif int(row[0]) > SCHEMA_VERSION:
        conn.execute("ROLLBACK")
        raise RuntimeError(
            f"the store file has schema version {row[0]}, newer than this CityVerse "
            f"understands ({SCHEMA_VERSION}); upgrade CityVerse"
        )
    conn.execute("COMMIT")


def _mutate(conn: sqlite3.Connection, tenant: str, changes: Sequence[Change]) -> list[Outcome]:
    ids = list(dict.fromkeys(change.id for change in changes))
    stored: dict[str, Entity] = {}
    seqs: dict[str, int] = {}
    for part in chunks(ids):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT id, seq, doc FROM entities WHERE tenant = ? AND id IN ({marks})",
            (tenant, *part),
        )
        for entity_id, seq, doc in rows:
            stored[entity_id] = orjson.loads(doc)
            seqs[entity_id] = seq
    plan = plan_changes(changes, stored)
    if not plan.writes:
        return plan.outcomes
    # Type rows are keyed (tenant, type, seq): removing them needs the old types.
    stale = [(tenant, t, seqs[i]) for i in plan.deletes for t in stored[i]["type"]]
    retyped = [r for r in plan.updates if r.entity["type"] != stored[r.id]["type"]]
    stale += [(tenant, t, seqs[r.id]) for r in retyped for t in stored[r.id]["type"]]
    conn.executemany("DELETE FROM entity_types WHERE tenant = ? AND type = ? AND seq = ?", stale)
    if plan.deletes:
        conn.executemany("DELETE FROM entities WHERE seq = ?", [(seqs[i],) for i in plan.deletes])
    if plan.updates:
        conn.executemany(
            "UPDATE entities SET doc = ? WHERE seq = ?",
            [(row.blob.decode(), seqs[row.id]) for row in plan.updates],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO entity_types (tenant, type, seq) VALUES (?, ?, ?)",
            [(tenant, t, seqs[r.id]) for r in retyped for t in r.entity["type"]],
        )
    if plan.inserts:
        # Documents are stored as JSON text so that SQLite's JSON functions, which q
        # push-down uses, parse each one once per row. The writer holds the write
        # lock, so max(seq) + 1 is ours to take.
        (top,) = conn.execute("SELECT coalesce(max(seq), 0) FROM entities").fetchone()
        numbered = list(enumerate(plan.inserts, start=top + 1))
        conn.executemany(
            "INSERT INTO entities (seq, tenant, id, doc) VALUES (?, ?, ?, ?)",
            [(seq, tenant, row.id, row.blob.decode()) for seq, row in numbered],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO entity_types (tenant, type, seq) VALUES (?, ?, ?)",
            [(tenant, t, seq) for seq, row in numbered for t in row.entity["type"]],
        )
    conn.execute("INSERT OR IGNORE INTO tenants (name) VALUES (?)", (tenant,))
    if reshaped(plan.outcomes):
        conn.execute(
            "INSERT INTO shapes VALUES (?, 1) ON CONFLICT DO UPDATE SET version = version + 1",
            (tenant,),
        )
    # History and notifications commit with the state they describe, or not at all.
    record_history(conn, tenant, plan.outcomes)
    record_changes(conn, tenant, plan.outcomes)
    return plan.outcomes


_DOC = "CAST(e.doc AS TEXT)"


class _Select(NamedTuple):
    """The parts of a query over entities ``e``: FROM, WHERE, ORDER BY (creation
    order), the parameters, and the FROM enough to count the rows."""

    source: str
    where: str
    order: str
    params: list[Any]
    counted: str


def _scan(
    conn: sqlite3.Connection,
    tenant: str,
    flt: EntityFilter,
    limit: int | None,
    offset: int,
    count: bool,
) -> Page:
    pager = Pager(flt, limit, offset, count)
    if pager.done:
        return pager.page()
    exact = flt.sql_exact
    select = _selection(tenant, flt, attrs=exact)
    if exact:
        return _scan_exact(conn, pager, select)
    # The rest (q, idPattern, ...) is tested in Python on every row, after a superset
    # of it is pushed down where possible.
    where, params = select.where, select.params
    pushed = sqlite_condition(flt, _DOC)
    if pushed is not None:
        where = f"{where} AND {pushed.sql}"
        params.extend(pushed.params)
    cursor = conn.execute(
        f"SELECT e.doc FROM {select.source} WHERE {where} ORDER BY {select.order}", params
    )
    try:
        while rows := cursor.fetchmany(pager.batch(FETCH)):
            for (doc,) in rows:
                if pager.feed(doc):
                    return pager.page()
    finally:
        cursor.close()
    return pager.page()


def _selection(tenant: str, flt: EntityFilter, *, attrs: bool) -> _Select:
    """The query that selects exactly the tenant's entities passing the filter's
    ``type_names``, ``ids`` and, with ``attrs``, its ``attrs``. A scan that decodes
    every row anyway leaves attrs to Python: testing them here would parse each
    document twice."""
    params: list[Any] = [tenant]
    types = flt.type_names
    counted = None
    if flt.ids is not None:
        # A few ids: look each up, then sort the few rows found.
        source, order = "entities e INDEXED BY entities_tenant_id", "e.seq"
        where = "e.tenant = ? AND e.id IN (SELECT value FROM json_each(?))"
        params.append(_json_list(flt.ids))
    elif types is not None and len(types) == 1:
        # One type: walk the (tenant, type, seq) key in seq order, no sort, early stop.
        source, order = "entity_types t JOIN entities e ON e.seq = t.seq", "t.seq"
        where = "t.tenant = ? AND t.type = ?"
        params.extend(types)
        types = None
        # Each key has its entity (both are written together): the key alone counts.
        counted = "entity_types t"
    else:
        # Walk the tenant's entities in seq order.
        source, order, where = "entities e", "e.seq", "e.tenant = ?"
    if types is not None:
        where += (
            " AND EXISTS (SELECT 1 FROM entity_types t WHERE t.tenant = e.tenant AND t.type IN "
            "(SELECT value FROM json_each(?)) AND t.seq = e.seq)"
        )
        params.append(_json_list(types))
    if attrs and flt.attrs is not None:
        # The keys of the document's attrs member are the entity's attribute names.
        where += (
            f" AND EXISTS (SELECT 1 FROM json_each({_DOC}, '$.attrs') "
            "WHERE key IN (SELECT value FROM json_each(?)))"
        )
        params.append(_json_list(flt.attrs))
        counted = None
    return _Select(source, where, order, params, counted or source)


def _scan_exact(conn: sqlite3.Connection, pager: Pager, select: _Select) -> Page:
    """The page and count computed in SQL: only the page's documents are decoded."""
    source, where, params = select.source, select.where, select.params
    paging = pager.limit != 0
    # The page and its count come from one snapshot, as from a single scan.
    snapshot = paging and pager.count
    if snapshot:
        conn.execute("BEGIN")
    try:
        total = None
        if pager.count:
            (total,) = conn.execute(
                f"SELECT count(*) FROM {select.counted} WHERE {where}", params
            ).fetchone()
        if not paging:
            return pager.take((), total)
        cursor = conn.execute(
            f"SELECT e.doc FROM {source} WHERE {where} ORDER BY {select.order} LIMIT ? OFFSET ?",
            [*params, pager.sql_limit, pager.sql_offset],
        )
        try:
            return pager.take((doc for (doc,) in cursor), total)
        finally:
            cursor.close()
    finally:
        if snapshot and conn.in_transaction:
            conn.execute("COMMIT")


def _json_list(values: frozenset[str]) -> str:
    return orjson.dumps(sorted(values)).decode()
