"""History queries planned once for both stores: windows, periods, rollups, retention.

Each series (entity, attribute, datasetId) keeps hourly and daily rollups of its
observed instances: per UTC hour and day, the count of instances and the count, sum,
sum of squares, minimum and maximum of the numeric values. ``plan_segments`` cuts each
aggregation period into the days it covers whole (read from the daily rollups), the
hours it covers whole around them (hourly rollups), and the partial hours at its edges
(raw instances)::

    buckets = list(periods(start, end, Period(millis=DAY)))
    segments = plan_segments(buckets, end, use_rollups=True)
    # segments.daily / .hourly / .raw: Segment(k, lo, hi), bucket k's part in [lo, hi)

The store sums each source over its segments per bucket into ``Partial`` values and
``finish`` turns them into the methods' values. Rollups cannot count distinct values,
so ``distinctCount`` reads raw instances only.

Non-numeric values (strings, booleans, objects, Relationships...) count in
``totalCount`` and ``distinctCount``; the numeric methods (sum, avg, min, max, stddev,
sumsq) use the numeric values only and are None for a period that has none. ``stddev``
is the sample standard deviation (None below two values).

The SQL statements that keep rollups are shared too: they are written with ``?``
placeholders and standard SQL (integer division, no ``%``), which PostgreSQL runs after
``pg()`` turns the placeholders into ``%s``.
"""

from __future__ import annotations

import asyncio
import calendar
import math
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain, islice
from typing import Any, NamedTuple

from cityverse.core.model import Instance
from cityverse.store.base import Outcome
from cityverse.store.history import (
    INT64_MAX,
    INT64_MIN,
    NO_TIME,
    EntityHistory,
    change_time,
    entity_history,
    loaded,
    record,
    split_number,
)
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

HOUR = 3_600_000
DAY = 86_400_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_to(t: int, unit: int) -> int:
    """``t`` rounded down to a multiple of ``unit``."""
    return t - t % unit


