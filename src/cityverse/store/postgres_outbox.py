"""Subscriptions, the change log and the notification outbox in the postgres store.

Several server processes share these tables. A change is matched once: settling
deletes its log row, and a second process settling the same row finds it gone and
rolls back. A delivery is sent by one process at a time: leasing takes rows with
``FOR UPDATE SKIP LOCKED`` and marks them leased until a deadline; a process that dies
holding a lease leaves the row to be taken again when the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from psycopg import errors
from psycopg_pool import AsyncConnectionPool

from cityverse.core.entity import iso_now
from cityverse.store.base import Outcome
from cityverse.store.sqlite_outbox import _counters
from cityverse.store.subscriptions import (
    KIND_STREAM,
    KIND_SUBSCRIPTION,
    ChangeRecord,
    Delivery,
    DeliveryResult,
    NewDelivery,
    SubscriptionRow,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text NOT NULL,
    id text NOT NULL,
    kind text NOT NULL,
    doc text NOT NULL,
    times_sent bigint NOT NULL DEFAULT 0,
    times_failed bigint NOT NULL DEFAULT 0,
    last_notification text,
    last_success text,
    last_failure text,
    last_failure_reason text,
    UNIQUE (tenant, id)
);
CREATE TABLE IF NOT EXISTS entity_changes (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text NOT NULL,
    entity_id text NOT NULL,
    old text,
    new text,
    at text NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant text NOT NULL,
    subscription_id text NOT NULL,
    endpoint text NOT NULL,
    body bytea NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    created double precision NOT NULL,
    next_at double precision NOT NULL,
    lease_until double precision NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_subscription ON outbox (tenant, subscription_id);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_at, id);
CREATE INDEX IF NOT EXISTS outbox_endpoint ON outbox (endpoint, next_at);
CREATE TABLE IF NOT EXISTS subscriptions_version (
    one integer PRIMARY KEY CHECK (one = 1),
    version bigint NOT NULL
);
INSERT INTO subscriptions_version VALUES (1, 0) ON CONFLICT DO NOTHING;
"""
"""Tables and indexes of subscriptions and the outbox, created with the store's own.
Documents are text, not jsonb: they are only ever read whole, and text keeps the
attribute order a notification shows."""

TABLES: tuple[str, ...] = ("outbox", "entity_changes", "subscriptions")
"""Tables that ``PostgresStore.clear`` empties."""
DELETE_RETRIES = 5
"""Attempts at deleting a subscription that deadlocks with the notifier's delivery."""

_COLUMNS = (
    "tenant, id, doc, kind, times_sent, times_failed, last_notification, last_success, "
    "last_failure, last_failure_reason"
)

NOTIFIER_CONNECTIONS = 2
"""Connections of the notifier's pool: its loop and its result writer."""

_subscribed: dict[str, bool] = {}
"""Per tenant, whether the last write found subscriptions. Only a hint of which
statement to send first: the change log insert itself checks again in SQL."""


_SETTLE = """
WITH gone AS (DELETE FROM entity_changes WHERE seq = ANY(%(seqs)s::bigint[]) RETURNING 1),
added AS (
    INSERT INTO outbox (tenant, subscription_id, endpoint, body, created, next_at, lease_until)
    SELECT t, s, e, b, %(now)s, n, l
    FROM unnest(%(t)s::text[], %(s)s::text[], %(e)s::text[], %(b)s::bytea[],
                %(n)s::float8[], %(l)s::float8[]) AS u(t, s, e, b, n, l)
    RETURNING id
)
SELECT (SELECT count(*) FROM gone), ARRAY(SELECT id FROM added ORDER BY id)
"""
"""Settling in one statement: the log rows removed (counted, to detect a concurrent
settle) and the outbox rows added."""

_FINISH = """
WITH done AS (DELETE FROM outbox WHERE id = ANY(%(done)s::bigint[])),
retried AS (
    UPDATE outbox o SET attempts = o.attempts + r.a, next_at = r.n, lease_until = 0
    FROM unnest(%(ra)s::int[], %(rn)s::float8[], %(ri)s::bigint[]) AS r(a, n, i)
    WHERE o.id = r.i
),
counted AS (
    UPDATE subscriptions s SET
        times_sent = s.times_sent + c.sent,
        times_failed = s.times_failed + c.failed,
        last_notification = c.last,
        last_success = coalesce(c.success, s.last_success),
        last_failure = coalesce(c.failure, s.last_failure),
        last_failure_reason = coalesce(c.reason, s.last_failure_reason)
    FROM unnest(%(c0)s::bigint[], %(c1)s::bigint[], %(c2)s::text[], %(c3)s::text[],
                %(c4)s::text[], %(c5)s::text[], %(c6)s::text[], %(c7)s::text[])
         AS c(sent, failed, last, success, failure, reason, tenant, id)
    WHERE s.tenant = c.tenant AND s.id = c.id
)
SELECT 1
"""
"""Recording delivery results in one statement."""


