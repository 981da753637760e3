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


# -- a watch over months: the normal learned again ------------------------------------------


def _drifting(
    rng: np.random.Generator, days: int, sig: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Residuals whose normal moves: every pressure sags slowly, more at some sensors
    than at others (a season's demand the model does not know), 12 cm over 60 days."""
    times, e = _series(rng, days, sig)
    m = sig.shape[0]
    shape = -sig.mean(axis=1) / -sig.mean(axis=1).max()  # like a leak everywhere
    sag = 0.12 * (times / (60 * DAY))[:, None] * shape[None, :] * rng.uniform(0.5, 1.5, m)
    return times, e - sag


def test_a_normal_learned_once_drifts_into_false_alarms_a_weekly_one_does_not() -> None:
    rng = np.random.default_rng(11)
    sig = _signatures(rng, 12, 60)
    times, e = _drifting(rng, 63, sig)
    f = np.zeros((len(times), 0))
    assert [a.kind for a in _detect(times, e, sig, 7)][:1] == ["leak"]  # drift taken for one
    seen = lk.watch(times, e, f, lambda coef: sig, 7 * DAY)
    assert seen.alarms == []
    assert [item.start for item in seen.learned] == [7 * DAY + k * 7 * DAY for k in range(8)]
    assert all(item.hours == 7 * 24 for item in seen.learned)


def test_leaks_months_apart_are_found_and_the_watch_resumes_after_the_repair() -> None:
    rng = np.random.default_rng(12)
    sig = _signatures(rng, 12, 60)
    times, e = _drifting(rng, 63, sig)
    f = np.zeros((len(times), 0))
    leaks = [(30 * DAY + 5 * 3600, 36 * DAY, 17), (50 * DAY + 13 * 3600, 63 * DAY, 41)]
    for start, end, node in leaks:
        e[(times >= start) & (times < end)] += 2.0 * sig[:, node]
    repaired = {}

    def closed(alarm: lk.Alarm) -> int | None:
        for start, end, _ in leaks:
            if start < alarm.time <= end:
                repaired[alarm.time] = end
                return end
        return alarm.time + DAY  # nothing found: the crew dismisses it

    seen = lk.watch(times, e, f, lambda coef: sig, 7 * DAY, closed=closed)
    found = [a for a in seen.alarms if a.kind == "leak"]
    assert len(found) == 2, [(a.kind, a.time / DAY) for a in seen.alarms]
    for alarm, (start, _, _) in zip(found, leaks, strict=True):
        assert start < alarm.time <= start + DAY
    # Paused while the first was open, learned again at its repair, never from its hours.
    assert seen.paused[0] == (found[0].time, 36 * DAY)
    assert 36 * DAY in [item.start for item in seen.learned]
    # The second alert is still open at the end: the watch stops there.
    assert seen.paused[1] == (found[1].time, int(seen.hours[-1]) + 3600)


def test_a_growing_leak_is_not_hidden_by_a_relearning_during_its_growth() -> None:
    rng = np.random.default_rng(17)
    sig = _signatures(rng, 12, 60)
    times, e = _series(rng, 28, sig)
    f = np.zeros((len(times), 0))
    assert lk.watch(times, e, f, lambda coef: sig, 7 * DAY).alarms == []
    # A leak growing to 3 L/s over 3 days, 17 hours before the re-learning of day 14.
    start = 13 * DAY + 7 * 3600
    e += 3.0 * np.clip((times - start) / (3 * DAY), 0, 1)[:, None] * sig[:, 17][None, :]
    weekly = lk.watch(times, e, f, lambda coef: sig, 7 * DAY)
    once = lk.watch(
        times, e, f, lambda coef: sig, 7 * DAY, relearning=lk.Relearning(every=60 * DAY)
    )
    assert 14 * DAY in [item.start for item in weekly.learned]
    assert [a.kind for a in weekly.alarms] == ["leak"]
    found = weekly.alarms[0]
    assert start < found.time <= start + DAY
    assert abs(found.start - start) <= 12 * 3600
    # The hours of growth it learned from cost it no more than 3 hours.
    assert [a.kind for a in once.alarms] == ["leak"]
    assert found.time <= once.alarms[0].time + 3 * 3600


def test_hours_under_a_known_alert_are_not_learned_from() -> None:
    rng = np.random.default_rng(13)
    sig = _signatures(rng, 12, 60)
    times, e = _series(rng, 21, sig)
    f = np.zeros((len(times), 0))
    # A leak from day 8 to 12 that an earlier run raised and the crew repaired.
    leak = (times >= 8 * DAY) & (times < 12 * DAY)
    e[leak] += 3.0 * sig[:, 5]
    seen = lk.watch(times, e, f, lambda coef: sig, 14 * DAY, excluded=[(8 * DAY, 12 * DAY)])
    assert seen.alarms == []
    # The latest week without the alert's days: days 3 to 8 and 12 to 14.
    rows = ((times >= 3 * DAY) & (times < 8 * DAY)) | ((times >= 12 * DAY) & (times < 14 * DAY))
    clean = lk.fit_normal(times[rows], e[rows], f[rows])
    np.testing.assert_allclose(seen.learned[0].normal.level, clean.level)
    # Had the leak's days been learned, the normal would sit lower at the sensor nearest.
    near = int(np.argmin(sig[:, 5]))
    blind = lk.watch(times, e, f, lambda coef: sig, 14 * DAY)
    sag = (clean.level - blind.learned[0].normal.level)[:, near].mean()
    assert sag > 0.05, sag


def _nights(rng: np.random.Generator, nights: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Minimum night flows: weekend nights 30 % higher, a season adding 20 % over the
    period, noise of 0.3 L/s."""
    days = np.arange(nights, dtype=np.int64) * DAY
    weekday = (days // DAY + 3) % 7
    level = 15.0 * (1 + 0.2 * np.arange(nights) / nights)
    values = level * np.where(weekday >= 5, 1.3, 1.0) + rng.normal(0, 0.3, nights)
    return days, values


def test_night_flow_follows_weekdays_and_seasons_and_catches_a_rise() -> None:
    rng = np.random.default_rng(14)
    days, values = _nights(rng, 180)
    expected = np.full(len(values), np.nan)
    assert lk.night_watch(days, values, 7, expected=expected) == []
    assert np.nanmax(np.abs(expected[28:] - values[28:])) < 2.0
    # Learned once on the first week, the season alone raises an alarm.
    assert lk.night_flow_alarms(days, values, 7)
    leaky = values.copy()
    leaky[100:130] += 1.5  # about 5 m3/h from night 100, repaired at night 130
    repair = int(days[130])
    alarms = lk.night_watch(days, leaky, 7, closed=lambda a: repair if a.time <= repair else None)
    assert len(alarms) == 1
    assert abs(alarms[0].start - days[100]) <= DAY and alarms[0].time <= days[100] + 5 * DAY
    assert alarms[0].excess == pytest.approx(1.5, abs=0.6)
