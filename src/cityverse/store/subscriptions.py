"""The subscription store protocol: subscriptions, the change log and the outbox.

Notifications never get lost because every step is a row that commits with the step
before it:

1. ``mutate`` appends each committed change (old and new entity) to the change log in
   its own transaction, when the tenant has a subscription (``record_changes``);
2. the notifier matches logged changes against the subscriptions and, in one
   transaction, turns them into outbox rows and removes them from the log
   (``settle_changes``);
3. the notifier leases due outbox rows, sends them and records each result
   (``finish_deliveries``): a success removes the row, a failure schedules a retry.

A crash between any two steps leaves the rows of the earlier step in place, so the
work is picked up again: delivery is at least once. Example::

    await store.create_subscription("", sub_id, doc)
    changes = await store.pending_changes(500)
    ids = await store.settle_changes([c.seq for c in changes], deliveries, lease_until)
    due = await store.lease_deliveries(now, now + 30.0, 200, exclude=[], owner="p1")
    await store.finish_deliveries([DeliveryResult(...), ...])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cityverse.core.model import Entity

KIND_SUBSCRIPTION = "subscription"
"""A subscription created through the API."""
KIND_STREAM = "stream"
"""The transient subscription of one live stream (never listed by the API)."""


@dataclass(slots=True)
class SubscriptionRow:
    """A stored subscription: its document and the delivery counters of 5.2.14."""

    tenant: str
    id: str
    doc: dict[str, Any]
    kind: str = KIND_SUBSCRIPTION
    times_sent: int = 0
    times_failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    last_failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One committed change of one entity, as logged for matching."""

    seq: int
    tenant: str
    entity_id: str
    old: Entity | None
    new: Entity | None
    at: str
    """Commit time, ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """An outbox row to write: one notification of one subscription."""

    tenant: str
    subscription_id: str
    endpoint: str
    """Where it goes; deliveries to one endpoint share a lane."""
    body: bytes
    """The notification without ``notifiedAt`` (JSON), filled in when sent."""
    not_before: float = 0.0
    """Epoch seconds before which it is not sent (throttling)."""
    leased: bool = True
    """Whether the writer leases it for sending at once (else any process may lease it)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A leased outbox row."""

    id: int
    tenant: str
    subscription_id: str
    endpoint: str
    body: bytes
    attempts: int
    created: float
    """Epoch seconds when the row was written."""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What became of one attempt: sent, retried at ``retry_at``, or dropped (None)."""

    id: int
    tenant: str
    subscription_id: str
    ok: bool
    at: str
    reason: str | None = None
    retry_at: float | None = None
    attempted: bool = True
    """False for a row handed back unsent (its endpoint is backing off): not counted."""


class SubscriptionStore(Protocol):
    """Subscriptions per tenant, the change log and the notification outbox."""

    async def create_subscription(
        self, tenant: str, sub_id: str, doc: dict[str, Any], *, kind: str = KIND_SUBSCRIPTION
    ) -> bool:
        """Store a new subscription; False if the id is taken in the tenant."""
        ...

    async def replace_subscription(self, tenant: str, sub_id: str, doc: dict[str, Any]) -> bool:
        """Replace a subscription's document (counters kept); False if there is none."""
        ...

    async def get_subscription(self, tenant: str, sub_id: str) -> SubscriptionRow | None:
        """The stored subscription, or None."""
        ...

    async def list_subscriptions(
        self, tenant: str, *, limit: int, offset: int = 0
    ) -> tuple[list[SubscriptionRow], int]:
        """A page of the tenant's API subscriptions in creation order, and their total."""
        ...

    async def delete_subscription(self, tenant: str, sub_id: str) -> bool:
        """Delete a subscription and its pending deliveries; False if there was none."""
        ...

    async def all_subscriptions(self) -> list[SubscriptionRow]:
        """Every subscription of every tenant, streams included (for the notifier)."""
        ...

    async def subscriptions_version(self) -> int:
        """A number that changes whenever any subscription is created, replaced or deleted."""
        ...

    async def pending_changes(self, limit: int) -> list[ChangeRecord]:
        """The oldest logged changes not yet matched."""
        ...

    async def settle_changes(
        self, seqs: list[int], deliveries: list[NewDelivery], lease_until: float
    ) -> list[int] | None:
        """Remove matched changes and write their deliveries (leased until ``lease_until``)
        in one transaction; the new delivery ids, or None when another process took one
        of the changes first (nothing is written then)."""
        ...

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
        ...

    async def park(self, endpoint: str, until: float) -> None:
        """Put off the endpoint's due rows that no process holds until ``until`` (the
        backlog of a failing endpoint, which probes then try one at a time)."""
        ...

    async def unpark(self, endpoint: str | None = None) -> None:
        """Make the rows put off (of one endpoint, or all) due now: the endpoint answers
        again, or a notifier starts."""
        ...

    async def finish_deliveries(self, results: list[DeliveryResult]) -> None:
        """Record attempts: remove sent or dropped rows, reschedule retries, count."""
        ...

    async def outbox_size(self) -> int:
        """Rows waiting in the change log and the outbox together."""
        ...

    async def release(self) -> None:
        """Close what the store opened for the notifier (it calls this when it stops)."""
        ...
