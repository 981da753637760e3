"""Leak and burst detection from the twin's pressure and flow history, told apart from
faulty sensors.

Three layers, each a plain function over numpy arrays (``twins/water/incidents.py``
feeds them from the store and writes the Alerts)::

    times, values, flags = check_series(t, p, step=300)      # gaps, spikes, stuck, clock
    normal = fit_normal(times, e_train, f_train)             # the learned normal pattern
    z = normal.residuals(times, e, f)                        # what is not normal, m
    hours, means = hourly_means(times, z)
    alarms = detect(hours, means, normal.cov, signatures, Settings())

*Residuals.* ``e`` is a sensor's pressure minus the hydraulic model's (or the raw
pressure when no model run is at hand), ``f`` the flow sensors' measured minus modelled
flows. The normal pattern, learned on leak-free history, is a mean per hour of day plus
a linear response to the flow residuals: demand higher than the model's lowers every
pressure, and the inflow shows it. What is left, ``z``, is averaged per hour.

*Change-point test.* Each hour, a generalised likelihood ratio says how much better a
leak at each candidate node (its signature from the model, ``localise.sensitivity``) or
an offset on each single sensor explains the hourly mean residual than noise, weighting
the sensors by the inverse covariance of the hourly residuals; one CUSUM per candidate
and per sensor accumulates the excess over ``kappa`` and the first past ``threshold``
raises an alarm. At an alarm, the mean residual since the
CUSUM left zero is explained once more: a single sensor beating every leak signature is a
``sensorFault``, otherwise it is a ``leak`` with its estimated start.

*Watching for months.* ``watch`` runs the test over a long history and learns the normal
again on schedule (weekly by default) from recent history free of open alerts, so that
the seasons move the normal and a leak does not::

    seen = watch(times, e, f, sens.signatures, start, closed=lambda alarm: repaired_at)
    seen.alarms, seen.learned, seen.paused

*Night flow.* The minimum night flow (mean of 02:00-04:00) of a zone's inflow, against
the learned nights, with a CUSUM per night: slower, but blind to pressure sensor faults.
``night_watch`` learns those nights again every night (per weekday, following the
seasons); ``night_flow_alarms`` learns them once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

HOUR = 3600
DAY = 86_400


# -- data quality ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Flag:
    """A data-quality finding on one sensor series: ``gap``, ``spike``, ``stuck``,
    ``clockJump`` or ``invalid``, from ``start`` to ``end`` (epoch seconds)."""

    kind: str
    start: int
    end: int
    count: int

    def render(self) -> dict[str, object]:
        """As JSON."""
        return {"kind": self.kind, "start": self.start, "end": self.end, "count": self.count}


def check_series(
    times: NDArray[np.int64],
    values: NDArray[np.float64],
    step: int,
    *,
    spike: float = 8.0,
    floor: float = 0.5,
    stuck: int = 12,
) -> tuple[NDArray[np.int64], NDArray[np.float64], list[Flag]]:
    """The series cleaned of what cannot be trusted, and flags saying what was removed.

    Samples whose clock goes backwards or repeats (``clockJump``), non-finite values
    (``invalid``), isolated values far from their neighbours' median (``spike``: more
    than ``spike`` robust deviations and more than ``floor``) and runs of ``stuck`` or
    more identical values are removed; holes longer than 1.5 steps are reported as
    ``gap``.
    """
    t = np.asarray(times, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    flags: list[Flag] = []
    if len(t) == 0:
        return t, v, flags
    keep = np.ones(len(t), dtype=bool)
    # Clock: each sample must be later than every sample before it.
    running = np.maximum.accumulate(t)
    back = np.zeros(len(t), dtype=bool)
    back[1:] = t[1:] <= running[:-1]
    flags += _runs(back, t, "clockJump")
    keep &= ~back
    t, v = t[keep], v[keep]
    # Gaps are holes in the clock, whatever is removed below.
    if len(t) > 1:
        dt = np.diff(t)
        for g in np.flatnonzero(dt > 1.5 * step).tolist():
            flags.append(Flag("gap", int(t[g]), int(t[g + 1]), int(dt[g] // step) - 1))
    bad = ~np.isfinite(v)
    flags += _runs(bad, t, "invalid")
    t, v = t[~bad], v[~bad]
    # Stuck: the same value repeated over ``stuck`` samples is no real pressure signal.
    same = np.zeros(len(v), dtype=bool)
    if len(v) > 1:
        eq = v[1:] == v[:-1]
        run_start = 0
        for i in range(1, len(v) + 1):
            if i == len(v) or not eq[i - 1]:
                if i - run_start >= stuck:
                    same[run_start:i] = True
                run_start = i
    flags += _runs(same, t, "stuck")
    # Spikes: one or two samples far from the median of the five around them, by more
    # than ``spike`` robust deviations and by at least ``floor``.
    spikes = np.zeros(len(v), dtype=bool)
    if len(v) >= 5:
        pad = np.pad(v, 2, mode="edge")
        med = np.median(np.lib.stride_tricks.sliding_window_view(pad, 5), axis=1)
        dev = np.abs(v - med)
        scale = 1.4826 * float(np.median(dev[~same])) if (~same).any() else 0.0
        spikes = (dev > max(spike * scale, floor)) & ~same
        # Longer runs are a step or a fault, not a spike: leave them to the detector.
        spikes = _isolated(spikes, 2)
    flags += _runs(spikes, t, "spike")
    good = ~(same | spikes)
    t, v = t[good], v[good]
    flags.sort(key=lambda f: (f.start, f.kind))
    return t, v, flags


def _runs(mask: NDArray[np.bool_], t: NDArray[np.int64], kind: str) -> list[Flag]:
    out: list[Flag] = []
    idx = np.flatnonzero(mask)
    if not len(idx):
        return out
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(idx) - 1]])
    for a, b in zip(starts, ends, strict=True):
        out.append(Flag(kind, int(t[idx[a]]), int(t[idx[b]]), int(b - a + 1)))
    return out


def _isolated(mask: NDArray[np.bool_], longest: int) -> NDArray[np.bool_]:
    out = mask.copy()
    idx = np.flatnonzero(mask)
    if not len(idx):
        return out
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(idx) - 1]])
    for a, b in zip(starts, ends, strict=True):
        if b - a + 1 > longest:
            out[idx[a] : idx[b] + 1] = False
    return out


def to_grid(
    times: NDArray[np.int64], values: NDArray[np.float64], start: int, step: int, rows: int
) -> NDArray[np.float64]:
    """Values on the regular grid start + k*step (NaN where no sample is within half a
    step)."""
    out = np.full(rows, np.nan)
    if not len(times):
        return out
    k = np.rint((times - start) / step).astype(np.int64)
    ok = (k >= 0) & (k < rows) & (np.abs(times - (start + k * step)) <= step / 2)
    out[k[ok]] = values[ok]
    return out


# -- the learned normal ------------------------------------------------------------------


def _hour(times: NDArray[np.int64]) -> NDArray[np.int64]:
    return np.asarray((times // HOUR) % 24, dtype=np.int64)


@dataclass(slots=True)
class Normal:
    """What leak-free history looks like: per sensor, a mean per hour of day plus a
    linear response to the flow residuals; the covariance of hourly-mean residuals."""

    level: NDArray[np.float64]
    """(24, sensors) mean residual per hour of day, m."""
    coef: NDArray[np.float64]
    """(sensors, flows) m of pressure residual per L/s of flow residual."""
    flow_level: NDArray[np.float64]
    """(24, flows) mean flow residual per hour of day, L/s."""
    cov: NDArray[np.float64]
    """(sensors, sensors) covariance of hourly means of ``residuals``."""
    hours: int
    """How many training hours the covariance rests on."""
    hour_scale: NDArray[np.float64] = field(default_factory=lambda: np.ones(24))
    """(24,) how much noisier an hour of day is than the average one (the covariance's
    multiplier): the evening peak's pressures swing more than the night's."""

    def residuals(
        self, times: NDArray[np.int64], e: NDArray[np.float64], f: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """(T, sensors) what the normal pattern does not explain, m (NaN stays NaN)."""
        h = _hour(times)
        x = np.nan_to_num(f - self.flow_level[h]) if f.shape[1] else np.zeros((len(times), 0))
        return np.asarray(e - self.level[h] - x @ self.coef.T)


def fit_normal(
    times: NDArray[np.int64],
    e: NDArray[np.float64],
    f: NDArray[np.float64],
    *,
    shrink: float = 0.2,
    floor: float = 0.005,
) -> Normal:
    """Learn the normal pattern from leak-free history (regular grid, NaN allowed).

    ValueError if the history is too short (less than a day of any sensor).
    """
    m = e.shape[1]
    h = _hour(times)
    fl = np.zeros((24, f.shape[1]))
    for hour in range(24):
        rows = f[h == hour]
        if rows.size:
            # A flow sensor without a reading at this hour (a pump that is off, its
            # zeros dropped as stuck) has no level to remove: zero.
            seen = np.isfinite(rows)
            count = seen.sum(axis=0)
            total = np.where(seen, rows, 0.0).sum(axis=0)
            fl[hour] = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    x = np.nan_to_num(f - fl[h]) if f.shape[1] else np.zeros((len(times), 0))
    onehot = np.zeros((len(times), 24))
    onehot[np.arange(len(times)), h] = 1.0
    design = np.hstack([onehot, x])
    level = np.zeros((24, m))
    coef = np.zeros((m, f.shape[1]))
    for i in range(m):
        ok = np.isfinite(e[:, i])
        if ok.sum() < DAY // max(int(np.median(np.diff(times))) if len(times) > 1 else 1, 1):
            raise ValueError(f"sensor {i} has less than a day of history to learn from")
        sol, *_ = np.linalg.lstsq(design[ok], e[ok, i], rcond=None)
        level[:, i] = sol[:24]
        coef[i] = sol[24:]
    normal = Normal(level, coef, fl, np.eye(m), 0)
    z = normal.residuals(times, e, f)
    hourly_times, means = hourly_means(times, z)
    good = np.isfinite(means).all(axis=1)
    if good.sum() < 24:
        raise ValueError("less than a day of complete hours to learn the noise from")
    sample = np.cov(means[good].T).reshape(m, m)
    diag = np.maximum(np.diag(sample), floor * floor)
    cov = (1 - shrink) * sample + shrink * np.diag(diag)
    np.fill_diagonal(cov, diag)
    normal.cov = cov
    normal.hours = int(good.sum())
    normal.hour_scale = _hour_scale(hourly_times[good], means[good], cov)
    return normal


def _hour_scale(
    times: NDArray[np.int64], means: NDArray[np.float64], cov: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Per hour of day, the mean Mahalanobis size of the hourly residuals over its
    average, pooled with the hours either side (a week holds only seven of each)."""
    w = np.linalg.inv(cov)
    size = np.einsum("ti,ij,tj->t", means, w, means) / max(len(cov), 1)
    hod = _hour(times)
    total, count = np.zeros(24), np.zeros(24)
    for shift in (-1, 0, 1):
        np.add.at(total, (hod + shift) % 24, size)
        np.add.at(count, (hod + shift) % 24, 1)
    per = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    mean = float(np.nanmean(per)) if np.isfinite(per).any() else 1.0
    scale = np.where(np.isfinite(per), per / max(mean, 1e-12), 1.0)
    return np.asarray(np.clip(scale, 0.25, 10.0))


