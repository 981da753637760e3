"""Personal data: the inventory, its retention, and the statement of where data lives.

The inventory is the tenant policy's ``personal`` list: which attribute of which type
holds personal data, why, for how long, and how roles without the ``personal`` right
see it (hidden, or as a keyed pseudonym). Retention erases a personal attribute, from
the current state and from history, once it is older than its term::

    erased = await erase_expired(store, tenant, policy, now_ms)   # attributes erased
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

from cityverse.broker.retention import keep_millis
from cityverse.core.entity import format_utc
from cityverse.core.model import Entity, Instance
from cityverse.core.tasks import cancel_and_wait
from cityverse.security.policy import PersonalAttribute, TenantPolicy
from cityverse.store.base import Change, EntityFilter, EntityStore
from cityverse.store.temporal import TemporalStore, TimeWindow

log = logging.getLogger("cityverse.privacy")

SWEEP_SECONDS = 3600.0
_AGE_FIELDS = ("observedAt", "modifiedAt", "createdAt")


def _age(instance: Instance) -> str:
    for name in _AGE_FIELDS:
        if name in instance:
            return str(instance[name])
    return ""


def inventory(policy: TenantPolicy) -> list[dict[str, Any]]:
    """The personal-data inventory of a tenant, as documents."""
    return [item.document() for item in policy.personal]


async def erase_expired(store: EntityStore, tenant: str, policy: TenantPolicy, now: int) -> int:
    """Erase personal attributes older than their retention; how many were erased."""
    terms = [
        (item, now - keep_millis(kept, now))
        for item in policy.personal
        if (kept := item.kept_for) is not None
    ]
    if not terms:
        return 0
    erased = 0
    page = await store.query(tenant, EntityFilter(), limit=None)
    for entity in page.entities:
        for name, instances in list(entity["attrs"].items()):
            cutoff = _cutoff(terms, entity, name)
            if cutoff is None:
                continue
            # The history first: instances recorded before the cutoff.
            erased += await _erase_history(store, tenant, entity["id"], name, cutoff)
            limit = format_utc_ms(cutoff)
            if all(_age(i) and _age(i) < limit for i in instances):
                await store.mutate(tenant, [Change(entity["id"], _without(name, limit))])
                erased += 1
    return erased


def _cutoff(terms: list[tuple[PersonalAttribute, int]], entity: Entity, name: str) -> int | None:
    found = [cutoff for item, cutoff in terms if item.applies(entity["type"], name)]
    return max(found) if found else None


def _without(name: str, limit: str) -> Callable[[Entity | None], Entity | None]:
    def apply(current: Entity | None) -> Entity | None:
        if current is None or name not in current["attrs"]:
            return current
        kept = [i for i in current["attrs"][name] if not (_age(i) and _age(i) < limit)]
        attrs = {k: v for k, v in current["attrs"].items() if k != name}
        if kept:
            attrs[name] = kept
        return {**current, "attrs": attrs}

    return apply


async def _erase_history(
    store: EntityStore, tenant: str, entity_id: str, name: str, cutoff: int
) -> int:
    # Both stores keep history (TemporalStore); the entity-store protocol does not say so.
    history = cast(TemporalStore, store)
    erased = 0
    # An instance's age is its observedAt, or without one the time it was recorded.
    for prop in ("observedAt", "modifiedAt"):
        found = await history.instances(
            tenant,
            entity_id,
            frozenset({name}),
            TimeWindow(prop=prop, end=cutoff),
            last_n=None,
            limit=100_000,
        )
        for series in found.values():
            for instance in series.instances:
                instance_id = instance.get("instanceId")
                if prop == "modifiedAt" and "observedAt" in instance:
                    continue
                if instance_id and await history.delete_instance(
                    tenant, entity_id, name, str(instance_id)
                ):
                    erased += 1
    return erased


def format_utc_ms(millis: int) -> str:
    """A UTC timestamp string from epoch milliseconds (the stored form)."""
    return format_utc(datetime.fromtimestamp(millis / 1000, tz=UTC))


class PersonalRetention:
    """Erases expired personal data in every tenant, every ``SWEEP_SECONDS``; a Service."""

    def __init__(
        self, store: EntityStore, policy_of: Callable[[str], Awaitable[TenantPolicy]]
    ) -> None:
        self.store = store
        self.policy_of = policy_of
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, now: int | None = None) -> int:
        moment = int(time.time() * 1000) if now is None else now
        erased = 0
        for tenant in await self.store.tenants():
            if tenant.startswith("@"):
                continue
            count = await erase_expired(self.store, tenant, await self.policy_of(tenant), moment)
            if count:
                log.info("erased %d expired personal attribute(s) in tenant %r", count, tenant)
            erased += count
        return erased

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("erasing expired personal data failed; retrying later")
            await asyncio.sleep(SWEEP_SECONDS)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        await cancel_and_wait([self._task], what="personal data retention")
