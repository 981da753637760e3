"""History of entities in the postgres store: the TemporalStore half of it.

The layout follows the sqlite store's (see ``store/sqlite_temporal.py``): entities with
history, series per (entity, attribute, datasetId), instances with their times as epoch
milliseconds and numbers in a double column, hourly and daily rollups. Instances are
found through the index (sid, observed, iid) INCLUDE (num): in the order a window or a
lastN reads them, and enough to aggregate raw instances from the index alone. Integers
keep their value in the document too, so that they come back as integers.

Live history commits inside ``mutate``'s transaction; a bulk import COPYs each chunk into
a temporary table, moves it into ``history_instances`` and adds it to the rollups in SQL,
one transaction per chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from itertools import chain
from typing import TYPE_CHECKING, Any

import orjson

from cityverse.core.errors import BadRequestData
from cityverse.core.model import Instance
from cityverse.store import timeseries as ts
from cityverse.store.base import EntityFilter, Outcome
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

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    Conn = AsyncConnection[Any]
else:
    Conn = Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS history_entities (
    hid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text NOT NULL,
    id text NOT NULL,
    types text[] NOT NULL,
    scope text[],
    deleted_at bigint,
    UNIQUE (tenant, id)
);
CREATE TABLE IF NOT EXISTS history_series (
    sid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hid bigint NOT NULL,
    attr text NOT NULL,
    dataset text NOT NULL,
    template text,
    UNIQUE (hid, attr, dataset)
);
CREATE TABLE IF NOT EXISTS history_instances (
    iid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid bigint NOT NULL,
    observed bigint NOT NULL,
    created bigint,
    modified bigint,
    deleted bigint,
    num double precision,
    doc text
);
CREATE INDEX IF NOT EXISTS history_instances_series
    ON history_instances (sid, observed, iid) INCLUDE (num);
CREATE TABLE IF NOT EXISTS history_hourly (
    sid bigint NOT NULL,
    bucket bigint NOT NULL,
    cnt bigint NOT NULL,
    n bigint NOT NULL,
    s double precision NOT NULL,
    ss double precision NOT NULL,
    mn double precision,
    mx double precision,
    PRIMARY KEY (sid, bucket)
);
CREATE TABLE IF NOT EXISTS history_daily (
    sid bigint NOT NULL,
    bucket bigint NOT NULL,
    cnt bigint NOT NULL,
    n bigint NOT NULL,
    s double precision NOT NULL,
    ss double precision NOT NULL,
    mn double precision,
    mx double precision,
    PRIMARY KEY (sid, bucket)
);
"""
"""Tables and indexes of the history, created with the store's own."""

TABLES: tuple[str, ...] = (
    "history_instances",
    "history_hourly",
    "history_daily",
    "history_series",
    "history_entities",
)
"""Tables that ``PostgresStore.clear`` empties."""

IMPORT_CHUNK = 100_000
"""Instances per transaction of a bulk import."""
COPY_FROM = 50
"""Instances from which live history goes through COPY rather than statements."""
ANALYZE_AFTER = 10_000
"""Instances imported at once after which the history tables' statistics are refreshed."""

_COLUMNS = "sid, observed, created, modified, deleted, num, doc"
_INSERT = f"INSERT INTO history_instances ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
_RANGES = "unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS r(k, lo, hi)"
_DISTINCT = (
    ", count(DISTINCT coalesce(num::text, "
    + ", ".join(f"(coalesce(doc, %s)::json -> '{m}')::text" for m in ts.VALUE_MEMBERS)
    + "))"
)


def _has_nul(*texts: str) -> bool:
    return any("\x00" in text for text in texts)


