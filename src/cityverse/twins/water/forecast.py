"""Hourly inflow forecasts of district metered areas (DMAs), a week ahead, with intervals.

One gradient-boosted model (LightGBM) is trained over all the zones of a network at once,
each zone's inflow divided by its level (its mean over the four weeks before the forecast
origin), on direct multi-horizon samples: from an origin, the inflow ``h`` hours later
(h < 168) is described by the calendar at that hour (local hour, weekday, public
holiday, bridge day, the kind of day it behaves as, Ramadan, season), the inflow at the
same local hour one to four weeks earlier and on the latest days of the same kind (the
last Sundays for a holiday), the last day's profile, the last hour and how far it stood
from its usual value (for the first day, also the last 6 and 24 hours), the recent
level and trend, and the weather when it is known. The model learns the departure from
the same hour's median over the last four weeks (over the last four Sundays on a
holiday). Lags follow the local clock: a week back is 169 hours after summer time ends.
Training origins are every other day before the forecast's start, at its local hour. The
first day's forecast is half that ensemble's, half a first-day model's: the same features,
learnt from the first 24 hours after an origin on every day, recent origins weighing more.
No value at or after the start is ever read::

    result = forecast(inflows, start, calendar=MOROCCO)        # inflows: UTC hourly frame
    zone = result.zones["DMA-1"]
    zone.values, zone.lower, zone.upper, zone.cleaning, zone.reason

Prediction intervals come from the residuals of a twin model fitted on the data before
the last four weeks and scored on those weeks (split conformal, per day of horizon):
``level`` of them (default 90 %) should hold the truth.

Input is cleaned first (``clean``): non-positive values, spikes (far from the running
median, by many median absolute deviations) and stuck meters (the same value for six
hours or more) are dropped, gaps up to three hours are interpolated, and the counts are
reported. Before that, a zone's weekly routine (``routine``: a one-hour jump at the same
hour of every week, a tank filled or a meter's weekly job) is taken out, and it is put
back into the forecast. A zone with too little history gets no forecast but a reason.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from cityverse.twins.water.calendar import MOROCCO, Calendar

HOUR = pd.Timedelta(hours=1)
DAY = 24
WEEK = 168
HORIZON = WEEK
MIN_HISTORY_HOURS = 5 * WEEK
"""A zone needs five weeks of history before the start: four of lags, one to learn from."""
MIN_VALID_SHARE = 0.5
"""...of which at least half must be valid values after cleaning."""
MAX_TRAIN_DAYS = 800
CALIBRATION_DAYS = 28
SHORT_GAP = 3
STUCK_HOURS = 6
SPIKE_MADS = 8.0
ROUTINE_MADS: float | None = 4.0
"""A one-hour jump whose median over the same hour of the last four weeks stands out by
more than this many median absolute deviations is the zone's weekly routine (see
``routine``); None: no routine is looked for."""
WEATHER = ("temperature", "rain")

ORIGIN_STEP = 2 * DAY
"""Training origins every other day: half the rows, the same seasons."""
# One thread per model: OpenMP threads that spin-wait collapse (ten times slower) when
# the server's other work holds the cores, and the forecast shares them with the API.
# The models train side by side instead (``WORKERS``), each on its own thread.
_PARAMS: dict[str, Any] = {
    "objective": "l1",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "lambda_l2": 1.0,
    "max_bin": 63,
    "verbose": -1,
    "num_threads": 1,
    # Histograms by rows: the faster layout for these features (by a tenth to a quarter);
    # left to itself, LightGBM times both layouts each time and picks either under load.
    "force_row_wise": True,
    "seed": 7,
}
RECENT_DAYS = 3
"""The last days' profile at an hour is their median (one odd day does not lead)."""
ENSEMBLE = 3
"""Models averaged: the first on all rows and features, the others bagged."""
BAGGED: dict[str, Any] = {"bagging_fraction": 0.7, "bagging_freq": 1, "feature_fraction": 0.6}
ROUNDS = 200
CALIBRATION_ROUNDS = 100
BLEND = 0.15
"""Share of the same-kind-of-day forecast averaged into the model's (chosen on the tuning
weeks: 0.1 and 0.2 both did better than none, 0.3 worse on the first day)."""
BRIDGE_BLEND = 0.25
"""...and on bridge days (on the tuning weeks, 0.2 to 0.4 all did better than 0.15)."""
SMOOTH = 0.1
"""Share of each neighbouring hour in an hour's forecast (on the tuning weeks 0.05 and
0.1 both did better than none, 0.15 less well)."""
HALF_LIFE_DAYS: float | None = None
"""Weigh training origins down by half every so many days (None: all alike; a year's
half-life did no better on the tuning weeks)."""
OBJECTIVES: tuple[str, ...] = ()
"""Objectives of the ensemble's models in turn (empty: ``_PARAMS``'s for all)."""
TYPE_DAYS = 4
"""Days of the same kind as the target's whose median is a feature (1: the latest only)."""
TYPE_BASE = "holiday"
"""Where the model learns the departure from that median rather than from the same hour's
in the last four weeks: "holiday" (on holidays, a Sunday's profile), "all" or "none"
(on the tuning weeks "holiday" did best: "all" made bridge days worse)."""
CLOCK_LAGS = True
"""Lags at the same local time (a week back is 167 or 169 hours across a change of
summer time), not the same UTC time."""
FIRST_DAY_SHARE = 0.5
"""Share of the first-day model in the first day's forecast, the ensemble's the rest
(0: no first-day model is trained). On the tuning weeks 0.5, 0.75 and 1 all did better
than none, 0.5 best on the first day's mean error."""
FIRST_DAY_HALF_LIFE_DAYS: float | None = 365.0
"""The first-day model learns from the first 24 hours after an origin on every day, the
origins weighed down by half every so many days (None: all alike; on the tuning weeks a
year did better than none, 60, 90 or 180 days)."""
ANOMALY_HOURS: tuple[int, ...] = (6, 24)
"""Spans (hours before the origin) whose mean departure from the usual is a feature."""
WORKERS: int | None = None
"""Models trained at once, one thread each (None: as many as the process has cores).
Each model is the same however many train beside it: only the wall time changes."""