class _Taken(Exception):
    """Another process settled one of the changes first."""


class PostgresOutbox:
    """Subscription and outbox methods, mixed into the postgres store.

    The notifier's own reads and writes (change log, outbox, results) go through a small
    pool of their own: under load the store's pool has a queue of requests waiting, and
    a notifier waiting in it would add that wait to every notification.
    """

    _notify_pool: AsyncConnectionPool | None = None
    _notify_lock: asyncio.Lock | None = None

    if TYPE_CHECKING:
        conninfo: str
        _pool: AsyncConnectionPool | None

        def _connection(self) -> Any: ...

        async def _configure(self, conn: Any) -> None: ...

    @contextlib.asynccontextmanager
    async def _notifier_connection(self) -> AsyncIterator[Any]:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL store is not open")
        if self._notify_lock is None:
            self._notify_lock = asyncio.Lock()
        async with self._notify_lock:
            if self._notify_pool is None:
                pool = AsyncConnectionPool(
                    self.conninfo,
                    min_size=1,
                    max_size=NOTIFIER_CONNECTIONS,
                    kwargs={"autocommit": True},
                    configure=self._configure,
                    open=False,
                )
                await pool.open(wait=True, timeout=10.0)
                self._notify_pool = pool
        async with self._notify_pool.connection() as conn:
            yield conn

    async def release(self) -> None:
        """Close the connections kept for the notifier (it calls this when it stops)."""
        if self._notify_pool is not None:
            pool, self._notify_pool = self._notify_pool, None
            await pool.close()

    # -- subscriptions ------------------------------------------------------------------

    async def create_subscription(
        self, tenant: str, sub_id: str, doc: dict[str, Any], *, kind: str = KIND_SUBSCRIPTION
    ) -> bool:
        """Store a new subscription; False if the id is taken in the tenant."""
        async with self._connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "INSERT INTO subscriptions (tenant, id, kind, doc) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (tenant, id) DO NOTHING",
                (tenant, sub_id, kind, orjson.dumps(doc).decode()),
            )
            return await _bumped(conn, cursor.rowcount > 0)

    async def replace_subscription(self, tenant: str, sub_id: str, doc: dict[str, Any]) -> bool:
        """Replace a subscription's document (counters kept); False if there is none."""
        async with self._connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "UPDATE subscriptions SET doc = %s WHERE tenant = %s AND id = %s",
                (orjson.dumps(doc).decode(), tenant, sub_id),
            )
            return await _bumped(conn, cursor.rowcount > 0)

    async def get_subscription(self, tenant: str, sub_id: str) -> SubscriptionRow | None:
        """The stored subscription, or None."""
        if "\x00" in tenant or "\x00" in sub_id:
            return None
        async with self._connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM subscriptions WHERE tenant = %s AND id = %s",
                (tenant, sub_id),
            )
            row = await cursor.fetchone()
        return None if row is None else _subscription(row)

    async def list_subscriptions(
        self, tenant: str, *, limit: int, offset: int = 0
    ) -> tuple[list[SubscriptionRow], int]:
        """A page of the tenant's API subscriptions in creation order, and their total."""
        async with self._connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM subscriptions WHERE tenant = %s AND kind = %s "
                "ORDER BY seq LIMIT %s OFFSET %s",
                (tenant, KIND_SUBSCRIPTION, limit, offset),
            )
            rows = await cursor.fetchall()
            cursor = await conn.execute(
                "SELECT count(*) FROM subscriptions WHERE tenant = %s AND kind = %s",
                (tenant, KIND_SUBSCRIPTION),
            )
            (total,) = await cursor.fetchone()
        return [_subscription(row) for row in rows], int(total)

    async def delete_subscription(self, tenant: str, sub_id: str) -> bool:
        """Delete a subscription and its pending deliveries; False if there was none."""
        if "\x00" in tenant or "\x00" in sub_id:
            return False
        for attempt in range(DELETE_RETRIES):
            try:
                async with self._connection() as conn, conn.transaction():
                    await conn.execute(
                        "DELETE FROM outbox WHERE tenant = %s AND subscription_id = %s",
                        (tenant, sub_id),
                    )
                    cursor = await conn.execute(
                        "DELETE FROM subscriptions WHERE tenant = %s AND id = %s", (tenant, sub_id)
                    )
                    return await _bumped(conn, cursor.rowcount > 0)
            except errors.DeadlockDetected:
                # The notifier locks the same outbox rows while it delivers: run again.
                if attempt == DELETE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def all_subscriptions(self) -> list[SubscriptionRow]:
        """Every subscription of every tenant, streams included (for the notifier)."""
        async with self._notifier_connection() as conn:
            cursor = await conn.execute(f"SELECT {_COLUMNS} FROM subscriptions ORDER BY seq")
            rows = await cursor.fetchall()
        return [_subscription(row) for row in rows]

    async def subscriptions_version(self) -> int:
        """A number that changes whenever any subscription is created, replaced or deleted."""
        async with self._notifier_connection() as conn:
            cursor = await conn.execute("SELECT version FROM subscriptions_version")
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    # -- change log and outbox ---------------------------------------------------------

    async def pending_changes(self, limit: int) -> list[ChangeRecord]:
        """The oldest logged changes not yet matched."""
        async with self._notifier_connection() as conn:
            cursor = await conn.execute(
                "SELECT seq, tenant, entity_id, old, new, at FROM entity_changes "
                "ORDER BY seq LIMIT %s",
                (limit,),
            )
            rows = await cursor.fetchall()
        return [
            ChangeRecord(
                seq,
                tenant,
                entity_id,
                None if old is None else orjson.loads(old),
                None if new is None else orjson.loads(new),
                at,
            )
            for seq, tenant, entity_id, old, new, at in rows
        ]

    async def settle_changes(
        self, seqs: list[int], deliveries: list[NewDelivery], lease_until: float
    ) -> list[int] | None:
        """Remove matched changes and write their deliveries in one transaction; the new
        delivery ids, or None when another process took one of the changes first."""
        now = time.time()
        params = {
            "seqs": seqs,
            "now": now,
            "t": [d.tenant for d in deliveries],
            "s": [d.subscription_id for d in deliveries],
            "e": [d.endpoint for d in deliveries],
            "b": [d.body for d in deliveries],
            "n": [max(now, d.not_before) for d in deliveries],
            "l": [lease_until if d.leased and d.not_before <= now else 0.0 for d in deliveries],
        }
        try:
            async with self._notifier_connection() as conn, conn.transaction():
                cursor = await conn.execute(_SETTLE, params)
                row = await cursor.fetchone()
                if row is None or row[0] != len(seqs):
                    raise _Taken
                # Identity values follow the order rows are inserted, that of the arrays.
                return [int(i) for i in row[1]]
        except _Taken:
            return None

    async def lease_deliveries(
        self,
        now: float,
        lease_until: float,
        limit: int,
        *,
        exclude: list[str],
        owner: str,
        only: str | None = None,
    ) -> list[Delivery]:
        """Lease due outbox rows not leased by anyone, skipping the ``exclude`` endpoints
        and the live streams of other processes than ``owner``; with ``only``, the
        oldest rows of that endpoint, due or not (a probe of a failing endpoint)."""
        returning = "RETURNING id, tenant, subscription_id, endpoint, body, attempts, created"
        async with self._notifier_connection() as conn:
            if only is not None:
                cursor = await conn.execute(
                    "UPDATE outbox SET lease_until = %s WHERE id IN (SELECT id FROM outbox "
                    "WHERE endpoint = %s AND lease_until <= %s ORDER BY next_at, id LIMIT %s "
                    f"FOR UPDATE SKIP LOCKED) {returning}",
                    (lease_until, only, now, limit),
                )
            else:
                cursor = await conn.execute(
                    "UPDATE outbox SET lease_until = %s WHERE id IN (SELECT id FROM outbox "
                    "WHERE next_at <= %s AND lease_until <= %s AND NOT (endpoint = ANY(%s)) "
                    "AND (endpoint NOT LIKE 'stream:%%' OR endpoint LIKE %s) "
                    f"ORDER BY next_at, id LIMIT %s FOR UPDATE SKIP LOCKED) {returning}",
                    (lease_until, now, now, exclude, f"{KIND_STREAM}:{owner}:%", limit),
                )
            rows = await cursor.fetchall()
        return sorted(
            (Delivery(i, t, s, e, bytes(b), a, c) for i, t, s, e, b, a, c in rows),
            key=lambda d: d.id,
        )

    async def park(self, endpoint: str, until: float) -> None:
        """Put off the endpoint's due rows that no process holds until ``until``."""
        now = time.time()
        async with self._notifier_connection() as conn:
            await conn.execute(
                "UPDATE outbox SET next_at = %s WHERE endpoint = %s AND next_at <= %s "
                "AND lease_until <= %s",
                (until, endpoint, now, now),
            )

    async def unpark(self, endpoint: str | None = None) -> None:
        """Make the rows put off (of one endpoint, or all) due now."""
        now = time.time()
        async with self._notifier_connection() as conn:
            await conn.execute(
                "UPDATE outbox SET next_at = %s WHERE (%s::text IS NULL OR endpoint = %s) "
                "AND next_at > %s AND lease_until <= %s",
                (now, endpoint, endpoint, now, now),
            )

    async def finish_deliveries(self, results: list[DeliveryResult]) -> None:
        """Record attempts: remove sent or dropped rows, reschedule retries, count."""
        if not results:
            return
        retries = [r for r in results if not r.ok and r.retry_at is not None]
        # One order for every process, so that concurrent counter updates rarely collide.
        counters = sorted(_counters(results), key=lambda c: (c[-2], c[-1]))
        columns = list(zip(*counters, strict=True)) if counters else [()] * 8
        params = {
            "done": [r.id for r in results if r.ok or r.retry_at is None],
            "ra": [int(r.attempted) for r in retries],
            "rn": [r.retry_at for r in retries],
            "ri": [r.id for r in retries],
            **{f"c{i}": list(column) for i, column in enumerate(columns)},
        }
        for attempt in range(3):
            try:
                async with self._notifier_connection() as conn:
                    await conn.execute(_FINISH, params)
                return
            except errors.DeadlockDetected:
                if attempt == 2:
                    raise

    async def outbox_size(self) -> int:
        """Rows waiting in the change log and the outbox together."""
        async with self._notifier_connection() as conn:
            cursor = await conn.execute(
                "SELECT (SELECT count(*) FROM entity_changes) + (SELECT count(*) FROM outbox)"
            )
            (total,) = await cursor.fetchone()
        return int(total)


