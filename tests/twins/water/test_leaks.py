"""Leak detection: data-quality checks, the GLR-CUSUM on residuals, sensor faults, night
flow."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from cityverse.twins.water import leaks as lk

STEP = 300
DAY = 86_400


def _signatures(rng: np.random.Generator, sensors: int, candidates: int) -> NDArray[np.float64]:
    """Leak signatures like a network's: every sensor drops, the near ones most."""
    near = rng.integers(0, sensors, candidates)
    sig = -0.01 * rng.uniform(0.5, 1.0, (sensors, candidates))
    sig[near, np.arange(candidates)] -= 0.08
    return sig


def _series(
    rng: np.random.Generator, days: int, sig: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Pressure residuals: a daily shape, common-mode demand noise and sensor noise."""
    times = np.arange(days * DAY // STEP, dtype=np.int64) * STEP
    m = sig.shape[0]
    daily = 0.5 * np.sin(2 * np.pi * times / DAY)[:, None] * rng.uniform(0.5, 1.5, m)
    common = np.repeat(rng.normal(0, 0.03, len(times) // 12 + 1), 12)[: len(times)]
    e = daily + common[:, None] * rng.uniform(0.8, 1.2, m) + rng.normal(0, 0.05, (len(times), m))
    return times, e


def _detect(
    times: NDArray[np.int64], e: NDArray[np.float64], sig: NDArray[np.float64], train_days: int
) -> list[lk.Alarm]:
    f = np.zeros((len(times), 0))
    train = times < train_days * DAY
    normal = lk.fit_normal(times[train], e[train], f[train])
    z = normal.residuals(times, e, f)
    hours, means = lk.hourly_means(times[~train], z[~train])
    return lk.Detector(normal.cov, sig).run(hours, means)


def test_an_injected_leak_is_detected_after_it_starts_and_within_a_day() -> None:
    rng = np.random.default_rng(1)
    sig = _signatures(rng, 12, 60)
    times, e = _series(rng, 14, sig)
    start = 9 * DAY + 5 * 3600
    leak = 2.0  # L/s: drops of 2 to 18 cm
    e[times >= start] += leak * sig[:, 17]
    alarms = _detect(times, e, sig, 7)
    assert alarms, "the leak was not detected"
    first = alarms[0]
    assert first.kind == "leak"
    assert start < first.time <= start + DAY
    assert abs(first.start - start) <= 6 * 3600
    assert first.leak == pytest.approx(leak, rel=0.5)


def test_a_leak_free_series_raises_no_alarm() -> None:
    rng = np.random.default_rng(2)
    sig = _signatures(rng, 12, 60)
    times, e = _series(rng, 21, sig)
    assert _detect(times, e, sig, 7) == []


def test_one_drifting_sensor_is_a_sensor_fault_not_a_leak() -> None:
    rng = np.random.default_rng(3)
    sig = _signatures(rng, 12, 60)
    times, e = _series(rng, 14, sig)
    start = 9 * DAY
    # Sensor 4 reads lower and lower; its neighbours do not move.
    e[times >= start, 4] -= np.minimum((times[times >= start] - start) / DAY * 0.3, 0.3)
    alarms = _detect(times, e, sig, 7)
    assert alarms
    assert alarms[0].kind == "sensorFault"
    assert alarms[0].sensor == 4
    assert not [a for a in alarms if a.kind == "leak"]


def test_a_sensor_reading_higher_is_never_a_leak() -> None:
    rng = np.random.default_rng(4)
    sig = _signatures(rng, 12, 60)
    times, e = _series(rng, 12, sig)
    e[times >= 9 * DAY, 7] += 0.4
    alarms = _detect(times, e, sig, 7)
    assert [a.kind for a in alarms][:1] == ["sensorFault"]


def test_stuck_values_are_flagged_and_removed() -> None:
    rng = np.random.default_rng(5)
    times = np.arange(500, dtype=np.int64) * STEP
    values = 40 + rng.normal(0, 0.05, 500)
    values[200:260] = values[199]
    t, v, flags = lk.check_series(times, values, STEP)
    stuck = [f for f in flags if f.kind == "stuck"]
    assert len(stuck) == 1
    assert stuck[0].start == times[199] and stuck[0].count == 61
    assert len(v) == 500 - 61
    assert not np.isin(times[199:260], t).any()


def test_spikes_gaps_clock_jumps_and_invalid_values_are_flagged() -> None:
    rng = np.random.default_rng(6)
    times = np.arange(300, dtype=np.int64) * STEP
    values = 40 + rng.normal(0, 0.05, 300)
    values[50] += 25.0  # a spike
    values[120] = np.nan  # an invalid reading
    times = np.delete(times, np.arange(150, 170))  # a gap of 20 samples
    values = np.delete(values, np.arange(150, 170))
    times = np.insert(times, 200, times[199] - 3 * STEP)  # the clock jumps back once
    values = np.insert(values, 200, 40.0)
    t, v, flags = lk.check_series(times, values, STEP)
    kinds = {f.kind: f for f in flags}
    assert set(kinds) == {"spike", "gap", "clockJump", "invalid"}
    assert kinds["spike"].start == 50 * STEP
    assert kinds["gap"].count == 20
    assert kinds["clockJump"].count == 1
    assert np.all(np.diff(t) > 0)
    assert np.isfinite(v).all()
    assert np.abs(v - 40).max() < 1.0


def test_a_step_is_not_taken_for_spikes() -> None:
    times = np.arange(100, dtype=np.int64) * STEP
    values = np.where(times < 50 * STEP, 40.0, 39.0) + np.random.default_rng(7).normal(0, 0.05, 100)
    _, v, flags = lk.check_series(times, values, STEP)
    assert not [f for f in flags if f.kind == "spike"]
    assert len(v) == 100


def test_empty_and_short_history_are_refused_clearly() -> None:
    t, _, flags = lk.check_series(np.zeros(0, np.int64), np.zeros(0), STEP)
    assert len(t) == 0 and flags == []
    times = np.arange(100, dtype=np.int64) * STEP
    with pytest.raises(ValueError, match="less than a day"):
        lk.fit_normal(times, np.zeros((100, 3)), np.zeros((100, 0)))


def test_night_flow_rise_is_detected() -> None:
    rng = np.random.default_rng(8)
    times = np.arange(20 * DAY // STEP, dtype=np.int64) * STEP
    flow = 30 + 10 * np.sin(2 * np.pi * times / DAY) + rng.normal(0, 0.5, len(times))
    flow[times >= 12 * DAY] += 3.0
    days, nights = lk.night_flows(times, flow)
    alarms = lk.night_flow_alarms(days, nights, 10)
    assert alarms
    assert 12 * DAY <= alarms[0].time <= 15 * DAY
    assert 1.0 < alarms[0].excess < 3.5
    quiet = lk.night_flow_alarms(
        *lk.night_flows(times[times < 12 * DAY], flow[times < 12 * DAY]), 7
    )
    assert quiet == []