class PostgresTemporal:
    """TemporalStore methods, mixed into the postgres store."""

    if TYPE_CHECKING:
        _tenants: set[str]

        def _connection(self) -> Any: ...

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
        page = Pager(limit, offset, count)
        if _has_nul(tenant):
            return page.result()
        search = StateSearch.of(flt, window, now=now_ms())
        where = ["h.tenant = %s"]
        params: list[Any] = [tenant]
        if flt.ids is not None:
            where.append("h.id = ANY(%s)")
            params.append(sorted(i for i in flt.ids if not _has_nul(i)))
        if flt.type_names is not None:
            where.append("h.types && %s::text[]")
            params.append(sorted(t for t in flt.type_names if not _has_nul(t)))
        if flt.attrs is not None:
            where.append(
                "EXISTS (SELECT 1 FROM history_series s WHERE s.hid = h.hid AND s.attr = ANY(%s))"
            )
            params.append(sorted(a for a in flt.attrs if not _has_nul(a)))
        if flt.predicates:
            current = "e.doc::text"
            join = " LEFT JOIN entities e ON e.tenant = h.tenant AND e.id = h.id"
        else:
            current, join = "NULL", ""
        sql = (
            f"SELECT h.id, h.types, h.scope, h.deleted_at, {current} "
            f"FROM history_entities h{join} WHERE {' AND '.join(where)} ORDER BY h.hid"
        )
        async with (
            self._connection() as conn,
            conn.transaction(),
            conn.cursor(name="cityverse_history") as cursor,
        ):
            await cursor.execute(sql.encode(), params)
            while rows := await cursor.fetchmany(500):
                for entity_id, types, scope, deleted_at, doc in rows:
                    candidate = HistoryEntity(entity_id, types, deleted_at, scope)
                    if not await _selected(conn, tenant, search, candidate, doc):
                        continue
                    if page.add(candidate):
                        return page.result()
        return page.result()

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
        read = ts.InstanceRead.of(window, last_n, limit)
        statement = ts.pg(read.statement).encode()
        out: dict[str, AttributeHistory] = {}
        async with self._connection() as conn:
            for attr, series in (await _series(conn, tenant, entity_id, attrs)).items():
                found = []
                for sid, _, template in series:
                    rows = await (await conn.execute(statement, read.params(sid))).fetchall()
                    found.append((rows, await _one(conn, *read.count(sid)), template))
                answer = read.answer(found)
                if answer is not None:
                    out[attr] = answer
        return out

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
        column, lo, hi = ts.window_bounds(window)
        out: dict[str, list[Bucket]] = {}
        async with self._connection() as conn:
            for attr, series in (await _series(conn, tenant, entity_id, attrs)).items():
                spans = []
                for sid, _, _ in series:
                    cursor = await conn.execute(*_pg(*ts.span_sql(sid, column, lo, hi)))
                    spans.append(await cursor.fetchone() or (None, None))
                plan = ts.plan_of(spans, window, period, methods)
                if plan is None:
                    continue
                buckets: list[Bucket] = []
                for sid, dataset, template in series:
                    figures = await _series_figures(conn, sid, template, plan)
                    buckets.extend(plan.buckets(figures, dataset))
                if buckets:
                    out[attr] = buckets
        return out

    async def append_history(
        self, tenant: str, entity_id: str, types: list[str], attrs: dict[str, list[Instance]]
    ) -> None:
        """Add instances to an entity's history (creating it), leaving the current
        entity alone."""
        datasets = [str(i.get("datasetId") or "") for found in attrs.values() for i in found]
        if _has_nul(tenant, entity_id, *types, *attrs, *datasets):
            raise BadRequestData("PostgreSQL cannot store the character U+0000 in a name")
        now = now_ms()
        records = [record(name, i, now) for name, instances in attrs.items() for i in instances]
        change = EntityHistory(entity_id, list(types), None, None, records)
        async with self._connection() as conn, conn.transaction():
            await _append(conn, tenant, [change], merge_types=True)
            await _remember_tenant(conn, tenant)
        self._tenants.add(tenant)

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
        if _has_nul(tenant, entity_id, attr or "", dataset_id or ""):
            return False
        async with self._connection() as conn, conn.transaction():
            hid, series = await _entity_series(conn, tenant, entity_id, lock=True)
            if hid is None:
                return False
            if attr is None:
                await _drop_series(conn, [sid for sid, _, _ in series])
                await conn.execute("DELETE FROM history_entities WHERE hid = %s", (hid,))
                return True
            chosen = ts.chosen_series(series, attr, dataset_id, delete_all)
            await _drop_series(conn, chosen)
            return bool(chosen)

    async def modify_instance(
        self, tenant: str, entity_id: str, attr: str, instance_id: str, instance: Instance
    ) -> bool:
        """Replace one history instance, keeping its instanceId; False if not found."""
        number = instance_number(instance_id)
        if number is None or _has_nul(tenant, entity_id, attr):
            return False
        replacement = record(attr, instance, now_ms())
        async with self._connection() as conn, conn.transaction():
            return await _modify(conn, tenant, entity_id, attr, number, replacement)

    async def delete_instance(
        self, tenant: str, entity_id: str, attr: str, instance_id: str
    ) -> bool:
        """Delete one history instance; False if not found."""
        number = instance_number(instance_id)
        if number is None or _has_nul(tenant, entity_id, attr):
            return False
        async with self._connection() as conn, conn.transaction():
            return await _modify(conn, tenant, entity_id, attr, number, None)

    async def import_history(self, tenant: str, rows: Iterable[ImportRow]) -> int:
        """Add many instances at storage speed; returns how many were added.

        Each chunk commits with its rollups, so an interrupted import keeps whole chunks.
        """
        return await self.import_chunks(tenant, ts.prepared_chunks(rows, now_ms(), IMPORT_CHUNK))

    async def import_chunks(self, tenant: str, chunks: AsyncIterable[ImportChunk]) -> int:
        """Add prepared chunks, each in one transaction with its rollups."""
        if _has_nul(tenant):
            raise BadRequestData("PostgreSQL cannot store the character U+0000 in a tenant")
        added = 0
        async for chunk in chunks:
            if not chunk.size:
                continue
            async with self._connection() as conn, conn.transaction():
                added += await _import_chunk(conn, tenant, chunk)
                await _remember_tenant(conn, tenant)
            self._tenants.add(tenant)
        if added >= ANALYZE_AFTER:
            # Plans made for the tables as they were (a window scan sorting a whole
            # series for a lastN) would outlive the import until autovacuum ran.
            async with self._connection() as conn:
                await conn.execute(f"ANALYZE {', '.join(TABLES)}".encode())
        return added

    async def apply_retention(self, tenant: str, keep: dict[str, int], now: int) -> int:
        """Delete instances older than ``now - keep[type]`` (type ``*``: every other
        type); returns how many were deleted. Rollups stay exact."""
        if not keep or _has_nul(tenant):
            return 0
        async with self._connection() as conn, conn.transaction():
            return await _retention(conn, tenant, keep, now)


