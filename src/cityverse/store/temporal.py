"""The temporal store protocol: every instance an attribute ever had, per tenant.

Both SQL stores implement it beside ``EntityStore``. History is written by ``mutate`` in
the same transaction as the current state (see ``store/history.py`` for what a change
records), and by the temporal operations below::

    window = TimeWindow("observedAt", start=ms("2026-01-01T00:00:00Z"), end=None)
    series = await store.instances("", "urn:ngsi-ld:Sensor:1", None, window, last_n=100,
                                   limit=1000)
    buckets = await store.aggregate("", "urn:ngsi-ld:Sensor:1", None, window,
                                    Period(millis=86_400_000), frozenset({"avg", "max"}))

Times cross this interface as integer milliseconds since the Unix epoch (UTC); names are
expanded IRIs. A stored history instance is the attribute instance as the entity held it
(model.py shape) plus ``instanceId`` (a URI the store assigns,
``urn:ngsi-ld:attribute:instance:<n>``, never given out twice) and, for a deletion,
``deletedAt``: a deleted attribute (or every attribute of a deleted entity) is recorded
as an instance holding the NGSI-LD Null, with ``deletedAt`` = ``modifiedAt`` = the time
of the deletion and no ``observedAt``, so it shows on the deletedAt and modifiedAt axes
only.

Aggregation (``aggregate``): totalCount and distinctCount count every instance; sum,
avg, min, max, stddev (the sample standard deviation) and sumsq use the Property values
that are JSON numbers (booleans are not) and are None for a period without any. Each
datasetId is aggregated apart (``Bucket.dataset_id``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from cityverse.core.model import Instance
from cityverse.store.base import EntityFilter

TIME_PROPERTIES = ("observedAt", "createdAt", "modifiedAt", "deletedAt")
"""What ``timeproperty`` may name; observedAt is the default."""

AGGREGATION_METHODS = frozenset(
    {"totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq"}
)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Instances whose ``prop`` time t satisfies ``start <= t < end`` (None: unbounded).

    An instance without the property (no observedAt, or not deleted) is outside every
    window on that property.
    """

    prop: str = "observedAt"
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True, slots=True)
class Period:
    """An aggregation period: calendar ``months`` plus fixed ``millis`` (P1M, PT1H...)."""

    months: int = 0
    millis: int = 0


@dataclass(frozen=True, slots=True)
class HistoryEntity:
    """An entity that has (or had) history: its types, and when it was deleted if it was."""

    id: str
    types: list[str]
    deleted_at: int | None = None
    scope: list[str] | None = None


@dataclass(slots=True)
class HistoryPage:
    """A page of entities with history; ``total`` is set when a count was asked for."""

    entities: list[HistoryEntity]
    total: int | None = None


@dataclass(slots=True)
class AttributeHistory:
    """The instances of one attribute (every datasetId) in a window, oldest first.

    ``total`` is how many instances the window holds and ``wanted`` how many of them the
    request asks for: all of them, or with ``last_n`` the newest ``last_n`` of each
    datasetId. ``instances`` holds at most ``limit`` of those: the oldest, or with
    ``last_n`` the newest. ``first``/``last`` are the times (on the window's property)
    of the first and last instance returned, for the Content-Range header.
    """

    instances: list[Instance]
    total: int
    first: int | None = None
    last: int | None = None
    wanted: int | None = None
    """None: ``total``."""


@dataclass(slots=True)
class Bucket:
    """One aggregation period of one attribute: [start, end) and a value per method.

    Each datasetId of an attribute is aggregated on its own: ``dataset_id`` says which
    (None: the default instance). A list of buckets holds the default instance's
    periods first, then each datasetId's in order, each oldest first.
    """

    start: int
    end: int
    values: dict[str, Any] = field(default_factory=dict)
    dataset_id: str | None = None


class ImportRow(NamedTuple):
    """One instance to import in bulk: the attribute instance at ``observed_at``.

    A named tuple (cheap to build by the million); ``dataset_id`` is the instance's
    datasetId (the store adds it to the instance when missing).
    """

    entity_id: str
    types: tuple[str, ...]
    attr: str
    observed_at: int
    instance: Instance
    dataset_id: str | None = None


