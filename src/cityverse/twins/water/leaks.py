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

*Night flow.* The minimum night flow (mean of 02:00-04:00) of a zone's inflow, against
the learned nights, with a CUSUM per night: slower, but blind to pressure sensor faults.
"""

from __future__ import annotations

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
        if len(rows):
            with np.errstate(all="ignore"):
                fl[hour] = np.nan_to_num(np.nanmean(rows, axis=0)) if rows.size else 0.0
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
    _, means = hourly_means(times, z)
    good = np.isfinite(means).all(axis=1)
    if good.sum() < 24:
        raise ValueError("less than a day of complete hours to learn the noise from")
    sample = np.cov(means[good].T).reshape(m, m)
    diag = np.maximum(np.diag(sample), floor * floor)
    cov = (1 - shrink) * sample + shrink * np.diag(diag)
    np.fill_diagonal(cov, diag)
    normal.cov = cov
    normal.hours = int(good.sum())
    return normal


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
class Detector:
    """The GLR-CUSUM over the hourly mean residuals."""

    cov: NDArray[np.float64]
    signatures: NDArray[np.float64]
    """(sensors, candidates) residual per L/s of leak at each candidate."""
    settings: Settings = field(default_factory=Settings)
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

    def _vectors(
        self, mean: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per candidate leak and per sensor: the hour's likelihood-ratio statistic."""
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
        return leak, single

    def run(
        self, hours: NDArray[np.int64], means: NDArray[np.float64], *, stop_at_leak: bool = True
    ) -> list[Alarm]:
        """Alarms over the hourly means, in time order: one CUSUM per candidate leak and
        per sensor, so that a small lasting change adds up where it is. After a sensor
        fault the sensor is left out from its estimated onset on; after a leak the test
        stops (unless ``stop_at_leak`` is False: it restarts from zero)."""
        means = means.copy()
        kappa, threshold = self.settings.kappa, self.settings.threshold
        s_leak = np.zeros(self.signatures.shape[1])
        s_single = np.zeros(len(self.cov))
        from_leak = np.zeros(len(s_leak), dtype=np.int64)
        from_single = np.zeros(len(s_single), dtype=np.int64)
        alarms: list[Alarm] = []
        for i in range(len(hours)):
            from_leak[s_leak == 0] = i
            from_single[s_single == 0] = i
            t_leak, t_single = self._vectors(means[i])
            s_leak = np.maximum(0.0, s_leak + t_leak - kappa)
            s_single = np.maximum(0.0, s_single + t_single - kappa)
            top_leak, top_single = float(s_leak.max()), float(s_single.max())
            if max(top_leak, top_single) <= threshold:
                continue
            if top_leak >= top_single:
                start = int(from_leak[int(np.argmax(s_leak))])
            else:
                start = int(from_single[int(np.argmax(s_single))])
            alarm = self._explain(hours, means, start, i, max(top_leak, top_single))
            if alarm is None:
                continue  # undecided yet: keep accumulating
            alarms.append(alarm)
            s_leak[:] = 0.0
            s_single[:] = 0.0
            if alarm.kind == "sensorFault" and alarm.sensor is not None:
                means[start:, alarm.sensor] = np.nan
            elif stop_at_leak:
                break
        return alarms

    def _explain(
        self, hours: NDArray[np.int64], means: NDArray[np.float64], a: int, b: int, s: float
    ) -> Alarm | None:
        block = means[a : b + 1]
        with np.errstate(all="ignore"):
            mean = np.nanmean(block, axis=0) if len(block) else block
        n = len(block)
        leak, single, sensor = self.statistics(mean, 1.0 / n)
        start, time = int(hours[a]), int(hours[b]) + HOUR
        if single > leak and sensor >= 0:
            rest = mean.copy()
            rest[sensor] = np.nan
            confirmed, _, _ = self.statistics(rest, 1.0 / n)
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


# -- minimum night flow ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NightAlarm:
    """A rise of a zone's minimum night flow: from ``start`` (a night) to the alarm."""

    start: int
    time: int
    excess: float
    """Mean night flow over the learned normal since ``start``, L/s."""


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