async def record_history(conn: Any, tenant: str, outcomes: list[Outcome]) -> None:
    """Append the instances the committed outcomes created, in their transaction."""
    changes = ts.changes_of(outcomes)
    if changes:
        await _append(conn, tenant, changes, merge_types=False)


async def _remember_tenant(conn: Conn, tenant: str) -> None:
    await conn.execute("INSERT INTO tenants (name) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,))


# -- writes (inside the caller's transaction) ----------------------------------------------


_Key = tuple[int, str, str]


class _Series:
    """The series rows are written to: their sids and the document each one omits."""

    def __init__(self) -> None:
        self.sids: dict[_Key, int] = {}
        self.templates: dict[int, str | None] = {}
        self._new: list[tuple[str, int]] = []

    @classmethod
    async def of(cls, conn: Conn, keys: set[_Key]) -> _Series:
        """The series of these keys, creating those that are new (one round trip)."""
        found = cls()
        if not keys:
            return found
        ordered = sorted(keys)
        columns = ([k[0] for k in ordered], [k[1] for k in ordered], [k[2] for k in ordered])
        # The second SELECT sees the series that existed, the first those just created.
        cursor = await conn.execute(
            "WITH given (hid, attr, dataset) AS "
            "(SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[])), "
            "made AS (INSERT INTO history_series (hid, attr, dataset) SELECT * FROM given "
            "ON CONFLICT DO NOTHING RETURNING hid, attr, dataset, sid, template) "
            "SELECT * FROM made UNION ALL SELECT s.hid, s.attr, s.dataset, s.sid, s.template "
            "FROM history_series s JOIN given g USING (hid, attr, dataset)",
            columns,
        )
        found._add(await cursor.fetchall())
        if len(found.sids) < len(ordered):
            # Created meanwhile by a transaction that committed after this one's snapshot.
            cursor = await conn.execute(
                "SELECT s.hid, s.attr, s.dataset, s.sid, s.template FROM history_series s "
                "JOIN unnest(%s::bigint[], %s::text[], %s::text[]) AS g (hid, attr, dataset) "
                "USING (hid, attr, dataset)",
                columns,
            )
            found._add(await cursor.fetchall())
        return found

    def _add(self, rows: list[tuple[Any, ...]]) -> None:
        for hid, attr, dataset, sid, template in rows:
            self.sids[(hid, attr, dataset)] = sid
            self.templates[sid] = template

    def doc(self, sid: int, doc: bytes) -> str | None:
        """What a row stores for ``doc``: None when it is the series' template."""
        text = doc.decode()
        template = self.templates.get(sid)
        if template is None:
            self.templates[sid] = text
            self._new.append((text, sid))
            return None
        return None if template == text else text

    async def save(self, conn: Conn) -> None:
        """Store the templates given to new series."""
        if self._new:
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "UPDATE history_series SET template = %s WHERE sid = %s AND template IS NULL",
                    self._new,
                )
            self._new.clear()


