"""Subscriptions, the change log and the notification outbox in the sqlite store.

Ids of the change log and the outbox are AUTOINCREMENT, never reused, so that a
process holding ids read a moment ago cannot touch rows written since by another.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from cityverse.core.entity import iso_now
from cityverse.store.base import Outcome
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
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    doc TEXT NOT NULL,
    times_sent INTEGER NOT NULL DEFAULT 0,
    times_failed INTEGER NOT NULL DEFAULT 0,
    last_notification TEXT,
    last_success TEXT,
    last_failure TEXT,
    last_failure_reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS subscriptions_tenant_id ON subscriptions (tenant, id);
CREATE TABLE IF NOT EXISTS entity_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    old TEXT,
    new TEXT,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    next_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_subscription ON outbox (tenant, subscription_id);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_at, id);
CREATE INDEX IF NOT EXISTS outbox_endpoint ON outbox (endpoint, next_at);
CREATE TABLE IF NOT EXISTS subscriptions_version (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    version INTEGER NOT NULL
);
INSERT INTO subscriptions_version VALUES (1, 0) ON CONFLICT DO NOTHING;
"""
"""Tables and indexes of subscriptions and the outbox, created with the store's own."""

T = TypeVar("T")

_COLUMNS = (
    "tenant, id, doc, kind, times_sent, times_failed, last_notification, last_success, "
    "last_failure, last_failure_reason"
)


class _Taken(Exception):
    """Another process settled one of the changes first."""


class SqliteOutbox:
    """Subscription and outbox methods, mixed into the sqlite store."""

    if TYPE_CHECKING:

        async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T: ...

        def _read(self, fn: Callable[..., T], *args: Any) -> T: ...

        def _point_reader(self) -> sqlite3.Connection: ...

    # -- subscriptions ------------------------------------------------------------------

    async def create_subscription(
        self, tenant: str, sub_id: str, doc: dict[str, Any], *, kind: str = KIND_SUBSCRIPTION
    ) -> bool:
        """Store a new subscription; False if the id is taken in the tenant."""
        blob = orjson.dumps(doc).decode()

        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO subscriptions (tenant, id, kind, doc) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant, id) DO NOTHING",
                (tenant, sub_id, kind, blob),
            )
            return _bumped(conn, cursor.rowcount > 0)

        return await self._write(job)

    async def replace_subscription(self, tenant: str, sub_id: str, doc: dict[str, Any]) -> bool:
        """Replace a subscription's document (counters kept); False if there is none."""
        blob = orjson.dumps(doc).decode()
        return await self._write(
            lambda conn: _bumped(
                conn,
                conn.execute(
                    "UPDATE subscriptions SET doc = ? WHERE tenant = ? AND id = ?",
                    (blob, tenant, sub_id),
                ).rowcount
                > 0,
            )
        )

    async def get_subscription(self, tenant: str, sub_id: str) -> SubscriptionRow | None:
        """The stored subscription, or None."""
        row = (
            self._point_reader()
            .execute(
                f"SELECT {_COLUMNS} FROM subscriptions WHERE tenant = ? AND id = ?",
                (tenant, sub_id),
            )
            .fetchone()
        )
        return None if row is None else _subscription(row)

    async def list_subscriptions(
        self, tenant: str, *, limit: int, offset: int = 0
    ) -> tuple[list[SubscriptionRow], int]:
        """A page of the tenant's API subscriptions in creation order, and their total."""
        conn = self._point_reader()
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE tenant = ? AND kind = ? "
            "ORDER BY seq LIMIT ? OFFSET ?",
            (tenant, KIND_SUBSCRIPTION, limit, offset),
        ).fetchall()
        (total,) = conn.execute(
            "SELECT count(*) FROM subscriptions WHERE tenant = ? AND kind = ?",
            (tenant, KIND_SUBSCRIPTION),
        ).fetchone()
        return [_subscription(row) for row in rows], total

    async def delete_subscription(self, tenant: str, sub_id: str) -> bool:
        """Delete a subscription and its pending deliveries; False if there was none."""

        def job(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "DELETE FROM outbox WHERE tenant = ? AND subscription_id = ?", (tenant, sub_id)
            )
            deleted = conn.execute(
                "DELETE FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, sub_id)
            ).rowcount
            return _bumped(conn, deleted > 0)

        return await self._write(job)

    async def all_subscriptions(self) -> list[SubscriptionRow]:
        """Every subscription of every tenant, streams included (for the notifier)."""
        rows = self._point_reader().execute(f"SELECT {_COLUMNS} FROM subscriptions ORDER BY seq")
        return [_subscription(row) for row in rows]

    async def subscriptions_version(self) -> int:
        """A number that changes whenever any subscription is created, replaced or deleted."""
        row = self._point_reader().execute("SELECT version FROM subscriptions_version").fetchone()
        return int(row[0]) if row else 0

    # -- change log and outbox ---------------------------------------------------------

    async def pending_changes(self, limit: int) -> list[ChangeRecord]:
        """The oldest logged changes not yet matched."""
        rows = self._point_reader().execute(
            "SELECT seq, tenant, entity_id, old, new, at FROM entity_changes ORDER BY seq LIMIT ?",
            (limit,),
        )
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

        def job(conn: sqlite3.Connection) -> list[int]:
            marks = ",".join("?" * len(seqs))
            if seqs:
                deleted = conn.execute(
                    f"DELETE FROM entity_changes WHERE seq IN ({marks})", seqs
                ).rowcount
                if deleted != len(seqs):
                    raise _Taken
            ids = []
            for d in deliveries:
                due = d.leased and d.not_before <= now
                cursor = conn.execute(
                    "INSERT INTO outbox (tenant, subscription_id, endpoint, body, created, "
                    "next_at, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        d.tenant,
                        d.subscription_id,
                        d.endpoint,
                        d.body,
                        now,
                        max(now, d.not_before),
                        lease_until if due else 0.0,
                    ),
                )
                ids.append(int(cursor.lastrowid or 0))
            return ids

        try:
            return await self._write(job)
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
        own = f"{KIND_STREAM}:{owner}:%"
        columns = "id, tenant, subscription_id, endpoint, body, attempts, created"

        def job(conn: sqlite3.Connection) -> list[Delivery]:
            if only is not None:
                rows = conn.execute(
                    f"SELECT {columns} FROM outbox WHERE endpoint = ? AND lease_until <= ? "
                    "ORDER BY next_at, id LIMIT ?",
                    (only, now, limit),
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {columns} FROM outbox WHERE next_at <= ? AND lease_until <= ? "
                    "AND endpoint NOT IN (SELECT value FROM json_each(?)) "
                    "AND (endpoint NOT LIKE 'stream:%' OR endpoint LIKE ?) "
                    "ORDER BY next_at, id LIMIT ?",
                    (now, now, orjson.dumps(exclude).decode(), own, limit),
                ).fetchall()
            if rows:
                conn.executemany(
                    "UPDATE outbox SET lease_until = ? WHERE id = ?",
                    [(lease_until, row[0]) for row in rows],
                )
            return [Delivery(*row) for row in rows]

        return await self._write(job)

    async def park(self, endpoint: str, until: float) -> None:
        """Put off the endpoint's due rows that no process holds until ``until``."""
        now = time.time()
        await self._write(
            lambda conn: conn.execute(
                "UPDATE outbox SET next_at = ? WHERE endpoint = ? AND next_at <= ? "
                "AND lease_until <= ?",
                (until, endpoint, now, now),
            )
        )

    async def unpark(self, endpoint: str | None = None) -> None:
        """Make the rows put off (of one endpoint, or all) due now."""
        now = time.time()
        await self._write(
            lambda conn: conn.execute(
                "UPDATE outbox SET next_at = ? WHERE (? IS NULL OR endpoint = ?) "
                "AND next_at > ? AND lease_until <= ?",
                (now, endpoint, endpoint, now, now),
            )
        )

    async def finish_deliveries(self, results: list[DeliveryResult]) -> None:
        """Record attempts: remove sent or dropped rows, reschedule retries, count."""
        if not results:
            return
        counters = _counters(results)

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "DELETE FROM outbox WHERE id = ?",
                [(r.id,) for r in results if r.ok or r.retry_at is None],
            )
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + ?, next_at = ?, lease_until = 0 "
                "WHERE id = ?",
                [
                    (int(r.attempted), r.retry_at, r.id)
                    for r in results
                    if not r.ok and r.retry_at is not None
                ],
            )
            conn.executemany(
                "UPDATE subscriptions SET times_sent = times_sent + ?, "
                "times_failed = times_failed + ?, last_notification = ?, "
                "last_success = coalesce(?, last_success), "
                "last_failure = coalesce(?, last_failure), "
                "last_failure_reason = coalesce(?, last_failure_reason) "
                "WHERE tenant = ? AND id = ?",
                counters,
            )

        await self._write(job)

    async def release(self) -> None:
        """Nothing to close: the notifier uses the store's own connections."""

    async def outbox_size(self) -> int:
        """Rows waiting in the change log and the outbox together."""
        conn = self._point_reader()
        (changes,) = conn.execute("SELECT count(*) FROM entity_changes").fetchone()
        (outbox,) = conn.execute("SELECT count(*) FROM outbox").fetchone()
        return int(changes) + int(outbox)