@dataclass(slots=True)
class Cleaning:
    """What ``clean`` found in a series, in hours."""

    hours: int = 0
    missing: int = 0
    nonpositive: int = 0
    spikes: int = 0
    stuck: int = 0
    interpolated: int = 0

    def render(self) -> dict[str, int]:
        """The counts as a JSON object."""
        return {
            "hours": self.hours,
            "missing": self.missing,
            "nonPositive": self.nonpositive,
            "spikes": self.spikes,
            "stuck": self.stuck,
            "interpolated": self.interpolated,
        }


def clean(series: pd.Series) -> tuple[pd.Series, Cleaning]:
    """Drop implausible values of an hourly series, interpolate short gaps; say what."""
    y = series.astype("float64").copy()
    seen = y.first_valid_index()
    # Hours before the meter's first value are not gaps in its record.
    span = y.loc[seen:] if seen is not None else y.iloc[:0]
    report = Cleaning(hours=len(span), missing=int(span.isna().sum()))
    bad = y <= 0
    report.nonpositive = int(bad.sum())
    y[bad] = np.nan
    # A meter that repeats one value for hours has stopped measuring.
    runs = (y != y.shift()).cumsum()
    run_length = y.groupby(runs).transform("size")
    stuck = (run_length >= STUCK_HOURS) & y.notna()
    report.stuck = int(stuck.sum())
    y[stuck] = np.nan
    smooth = y.rolling(5, center=True, min_periods=3).median()
    deviation = (y - smooth).abs()
    spread = deviation.rolling(WEEK, center=True, min_periods=DAY).median()
    floor = 0.05 * y.rolling(WEEK, center=True, min_periods=DAY).median()
    spike = deviation > SPIKE_MADS * 1.4826 * np.maximum(spread, floor)
    report.spikes = int(spike.sum())
    y[spike] = np.nan
    gap = y.isna()
    gap_length = gap.groupby((gap != gap.shift()).cumsum()).transform("size")
    short = gap & (gap_length <= SHORT_GAP)
    y = y.where(~short, y.interpolate(limit_area="inside"))
    report.interpolated = int((short & y.notna()).sum())
    return y, report