async def _append(
    conn: Conn, tenant: str, changes: list[EntityHistory], *, merge_types: bool
) -> None:
    hids = await _entities(conn, tenant, changes, merge_types)
    records = [(hids[change.id], r) for change in changes for r in change.records]
    if not records:
        return
    series = await _Series.of(conn, {(hid, r.attr, r.dataset_id or "") for hid, r in records})
    rows = []
    for hid, r in records:
        sid = series.sids[(hid, r.attr, r.dataset_id or "")]
        doc, num = split_number(r.instance, ints=False)
        rows.append((sid, r.observed, r.created, r.modified, r.deleted, num, series.doc(sid, doc)))
    if len(rows) >= COPY_FROM:
        await series.save(conn)
        await _copy(conn, "history_instances", rows)
        await _add_to_rollups(conn, [(r[0], r[1], r[5]) for r in rows if r[1] != NO_TIME])
        return
    # Nothing below needs an answer: one round trip for all of it.
    async with conn.pipeline():
        await series.save(conn)
        async with conn.cursor() as cursor:
            await cursor.executemany(_INSERT, rows)
        await _add_to_rollups(conn, [(r[0], r[1], r[5]) for r in rows if r[1] != NO_TIME])


async def _copy(conn: Conn, table: str, rows: list[tuple[Any, ...]]) -> None:
    statement = f"COPY {table} ({_COLUMNS}) FROM STDIN"
    async with conn.cursor() as cursor, cursor.copy(statement.encode()) as copy:
        for row in rows:
            await copy.write_row(row)


async def _entities(
    conn: Conn, tenant: str, changes: list[EntityHistory], merge_types: bool
) -> dict[str, int]:
    """Record the entities (types, scope, deletion) and return their hids. With
    ``merge_types`` the types are added to those known and nothing else changes. A row
    is only rewritten when it changes (one round trip)."""
    final = {change.id: change for change in changes}
    given = orjson.dumps(
        [
            {"id": i, "types": final[i].types, "scope": final[i].scope, "gone": final[i].deleted_at}
            for i in sorted(final)
        ]
    ).decode()
    if merge_types:
        update = (
            "types = ARRAY(SELECT t FROM unnest(history_entities.types || excluded.types) "
            "WITH ORDINALITY AS u (t, o) GROUP BY t ORDER BY min(o)) "
            "WHERE NOT history_entities.types @> excluded.types"
        )
    else:
        update = (
            "types = excluded.types, scope = excluded.scope, deleted_at = excluded.deleted_at "
            "WHERE (history_entities.types, history_entities.scope, history_entities.deleted_at) "
            "IS DISTINCT FROM (excluded.types, excluded.scope, excluded.deleted_at)"
        )
    cursor = await conn.execute(
        "WITH given AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) "
        "AS x (id text, types text[], scope text[], gone bigint)), "
        "made AS (INSERT INTO history_entities (tenant, id, types, scope, deleted_at) "
        "SELECT %s, id, types, scope, gone FROM given "
        f"ON CONFLICT (tenant, id) DO UPDATE SET {update} RETURNING id, hid) "
        "SELECT id, hid FROM made UNION ALL SELECT h.id, h.hid FROM history_entities h "
        "JOIN given g ON h.tenant = %s AND h.id = g.id WHERE h.id NOT IN (SELECT id FROM made)",
        (given, tenant, tenant),
    )
    hids = {entity_id: hid for entity_id, hid in await cursor.fetchall()}
    if len(hids) < len(final):
        # Created meanwhile by a transaction that committed after this one's snapshot.
        cursor = await conn.execute(
            "SELECT id, hid FROM history_entities WHERE tenant = %s AND id = ANY(%s)",
            (tenant, sorted(final)),
        )
        hids.update(await cursor.fetchall())
    return hids


