"""History retention: a background service that deletes instances older than the policy.

The policy comes from ``CITYVERSE_TEMPORAL_RETENTION``, e.g. ``Pipe=P90D,Junction=P1Y,*=P5Y``:
per entity type (a name of the core @context, or an IRI) how long its history is kept,
``*`` for every other type. The service applies it to every tenant once at start and
then every hour::

    policy = parse_policy("WaterQualityObserved=P90D,*=P5Y", contexts.core)
    service = Retention(store, policy)      # an app Service: await start() / stop()
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import cast

from cityverse.broker.request import Broker
from cityverse.core.entity import NameMapper, valid_name
from cityverse.core.errors import BadRequestData
from cityverse.core.tasks import cancel_and_wait
from cityverse.core.temporal import Duration, parse_duration
from cityverse.store.base import EntityStore
from cityverse.store.temporal import TemporalStore

log = logging.getLogger("cityverse.retention")

EVERY = 3600.0
"""Seconds between two runs."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_policy(text: str, ctx: NameMapper) -> dict[str, Duration]:
    """Expanded type (or ``*``) -> how long its history is kept; ValueError if invalid."""
    policy: dict[str, Duration] = {}
    if not text.strip():
        return policy
    for item in text.split(","):
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        where = f"CITYVERSE_TEMPORAL_RETENTION item {item.strip()!r}"
        if not sep or not name or not raw:
            raise ValueError(f"{where}: expected Type=duration, e.g. Pipe=P90D or *=P5Y")
        if name != "*" and not valid_name(name):
            raise ValueError(f"{where}: {name!r} is not an entity type name")
        try:
            duration = parse_duration(raw)
        except BadRequestData:
            raise ValueError(
                f"{where}: {raw!r} is not an ISO 8601 duration such as P90D, P1Y or PT12H"
            ) from None
        if duration.zero:
            raise ValueError(f"{where}: a retention of zero would delete all history")
        key = "*" if name == "*" else ctx.expand(name)
        if key in policy:
            raise ValueError(f"{where}: {name!r} is given twice")
        policy[key] = duration
    return policy


def keep_millis(duration: Duration, now: int) -> int:
    """How many milliseconds before ``now`` the duration reaches, months by the calendar."""
    moment = _EPOCH + timedelta(milliseconds=now)
    months = moment.year * 12 + moment.month - 1 - duration.months
    year, month = divmod(months, 12)
    if year < 1:
        return now - (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    back = moment.replace(year=year, month=month + 1, day=day)
    cutoff = (back - _EPOCH) // timedelta(milliseconds=1) - duration.millis
    return now - cutoff


class Retention:
    """Applies the retention policy to every tenant, at start and then every hour."""

    def __init__(
        self, store: EntityStore, policy: dict[str, Duration], *, every: float = EVERY
    ) -> None:
        self.store = store
        self.policy = policy
        self.every = every
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_broker(cls, broker: Broker) -> Retention:
        """The service of the broker's settings; ValueError names a bad setting."""
        policy = parse_policy(broker.settings.temporal_retention, broker.contexts.core)
        return cls(broker.store, policy)

    async def run_once(self, now: int | None = None) -> int:
        """Apply the policy once to every tenant; returns how many instances went."""
        if not self.policy or not hasattr(self.store, "apply_retention"):
            return 0
        history = cast(TemporalStore, self.store)
        moment = time.time_ns() // 1_000_000 if now is None else now
        keep = {name: keep_millis(d, moment) for name, d in self.policy.items()}
        deleted = 0
        for tenant in await self.store.tenants():
            deleted += await history.apply_retention(tenant, keep, moment)
        if deleted:
            log.info("retention deleted %d history instance(s)", deleted)
        return deleted

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                # A failed run (the database briefly away) must not stop the next ones.
                log.exception("history retention failed; retrying in %.0f s", self.every)
            await asyncio.sleep(self.every)

    async def start(self) -> None:
        """Start the hourly runs (the first one now) when there is a policy."""
        if self.policy and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="cityverse-retention")

    async def stop(self) -> None:
        """Stop the runs, waiting for one under way to be cancelled."""
        if self._task is None:
            return
        await cancel_and_wait([self._task], what="retention")
        self._task = None