def routine(series: pd.Series, horizon: int = 0) -> NDArray[np.float64]:
    """The zone's weekly one-hour jumps (a tank filled, a valve exercised, a meter's
    weekly job), for each hour of an hourly ``series`` and of the ``horizon`` hours after
    it: the median, over the same hour one to four weeks before (three of them known at
    least), of the value's departure from its five-hour running median, where it stands
    out by ``ROUTINE_MADS``; 0 elsewhere. Weeks are counted on the series' own clock
    (UTC), exactly 168 hours back. Only hours before each one are read."""
    n = len(series)
    out = np.zeros(n + horizon)
    if ROUTINE_MADS is None or n <= WEEK:
        return out
    y = series.astype("float64").where(series > 0)
    departure = (y - y.rolling(5, center=True, min_periods=3).median()).to_numpy()
    spread = pd.Series(np.abs(departure)).rolling(WEEK, min_periods=DAY).median().to_numpy()
    floor = 0.05 * y.rolling(WEEK, min_periods=DAY).median().to_numpy()
    scale = 1.4826 * np.fmax(spread, floor)
    at = np.arange(n + horizon)
    weeks = [_take(departure, at - k * WEEK) for k in (1, 2, 3, 4)]
    known = np.count_nonzero(np.isfinite(np.vstack(weeks)), axis=0)
    usual = _nanmedian(weeks)
    with np.errstate(invalid="ignore"):
        jump = (known >= 3) & (np.abs(usual) > ROUTINE_MADS * _take(scale, at - WEEK))
    out[jump] = usual[jump]
    return out


@dataclass(slots=True)
class ZoneForecast:
    """One zone's forecast: hourly values from ``start`` with their interval, or why not."""

    zone: str
    start: pd.Timestamp
    values: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    cleaning: Cleaning | None = None
    reason: str | None = None

    @property
    def available(self) -> bool:
        """Whether there is a forecast (else ``reason`` says why)."""
        return self.reason is None


@dataclass(slots=True)
class Forecast:
    """The forecasts of a network's zones from one start, and how they were made."""

    start: pd.Timestamp
    horizon: int
    level: float
    zones: dict[str, ZoneForecast]
    weather: list[str] = field(default_factory=list)
    training_rows: int = 0


def _prefix(values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    ok = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(ok, values, 0.0))])
    counts = np.concatenate([[0.0], np.cumsum(ok)])
    return sums, counts


def _window_mean(
    prefix: tuple[NDArray[np.float64], NDArray[np.float64]],
    lo: NDArray[np.int64],
    hi: NDArray[np.int64],
) -> NDArray[np.float64]:
    sums, counts = prefix
    lo = np.clip(lo, 0, len(sums) - 1)
    hi = np.clip(hi, 0, len(sums) - 1)
    n = counts[hi] - counts[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[hi] - sums[lo]) / np.maximum(n, 1), np.nan)


def _take(values: NDArray[np.float64], at: NDArray[np.int64]) -> NDArray[np.float64]:
    inside = (at >= 0) & (at < len(values))
    return np.where(inside, values[np.clip(at, 0, len(values) - 1)], np.nan)


