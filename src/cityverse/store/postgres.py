"""The PostgreSQL + PostGIS store, for deployments with several server processes.

Connections come from a ``psycopg_pool.AsyncConnectionPool``. A ``mutate`` call locks
the rows it reads (``SELECT ... FOR UPDATE``), so concurrent read-modify-write calls on
the same entity serialise; bulk inserts go through ``COPY``. Small calls that arrive
while one of their tenant is being written go together in the next transaction, so that
concurrent requests (a PATCH each) share statements and commits. Each entity also keeps a
``geom`` column, the default instance of its ``location`` GeoProperty, indexed with
GiST for geo-queries.

    store = PostgresStore.from_url("postgresql://cityverse@db/cityverse")
    await store.open()

The URL may carry ``?schema=name`` to keep the tables in their own schema (created if
missing); PostGIS itself always lives in ``public``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
import psycopg
import shapely
from psycopg import errors, sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from cityverse.core.errors import BadRequestData
from cityverse.core.model import LOCATION, Entity
from cityverse.store.base import DEFAULT_TENANT, Change, EntityFilter, Outcome, Page
from cityverse.store.changes import Pager, Plan, Row, chunks, logger, plan_changes, reshaped
from cityverse.store.postgres_outbox import SCHEMA as OUTBOX_SCHEMA
from cityverse.store.postgres_outbox import TABLES as OUTBOX_TABLES
from cityverse.store.postgres_outbox import PostgresOutbox, record_changes
from cityverse.store.postgres_temporal import SCHEMA as HISTORY_SCHEMA
from cityverse.store.postgres_temporal import TABLES as HISTORY_TABLES
from cityverse.store.postgres_temporal import PostgresTemporal, record_history
from cityverse.store.sqlq import postgres_condition

SCHEMA_VERSION = 1
FETCH = 500
COPY_FROM = 50
"""Inserts or updates from this many rows on go through COPY rather than statements."""
COMBINE_BELOW = 50
"""Writes of fewer changes than this are combined with those of other calls (``mutate``)."""
CONNECT_TIMEOUT = 10.0
RETRIES = 5
"""Attempts at a ``mutate`` that collides with a concurrent one (same new id, deadlock)."""
ANALYZE_AFTER = 10_000
"""Rows written (over any number of calls) after which statistics are refreshed, so that
the planner does not keep planning queries for a table a tenth of its size."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (name text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS shapes (tenant text PRIMARY KEY, version bigint NOT NULL);
CREATE TABLE IF NOT EXISTS entities (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text NOT NULL,
    id text NOT NULL,
    types text[] NOT NULL,
    doc jsonb NOT NULL,
    geom public.geometry(Geometry, 4326),
    UNIQUE (tenant, id)
);
CREATE INDEX IF NOT EXISTS entities_tenant_seq ON entities (tenant, seq);
CREATE INDEX IF NOT EXISTS entities_types ON entities USING gin (types);
CREATE INDEX IF NOT EXISTS entities_geom ON entities USING gist (geom);
CREATE TABLE IF NOT EXISTS contexts (
    id text PRIMARY KEY,
    doc jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""

# jsonb cannot hold U+0000; an odd run of backslashes before u0000 is that escape.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class PostgresStore(PostgresTemporal, PostgresOutbox):
    """Entities, their history, subscriptions and @context documents in PostgreSQL,
    geometry in PostGIS."""

    def __init__(self, conninfo: str, *, schema: str | None = None, max_size: int = 8) -> None:
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema name {schema!r} must be a plain SQL identifier")
        self.conninfo = conninfo
        self.schema = schema
        self.max_size = max_size
        self._pool: AsyncConnectionPool | None = None
        # Tenants known to be recorded: never removed, so a write can skip recording them.
        self._tenants: set[str] = set()
        self._unanalyzed = 0
        # Per tenant: the calls waiting for the write under way, and the task writing.
        self._waiting: dict[str, list[tuple[Sequence[Change], asyncio.Future[list[Outcome]]]]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        """A store for ``postgresql://user@host/db``, optionally ``?schema=name``."""
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(
                f"a PostgreSQL store URL looks like postgresql://user@host/db, not {url!r}"
            )
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((value for key, value in query if key == "schema"), None)
        rest = urlencode([(key, value) for key, value in query if key != "schema"])
        # Not urlunsplit: it would drop the empty host of postgresql:///db?host=/socket/dir.
        base = url.split("?", 1)[0].split("#", 1)[0]
        return cls(f"{base}?{rest}" if rest else base, schema=schema)

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, install PostGIS if missing and create the schema (idempotent)."""
        if self._pool is not None:
            return
        pool = AsyncConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=self.max_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
            async with pool.connection() as conn:
                await self._create_schema(conn)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, PoolTimeout):
                raise RuntimeError(await self._why_unreachable()) from exc
            raise
        self._pool = pool

    async def close(self) -> None:
        """Finish the writes under way and close every connection."""
        if self._writers:
            await asyncio.gather(*self._writers.values(), return_exceptions=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self.schema is not None:
            await conn.execute(
                sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema))
            )

    async def _why_unreachable(self) -> str:
        # The pool only reports a timeout; one direct attempt tells the actual reason.
        try:
            conn = await psycopg.AsyncConnection.connect(self.conninfo, connect_timeout=5)
        except psycopg.Error as exc:
            return f"cannot connect to PostgreSQL: {str(exc).strip()}"
        await conn.close()
        return f"PostgreSQL did not accept connections within {CONNECT_TIMEOUT} s"

    async def _create_schema(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction():
            # Several server processes may start at once: one creates, the others wait.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('cityverse schema'))")
            await _ensure_postgis(conn)
            if self.schema is not None:
                await conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
            # Every statement is idempotent: a newer release adds its tables to an old
            # database the same way it creates them in a new one.
            for statement in (_SCHEMA + HISTORY_SCHEMA + OUTBOX_SCHEMA).split(";"):
                if statement.strip():
                    await conn.execute(statement.encode())
            cursor = await conn.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            row = await cursor.fetchone()
            if row is None:
                await conn.execute(
                    "INSERT INTO meta VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),)
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the database has schema version {row[0]}, newer than this CityVerse "
                    f"understands ({SCHEMA_VERSION}); upgrade CityVerse"
                )

    async def clear(self) -> None:
        """Delete every entity, tenant and @context document (tests, demo resets)."""
        async with self._connection() as conn, conn.transaction():
            # Discovery answers kept by any server process are out of date now.
            await conn.execute(
                "INSERT INTO shapes SELECT name, 1 FROM tenants "
                "ON CONFLICT (tenant) DO UPDATE SET version = shapes.version + 1"
            )
            for table in ("entities", "tenants", "contexts", *HISTORY_TABLES, *OUTBOX_TABLES):
                await conn.execute(f"DELETE FROM {table}".encode())
        self._tenants.clear()

    def _connection(self) -> Any:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL store is not open")
        return self._pool.connection()

    # -- reads -------------------------------------------------------------------------

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        """The stored entity, or None."""
        if "\x00" in tenant or "\x00" in entity_id:
            return None
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT doc::text FROM entities WHERE tenant = %s AND id = %s", (tenant, entity_id)
            )
            row = await cursor.fetchone()
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
        pager = Pager(flt, limit, offset, count)
        if pager.done or "\x00" in tenant:
            return pager.page()
        where, params = _selection(tenant, flt)
        if flt.sql_exact:
            return await self._query_exact(pager, where, params)
        # The rest (q, idPattern, ...) is tested in Python on every row, after a superset
        # of it is pushed down where possible.
        pushed = postgres_condition(flt, "doc")
        if pushed is not None:
            where = f"{where} AND {pushed.sql}"
            params.extend(pushed.params)
        query = f"SELECT doc::text FROM entities WHERE {where} ORDER BY seq"
        # A server-side cursor streams the rows and lets the scan stop early.
        async with (
            self._connection() as conn,
            conn.transaction(),
            conn.cursor(name="cityverse_query") as cursor,
        ):
            await cursor.execute(query.encode(), params)
            while rows := await cursor.fetchmany(pager.batch(FETCH)):
                for (doc,) in rows:
                    if pager.feed(doc):
                        return pager.page()
        return pager.page()

    async def _query_exact(self, pager: Pager, where: str, params: list[Any]) -> Page:
        """The page and count computed in SQL: only the page's documents are decoded."""
        paging = pager.limit != 0
        docs: list[Any] = []
        total = None
        async with self._connection() as conn, conn.transaction():
            if paging and pager.count:
                # The page and its count come from one snapshot, as from a single scan.
                await conn.execute(b"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if paging:
                cursor = await conn.execute(
                    f"SELECT doc::text FROM entities WHERE {where} ORDER BY seq "
                    "LIMIT %s OFFSET %s".encode(),
                    [*params, pager.sql_limit, pager.sql_offset],
                )
                docs = await cursor.fetchall()
            if pager.count:
                cursor = await conn.execute(
                    f"SELECT count(*) FROM entities WHERE {where}".encode(), params
                )
                row = await cursor.fetchone()
                total = 0 if row is None else int(row[0])
        return pager.take((doc for (doc,) in docs), total)

    async def tenants(self) -> list[str]:
        """Tenants that hold or held data (the default tenant always exists)."""
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT name FROM tenants")
            rows = await cursor.fetchall()
        return sorted({DEFAULT_TENANT, *(name for (name,) in rows)})

    async def shape_version(self, tenant: str) -> int:
        """A number that grows with every write that may change what discovery tells."""
        if "\x00" in tenant:
            return 0
        async with self._connection() as conn:
            cursor = await conn.execute("SELECT version FROM shapes WHERE tenant = %s", (tenant,))
            row = await cursor.fetchone()
        return 0 if row is None else int(row[0])

    async def get_context(self, context_id: str) -> dict[str, Any] | None:
        """The hosted @context document, or None."""
        if "\x00" in context_id:
            return None
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT doc::text FROM contexts WHERE id = %s", (context_id,)
            )
            row = await cursor.fetchone()
        return None if row is None else orjson.loads(row[0])

    async def list_contexts(self) -> list[tuple[str, dict[str, Any]]]:
        """Every hosted @context document, oldest first."""
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT id, doc::text FROM contexts ORDER BY created_at, id"
            )
            rows = await cursor.fetchall()
        return [(context_id, orjson.loads(doc)) for context_id, doc in rows]

    # -- writes ------------------------------------------------------------------------

    async def put_context(self, context_id: str, document: dict[str, Any]) -> None:
        """Store a hosted @context document under ``context_id`` (replacing)."""
        blob = orjson.dumps(document)
        if "\x00" in context_id or _has_nul(blob):
            raise BadRequestData("a @context stored in PostgreSQL cannot contain U+0000")
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO contexts (id, doc) VALUES (%s, %s::jsonb) ON CONFLICT (id) "
                "DO UPDATE SET doc = excluded.doc, created_at = now()",
                (context_id, blob.decode()),
            )

    async def delete_context(self, context_id: str) -> bool:
        """Delete a hosted @context document; False if there was none."""
        if "\x00" in context_id:
            return False
        async with self._connection() as conn:
            cursor = await conn.execute("DELETE FROM contexts WHERE id = %s", (context_id,))
            return cursor.rowcount > 0

    async def mutate(self, tenant: str, changes: Sequence[Change]) -> list[Outcome]:
        """Apply the changes in one transaction (creating the tenant); one outcome each.

        Small calls that come while one of the same tenant is being written wait for it
        and then go together, in the order they came, in one transaction: many small
        concurrent writes (a PATCH each) share its statements and its commit. Larger
        calls, which share enough already, are written at once, side by side."""
        if not changes:
            return []
        if "\x00" in tenant:
            error = BadRequestData("a tenant name cannot contain U+0000")
            return [Outcome(change.id, error=error) for change in changes]
        if len(changes) >= COMBINE_BELOW:
            return await self._apply(tenant, changes)
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant, []).append((changes, future))
        if tenant not in self._writers:
            task = asyncio.create_task(self._write_waiting(tenant))
            self._writers[tenant] = task
        return await future

    async def _write_waiting(self, tenant: str) -> None:
        calls = None
        try:
            while calls := self._waiting.pop(tenant, None):
                # A caller that went away before its turn is not written.
                calls = [(changes, future) for changes, future in calls if not future.done()]
                if len(calls) > 1:
                    try:
                        outcomes = await self._apply(tenant, [c for cs, _ in calls for c in cs])
                    except Exception as exc:
                        if not _refused(exc):
                            for _, future in calls:
                                _settle(future, exc)
                            continue
                        # One call's changes may be what was refused: each alone, below.
                        logger.debug("combined write refused (%s); writing each call alone", exc)
                    else:
                        for changes, future in calls:
                            _settle(future, outcomes[: len(changes)])
                            outcomes = outcomes[len(changes) :]
                        continue
                for changes, future in calls:
                    try:
                        _settle(future, await self._apply(tenant, changes))
                    except Exception as exc:
                        _settle(future, exc)
        finally:
            del self._writers[tenant]
            # Cancelled (the store or the loop is closing): nobody waits for ever, neither
            # the calls being written nor those that came meanwhile.
            for _, future in [*(calls or []), *self._waiting.pop(tenant, [])]:
                future.cancel()

    async def _apply(self, tenant: str, changes: Sequence[Change]) -> list[Outcome]:
        for attempt in range(RETRIES):
            try:
                async with self._connection() as conn:
                    async with conn.transaction():
                        plan = await _mutate(conn, tenant, changes, tenant in self._tenants)
                    if plan.writes:
                        self._tenants.add(tenant)
                    self._unanalyzed += len(plan.deletes) + len(plan.updates) + len(plan.inserts)
                    if self._unanalyzed >= ANALYZE_AFTER:
                        self._unanalyzed = 0
                        await _analyze(conn)
                    return plan.outcomes
            except (errors.UniqueViolation, errors.DeadlockDetected):
                # A concurrent call created one of our new ids first, or locked rows in
                # another order: run again over what is stored now.
                if attempt == RETRIES - 1:
                    raise
                logger.debug("mutate collided with a concurrent one; retrying")
        raise AssertionError("unreachable")