async def _add_to_rollups(conn: Conn, rows: list[tuple[int, int, int | float | None]]) -> None:
    """Add new (sid, observed, number) rows to the rollups: summed in SQL from three
    arrays, one statement per rollup table, rather than a row of parameters per bucket."""
    if not rows:
        return
    sids = [row[0] for row in rows]
    times = [row[1] for row in rows]
    # The number column is a double: an integer is one too (psycopg wants one type).
    numbers = [None if row[2] is None else float(row[2]) for row in rows]
    for statement in _ROLLUP_FROM_ARRAYS:
        await conn.execute(statement, (sids, times, numbers))


def _pg_upserts(time: str, figures: str, source: str) -> list[bytes]:
    return [ts.pg(statement).encode() for statement in ts.rollup_upserts(time, figures, source)]


_ROLLUP_FROM_ARRAYS = _pg_upserts(
    "observed",
    ts.FIGURES,
    "unnest(?::bigint[], ?::bigint[], ?::float8[]) AS r (sid, observed, num)",
)
"""The upserts of the figures of (sids, observed times, numbers)."""

_ROLLUP_FROM_SUMS = _pg_upserts(
    "hour",
    ts.SUMMED_FIGURES,
    "unnest(?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::float8[], ?::float8[], "
    "?::float8[], ?::float8[]) AS r (sid, hour, cnt, n, s, ss, mn, mx)",
)
"""The upserts of hourly figures (sid, hour, cnt, n, s, ss, mn, mx)."""


async def _rebuild(conn: Conn, sid: int, lo: int, hi: int) -> None:
    for statement, params in ts.rebuild_steps(sid, lo, hi):
        await conn.execute(ts.pg(statement).encode(), params)


async def _entity_series(
    conn: Conn, tenant: str, entity_id: str, *, lock: bool = False
) -> tuple[int | None, list[tuple[int, str, str]]]:
    cursor = await conn.execute(
        "SELECT hid FROM history_entities WHERE tenant = %s AND id = %s"
        + (" FOR UPDATE" if lock else ""),
        (tenant, entity_id),
    )
    row = await cursor.fetchone()
    if row is None:
        return None, []
    cursor = await conn.execute(
        "SELECT sid, attr, dataset FROM history_series WHERE hid = %s ORDER BY attr, dataset",
        (row[0],),
    )
    return row[0], list(await cursor.fetchall())


async def _drop_series(conn: Conn, sids: list[int]) -> None:
    for table in ("history_instances", "history_hourly", "history_daily", "history_series"):
        await conn.execute(f"DELETE FROM {table} WHERE sid = ANY(%s)".encode(), (sids,))


async def _modify(
    conn: Conn, tenant: str, entity_id: str, attr: str, iid: int, replacement: Record | None
) -> bool:
    hid, series = await _entity_series(conn, tenant, entity_id, lock=True)
    sids = [sid for sid, name, _ in series if name == attr]
    if hid is None or not sids:
        return False
    cursor = await conn.execute(
        "SELECT sid, observed, created FROM history_instances WHERE iid = %s AND sid = ANY(%s) "
        "FOR UPDATE",
        (iid, sids),
    )
    found = await cursor.fetchone()
    if found is None:
        return False
    sid, observed, created = found
    if replacement is None:
        await conn.execute("DELETE FROM history_instances WHERE iid = %s", (iid,))
    else:
        r = replacement
        key = (hid, attr, r.dataset_id or "")
        target = await _Series.of(conn, {key})
        new_sid = target.sids[key]
        doc, num = split_number(r.instance, ints=False)
        stored = target.doc(new_sid, doc)
        await target.save(conn)
        kept = r.created if "createdAt" in r.instance else created
        await conn.execute(
            "UPDATE history_instances SET sid = %s, observed = %s, created = %s, "
            "modified = %s, deleted = %s, num = %s, doc = %s WHERE iid = %s",
            (new_sid, r.observed, kept, r.modified, r.deleted, num, stored, iid),
        )
        if r.observed != NO_TIME:
            await _rebuild(conn, new_sid, r.observed, r.observed)
    if observed != NO_TIME:
        await _rebuild(conn, sid, observed, observed)
    return True


