"""Subscriptions and the notification outbox in the sqlite store."""

from __future__ import annotations

from typing import Any

from cityverse.store.base import Outcome

SCHEMA = ""
"""Tables and indexes of subscriptions and the outbox, created with the store's own."""


class SqliteOutbox:
    """Subscription and outbox methods, mixed into the sqlite store."""


def record_changes(conn: Any, tenant: str, outcomes: list[Outcome]) -> None:
    """Record the committed outcomes for notification, in their transaction."""