def _refused(exc: Exception) -> bool:
    """Whether the database refused what was written, rather than could not be reached
    (no connection, or the server going away: SQLSTATE classes 08 and 57)."""
    if not isinstance(exc, psycopg.DatabaseError):
        return False
    unreachable = isinstance(exc, psycopg.OperationalError) and (
        exc.sqlstate is None or exc.sqlstate[:2] in ("08", "57")
    )
    return not unreachable


def _settle(future: asyncio.Future[list[Outcome]], result: list[Outcome] | Exception) -> None:
    """Give a waiting caller its outcomes or the error (unless it went away)."""
    if future.done():
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)


def _selection(tenant: str, flt: EntityFilter) -> tuple[str, list[Any]]:
    """WHERE and parameters that select exactly the tenant's entities passing the
    filter's ``type_names``, ``ids`` and ``attrs`` (none of which can hold U+0000)."""
    where = "tenant = %s"
    params: list[Any] = [tenant]
    if flt.type_names is not None:
        where += " AND types && %s::text[]"
        params.append(sorted(t for t in flt.type_names if "\x00" not in t))
    if flt.ids is not None:
        where += " AND id = ANY(%s::text[])"
        params.append(sorted(i for i in flt.ids if "\x00" not in i))
    if flt.attrs is not None:
        # The keys of the document's attrs member are the entity's attribute names.
        where += " AND doc->'attrs' ?| %s::text[]"
        params.append(sorted(a for a in flt.attrs if "\x00" not in a))
    return where, params