async def _retention(conn: Conn, tenant: str, keep: dict[str, int], now: int) -> int:
    removed = 0
    cursor = await conn.execute(
        "SELECT hid, types, deleted_at FROM history_entities WHERE tenant = %s FOR UPDATE",
        (tenant,),
    )
    for hid, types, deleted_at in await cursor.fetchall():
        kept = ts.kept_for(types, keep)
        if kept is None:
            continue
        cut = now - kept
        cursor = await conn.execute("SELECT sid FROM history_series WHERE hid = %s", (hid,))
        for (sid,) in await cursor.fetchall():
            [expire, *rollups] = ts.expire_steps(sid, cut)
            removed += (await conn.execute(*_pg(*expire))).rowcount
            for step in rollups:
                await conn.execute(*_pg(*step))
            await _rebuild(conn, sid, cut, cut)
            left = await conn.execute(
                "SELECT 1 FROM history_instances WHERE sid = %s LIMIT 1", (sid,)
            )
            if await left.fetchone() is None:
                await _drop_series(conn, [sid])
        if deleted_at is not None and deleted_at < cut:
            # A deleted entity whose whole history has expired is forgotten.
            await conn.execute(
                "DELETE FROM history_entities h WHERE hid = %s AND NOT EXISTS "
                "(SELECT 1 FROM history_series s WHERE s.hid = h.hid)",
                (hid,),
            )
    return removed


async def _import_chunk(conn: Conn, tenant: str, chunk: ImportChunk) -> int:
    types = ts.chunk_types(chunk)
    names = {attr for _, _, attr, _ in chunk.series} | {d for _, _, _, d in chunk.series}
    if _has_nul(*types, *names, *(name for known in types.values() for name in known)):
        raise BadRequestData("PostgreSQL cannot store the character U+0000 in a name")
    changes = [EntityHistory(i, list(t), None, None, []) for i, t in types.items()]
    hids = await _entities(conn, tenant, changes, merge_types=True)
    keys = [(hids[entity_id], attr, dataset) for entity_id, _, attr, dataset in chunk.series]
    series = await _Series.of(conn, set(keys))
    sids = [series.sids[key] for key in keys]
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    now = chunk.now
    timed = chain(((k, o, now, now, None, n, d) for k, o, n, d in chunk.rows), chunk.timed)
    for k, observed, created, modified, deleted, num, doc in timed:
        sid = sids[k]
        if type(num) is int:
            # This store's number column is a double: an integer stays in the document
            # too, so that it comes back an integer.
            doc = _with_value(doc, num)
        append((sid, observed, created, modified, deleted, num, series.doc(sid, doc)))
    await series.save(conn)
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS history_import (sid bigint, observed bigint, "
        "created bigint, modified bigint, deleted bigint, num double precision, doc text) "
        "ON COMMIT DELETE ROWS"
    )
    await _copy(conn, "history_import", rows)
    await conn.execute(
        f"INSERT INTO history_instances ({_COLUMNS}) SELECT {_COLUMNS} FROM history_import "
        "ORDER BY sid, observed"
    )
    # The chunk's hourly sums were made where it was parsed: one row per series and hour.
    sums = chunk.sums
    columns = (
        [sids[row[0]] for row in sums],
        [row[1] for row in sums],
        [row[2] for row in sums],
        [row[3] for row in sums],
        [float(row[4]) for row in sums],
        [float(row[5]) for row in sums],
        [None if row[6] is None else float(row[6]) for row in sums],
        [None if row[7] is None else float(row[7]) for row in sums],
    )
    for statement in _ROLLUP_FROM_SUMS:
        await conn.execute(statement, columns)
    return len(rows)


def _with_value(doc: bytes, value: int) -> bytes:
    instance = orjson.loads(doc)
    return orjson.dumps({"type": instance.pop("type"), "value": value, **instance})


# -- reads ----------------------------------------------------------------------------------


async def _selected(
    conn: Conn, tenant: str, search: StateSearch, candidate: HistoryEntity, doc: str | None
) -> bool:
    verdict = search.quick(candidate, None if doc is None else orjson.loads(doc))
    if verdict is not None:
        return verdict
    series = await _series(conn, tenant, candidate.id, search.attrs)
    for screen in search.screens:
        if not await _any_row(
            conn,
            [
                read
                for sid, _, _ in series.get(screen.attr, ())
                for read in search.screen_reads(sid, screen)
            ],
        ):
            return False
    fetched = []
    for found in series.values():
        for sid, _, _ in found:
            for kind, statement, params in search.reads(sid):
                cursor = await conn.execute(*_pg(statement, params))
                fetched.append((kind, sid, await cursor.fetchall()))
    return search.verdict(candidate, series, fetched)