def _nanmedian(rows: list[NDArray[np.float64]]) -> NDArray[np.float64]:
    """``np.nanmedian`` across a few rows, column by column (NaN where all are NaN): the
    same values, without its masked-array sort that dominates building the features."""
    ordered = np.sort(np.vstack(rows), axis=0)  # NaN sorts last
    count = np.count_nonzero(~np.isnan(ordered), axis=0)
    low = np.take_along_axis(ordered, (np.maximum(count, 1) - 1)[None, :] // 2, axis=0)[0]
    high = np.take_along_axis(ordered, (count // 2)[None, :], axis=0)[0]
    return (low + high) / 2


@dataclass(slots=True)
class _Rows:
    """Feature rows, with targets (normalised departures from ``base``), the zone's level
    at each origin, the origins and the target times (grid positions)."""

    x: NDArray[np.float64]
    target: NDArray[np.float64]
    base: NDArray[np.float64]
    level: NDArray[np.float64]
    origin: NDArray[np.int64]
    time: NDArray[np.int64]
    naive: NDArray[np.float64]
    """The inflow on the latest day of the same kind, on the zone's scale (NaN: none)."""
    share: NDArray[np.float64]
    """The share of ``naive`` in the forecast (``BLEND``, ``BRIDGE_BLEND`` on bridge days)."""


class _Design:
    """Feature rows for (origin, horizon) pairs of one zone on a common hourly grid."""

    def __init__(
        self,
        y: NDArray[np.float64],
        calendar: pd.DataFrame,
        weather: pd.DataFrame | None,
        code: int,
        clock: NDArray[np.int64] | None = None,
    ) -> None:
        self.y = y
        # The local clock's offset from UTC at each grid position (hours), for lags.
        self.clock = clock if clock is not None else np.zeros(len(y), dtype=np.int64)
        self.prefix = _prefix(y)
        self.cal = {c: calendar[c].to_numpy(dtype=np.float64) for c in calendar.columns}
        self.weather = (
            {c: weather[c].to_numpy(dtype=np.float64) for c in weather.columns}
            if weather is not None
            else {}
        )
        self.code = code

    def rows(self, origins: NDArray[np.int64], horizon: int, cut: int) -> _Rows:
        """The rows of every origin and hour ahead whose target time is before ``cut``;
        every value a row reads lies before its origin."""
        h = np.arange(horizon)
        o = np.repeat(origins, horizon)
        hh = np.tile(h, len(origins))
        t = o + hh
        keep = t < cut
        o, hh, t = o[keep], hh[keep], t[keep]
        # The history visible from an origin: values strictly before it.
        level = _window_mean(self.prefix, o - 4 * WEEK, o)
        with np.errstate(invalid="ignore", divide="ignore"):
            inv = 1.0 / level
        cols: dict[str, NDArray[np.float64]] = {"zone": np.full(len(t), float(self.code))}
        cols["h"] = hh.astype(np.float64)
        for name, values in self.cal.items():
            cols[name] = values[t]
        cols["holiday_w1"] = self.cal["holiday"][t - WEEK]
        # Holidays and bridge days: the latest day of the same kind before the origin.
        same = [v * inv for v in self._same_type(o, t, TYPE_DAYS)]
        cols["same_type"] = same[0]
        if TYPE_DAYS > 1:
            cols["type_median"] = _nanmedian(same)
        # How far the last hour stood from its usual value: a shift the first day keeps.
        past = _nanmedian([_take(self.y, self._back(o - 1, k * WEEK, o)) for k in (1, 2, 3, 4)])
        cols["last_anomaly"] = (_take(self.y, o - 1) - past) * inv
        if ANOMALY_HOURS:
            # ...and the last hours' mean departure: a level the first day carries on
            # (a feature of the first day only: later days did worse with it).
            first, back = np.unique(o, return_inverse=True)
            for hours, departure in zip(ANOMALY_HOURS, self._anomaly(first), strict=True):
                cols[f"anomaly_{hours}h"] = np.where(hh < DAY, departure[back], np.nan)
        lags = []
        for k in (1, 2, 3, 4):
            # t - k weeks precedes the origin for every h < 168.
            lag = _take(self.y, self._back(t, k * WEEK, o)) * inv
            cols[f"lag_w{k}"] = lag
            lags.append(lag)
        with np.errstate(invalid="ignore"), _quiet():
            cols["lag_mean"] = np.nanmean(np.vstack(lags), axis=0)
        cols["lag_median"] = _nanmedian(lags)
        # The same local hour as the target's on the last days before the origin's.
        ahead = hh // DAY
        cols["last_day"] = _take(self.y, self._back(t, (ahead + 1) * DAY, o)) * inv
        recent = [
            _take(self.y, self._back(t, (ahead + k) * DAY, o)) * inv
            for k in range(1, RECENT_DAYS + 1)
        ]
        cols["recent_days"] = _nanmedian(recent)
        cols["last_hour"] = _take(self.y, o - 1) * inv
        cols["mean_day"] = _window_mean(self.prefix, o - DAY, o) * inv
        cols["mean_week"] = _window_mean(self.prefix, o - WEEK, o) * inv
        cols["lag_year"] = _take(self.y, self._back(t, 52 * WEEK, o)) * inv
        cols["trend"] = _window_mean(self.prefix, o - DAY, o) / _window_mean(
            self.prefix, o - DAY - WEEK, o - WEEK
        )
        for name, values in self.weather.items():
            cols[name] = values[t]
        # The model learns the departure from the seasonal profile (the median of the
        # same hour in the last four weeks), on the zone's own scale.
        base = cols["lag_median"]
        if TYPE_BASE == "all":
            base = cols["type_median"]
        elif TYPE_BASE == "holiday":
            base = np.where(cols["holiday"] == 1, cols["type_median"], base)
        base = np.where(np.isnan(base), cols["lag_median"], base)
        base = np.where(np.isnan(base), cols["mean_week"], base)
        base = np.where(np.isnan(base), 1.0, base)
        target = _take(self.y, t) * inv - base
        x = np.column_stack(list(cols.values()))
        share = np.where(cols["bridge"] == 1, BRIDGE_BLEND, BLEND)
        return _Rows(x, target, base, level, o, t, cols["same_type"], share)

    def _anomaly(self, origins: NDArray[np.int64]) -> list[NDArray[np.float64]]:
        """For each origin, the mean departure of each of the last ``ANOMALY_HOURS`` from
        the median of the same local hour in the four weeks before, over the level."""
        span = max(ANOMALY_HOURS)
        at = origins[:, None] - np.arange(1, span + 1)[None, :]
        flat, before = at.ravel(), np.repeat(origins, span)
        usual = _nanmedian(
            [_take(self.y, self._back(flat, k * WEEK, before)) for k in (1, 2, 3, 4)]
        )
        departure = (_take(self.y, flat) - usual).reshape(at.shape)
        level = _window_mean(self.prefix, origins - 4 * WEEK, origins)
        out = []
        with np.errstate(invalid="ignore", divide="ignore"), _quiet():
            for hours in ANOMALY_HOURS:
                out.append(np.nanmean(departure[:, :hours], axis=1) / level)
        return out

    def _back(
        self, t: NDArray[np.int64], hours: int | NDArray[np.int64], before: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """The grid position of the same local time as ``t``, ``hours`` earlier on the
        clock (a week back is 169 hours after summer time ends), kept before ``before``
        (the origin): where the clock's change would reach it, the hours as they are."""
        at = t - hours
        if not CLOCK_LAGS:
            return at
        last = len(self.clock) - 1
        moved = at + self.clock[np.clip(t, 0, last)] - self.clock[np.clip(at, 0, last)]
        return np.where(moved < before, moved, at)

    def _same_type(
        self, o: NDArray[np.int64], t: NDArray[np.int64], count: int = 1
    ) -> list[NDArray[np.float64]]:
        """The inflow at the same hour of the ``count`` latest days before the origin of
        the same day type as the target's (Sundays for a holiday, Saturdays for a bridge
        day), up to ``count`` weeks and a week back; days with no value are passed over."""
        kind = self.cal["daytype"]
        out = [np.full(len(t), np.nan) for _ in range(count)]
        found = np.zeros(len(t), dtype=np.int64)
        for back in range(1, 7 * count + 8):
            at = self._back(t, back * DAY, o)
            value = _take(self.y, at)
            fill = (found < count) & (at < o) & (at >= 0) & np.isfinite(value)
            fill[fill] = kind[at[fill]] == kind[t[fill]]
            for k in range(count):
                here = fill & (found == k)
                out[k][here] = value[here]
            found += fill
        return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """All-NaN slices are expected (a zone's first weeks): no warning for them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _dataset(
    x: NDArray[np.float64], y: NDArray[np.float64], weight: NDArray[np.float64] | None = None
) -> Any:
    import lightgbm as lgb

    # Bins are found once; every model trains on a copy of its rows of the same bins.
    data = lgb.Dataset(x, y, weight=weight, categorical_feature=[0], params=_PARAMS)
    return data.construct()


def _params(seed: int) -> dict[str, Any]:
    params = _PARAMS if seed == 0 else {**_PARAMS, **BAGGED, "seed": _PARAMS["seed"] + seed}
    if seed < len(OBJECTIVES):
        params = {**params, "objective": OBJECTIVES[seed]}
    return params


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _train(
    data: Any,
    fits: list[tuple[NDArray[np.int64] | None, int, int]],
    own: Sequence[tuple[Any, int, int]] = (),
) -> list[Any]:
    """The models of ``fits`` (rows of ``data``, or None for all; rounds; seed), then
    those of ``own`` (a dataset of their own; rounds; seed), trained side by side.

    Each trains on its own copy of its rows, made before any starts (training changes a
    dataset's parameters: none is shared between threads), and on one thread, as
    ``_PARAMS`` says: LightGBM's thread count is process-wide, so every call made
    meanwhile passes the same. A model is the same whichever thread trains it, and when."""
    import lightgbm as lgb

    everything = np.arange(data.num_data())
    sets = [data.subset(everything if rows is None else rows).construct() for rows, _, _ in fits]
    sets += [own_data for own_data, _, _ in own]
    runs = [(rounds, seed) for _, rounds, seed in [*fits, *own]]
    workers = min(len(runs), WORKERS or _cores())
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        jobs = [
            pool.submit(lgb.train, _params(seed), rows, num_boost_round=rounds)
            for rows, (rounds, seed) in zip(sets, runs, strict=True)
        ]
        return [job.result() for job in jobs]


def _predict(model: Any, x: NDArray[np.float64]) -> NDArray[np.float64]:
    # Without num_threads, a prediction would set LightGBM's process-wide thread count to
    # every core, under any model training meanwhile.
    return np.asarray(model.predict(x, num_threads=_PARAMS["num_threads"]), dtype=np.float64)


def forecast(
    inflows: pd.DataFrame,
    start: pd.Timestamp,
    *,
    calendar: Calendar = MOROCCO,
    weather: pd.DataFrame | None = None,
    horizon: int = HORIZON,
    level: float = 0.9,
) -> Forecast:
    """Forecast each column (zone) of ``inflows`` (L/s, hourly, UTC index) for ``horizon``
    hours from ``start``; ``weather`` (columns among temperature, rain) is used where it
    covers the history and the horizon. Values at or after ``start`` are never read."""
    if not 1 <= horizon <= HORIZON:
        raise ValueError(f"the horizon is 1 to {HORIZON} hours")
    if not 0 < level < 1:
        raise ValueError("the interval level is between 0 and 1")
    start = pd.Timestamp(start).tz_convert("UTC").floor("h")
    past = inflows.loc[inflows.index < start]
    first = past.index.min() if len(past) else start
    grid = pd.date_range(first, start + (horizon - 1) * HOUR, freq="h")
    s = len(grid) - horizon  # the start's position on the grid
    out = Forecast(start=start, horizon=horizon, level=level, zones={})
    cal = calendar.features(grid)
    clock = np.rint(calendar.utc_offset(grid)).astype(np.int64)
    wx = _weather(weather, grid, s)
    if wx is not None:
        out.weather = list(wx.columns)

    designs: dict[str, _Design] = {}
    routines: dict[str, NDArray[np.float64]] = {}
    for code, zone in enumerate(inflows.columns):
        series = past[zone].reindex(grid[:s]) if s > 0 else pd.Series(dtype="float64")
        # The weekly routine is taken out before the model learns, and put back after.
        weekly = routine(series, horizon)
        cleaned, report = clean(series - weekly[:s])
        result = ZoneForecast(zone=str(zone), start=start, cleaning=report)
        out.zones[str(zone)] = result
        reason = _too_little(cleaned, report, start)
        if reason is not None:
            result.reason = reason
            continue
        y = np.concatenate([cleaned.to_numpy(), np.full(horizon, np.nan)])
        designs[str(zone)] = _Design(y, cal, wx, code, clock)
        routines[str(zone)] = weekly[s:]
    if not designs:
        return out

    origins = _origins(clock, s, ORIGIN_STEP)
    calib_cut = s - CALIBRATION_DAYS * DAY
    parts = [design.rows(origins, HORIZON, s) for design in designs.values()]
    y_all = np.concatenate([p.target for p in parts])
    ok = np.isfinite(y_all)
    x_all, y_all = np.vstack([p.x for p in parts])[ok], y_all[ok]
    base_all = np.concatenate([p.base for p in parts])[ok]
    naive_all = np.concatenate([p.naive for p in parts])[ok]
    share_all = np.concatenate([p.share for p in parts])[ok]
    o_all = np.concatenate([p.origin for p in parts])[ok]
    t_all = np.concatenate([p.time for p in parts])[ok]
    del parts
    out.training_rows = len(y_all)
    weight = None
    if HALF_LIFE_DAYS:
        weight = np.power(0.5, (s - o_all) / (HALF_LIFE_DAYS * DAY))
    data = _dataset(x_all, y_all, weight)
    fits: list[tuple[NDArray[np.int64] | None, int, int]] = [
        (None, ROUNDS, seed) for seed in range(ENSEMBLE)
    ]
    # The twin model for the intervals: fitted on the targets before the scored weeks.
    fit_rows, score_rows = t_all < calib_cut, o_all >= calib_cut
    calibrated = bool(fit_rows.any() and score_rows.any())
    if calibrated:
        fits.append((np.flatnonzero(fit_rows), CALIBRATION_ROUNDS, 0))
    first_day = _first_day_data(designs, s) if FIRST_DAY_SHARE else None
    models = _train(data, fits, [] if first_day is None else [(first_day, ROUNDS, 0)])
    day_model = models.pop() if first_day is not None else None
    widths = _calibrate(
        models.pop() if calibrated else None,
        x_all,
        y_all,
        base_all,
        (naive_all, share_all),
        score_rows,
        level,
    )

    now = np.array([s], dtype=np.int64)
    for zone, design in designs.items():
        rows = design.rows(now, horizon, s + horizon)
        guess = np.mean([_predict(m, rows.x) for m in models], axis=0)
        if day_model is not None:
            ahead = min(horizon, DAY)
            day = _predict(day_model, rows.x[:ahead])
            guess[:ahead] = (1 - FIRST_DAY_SHARE) * guess[:ahead] + FIRST_DAY_SHARE * day
        point = _smooth(_blend(guess + rows.base, rows.naive, rows.share))
        point = np.maximum(point, 0.0) * rows.level
        point = np.maximum(point + routines[zone], 0.0)
        lo, hi = widths
        days = np.arange(horizon) // DAY
        result = out.zones[zone]
        result.values = _rounded(point)
        result.lower = _rounded(np.maximum(point * (1 + lo[days]), 0.0))
        result.upper = _rounded(point * (1 + hi[days]))
    return out


def _origins(clock: Any, s: int, step: int) -> NDArray[np.int64]:
    """Training origins every ``step`` hours before the start ``s``, as far back as four
    weeks of lags go, at the start's hour: its local hour across changes of summer time
    too, with ``CLOCK_LAGS``."""
    origins = np.arange(s - DAY, max(4 * WEEK, s - MAX_TRAIN_DAYS * DAY) - 1, -step)
    if CLOCK_LAGS:
        origins = origins + clock[s] - clock[origins]
    return origins


def _first_day_data(designs: dict[str, _Design], s: int) -> Any:
    """The first-day model's rows: the first 24 hours ahead of an origin on every day
    before the start (at its local hour, as the ensemble's), weighed by recency; None
    when there are none."""
    origins = _origins(next(iter(designs.values())).clock, s, DAY)
    parts = [design.rows(origins, DAY, s) for design in designs.values()]
    y = np.concatenate([p.target for p in parts])
    ok = np.isfinite(y)
    if not ok.any():
        return None
    x = np.vstack([p.x for p in parts])[ok]
    weight = None
    if FIRST_DAY_HALF_LIFE_DAYS:
        age = s - np.concatenate([p.origin for p in parts])[ok]
        weight = np.power(0.5, age / (FIRST_DAY_HALF_LIFE_DAYS * DAY))
    return _dataset(x, y[ok], weight)


def _smooth(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each hour with ``SMOOTH`` of each next to it (the first and last as they are): the
    models' hour-to-hour jitter averages out, the daily cycle stays."""
    out = values.copy()
    if SMOOTH and len(values) > 2:
        out[1:-1] = SMOOTH * (values[:-2] + values[2:]) + (1 - 2 * SMOOTH) * values[1:-1]
    return out


def _blend(
    model: NDArray[np.float64], naive: NDArray[np.float64], share: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The model's forecast with a ``share`` of the same-kind-of-day one, where there is
    one: on the tuning weeks it lowered the worst hours' errors most."""
    return np.where(np.isfinite(naive), (1 - share) * model + share * naive, model)


def _calibrate(
    model: Any,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    base: NDArray[np.float64],
    naive: tuple[NDArray[np.float64], NDArray[np.float64]],
    score_rows: NDArray[np.bool_],
    level: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Relative interval bounds per day ahead: the residual quantiles, on ``score_rows``,
    of ``model``, fitted on the targets before the scored weeks (None: none was), blended
    as the forecast is (``naive``: the same-kind-of-day forecast and its share)."""
    lo = np.full(HORIZON // DAY, -0.1)
    hi = np.full(HORIZON // DAY, 0.1)
    if model is None:
        return lo, hi
    x_cal, b_cal = x[score_rows], base[score_rows]
    truth = y[score_rows] + b_cal
    same, share = naive
    pred = _blend(_predict(model, x_cal) + b_cal, same[score_rows], share[score_rows])
    pred = np.maximum(pred, 1e-9)
    ratio = truth / pred - 1.0
    day = x_cal[:, 1].astype(np.int64) // DAY
    alpha = (1 - level) / 2
    for d in range(HORIZON // DAY):
        r = ratio[(day == d) & np.isfinite(ratio)]
        if len(r) >= 20:
            lo[d], hi[d] = np.quantile(r, [alpha, 1 - alpha])
    # An interval always holds its own forecast, however biased the scored weeks were.
    return np.minimum(lo, 0.0), np.maximum(hi, 0.0)


def _weather(weather: pd.DataFrame | None, grid: pd.DatetimeIndex, s: int) -> pd.DataFrame | None:
    """The weather columns that cover most of the history and of the horizon, on the grid."""
    if weather is None or weather.empty:
        return None
    frame = weather.copy()
    frame.index = pd.DatetimeIndex(frame.index).tz_convert("UTC")
    frame = frame[~frame.index.duplicated()].reindex(grid)
    keep = []
    for column in WEATHER:
        if column not in frame.columns:
            continue
        values = frame[column]
        if values.iloc[:s].notna().mean() >= 0.8 and values.iloc[s:].notna().mean() >= 0.9:
            keep.append(column)
    if not keep:
        return None
    out = frame[keep].astype("float64").interpolate(limit=SHORT_GAP, limit_area="inside")
    if "rain" in out.columns:
        out["rain_day"] = out["rain"].rolling(DAY, min_periods=1).sum()
    if "temperature" in out.columns:
        out["temperature_day"] = out["temperature"].rolling(DAY, min_periods=1).mean()
    return out


def _too_little(cleaned: pd.Series, report: Cleaning, start: pd.Timestamp) -> str | None:
    seen = cleaned.first_valid_index()
    if seen is None and report.hours > 0:
        return (
            f"none of the {report.hours} hours of inflow before {start.isoformat()} is valid "
            f"({report.nonpositive} at or below zero, {report.stuck} stuck, "
            f"{report.spikes} spikes, {report.missing} missing)"
        )
    span = 0 if seen is None else len(cleaned) - int(cleaned.index.get_loc(seen))
    if span < MIN_HISTORY_HOURS:
        return (
            f"only {span} hours of inflow history before {start.isoformat()}; "
            f"at least {MIN_HISTORY_HOURS} (five weeks) are needed"
        )
    recent = cleaned.iloc[-4 * WEEK :]
    if recent.notna().mean() < MIN_VALID_SHARE:
        return (
            f"only {int(recent.notna().sum())} of the last {4 * WEEK} hours of inflow "
            f"before {start.isoformat()} are valid; at least half are needed"
        )
    if cleaned.iloc[-WEEK:].notna().sum() == 0:
        return f"no valid inflow in the week before {start.isoformat()}"
    return None


def _rounded(values: NDArray[np.float64]) -> list[float]:
    return [round(float(v), 3) for v in values]
