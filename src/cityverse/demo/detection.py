"""The water twin's leak detection, run on the demo's history once every city hour.

``LeakWatch`` calls the twin's own detection (``twins/water/incidents.detect``: the
learned normal, the hourly GLR-CUSUM test) over the water sensors' history from the
start of their logged week to the last complete city hour, learning the normal from
that leak-free week. When it raises a leak Alert, the watch localises it at once
(``incidents.localise_alert``: the candidate pipes and the area to search, written on
the Alert) and stops: the story has one leak, never repaired::

    watch = LeakWatch(store, "L-Town", since=story.history_from)
    await watch.prepare()
    watch.poke(clock.now())        # each tick: a run per new city hour, in the background
    await watch.check(until)       # or one run by hand, up to ``until``

The test judges whole hours, so a run covers the hours complete at ``until`` (the top of
an hour), and the Alert it raises is never stamped later than the city's time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cityverse.core.errors import NgsiError
from cityverse.store.base import DEFAULT_TENANT, EntityStore
from cityverse.twins.water import incidents
from cityverse.twins.water.simulate import Network
from cityverse.twins.water.twin import load_network

log = logging.getLogger("cityverse.demo")

HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Found:
    """A leak the twin found: its Alert, when it was raised (city and wall clock), and
    the localisation written on it."""

    alert: str
    start: datetime
    """The leak's estimated onset (city time)."""
    raised: datetime
    """The Alert's ``dateIssued``: the end of the hour that crossed the threshold."""
    wall: float
    """``time.time()`` when the Alert was written."""
    candidates: list[dict[str, Any]]
    search_area: dict[str, Any] | None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _parse(text: Any) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _unwrap(value: Any) -> Any:
    # keyValues keeps a JsonProperty's value wrapped in {"json": ...}.
    if isinstance(value, dict) and set(value) == {"json"}:
        return value["json"]
    return value


def hour_floor(moment: datetime) -> datetime:
    """The top of the hour at or before ``moment``."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class LeakWatch:
    """Runs the twin's leak detection on a network's history, each new city hour."""

    def __init__(
        self,
        store: EntityStore,
        network: str,
        *,
        since: datetime,
        train: timedelta = timedelta(days=7),
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        self.store = store
        self.network = network
        self.since = since
        self.train = train
        self.tenant = tenant
        self.found: Found | None = None
        self.checked: datetime | None = None
        """The last hour boundary a run was started for."""
        self.runs = 0
        self.task: asyncio.Task[Found | None] | None = None
        self._model: Network | None = None

    @property
    def first(self) -> datetime:
        """The first hour boundary with a judged hour after the training week."""
        return hour_floor(self.since + self.train) + HOUR

    async def prepare(self) -> None:
        """Take up a leak Alert already raised on this history (the demo restarted)."""
        for alert in await incidents.list_alerts(self.store, self.tenant, self.network):
            evidence = _unwrap(alert.get("leakEvidence"))
            if alert.get("subCategory") != "leak" or not isinstance(evidence, dict):
                continue
            if _parse(alert.get("validFrom")) >= self.since + self.train:
                area = alert.get("searchArea")
                found = Found(
                    alert["id"],
                    _parse(alert["validFrom"]),
                    _parse(alert["dateIssued"]),
                    time.time(),
                    list(_unwrap(alert.get("leakCandidates")) or []),
                    area if isinstance(area, dict) else None,
                )
                self.found = found
                return

    def poke(self, moment: datetime) -> None:
        """Start a run in the background when a new city hour is complete at ``moment``
        (none while one is running, none once the leak is found)."""
        if self.found is not None or (self.task is not None and not self.task.done()):
            return
        until = hour_floor(moment)
        if until < self.first or (self.checked is not None and until <= self.checked):
            return
        self.checked = until
        self.task = asyncio.create_task(self._guarded(until), name="cityverse-demo-leaks")

    async def _guarded(self, until: datetime) -> Found | None:
        try:
            return await self.check(until)
        except NgsiError as exc:
            log.info("demo leak detection up to %s: %s", until, exc.detail)
        except Exception:
            log.exception("demo leak detection up to %s failed", until)
        return None

    async def _network(self) -> Network:
        if self._model is None:
            bodies = await load_network(self.store, self.tenant, self.network)
            self._model = await asyncio.to_thread(Network.from_entities, self.network, bodies)
        return self._model

    async def check(self, until: datetime) -> Found | None:
        """Detect leaks in the history up to ``until``; localise a leak Alert it raises."""
        network = await self._network()
        days = self.train.total_seconds() / 86_400
        began = time.monotonic()
        self.runs += 1
        report = await incidents.detect(
            self.store, self.tenant, network, _ms(self.since), _ms(until), train_days=days
        )
        leak = next(
            (
                a
                for a in report.alerts
                if a["subCategory"]["value"] == "leak" and "leakEvidence" in a
            ),
            None,
        )
        if leak is None:
            return None
        written = time.time()
        try:
            where = await incidents.localise_alert(
                self.store, self.tenant, network, leak["id"], train_days=days, end_ms=_ms(until)
            )
        except NgsiError as exc:
            log.warning("demo leak %s could not be localised: %s", leak["id"], exc.detail)
            where = {"candidates": [], "searchArea": None}
        self.found = Found(
            leak["id"],
            _parse(leak["validFrom"]["value"]),
            _parse(leak["dateIssued"]["value"]),
            written,
            where["candidates"],
            where["searchArea"],
        )
        best = ", ".join(c["pipe"] for c in where["candidates"][:3])
        log.info(
            "demo leak detection: %s raised for the hour ending %s (leak since about %s; "
            "candidate pipes %s), in %.1f s",
            leak["id"],
            until,
            self.found.start,
            best or "none",
            time.monotonic() - began,
        )
        return self.found