def ceil_to(t: int, unit: int) -> int:
    """``t`` rounded up to a multiple of ``unit``."""
    return -((-t) // unit) * unit


def floor_sql(column: str, unit: int) -> str:
    """SQL for ``column`` rounded down to a multiple of ``unit`` (negative times too)."""
    return (
        f"(CASE WHEN {column} >= 0 THEN {column} / {unit} "
        f"ELSE ({column} + 1) / {unit} - 1 END) * {unit}"
    )


def add_months(t: int, months: int) -> int:
    """``t`` moved by calendar months in UTC, the day clamped to the month's length."""
    moment = _EPOCH + timedelta(milliseconds=t)
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    moved = moment.replace(year=year, month=month + 1, day=day)
    return (moved - _EPOCH) // timedelta(milliseconds=1)


def periods(start: int, end: int, period: Period | None) -> Iterator[tuple[int, int]]:
    """The periods [a, b) from ``start`` that begin before ``end`` (one when None)."""
    if period is None:
        yield start, end
        return
    k = 0
    a = start
    while a < end:
        b = _boundary(start, period, k + 1)
        yield a, b
        k += 1
        a = b


def _boundary(start: int, period: Period, k: int) -> int:
    t = start + k * period.millis
    return add_months(t, k * period.months) if period.months else t


class Segment(NamedTuple):
    """The part [lo, hi) of bucket ``k`` that one source answers."""

    k: int
    lo: int
    hi: int


@dataclass(slots=True)
class Segments:
    """Where each bucket's figures come from."""

    daily: list[Segment] = field(default_factory=list)
    hourly: list[Segment] = field(default_factory=list)
    raw: list[Segment] = field(default_factory=list)


def plan_segments(buckets: list[tuple[int, int]], end: int, *, use_rollups: bool) -> Segments:
    """Cut each bucket (clipped to ``end``) into whole days, whole hours and raw edges."""
    plan = Segments()
    for k, (a, b) in enumerate(buckets):
        c = min(b, end)
        if not use_rollups:
            plan.raw.append(Segment(k, a, c))
            continue
        ha, hc = ceil_to(a, HOUR), floor_to(c, HOUR)
        if ha >= hc:
            plan.raw.append(Segment(k, a, c))
            continue
        if a < ha:
            plan.raw.append(Segment(k, a, ha))
        if hc < c:
            plan.raw.append(Segment(k, hc, c))
        da, dc = ceil_to(ha, DAY), floor_to(hc, DAY)
        if da >= dc:
            plan.hourly.append(Segment(k, ha, hc))
            continue
        if ha < da:
            plan.hourly.append(Segment(k, ha, da))
        if dc < hc:
            plan.hourly.append(Segment(k, dc, hc))
        plan.daily.append(Segment(k, da, dc))
    return plan


@dataclass(slots=True)
class Partial:
    """Sums over part of a period; parts add up exactly (min/max included)."""

    count: int = 0
    n: int = 0
    total: float = 0.0
    squares: float = 0.0
    low: float | None = None
    high: float | None = None
    distinct: int = 0

    def add(
        self,
        count: int,
        n: int,
        total: float | None,
        squares: float | None,
        low: float | None,
        high: float | None,
    ) -> None:
        """Add the figures of another part of the same period."""
        self.count += count
        self.n += n
        self.total += total or 0.0
        self.squares += squares or 0.0
        if low is not None and (self.low is None or low < self.low):
            self.low = low
        if high is not None and (self.high is None or high > self.high):
            self.high = high


def finish(partial: Partial, methods: frozenset[str]) -> dict[str, Any]:
    """The value of each method over a period."""
    values: dict[str, Any] = {}
    n = partial.n
    for method in methods:
        if method == "totalCount":
            values[method] = partial.count
        elif method == "distinctCount":
            values[method] = partial.distinct
        elif n == 0:
            values[method] = None
        elif method == "sum":
            values[method] = partial.total
        elif method == "avg":
            values[method] = partial.total / n
        elif method == "min":
            values[method] = partial.low
        elif method == "max":
            values[method] = partial.high
        elif method == "sumsq":
            values[method] = partial.squares
        elif method == "stddev":
            values[method] = _stddev(partial)
    return values


def _stddev(p: Partial) -> float | None:
    if p.n < 2:
        return None
    mean = p.total / p.n
    variance = (p.squares - mean * p.total) / (p.n - 1)
    return math.sqrt(variance) if variance > 0 else 0.0


def buckets_of(
    partials: dict[int, Partial],
    bounds: list[tuple[int, int]] | None,
    start: int,
    period: Period | None,
    end: int,
    methods: frozenset[str],
) -> list[Bucket]:
    """Non-empty periods in order, as Buckets (bounds by index, or fixed from start)."""
    out: list[Bucket] = []
    for k in sorted(partials):
        partial = partials[k]
        if partial.count == 0:
            continue
        if bounds is not None:
            a, b = bounds[k]
        elif period is None:
            a, b = start, end
        else:
            a = start + k * period.millis
            b = a + period.millis
        out.append(Bucket(a, b, finish(partial, methods)))
    return out


# -- SQL shared by both stores ----------------------------------------------------------

ROLLUP_TABLES = (("history_hourly", HOUR), ("history_daily", DAY))

UPSERT_ROLLUP = """
INSERT INTO {table} (sid, bucket, cnt, n, s, ss, mn, mx) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (sid, bucket) DO UPDATE SET
    cnt = {table}.cnt + excluded.cnt,
    n = {table}.n + excluded.n,
    s = {table}.s + excluded.s,
    ss = {table}.ss + excluded.ss,
    mn = CASE WHEN {table}.mn IS NULL OR excluded.mn < {table}.mn
         THEN excluded.mn ELSE {table}.mn END,
    mx = CASE WHEN {table}.mx IS NULL OR excluded.mx > {table}.mx
         THEN excluded.mx ELSE {table}.mx END
"""
"""Adds the figures of new instances to a rollup bucket (inserts are incremental)."""
UPSERTS = {table: UPSERT_ROLLUP.format(table=table) for table, _ in ROLLUP_TABLES}
"""``UPSERT_ROLLUP`` for each rollup table."""


def rollup_upserts(time: str, figures: str, source: str) -> list[str]:
    """Per rollup table, the upsert of the ``figures`` (cnt .. mx) of the rows of
    ``source`` (which have a ``sid``), grouped by series and bucket: ``time`` rounded down
    to the table's unit. ``source`` ends with a WHERE clause: SQLite reads an upsert's
    ``SELECT`` without one as ambiguous."""
    return [
        UPSERT_ROLLUP.format(table=table).replace(
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            f"SELECT sid, {floor_sql(time, unit)} AS b, {figures} FROM {source} GROUP BY sid, b",
        )
        for table, unit in ROLLUP_TABLES
    ]


FIGURES = (
    "count(*), count(num), coalesce(sum(num), 0), coalesce(sum(num * num), 0), min(num), max(num)"
)
"""The figures of raw instances, in the order of the rollup columns cnt .. mx."""

SUMMED_FIGURES = "sum(cnt), sum(n), sum(s), sum(ss), min(mn), max(mx)"
"""The figures of rows that are figures already (an hour's), added up."""


def rebuild_steps(
    sid: int, lo: int, hi: int, figures: str = FIGURES
) -> list[tuple[str, tuple[int, int, int]]]:
    """Statements that make one series' rollups exact again over times [lo, hi]: its
    hourly buckets recomputed from raw instances, then its daily ones from hourly."""
    hourly = (sid, floor_to(lo, HOUR), floor_to(hi, HOUR) + HOUR)
    daily = (sid, floor_to(lo, DAY), floor_to(hi, DAY) + DAY)
    return [
        ("DELETE FROM history_hourly WHERE sid = ? AND bucket >= ? AND bucket < ?", hourly),
        (
            "INSERT INTO history_hourly (sid, bucket, cnt, n, s, ss, mn, mx) "
            f"SELECT sid, {floor_sql('observed', HOUR)} AS b, {figures} FROM history_instances "
            "WHERE sid = ? AND observed >= ? AND observed < ? GROUP BY sid, b",
            hourly,
        ),
        ("DELETE FROM history_daily WHERE sid = ? AND bucket >= ? AND bucket < ?", daily),
        (
            "INSERT INTO history_daily (sid, bucket, cnt, n, s, ss, mn, mx) "
            f"SELECT sid, {floor_sql('bucket', DAY)} AS b, sum(cnt), sum(n), sum(s), sum(ss), "
            "min(mn), max(mx) FROM history_hourly WHERE sid = ? AND bucket >= ? AND bucket < ? "
            "GROUP BY sid, b",
            daily,
        ),
    ]


def increments(
    rows: list[tuple[int, int, int | float | None]],
) -> dict[str, list[tuple[Any, ...]]]:
    """Rollup upsert parameters per table for new (sid, observed, number) rows."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table, unit in ROLLUP_TABLES:
        acc: dict[tuple[int, int], Partial] = {}
        for sid, observed, num in rows:
            key = (sid, floor_to(observed, unit))
            part = acc.get(key)
            if part is None:
                part = acc[key] = Partial()
            if num is None:
                part.add(1, 0, None, None, None, None)
            else:
                part.add(1, 1, num, num * num, num, num)
        out[table] = [
            (sid, b, p.count, p.n, p.total, p.squares, p.low, p.high)
            for (sid, b), p in sorted(acc.items())
        ]
    return out


def pg(statement: str) -> str:
    """A statement written with ``?`` placeholders, for psycopg."""
    return statement.replace("?", "%s")


# -- windows ----------------------------------------------------------------------------

MAX_TIME = 2**63 - 1
COLUMNS = {
    "observedAt": "observed",
    "createdAt": "created",
    "modifiedAt": "modified",
    "deletedAt": "deleted",
}
"""The column that holds each time property of an instance."""


def window_bounds(window: TimeWindow) -> tuple[str, int, int]:
    """The column a window reads and its bounds [lo, hi) as integers."""
    column = COLUMNS.get(window.prop)
    if column is None:
        raise ValueError(f"unknown time property {window.prop!r}")
    floor = NO_TIME + 1 if column == "observed" else NO_TIME
    lo = floor if window.start is None else max(window.start, floor)
    hi = MAX_TIME if window.end is None else window.end
    return column, lo, hi


# -- aggregation plans -------------------------------------------------------------------

MAX_BUCKETS = 100_000
"""Periods above which fixed-length periods are numbered in SQL rather than listed."""


@dataclass(slots=True)
class Aggregation:
    """How to aggregate one attribute's series over a window.

    Either ``step`` is set (fixed periods from ``start`` numbered by SQL division over
    raw instances) or ``segments`` (each bucket's days, hours and raw edges, with the
    buckets' ``bounds``).
    """

    column: str
    start: int
    end: int
    period: Period | None
    methods: frozenset[str]
    step: int | None = None
    segments: Segments | None = None
    bounds: list[tuple[int, int]] | None = None

    @property
    def distinct(self) -> bool:
        return "distinctCount" in self.methods

    def buckets(self, partials: dict[int, Partial], dataset_id: str | None) -> list[Bucket]:
        """The non-empty buckets of one series, from its figures per period number."""
        found = buckets_of(partials, self.bounds, self.start, self.period, self.end, self.methods)
        for bucket in found:
            bucket.dataset_id = dataset_id
        return found


def plan_aggregation(
    window: TimeWindow,
    period: Period | None,
    methods: frozenset[str],
    first: int,
    last: int,
) -> Aggregation:
    """The plan for a window whose instances span times [first, last]."""
    if period is not None and period.months == 0 and period.millis <= 0:
        raise ValueError("an aggregation period must be longer than zero")
    if period is not None and (period.months < 0 or period.millis < 0):
        raise ValueError("an aggregation period cannot be negative")
    column, _, _ = window_bounds(window)
    start = first if window.start is None else window.start
    end = last + 1 if window.end is None else window.end
    plan = Aggregation(column, start, end, period, methods)
    use_rollups = column == "observed" and not plan.distinct
    if period is not None and period.months == 0:
        count = -(-(end - start) // period.millis)
        if not use_rollups or period.millis < HOUR or count > MAX_BUCKETS:
            plan.step = period.millis
            return plan
    plan.bounds = list(periods(start, end, period))
    plan.segments = plan_segments(plan.bounds, end, use_rollups=use_rollups)
    return plan


def count_sql(sid: int, lo: int, hi: int) -> tuple[str, list[int]]:
    """One statement counting a series' instances observed in [lo, hi): whole days and
    hours from the rollups, the edges from raw instances."""
    plan = plan_segments([(lo, hi)], hi, use_rollups=True)
    parts: list[str] = []
    params: list[int] = []
    sources = (
        ("history_daily", "bucket", "sum(cnt)", plan.daily),
        ("history_hourly", "bucket", "sum(cnt)", plan.hourly),
        ("history_instances", "observed", "count(*)", plan.raw),
    )
    for table, column, figure, segments in sources:
        for _, a, b in segments:
            parts.append(
                f"(SELECT coalesce({figure}, 0) FROM {table} "
                f"WHERE sid = ? AND {column} >= ? AND {column} < ?)"
            )
            params += [sid, a, b]
    return "SELECT " + (" + ".join(parts) or "0"), params


# -- retention, paging, answers ---------------------------------------------------------


def kept_for(types: list[str], keep: dict[str, int]) -> int | None:
    """How long an entity of these types keeps history: the longest of its types' terms,
    else the ``*`` term; None keeps everything."""
    terms = [keep[t] for t in types if t in keep]
    if terms:
        return max(terms)
    return keep.get("*")


class Pager:
    """Collects one page of history entities, counting every match when asked."""

    def __init__(self, limit: int | None, offset: int, count: bool) -> None:
        self.offset = offset
        self.end = None if limit is None else offset + limit
        self.count = count
        self.found: list[HistoryEntity] = []
        self.matched = 0

    def wanted(self) -> bool:
        """Whether the next match belongs on the page."""
        return self.offset <= self.matched and (self.end is None or self.matched < self.end)

    def counted(self) -> bool:
        """Count one match; True when the scan may stop."""
        self.matched += 1
        return not self.count and self.end is not None and self.matched >= self.end

    def add(self, entity: HistoryEntity) -> bool:
        """Count one match, kept when it is on the page; True when the scan may stop."""
        if self.wanted():
            self.found.append(entity)
        return self.counted()

    def result(self) -> HistoryPage:
        """The page collected so far."""
        return HistoryPage(self.found, self.matched if self.count else None)


def partials(
    rows: Iterable[Sequence[Any]], distinct: bool, out: dict[int, Partial] | None = None
) -> dict[int, Partial]:
    """Add figure rows (k, cnt, n, s, ss, mn, mx[, distinct]) to the partials of each k."""
    out = {} if out is None else out
    for row in rows:
        part = out.get(row[0])
        if part is None:
            part = out[row[0]] = Partial()
        part.add(int(row[1] or 0), int(row[2] or 0), row[3], row[4], row[5], row[6])
        if distinct:
            part.distinct += int(row[7])
    return out


Row = Sequence[Any]
"""A history row as read: time on the window's property, observed, iid, created,
modified, deleted, doc (None: the series' template), number."""


@dataclass(frozen=True, slots=True)
class InstanceRead:
    """How one attribute's instances in a window are read: from each series (datasetId)
    its oldest rows, or with ``last_n`` its newest ``last_n``; then at most ``limit``
    of them all, the oldest or with ``last_n`` the newest."""

    column: str
    lo: int
    hi: int
    last_n: int | None
    limit: int

    @classmethod
    def of(cls, window: TimeWindow, last_n: int | None, limit: int) -> InstanceRead:
        """The read of ``window`` for ``last_n`` and the per-attribute ``limit``."""
        column, lo, hi = window_bounds(window)
        return cls(column, lo, hi, last_n, max(0, limit))

    @property
    def statement(self) -> str:
        """One series' rows (``?`` placeholders; parameters from ``params``)."""
        order = "ASC" if self.last_n is None else "DESC"
        c = self.column
        return (
            f"SELECT {c}, observed, iid, created, modified, deleted, doc, num "
            f"FROM history_instances WHERE sid = ? AND {c} >= ? AND {c} < ? "
            f"ORDER BY {c} {order}, iid {order} LIMIT ?"
        )

    def params(self, sid: int) -> tuple[int, int, int, int]:
        """The parameters of ``statement`` for one series."""
        per_series = self.limit if self.last_n is None else min(self.last_n, self.limit)
        return (sid, self.lo, self.hi, per_series)

    def count(self, sid: int) -> tuple[str, list[int]]:
        """A statement counting one series' instances in the window."""
        if self.column == "observed":
            return count_sql(sid, self.lo, self.hi)
        c = self.column
        return (
            f"SELECT count(*) FROM history_instances WHERE sid = ? AND {c} >= ? AND {c} < ?",
            [sid, self.lo, self.hi],
        )

    def answer(self, series: Iterable[tuple[list[Row], int, Any]]) -> AttributeHistory | None:
        """The attribute's answer from each series' rows, count and template; None
        when the window holds none of its instances."""
        total = wanted = 0
        rows: list[Row] = []
        for found, count, template in series:
            total += count
            wanted += count if self.last_n is None else min(count, self.last_n)
            rows.extend(
                row if row[6] is not None else (*row[:6], template, row[7]) for row in found
            )
        if not total:
            return None
        rows.sort(key=lambda row: (row[0], row[2]))
        if self.last_n is None:
            rows = rows[: self.limit]
        elif self.limit:
            rows = rows[-self.limit :]
        else:
            rows = []
        return AttributeHistory(
            [
                loaded(doc, iid, obs, cre, mod, dele, num)
                for _, obs, iid, cre, mod, dele, doc, num in rows
            ],
            total,
            rows[0][0] if rows else None,
            rows[-1][0] if rows else None,
            wanted,
        )


def span_sql(sid: int, column: str, lo: int, hi: int) -> tuple[str, tuple[int, ...]]:
    """A statement giving the first and last time of a series' instances in [lo, hi)."""
    where = f"FROM history_instances WHERE sid = ? AND {column} >= ? AND {column} < ?"
    return (
        f"SELECT (SELECT min({column}) {where}), (SELECT max({column}) {where})",
        (sid, lo, hi, sid, lo, hi),
    )


def plan_of(
    spans: Iterable[Sequence[int | None]],
    window: TimeWindow,
    period: Period | None,
    methods: frozenset[str],
) -> Aggregation | None:
    """The plan for an attribute whose series span these (first, last) times in the
    window; None when none of them has an instance there."""
    found = [(a, b) for a, b in spans if a is not None and b is not None]
    if not found:
        return None
    return plan_aggregation(
        window, period, methods, min(a for a, _ in found), max(b for _, b in found)
    )


# -- writes shared by both stores ----------------------------------------------------------

VALUE_MEMBERS = ("value", "object", "vocab", "languageMap", "valueList", "objectList", "json")
"""The members that hold an instance's value (distinctCount compares them)."""


def changes_of(outcomes: Iterable[Outcome]) -> list[EntityHistory]:
    """What the committed outcomes of one ``mutate`` add to the history."""
    changes: list[EntityHistory] = []
    for outcome in outcomes:
        if outcome.error is not None or outcome.new is outcome.old:
            continue
        change = entity_history(outcome.old, outcome.new, change_time(outcome.old, outcome.new))
        if change is not None:
            changes.append(change)
    return changes


class _Numbered:
    """The series of a chunk being prepared, numbered as they first come."""

    def __init__(self) -> None:
        self.numbers: dict[tuple[str, str, str], int] = {}
        self.series: list[tuple[str, tuple[str, ...], str, str]] = []

    def number(self, entity_id: str, types: tuple[str, ...], attr: str, dataset: str) -> int:
        key = (entity_id, attr, dataset)
        k = self.numbers.get(key)
        if k is None:
            k = self.numbers[key] = len(self.series)
            self.series.append((entity_id, types, attr, dataset))
        elif types is not self.series[k][1] and types != self.series[k][1]:
            merged = tuple(dict.fromkeys([*self.series[k][1], *types]))
            self.series[k] = (entity_id, merged, attr, dataset)
        return k


def prepare_import(rows: Iterable[ImportRow], now: int) -> ImportChunk:
    """``rows`` made ready for either store's ``import_chunks`` (``now``: the createdAt
    and modifiedAt of instances that give none). A pure function of plain values, so it
    can run in a parser process."""
    numbered = _Numbered()
    chunk = ImportChunk(numbered.series, now, [], [], [])
    append = chunk.rows.append
    # The loop below runs once per instance imported: kept lean on purpose.
    for entity_id, types, attr, observed, inst, dataset in rows:
        k = numbered.number(entity_id, types, attr, dataset or "")
        if dataset is not None and inst.get("datasetId") != dataset:
            inst = {**inst, "datasetId": dataset}
        doc, num = split_number(inst)
        if "createdAt" in inst or "modifiedAt" in inst or "deletedAt" in inst:
            times = record(attr, inst, now)
            chunk.timed.append(
                (k, observed, times.created, times.modified, times.deleted, num, doc)
            )
        else:
            append((k, observed, num, doc))
    _add_hourly_sums(chunk)
    return chunk


Reading = tuple[str, tuple[str, ...], str, int, Any, str | None, str | None]
"""A plain reading: entity id, types, attribute, observedAt, the value of a Property, its
unitCode and its datasetId (None when it has none)."""


def prepare_readings(readings: Iterable[Reading], now: int) -> ImportChunk:
    """What ``prepare_import`` makes of the readings' Property instances, without making
    them: a number's document depends on its unitCode and datasetId only."""
    numbered = _Numbered()
    chunk = ImportChunk(numbered.series, now, [], [], [])
    append = chunk.rows.append
    docs: dict[tuple[str | None, str | None], bytes] = {}
    # The loop below runs once per instance imported: kept lean on purpose.
    for entity_id, types, attr, observed, value, unit, dataset in readings:
        k = numbered.number(entity_id, types, attr, dataset or "")
        kind = type(value)
        if kind is float or (kind is int and INT64_MIN <= value <= INT64_MAX):
            doc = docs.get((unit, dataset))
            if doc is None:
                doc = docs[(unit, dataset)] = split_number(plain_instance(0, unit, dataset))[0]
            append((k, observed, value, doc))
        else:
            doc, num = split_number(plain_instance(value, unit, dataset))
            append((k, observed, num, doc))
    _add_hourly_sums(chunk)
    return chunk


def _add_hourly_sums(chunk: ImportChunk) -> None:
    """Fill ``chunk.sums`` from its rows (where they are made: in a parser process, this
    is work the store's writer does not do)."""
    acc: dict[tuple[int, int], list[Any]] = {}
    get = acc.get
    timed = ((k, observed, num) for k, observed, _, _, _, num, _ in chunk.timed)
    for k, observed, num in chain(((k, o, n) for k, o, n, _ in chunk.rows), timed):
        if observed == NO_TIME:
            continue
        key = (k, observed - observed % HOUR)
        figures = get(key)
        if figures is None:
            figures = acc[key] = [0, 0, 0.0, 0.0, None, None]
        figures[0] += 1
        if num is not None:
            figures[1] += 1
            figures[2] += num
            figures[3] += num * num
            if figures[4] is None or num < figures[4]:
                figures[4] = num
            if figures[5] is None or num > figures[5]:
                figures[5] = num
    chunk.sums.extend((k, hour, *figures) for (k, hour), figures in acc.items())


def plain_instance(value: Any, unit: str | None, dataset: str | None) -> Instance:
    """The Property instance of a plain reading."""
    instance: Instance = {"type": "Property", "value": value}
    if unit is not None:
        instance["unitCode"] = unit
    if dataset is not None:
        instance["datasetId"] = dataset
    return instance


async def prepared_chunks(
    rows: Iterable[ImportRow], now: int, size: int
) -> AsyncIterator[ImportChunk]:
    """``rows`` as chunks of ``size`` instances, each read and prepared in a worker
    thread (while the store writes the one before)."""
    source = iter(rows)
    while True:
        chunk = await asyncio.to_thread(lambda: prepare_import(islice(source, size), now))
        if not chunk.size:
            return
        yield chunk


def chunk_types(chunk: ImportChunk) -> dict[str, tuple[str, ...]]:
    """Each entity of a chunk with every type its rows give."""
    types: dict[str, tuple[str, ...]] = {}
    for entity_id, row_types, _, _ in chunk.series:
        known = types.get(entity_id)
        if known is None:
            types[entity_id] = row_types
        elif known is not row_types and known != row_types:
            types[entity_id] = tuple(dict.fromkeys([*known, *row_types]))
    return types


def chosen_series(
    series: Iterable[tuple[int, str, str]],
    attr: str,
    dataset_id: str | None,
    delete_all: bool,
) -> list[int]:
    """The sids of (sid, attribute, datasetId or '') rows that a deletion of ``attr``
    removes: its default instances, one datasetId's, or every one with ``delete_all``."""
    return [
        sid
        for sid, name, dataset in series
        if name == attr and (delete_all or dataset == (dataset_id or ""))
    ]


def expire_steps(sid: int, cut: int) -> list[tuple[str, tuple[int, ...]]]:
    """Statements that delete a series' instances older than ``cut`` (an instance
    without observedAt by its modifiedAt) and its rollups before ``cut``; the first
    one's row count is how many instances went. ``rebuild_steps(sid, cut, cut)`` then
    makes the rollup buckets around ``cut`` exact again."""
    return [
        (
            "DELETE FROM history_instances WHERE sid = ? AND observed < ? AND "
            "(observed <> ? OR coalesce(modified, created, deleted, 0) < ?)",
            (sid, cut, NO_TIME, cut),
        ),
        ("DELETE FROM history_hourly WHERE sid = ? AND bucket < ?", (sid, floor_to(cut, HOUR))),
        ("DELETE FROM history_daily WHERE sid = ? AND bucket < ?", (sid, floor_to(cut, DAY))),
    ]