def _bumped(conn: sqlite3.Connection, changed: bool) -> bool:
    if changed:
        conn.execute("UPDATE subscriptions_version SET version = version + 1")
    return changed


def _subscription(row: Any) -> SubscriptionRow:
    tenant, sub_id, doc, kind, *counters = row
    return SubscriptionRow(tenant, sub_id, orjson.loads(doc), kind, *counters)


def _counters(results: list[DeliveryResult]) -> list[tuple[Any, ...]]:
    """Per subscription: sent, failed, last attempt, success, failure and reason."""
    by_sub: dict[tuple[str, str], list[Any]] = {}
    for r in results:
        if not r.attempted:
            continue
        entry = by_sub.setdefault((r.tenant, r.subscription_id), [0, 0, r.at, None, None, None])
        entry[0] += 1
        entry[2] = max(entry[2], r.at)
        if r.ok:
            entry[3] = r.at if entry[3] is None else max(entry[3], r.at)
        else:
            entry[1] += 1
            if entry[4] is None or r.at >= entry[4]:
                entry[4], entry[5] = r.at, r.reason
    return [(*values, tenant, sub_id) for (tenant, sub_id), values in by_sub.items()]


def record_changes(conn: Any, tenant: str, outcomes: list[Outcome]) -> None:
    """Record the committed outcomes for notification, in their transaction.

    Nothing is written in a tenant without subscriptions: the check is one lookup in
    the subscriptions index, made in the writer's transaction, so it also sees the
    subscriptions other processes sharing the file have created.
    """
    if conn.execute("SELECT 1 FROM subscriptions WHERE tenant = ? LIMIT 1", (tenant,)).fetchone():
        at = iso_now()
        conn.executemany(
            "INSERT INTO entity_changes (tenant, entity_id, old, new, at) VALUES (?, ?, ?, ?, ?)",
            [
                (tenant, o.id, _text(o.old), _text(o.new), at)
                for o in outcomes
                if o.error is None and o.old is not o.new
            ],
        )


def _text(entity: Any) -> str | None:
    return None if entity is None else orjson.dumps(entity).decode()