async def _analyze(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await conn.execute("ANALYZE entities")
    except psycopg.Error:
        # The write is committed; stale statistics only make some queries slower.
        logger.warning("could not refresh statistics of the entities table", exc_info=True)


async def _ensure_postgis(conn: psycopg.AsyncConnection[Any]) -> None:
    cursor = await conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
    if await cursor.fetchone() is not None:
        return
    cursor = await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
    if await cursor.fetchone() is None:
        raise RuntimeError(
            "PostGIS is not installed on the PostgreSQL server; install it "
            "(Debian: apt install postgresql-15-postgis-3) and start again"
        )
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public")
    except psycopg.Error as exc:
        raise RuntimeError(
            f"cannot create the PostGIS extension ({exc}); run "
            "'CREATE EXTENSION postgis' in this database as a superuser"
        ) from exc


def _has_nul(blob: bytes) -> bool:
    return b"\\u0000" in blob and _NUL_ESCAPE.search(blob) is not None


def _check(row: Row) -> None:
    if _has_nul(row.blob):
        raise BadRequestData(f"entity {row.id!r}: PostgreSQL cannot store the character U+0000")


def _location(entity: Entity) -> bytes | None:
    """The default instance of the location GeoProperty as GeoJSON, or None."""
    instances = entity.get("attrs", {}).get(LOCATION)
    if not instances or not isinstance(instances, list):
        return None
    first = instances[0]
    if not isinstance(first, dict) or "datasetId" in first or first.get("type") != "GeoProperty":
        return None
    value = first.get("value")
    return orjson.dumps(value) if isinstance(value, dict) else None


def _geometries(geojson: list[bytes | None]) -> list[str | None]:
    """GeoJSON geometries as hex EWKB (SRID 4326); None where absent or unreadable."""
    try:
        # One vectorised GEOS call for the whole batch.
        geometries = shapely.from_geojson(geojson, on_invalid="ignore")
        wkb = shapely.to_wkb(
            shapely.set_srid(geometries, 4326), hex=True, output_dimension=2, include_srid=True
        )
        return [None if w is None else str(w) for w in wkb]
    except Exception:
        if len(geojson) == 1:
            # The store keeps what it is given; a geometry GEOS rejects is not indexed.
            return [None]
        return [g for one in geojson for g in _geometries([one])]


def _values(tenant: str, rows: list[Row]) -> list[tuple[str, str, list[str], str, str | None]]:
    """Column values (tenant, id, types, doc, geom) of the rows to write."""
    located = [(i, g) for i, row in enumerate(rows) if (g := _location(row.entity)) is not None]
    geoms: list[str | None] = [None] * len(rows)
    if located:
        for (i, _), geom in zip(located, _geometries([g for _, g in located]), strict=True):
            geoms[i] = geom
    return [
        (tenant, row.id, row.entity["type"], row.blob.decode(), geom)
        for row, geom in zip(rows, geoms, strict=True)
    ]


async def _mutate(
    conn: psycopg.AsyncConnection[Any], tenant: str, changes: Sequence[Change], known: bool
) -> Plan:
    ids = sorted({change.id for change in changes})
    stored: dict[str, Entity] = {}
    for part in chunks(ids):
        cursor = await conn.execute(
            "SELECT id, doc::text FROM entities WHERE tenant = %s AND id = ANY(%s) "
            "ORDER BY id FOR UPDATE",
            (tenant, [i for i in part if "\x00" not in i]),
        )
        for entity_id, doc in await cursor.fetchall():
            stored[entity_id] = orjson.loads(doc)
    plan = plan_changes(changes, stored, _check)
    if not plan.writes:
        return plan
    if plan.deletes:
        await conn.execute(
            "DELETE FROM entities WHERE tenant = %s AND id = ANY(%s)", (tenant, plan.deletes)
        )
    if len(plan.updates) >= COPY_FROM:
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS entity_updates (tenant text, id text, types text[], "
            "doc jsonb, geom public.geometry) ON COMMIT DELETE ROWS"
        )
        await _copy(conn, "entity_updates", _values(tenant, plan.updates))
        await conn.execute(
            "UPDATE entities e SET types = u.types, doc = u.doc, geom = u.geom "
            "FROM entity_updates u WHERE e.tenant = u.tenant AND e.id = u.id"
        )
    elif plan.updates:
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "UPDATE entities SET types = %s, doc = %s::jsonb, geom = %s::public.geometry "
                "WHERE tenant = %s AND id = %s",
                [(t, doc, geom, tn, i) for tn, i, t, doc, geom in _values(tenant, plan.updates)],
            )
    if len(plan.inserts) >= COPY_FROM:
        await _copy(conn, "entities", _values(tenant, plan.inserts))
    elif plan.inserts:
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO entities (tenant, id, types, doc, geom) "
                "VALUES (%s, %s, %s, %s::jsonb, %s::public.geometry)",
                _values(tenant, plan.inserts),
            )
    if not known:
        await conn.execute(
            "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,)
        )
    # History and notifications commit with the state they describe, or not at all.
    await record_history(conn, tenant, plan.outcomes)
    await record_changes(conn, tenant, plan.outcomes)
    if reshaped(plan.outcomes):
        # Last, so that the row is locked only until the commit that follows.
        await conn.execute(
            "INSERT INTO shapes VALUES (%s, 1) "
            "ON CONFLICT (tenant) DO UPDATE SET version = shapes.version + 1",
            (tenant,),
        )
    return plan


async def _copy(
    conn: psycopg.AsyncConnection[Any],
    table: str,
    rows: list[tuple[str, str, list[str], str, str | None]],
) -> None:
    statement = f"COPY {table} (tenant, id, types, doc, geom) FROM STDIN"
    async with conn.cursor() as cursor, cursor.copy(statement.encode()) as copy:
        for row in rows:
            await copy.write_row(row)