def hourly_means(
    times: NDArray[np.int64], z: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """(hour starts, (hours, sensors) means); NaN where a sensor had no sample."""
    hours = times // HOUR
    first, last = int(hours.min()), int(hours.max())
    n = last - first + 1
    k = hours - first
    sums = np.zeros((n, z.shape[1]))
    counts = np.zeros((n, z.shape[1]))
    ok = np.isfinite(z)
    np.add.at(sums, k, np.where(ok, z, 0.0))
    np.add.at(counts, k, ok)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
    return (np.arange(n, dtype=np.int64) + first) * HOUR, means


# -- the change-point test ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """The detector's knobs (chosen on tuning data, never on the scored scenarios)."""

    kappa: float = 4.0
    """Per-hour allowance: statistic below it pulls the CUSUM back to zero."""
    threshold: float = 40.0
    """CUSUM level that raises an alarm."""
    fault_rest: float = 9.0
    """A sensor that explains the residual better than any leak is faulty only if, without
    it, the other sensors' leak statistic stays below this (chi-square units): its
    neighbours must not confirm the change."""
    fault_hours: int = 6
    """Hours a drop on one unconfirmed sensor is watched before it is called a fault:
    over an hour the neighbours of a leak next to a sensor may not show it yet."""


@dataclass(slots=True)
class Alarm:
    """A detection: a ``leak`` or a ``sensorFault`` (``sensor``: its column)."""

    kind: str
    start: int
    """Estimated onset: the start of the hour at which the CUSUM left zero (epoch s)."""
    time: int
    """When the alarm was raised: the end of the hour that crossed the threshold."""
    statistic: float
    residual: NDArray[np.float64]
    """Mean residual per sensor from ``start`` to ``time`` (NaN: no data), m."""
    hours: int
    sensor: int | None = None
    leak: float | None = None
    """Leak size (L/s) of the best leak explanation."""


@dataclass(slots=True)
class _Weights:
    cols: NDArray[np.int64]
    w: NDArray[np.float64]
    sig: NDArray[np.float64]
    den: NDArray[np.float64]
    wdiag: NDArray[np.float64]


@dataclass(slots=True)
class Cusum:
    """The detector's running sums (per candidate leak and per sensor) and the hour
    (index) at which each last left zero."""

    leak: NDArray[np.float64]
    single: NDArray[np.float64]
    from_leak: NDArray[np.int64]
    from_single: NDArray[np.int64]

    @classmethod
    def zero(cls, candidates: int, sensors: int) -> Cusum:
        """Every sum at zero."""
        return cls(
            np.zeros(candidates),
            np.zeros(sensors),
            np.zeros(candidates, dtype=np.int64),
            np.zeros(sensors, dtype=np.int64),
        )


@dataclass(slots=True)
class Detector:
    """The GLR-CUSUM over the hourly mean residuals."""

    cov: NDArray[np.float64]
    signatures: NDArray[np.float64]
    """(sensors, candidates) residual per L/s of leak at each candidate."""
    settings: Settings = field(default_factory=Settings)
    hour_scale: NDArray[np.float64] | None = None
    """(24,) noise multiplier per hour of day (``Normal.hour_scale``); None: all 1."""
    _cache: dict[bytes, _Weights] = field(default_factory=dict)

    def _weights(self, mask: NDArray[np.bool_]) -> _Weights:
        key = mask.tobytes()
        found = self._cache.get(key)
        if found is None:
            cols = np.flatnonzero(mask)
            sub = self.cov[np.ix_(cols, cols)]
            w = np.asarray(np.linalg.inv(sub + 1e-9 * np.eye(len(cols))), dtype=np.float64)
            sig = self.signatures[cols]
            den = np.einsum("ik,ij,jk->k", sig, w, sig)
            found = _Weights(cols, w, sig, den, np.diag(w).copy())
            self._cache[key] = found
        return found

    def statistics(self, mean: NDArray[np.float64], scale: float = 1.0) -> tuple[float, float, int]:
        """(best leak statistic, best single-sensor statistic, that sensor's column) of a
        mean residual whose covariance is ``cov * scale``."""
        mask = np.isfinite(mean)
        if mask.sum() < 2:
            return 0.0, 0.0, -1
        wt = self._weights(mask)
        r = mean[wt.cols]
        wr = wt.w @ r / scale
        num = wt.sig.T @ wr
        with np.errstate(divide="ignore", invalid="ignore"):
            leak = np.where(wt.den > 0, np.maximum(num, 0.0) ** 2 / (wt.den / scale), 0.0)
        single = wr * wr / (wt.wdiag / scale)
        j = int(np.argmax(single))
        return float(leak.max()), float(single[j]), int(wt.cols[j])

    def leak_size(self, mean: NDArray[np.float64]) -> float:
        """Leak (L/s) of the best-fitting candidate."""
        mask = np.isfinite(mean)
        if mask.sum() < 2:
            return 0.0
        wt = self._weights(mask)
        num = wt.sig.T @ (wt.w @ mean[wt.cols])
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(wt.den > 0, np.maximum(num, 0.0) ** 2 / wt.den, 0.0)
            k = int(np.argmax(score))
            return float(max(num[k], 0.0) / wt.den[k]) if wt.den[k] > 0 else 0.0

    def _scale(self, hours: NDArray[np.int64]) -> float:
        if self.hour_scale is None or not len(hours):
            return 1.0
        return float(self.hour_scale[_hour(hours)].mean())

    def _vectors(
        self, mean: NDArray[np.float64], scale: float = 1.0
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per candidate leak and per sensor: the hour's likelihood-ratio statistic
        (its covariance ``cov * scale``)."""
        leak = np.zeros(self.signatures.shape[1])
        single = np.zeros(len(self.cov))
        mask = np.isfinite(mean)
        if mask.sum() < 2:
            return leak, single
        wt = self._weights(mask)
        wr = wt.w @ mean[wt.cols]
        num = wt.sig.T @ wr
        with np.errstate(divide="ignore", invalid="ignore"):
            leak = np.where(wt.den > 0, np.maximum(num, 0.0) ** 2 / wt.den, 0.0)
        single[wt.cols] = wr * wr / wt.wdiag
        return leak / scale, single / scale

    def run(
        self, hours: NDArray[np.int64], means: NDArray[np.float64], *, stop_at_leak: bool = True
    ) -> list[Alarm]:
        """Alarms over the hourly means, in time order: one CUSUM per candidate leak and
        per sensor, so that a small lasting change adds up where it is. After a sensor
        fault the sensor is left out from its estimated onset on; after a leak the test
        stops (unless ``stop_at_leak`` is False: it restarts from zero)."""
        state = Cusum.zero(self.signatures.shape[1], len(self.cov))
        return self.scan(hours, means.copy(), state, 0, len(hours), stop_at_leak=stop_at_leak)

    def scan(
        self,
        hours: NDArray[np.int64],
        means: NDArray[np.float64],
        state: Cusum,
        lo: int,
        hi: int,
        *,
        stop_at_leak: bool = True,
        tops: NDArray[np.float64] | None = None,
    ) -> list[Alarm]:
        """``run`` over the hours ``lo`` to ``hi`` (indexes of ``hours``), from the sums
        in ``state`` and leaving them there, so that a watch can go on with another
        normal. A sensor fault blanks the sensor's column of ``means`` (in place) from
        its onset on; ``tops`` gets the largest leak sum of each hour."""
        kappa, threshold = self.settings.kappa, self.settings.threshold
        alarms: list[Alarm] = []
        for i in range(lo, hi):
            state.from_leak[state.leak == 0] = i
            state.from_single[state.single == 0] = i
            t_leak, t_single = self._vectors(means[i], self._scale(hours[i : i + 1]))
            state.leak = np.maximum(0.0, state.leak + t_leak - kappa)
            state.single = np.maximum(0.0, state.single + t_single - kappa)
            top_leak, top_single = float(state.leak.max()), float(state.single.max())
            if tops is not None:
                tops[i] = top_leak
            if max(top_leak, top_single) <= threshold:
                continue
            if top_leak >= top_single:
                start = int(state.from_leak[int(np.argmax(state.leak))])
            else:
                start = int(state.from_single[int(np.argmax(state.single))])
            alarm = self._explain(hours, means, start, i, max(top_leak, top_single))
            if alarm is None:
                continue  # undecided yet: keep accumulating
            alarms.append(alarm)
            state.leak[:] = 0.0
            state.single[:] = 0.0
            if alarm.kind == "sensorFault" and alarm.sensor is not None:
                means[start:, alarm.sensor] = np.nan
            elif stop_at_leak:
                break
        return alarms

    def _explain(
        self, hours: NDArray[np.int64], means: NDArray[np.float64], a: int, b: int, s: float
    ) -> Alarm | None:
        block = means[a : b + 1]
        with warnings.catch_warnings():
            # A sensor left out (a fault) has no mean: NaN, as it should.
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(block, axis=0) if len(block) else block
        n = len(block)
        scale = self._scale(hours[a : b + 1]) / n
        leak, single, sensor = self.statistics(mean, scale)
        start, time = int(hours[a]), int(hours[b]) + HOUR
        if single > leak and sensor >= 0:
            rest = mean.copy()
            rest[sensor] = np.nan
            confirmed, _, _ = self.statistics(rest, scale)
            if confirmed < self.settings.fault_rest:
                if mean[sensor] < 0 and n < self.settings.fault_hours and b + 1 < len(hours):
                    return None
                return Alarm("sensorFault", start, time, s, mean, n, sensor=sensor)
        return Alarm("leak", start, time, s, mean, n, leak=self.leak_size(mean))


def detect(
    hours: NDArray[np.int64],
    means: NDArray[np.float64],
    cov: NDArray[np.float64],
    signatures: NDArray[np.float64],
    settings: Settings | None = None,
) -> list[Alarm]:
    """Leak and sensor-fault alarms over hourly mean residuals (see ``Detector``)."""
    return Detector(cov, signatures, settings or Settings()).run(hours, means)


# -- scheduled re-learning ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Relearning:
    """When and from what a watch learns its normal again."""

    every: int = 7 * DAY
    """Seconds between scheduled re-learnings (and one after each closed alert)."""
    window: int = 7 * DAY
    """Seconds of history each learns from: the most recent hours it may use."""
    lookback: int = 28 * DAY
    """How far back it may reach for them."""
    suspicious: float | None = None
    """If set, hours in which the largest leak sum passed this share of the threshold are
    not learned from. Off by default: on a year of L-Town it made things worse, since
    keeping only the quiet hours learns a noise too small, which raises more alarms,
    which leaves out more hours."""


@dataclass(slots=True)
class Learned:
    """One normal of a watch: from when it applies, and on how many hours it rests."""

    start: int
    normal: Normal
    signatures: NDArray[np.float64]
    hours: int


@dataclass(slots=True)
class Watch:
    """What a watch found, and the residuals it judged."""

    alarms: list[Alarm]
    learned: list[Learned]
    hours: NDArray[np.int64]
    means: NDArray[np.float64]
    """(hours, sensors) hourly mean residuals, each under the normal in force then."""
    paused: list[tuple[int, int]]
    """Open leak alerts: from the alarm to when it was closed (or the end), s."""

    def learned_at(self, time: int) -> Learned:
        """The normal in force at ``time``."""
        found = self.learned[0]
        for item in self.learned:
            if item.start <= time:
                found = item
        return found


def watch(
    times: NDArray[np.int64],
    e: NDArray[np.float64],
    f: NDArray[np.float64],
    signatures: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    start: int,
    *,
    settings: Settings | None = None,
    relearning: Relearning | None = None,
    closed: Callable[[Alarm], int | None] | None = None,
    excluded: Sequence[tuple[int, int]] = (),
) -> Watch:
    """Watch the residuals from ``start`` on, learning the normal again on schedule.

    The first normal is learned on the history before ``start`` (which must be
    leak-free); then every ``relearning.every`` seconds on the latest
    ``relearning.window`` of history that holds no open alert and no ``excluded`` period
    (earlier alerts, as (from, to) epoch seconds; and no suspicious hour if
    ``relearning.suspicious`` is set). The sums carry
    over a re-learning. A leak alarm pauses the test until ``closed(alarm)`` (the
    repair, or the alert dismissed; None: never); the hours from the leak's estimated
    start to then are never learned from, and the test resumes with a normal learned
    again and sums at zero. ``signatures(coef)`` gives the leak signatures of a normal.
    ValueError when a normal cannot be learned (too little usable history).
    """
    settings = settings or Settings()
    plan = relearning or Relearning()
    times = np.asarray(times, dtype=np.int64)
    first = int(times.min()) // HOUR
    n = int(times.max()) // HOUR - first + 1
    hours = (np.arange(n, dtype=np.int64) + first) * HOUR
    sample_hour = times // HOUR - first
    means = np.full((n, e.shape[1]), np.nan)
    learnable = np.ones(n, dtype=bool)
    for a, b in excluded:
        learnable[(hours + HOUR > a) & (hours < b)] = False
    tops = np.zeros(n)
    dropped: dict[int, int] = {}
    out = Watch([], [], hours, means, [])
    end = n
    i = max(0, -(-(start - first * HOUR) // HOUR))
    state: Cusum | None = None
    limit = np.inf if plan.suspicious is None else plan.suspicious * settings.threshold
    while i < end:
        try:
            normal, used = _learn(times, e, f, sample_hour, learnable, tops, limit, i, plan)
        except ValueError:
            if not out.learned:
                raise
            # A sensor silent over the recent days: keep the last normal until it is back.
            normal, used = out.learned[-1].normal, 0
        sig = signatures(normal.coef)
        out.learned.append(Learned(int(hours[i]), normal, sig, used))
        if state is None or len(state.leak) != sig.shape[1]:
            state = Cusum.zero(sig.shape[1], e.shape[1])
        detector = Detector(normal.cov, sig, settings, normal.hour_scale)
        stop = min(i + max(plan.every // HOUR, 1), end)
        _fill(means, normal, times, e, f, first, i, stop, dropped)
        found = detector.scan(hours, means, state, i, stop, tops=tops)
        out.alarms.extend(found)
        for alarm in found:
            if alarm.kind == "sensorFault" and alarm.sensor is not None:
                dropped.setdefault(alarm.sensor, int((alarm.start - hours[0]) // HOUR))
        leak = next((a for a in found if a.kind == "leak"), None)
        if leak is None:
            i = stop
            continue
        raised = int((leak.time - hours[0]) // HOUR)
        until = closed(leak) if closed is not None else None
        resume = end if until is None else min(max(-(-(until - first * HOUR) // HOUR), raised), end)
        out.paused.append((leak.time, int(hours[0]) + resume * HOUR))
        learnable[int((leak.start - hours[0]) // HOUR) : resume] = False
        # The residuals go on under the same normal while the alert is open: they are
        # what localisation reads.
        _fill(means, normal, times, e, f, first, raised, resume, dropped)
        i, state = resume, None
    return out


def _learn(
    times: NDArray[np.int64],
    e: NDArray[np.float64],
    f: NDArray[np.float64],
    sample_hour: NDArray[np.int64],
    learnable: NDArray[np.bool_],
    tops: NDArray[np.float64],
    limit: float,
    i: int,
    plan: Relearning,
) -> tuple[Normal, int]:
    lo = max(0, i - plan.lookback // HOUR)
    want = max(plan.window // HOUR, 24)
    usable = learnable[lo:i] & (tops[lo:i] <= limit)
    if usable.sum() < want // 2:
        # Too much was suspicious: the drift itself may be what rose the sums.
        usable = learnable[lo:i].copy()
    if usable.sum() < 24:
        # Alerts left open for weeks: learn from what there is rather than from nothing.
        usable = np.ones(i - lo, dtype=bool)
    picked = np.flatnonzero(usable)[-want:] + lo
    chosen = np.zeros(len(learnable), dtype=bool)
    chosen[picked] = True
    rows = chosen[sample_hour]
    normal = fit_normal(times[rows], e[rows], f[rows])
    return normal, len(picked)


def _fill(
    means: NDArray[np.float64],
    normal: Normal,
    times: NDArray[np.int64],
    e: NDArray[np.float64],
    f: NDArray[np.float64],
    first: int,
    lo: int,
    hi: int,
    dropped: dict[int, int],
) -> None:
    """Hourly mean residuals under ``normal`` of the hours ``lo`` to ``hi`` (indexes
    from the hour ``first``), the sensors found faulty left out from their onset."""
    rows = (times >= (first + lo) * HOUR) & (times < (first + hi) * HOUR)
    if not rows.any():
        return
    z = normal.residuals(times[rows], e[rows], f[rows])
    got, values = hourly_means(times[rows], z)
    means[got // HOUR - first] = values
    for sensor, onset in dropped.items():
        means[max(onset, lo) : hi, sensor] = np.nan


# -- minimum night flow ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NightAlarm:
    """A rise of a zone's minimum night flow: from ``start`` (a night) to the alarm."""

    start: int
    time: int
    excess: float
    """Mean night flow over the learned normal since ``start``, L/s."""
    baseline: float = math.nan
    """The learned normal night flow at the alarm, L/s."""


def night_flows(
    times: NDArray[np.int64], flow: NDArray[np.float64], hours: tuple[int, int] = (2, 4)
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """(day starts, mean flow between ``hours`` each night; NaN without data)."""
    h = _hour(times)
    night = (h >= hours[0]) & (h < hours[1]) & np.isfinite(flow)
    days = times // DAY
    out_days = np.unique(days)
    values = np.full(len(out_days), np.nan)
    for k, day in enumerate(out_days):
        sel = night & (days == day)
        if sel.sum():
            values[k] = float(flow[sel].mean())
    return out_days * DAY, values


def night_flow_alarms(
    days: NDArray[np.int64],
    values: NDArray[np.float64],
    train: int,
    *,
    kappa: float = 1.0,
    threshold: float = 6.0,
) -> list[NightAlarm]:
    """CUSUM of the nights after the first ``train`` ones, in standard deviations of
    the training nights; ValueError with fewer than three training nights."""
    base = values[:train][np.isfinite(values[:train])]
    if len(base) < 3:
        raise ValueError("at least three leak-free nights are needed to learn the night flow")
    mu, sd = float(base.mean()), max(float(base.std(ddof=1)), 1e-6)
    s, start = 0.0, train
    out = []
    for k in range(train, len(values)):
        if not np.isfinite(values[k]):
            continue
        if s == 0.0:
            start = k
        s = max(0.0, s + (values[k] - mu) / sd - kappa)
        if s > threshold:
            excess = float(np.nanmean(values[start : k + 1]) - mu)
            out.append(NightAlarm(int(days[start]), int(days[k]) + DAY, excess))
            s = 0.0
    return out


def night_watch(
    days: NDArray[np.int64],
    values: NDArray[np.float64],
    train: int,
    *,
    lookback: int = 42,
    kappa: float = 1.0,
    threshold: float = 6.0,
    floor: float = 0.02,
    closed: Callable[[NightAlarm], int | None] | None = None,
    expected: NDArray[np.float64] | None = None,
) -> list[NightAlarm]:
    """A zone's night flows watched from night ``train`` on against a normal learned
    again every night from the nights of the last ``lookback`` days that were neither
    under an open alarm nor on the way to one (the sum past half the threshold): each
    weekday's share (a weekend night is not a weekday night), the level of the last
    week's nights, and their robust spread (at least ``floor`` of the level). So the
    seasons move the normal and a rising leak does not. An alarm pauses the test until
    ``closed(alarm)`` (None: never); its nights are never learned from, and the
    ``train`` nights after it are learned from before the test resumes. ValueError with
    fewer than three valid training nights. ``expected`` (one per night) receives the
    normal each watched night was judged against."""
    ok = np.isfinite(values)
    if ok[:train].sum() < 3:
        raise ValueError("at least three leak-free nights are needed to learn the night flow")
    weekday = (days // DAY + 3) % 7  # 1970-01-01 was a Thursday
    learnable = ok.copy()
    normal = np.full(len(values), np.nan) if expected is None else expected
    s, start = 0.0, train
    out: list[NightAlarm] = []
    k = train
    while k < len(values):
        if not ok[k]:
            k += 1
            continue
        lo = max(0, k - lookback)
        pool = np.flatnonzero(learnable[lo:k]) + lo
        if len(pool) < 3:
            pool = np.flatnonzero(ok[lo:k]) + lo
        mu, sd = _night_normal(values[pool], weekday[pool], int(weekday[k]), floor)
        normal[k] = mu
        if s == 0.0:
            start = k
        s = max(0.0, s + (values[k] - mu) / sd - kappa)
        if s > threshold / 2:
            learnable[k] = False  # a rise on its way must not become normal
        if s <= threshold:
            k += 1
            continue
        with np.errstate(all="ignore"):
            excess = float(np.nanmean(values[start : k + 1] - normal[start : k + 1]))
        alarm = NightAlarm(int(days[start]), int(days[k]) + DAY, excess, mu)
        out.append(alarm)
        until = closed(alarm) if closed is not None else None
        if until is None:
            break
        resume = max(int(np.searchsorted(days, until)), k + 1)
        learnable[start:resume] = False
        # The nights after the repair are the new normal: learn from ``train`` of them
        # before judging any (the seasons may have moved on during a long alert).
        s, k = 0.0, resume + train
    return out


def _night_normal(
    values: NDArray[np.float64], weekday: NDArray[np.int64], day: int, floor: float
) -> tuple[float, float]:
    """(expected night flow on weekday ``day``, its spread) from earlier nights, oldest
    first: each weekday's factor over the pool, the level of the last week's nights
    once their weekday is taken out (the seasons move it), and the spread about it."""
    overall = float(np.median(values))
    factor = np.ones(7)
    seen = np.zeros(7, dtype=np.int64)
    for d in range(7):
        same = values[weekday == d]
        seen[d] = len(same)
        if len(same) and overall > 0:
            factor[d] = float(np.median(same)) / overall
    adjusted = values / factor[weekday]
    level = float(np.median(adjusted[-7:]))
    mu = level * float(factor[day])
    # Until every weekday seen is seen twice, the factors fit their nights exactly:
    # take the spread of the raw nights instead (wider: the safe side).
    dev = adjusted[-28:] - level if (seen[seen > 0] >= 2).all() else values - overall
    sd = 1.4826 * float(np.median(np.abs(dev))) * float(factor[day])
    return mu, max(sd, floor * abs(mu), 1e-6)
