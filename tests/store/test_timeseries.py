"""History query planning shared by the stores (store/timeseries.py).

GS CIM 009 clause 4.5.19 (aggregated temporal representation): periods of
``aggrPeriodDuration`` start at the window's start; the stores answer whole days and
hours from rollups and only the partial edges from raw instances.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityverse.store.history import NO_TIME, ms_of
from cityverse.store.temporal import Period, TimeWindow
from cityverse.store.timeseries import (
    DAY,
    HOUR,
    Partial,
    add_months,
    ceil_to,
    finish,
    floor_to,
    kept_for,
    periods,
    plan_aggregation,
    plan_segments,
    window_bounds,
)

_times = st.integers(min_value=-(10**13), max_value=10**13)


@given(_times, st.integers(min_value=1, max_value=10**9))
def test_rounding_to_a_unit(t: int, unit: int) -> None:
    assert floor_to(t, unit) <= t < floor_to(t, unit) + unit
    assert ceil_to(t, unit) - unit < t <= ceil_to(t, unit)
    assert floor_to(t, unit) % unit == 0 == ceil_to(t, unit) % unit


@given(st.lists(st.tuples(_times, st.integers(1, 40 * DAY)), min_size=1, max_size=5), _times)
def test_segments_cover_each_bucket_exactly(spans: list[tuple[int, int]], end: int) -> None:
    """Whole days, whole hours and raw edges partition every bucket, without overlap."""
    buckets = [(a, a + length) for a, length in spans]
    plan = plan_segments(buckets, end, use_rollups=True)
    for k, (a, b) in enumerate(buckets):
        c = min(b, end)
        pieces = sorted(
            (lo, hi, name)
            for name, segments in (("d", plan.daily), ("h", plan.hourly), ("r", plan.raw))
            for kk, lo, hi in segments
            if kk == k
        )
        if c <= a:
            assert all(lo >= hi for lo, hi, _ in pieces) or not pieces
            continue
        assert pieces[0][0] == a and pieces[-1][1] == c
        for (_, hi, _), (lo, _, _) in pairwise(pieces):
            assert hi == lo
        for lo, hi, name in pieces:
            assert lo < hi
            if name == "d":
                assert lo % DAY == 0 == hi % DAY
            if name == "h":
                assert lo % HOUR == 0 == hi % HOUR
            if name == "r":
                assert hi - lo < HOUR or (lo % HOUR and hi - lo < 2 * HOUR)


def test_aligned_days_come_from_daily_rollups_alone() -> None:
    start = ms_of("2026-01-01T00:00:00.000Z")
    buckets = list(periods(start, start + 30 * DAY, Period(millis=DAY)))
    plan = plan_segments(buckets, start + 30 * DAY, use_rollups=True)
    assert len(plan.daily) == 30 and not plan.hourly and not plan.raw


def test_months_are_calendar_months() -> None:
    start = ms_of("2026-01-31T06:00:00.000Z")
    bounds = list(periods(start, ms_of("2026-05-01T00:00:00.000Z"), Period(months=1)))
    assert [b[0] for b in bounds] == [
        start,
        ms_of("2026-02-28T06:00:00.000Z"),
        ms_of("2026-03-31T06:00:00.000Z"),
        ms_of("2026-04-30T06:00:00.000Z"),
    ]
    assert add_months(ms_of("2024-02-29T00:00:00.000Z"), 12) == ms_of("2025-02-28T00:00:00.000Z")
    assert add_months(ms_of("2026-12-15T00:00:00.000Z"), 1) == ms_of("2027-01-15T00:00:00.000Z")


def test_plan_numbers_short_periods_in_sql_and_lists_long_ones() -> None:
    window = TimeWindow("observedAt", 0, 10 * DAY)
    short = plan_aggregation(window, Period(millis=15 * 60_000), frozenset({"avg"}), 0, 1)
    assert short.step == 15 * 60_000 and short.segments is None
    daily = plan_aggregation(window, Period(millis=DAY), frozenset({"avg"}), 0, 1)
    assert daily.step is None and daily.segments is not None and len(daily.segments.daily) == 10
    # Rollups cannot count distinct values, nor serve other time properties.
    distinct = plan_aggregation(window, Period(millis=DAY), frozenset({"distinctCount"}), 0, 1)
    assert distinct.step == DAY
    modified = TimeWindow("modifiedAt", 0, 10 * DAY)
    assert plan_aggregation(modified, Period(months=1), frozenset({"avg"}), 0, 1).segments
    with pytest.raises(ValueError):
        plan_aggregation(window, Period(), frozenset({"avg"}), 0, 1)


def test_plan_without_bounds_starts_at_the_first_instance() -> None:
    plan = plan_aggregation(TimeWindow(), None, frozenset({"sum"}), 1_000, 5_000)
    assert (plan.start, plan.end) == (1_000, 5_001)


def test_window_bounds() -> None:
    assert window_bounds(TimeWindow("observedAt", None, None))[1] == NO_TIME + 1
    assert window_bounds(TimeWindow("deletedAt", 5, 9)) == ("deleted", 5, 9)
    with pytest.raises(ValueError):
        window_bounds(TimeWindow("expiresAt"))


def test_finishing_the_methods() -> None:
    part = Partial()
    for value in (2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0):
        part.add(1, 1, value, value * value, value, value)
    part.add(1, 0, None, None, None, None)  # one non-numeric value
    values = finish(part, frozenset({"totalCount", "sum", "avg", "min", "max", "sumsq", "stddev"}))
    assert values["totalCount"] == 9
    assert values["sum"] == 40.0 and values["avg"] == 5.0
    assert values["min"] == 2.0 and values["max"] == 9.0 and values["sumsq"] == 232.0
    assert values["stddev"] == pytest.approx((32 / 7) ** 0.5)
    words = Partial(count=3)
    assert finish(words, frozenset({"totalCount", "avg", "stddev"})) == {
        "totalCount": 3,
        "avg": None,
        "stddev": None,
    }


def test_retention_terms() -> None:
    keep = {"https://x/A": 10, "https://x/B": 20, "*": 5}
    assert kept_for(["https://x/A", "https://x/B"], keep) == 20
    assert kept_for(["https://x/C"], keep) == 5
    assert kept_for(["https://x/C"], {"https://x/A": 10}) is None


def test_month_arithmetic_before_1970() -> None:
    t = int((datetime(1960, 3, 31, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    assert add_months(t * 1000, -1) == t * 1000 - 31 * DAY