async def _any_row(conn: Conn, reads: list[tuple[str, tuple[Any, ...]]]) -> bool:
    """Whether any of the statements gives a row (stopping at the first that does)."""
    for statement, params in reads:
        cursor = await conn.execute(*_pg(statement, params))
        if await cursor.fetchone() is not None:
            return True
    return False


def _pg(statement: str, params: Any) -> tuple[bytes, Any]:
    return ts.pg(statement).encode(), params


async def _one(conn: Conn, statement: str, params: Any) -> int:
    cursor = await conn.execute(*_pg(statement, params))
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


_Found = tuple[int, str | None, str | None]
"""A series read: sid, datasetId, template."""


async def _series(
    conn: Conn, tenant: str, entity_id: str, attrs: frozenset[str] | None
) -> dict[str, list[_Found]]:
    if _has_nul(tenant, entity_id):
        return {}
    sql = (
        "SELECT s.sid, s.attr, s.dataset, s.template FROM history_entities h "
        "JOIN history_series s ON s.hid = h.hid WHERE h.tenant = %s AND h.id = %s"
    )
    params: list[Any] = [tenant, entity_id]
    if attrs is not None:
        sql += " AND s.attr = ANY(%s)"
        params.append(sorted(a for a in attrs if not _has_nul(a)))
    cursor = await conn.execute((sql + " ORDER BY s.attr, s.dataset").encode(), params)
    out: dict[str, list[_Found]] = {}
    for sid, attr, dataset, template in await cursor.fetchall():
        out.setdefault(attr, []).append((sid, dataset or None, template))
    return out


async def _series_figures(
    conn: Conn, sid: int, template: str | None, plan: Aggregation
) -> dict[int, Partial]:
    if plan.step is not None:
        column = plan.column
        extra, templates = _distinct(plan.distinct, template)
        cursor = await conn.execute(
            f"SELECT ({column} - %s) / %s, {ts.FIGURES}{extra} FROM history_instances "
            f"WHERE sid = %s AND {column} >= %s AND {column} < %s GROUP BY 1".encode(),
            (plan.start, plan.step, *templates, sid, plan.start, plan.end),
        )
        return ts.partials(await cursor.fetchall(), plan.distinct)
    assert plan.segments is not None
    return await _figures(conn, sid, template, plan.column, plan.segments, plan.distinct)


def _distinct(distinct: bool, template: str | None) -> tuple[str, tuple[Any, ...]]:
    if not distinct:
        return "", ()
    return _DISTINCT, (template,) * len(ts.VALUE_MEMBERS)


def _columns(segments: list[ts.Segment]) -> tuple[list[int], list[int], list[int]]:
    return [s.k for s in segments], [s.lo for s in segments], [s.hi for s in segments]


async def _figures(
    conn: Conn,
    sid: int,
    template: str | None,
    column: str,
    plan: Segments,
    distinct: bool,
) -> dict[int, Partial]:
    # LATERAL: one index range scan per segment, whatever the planner thinks of unnest.
    out: dict[int, Partial] = {}
    for table, segments in (("history_daily", plan.daily), ("history_hourly", plan.hourly)):
        if segments:
            cursor = await conn.execute(
                f"SELECT r.k, x.* FROM {_RANGES}, LATERAL (SELECT sum(cnt), sum(n), sum(s), "
                f"sum(ss), min(mn), max(mx) FROM {table} WHERE sid = %s AND bucket >= r.lo "
                "AND bucket < r.hi) AS x".encode(),
                (*_columns(segments), sid),
            )
            ts.partials(await cursor.fetchall(), False, out)
    if plan.raw:
        extra, templates = _distinct(distinct, template)
        cursor = await conn.execute(
            f"SELECT r.k, x.* FROM {_RANGES}, LATERAL (SELECT {ts.FIGURES}{extra} "
            f"FROM history_instances WHERE sid = %s AND {column} >= r.lo AND {column} < r.hi) "
            "AS x".encode(),
            (*_columns(plan.raw), *templates, sid),
        )
        ts.partials(await cursor.fetchall(), distinct, out)
    return out