class ImportChunk(NamedTuple):
    """Instances made ready to store in bulk (``timeseries.prepare_import``): plain
    values only, so that a chunk can be made in another process and sent whole."""

    series: list[tuple[str, tuple[str, ...], str, str]]
    """Each series the rows add to: (entity id, the entity's types, attribute, datasetId
    or "")."""
    now: int
    """The createdAt and modifiedAt of ``rows``."""
    rows: list[tuple[int, int, int | float | None, bytes]]
    """(index in ``series``, observedAt, number, document): the document and the number
    as ``history.split_number`` gives them."""
    timed: list[tuple[int, int, int, int, int | None, int | float | None, bytes]]
    """Rows of instances that give their own times: (index in ``series``, observedAt,
    createdAt, modifiedAt, deletedAt, number, document)."""
    sums: list[tuple[int, int, int, int, float, float, Any, Any]]
    """What the rows add to the hourly rollups: (index in ``series``, hour, instances,
    numbers, sum, sum of squares, min, max) for each hour a series has instances in."""

    @property
    def size(self) -> int:
        """How many instances the chunk holds."""
        return len(self.rows) + len(self.timed)


class TemporalStore(Protocol):
    """The history of entities' attributes; the stores keep rollups and retention."""

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
        """Entities with history matching ``flt``, oldest first. Ids, idPattern, type
        names and ``attrs`` are tested on the history; predicates on the states the
        entity held in ``window`` (store/states.py), so that a deleted entity matches
        what it was."""
        ...

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
        """Per attribute (all when ``attrs`` is None), its instances in ``window``
        (with ``last_n``, the newest ``last_n`` of each datasetId), at most ``limit`` of
        them; attributes without any there are left out."""
        ...

    async def aggregate(
        self,
        tenant: str,
        entity_id: str,
        attrs: frozenset[str] | None,
        window: TimeWindow,
        period: Period | None,
        methods: frozenset[str],
    ) -> dict[str, list[Bucket]]:
        """Per attribute, ``methods`` over each period of ``window`` (one bucket over the
        whole window when ``period`` is None). Periods start at ``window.start``, or at
        the attribute's first instance when the window has no start; a bucket's ``end``
        is its start plus the period (the window's end, or the last instance's time
        plus 1 ms, when ``period`` is None); empty periods are left out."""
        ...

    async def append_history(
        self, tenant: str, entity_id: str, types: list[str], attrs: dict[str, list[Instance]]
    ) -> None:
        """Add instances to an entity's history (creating it), leaving the current
        entity alone (POST /temporal/entities and .../attrs)."""
        ...

    async def delete_history(
        self,
        tenant: str,
        entity_id: str,
        attr: str | None = None,
        *,
        dataset_id: str | None = None,
        delete_all: bool = False,
    ) -> bool:
        """Delete an entity's whole history, or one attribute's (its default instances,
        one datasetId's, or every one with ``delete_all``); False if there was none."""
        ...

    async def modify_instance(
        self, tenant: str, entity_id: str, attr: str, instance_id: str, instance: Instance
    ) -> bool:
        """Replace one history instance, keeping its instanceId; False if not found."""
        ...

    async def delete_instance(
        self, tenant: str, entity_id: str, attr: str, instance_id: str
    ) -> bool:
        """Delete one history instance; False if not found."""
        ...

    async def import_history(self, tenant: str, rows: Iterable[ImportRow]) -> int:
        """Add many instances at storage speed; returns how many were added."""
        ...

    async def import_chunks(self, tenant: str, chunks: AsyncIterable[ImportChunk]) -> int:
        """Add prepared chunks of instances (made in other processes, say) at storage
        speed, each committed whole; returns how many instances were added."""
        ...

    async def apply_retention(self, tenant: str, keep: dict[str, int], now: int) -> int:
        """Delete instances older than ``now - keep[type]`` (type ``*``: every other
        type); returns how many were deleted. Rollups stay exact.

        An instance's age is its observedAt, or without one its modifiedAt. An entity of
        several types keeps the longest of their terms. A deleted entity whose history
        has all expired is forgotten."""
        ...