async def _bumped(conn: Any, changed: bool) -> bool:
    if changed:
        await conn.execute("UPDATE subscriptions_version SET version = version + 1")
    return changed


def _subscription(row: Any) -> SubscriptionRow:
    tenant, sub_id, doc, kind, sent, failed, *times = row
    return SubscriptionRow(tenant, sub_id, orjson.loads(doc), kind, int(sent), int(failed), *times)


async def record_changes(conn: Any, tenant: str, outcomes: list[Outcome]) -> None:
    """Record the committed outcomes for notification, in their transaction.

    Nothing is written in a tenant without subscriptions. Whether there are any is read
    in this transaction, so a subscription created by any process is seen by the next
    write: when the last write found none, a small ``EXISTS`` comes first; otherwise the
    insert goes straight out and its own ``WHERE EXISTS`` decides.
    """
    changed = [o for o in outcomes if o.error is None and o.old is not o.new]
    if not changed:
        return
    if not _subscribed.get(tenant, False):
        cursor = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE tenant = %s)", (tenant,)
        )
        (exists,) = await cursor.fetchone()
        if not exists:
            return
    cursor = await conn.execute(
        "INSERT INTO entity_changes (tenant, entity_id, old, new, at) "
        "SELECT %s, i, o, n, %s FROM unnest(%s::text[], %s::text[], %s::text[]) AS u(i, o, n) "
        "WHERE EXISTS (SELECT 1 FROM subscriptions WHERE tenant = %s)",
        (
            tenant,
            iso_now(),
            [o.id for o in changed],
            [_text(o.old) for o in changed],
            [_text(o.new) for o in changed],
            tenant,
        ),
    )
    _subscribed[tenant] = cursor.rowcount > 0


def _text(entity: Any) -> str | None:
    return None if entity is None else orjson.dumps(entity).decode()
