"""Demand forecasting: no look-ahead, calibrated intervals, bad input reported, the API.

API errors are NGSI-LD ProblemDetails (GS CIM 009 v1.8 5.5.2)."""

from __future__ import annotations

import asyncio
import ctypes
import datetime as dt
import threading
import warnings
from pathlib import Path
from typing import Any

import httpx
import lightgbm
import numpy as np
import pandas as pd
import pytest

from cityverse.store.base import EntityStore
from cityverse.store.temporal import ImportRow
from cityverse.twins.water import demand
from cityverse.twins.water import forecast as fc
from cityverse.twins.water.calendar import MOROCCO, Calendar
from cityverse.twins.water.model import Placement, element_id
from cityverse.twins.water.twin import import_network, water_context
from tests.twins.water.conftest import ANCHOR, TINY

W = "/cityverse/v1/water"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
START = pd.Timestamp("2026-03-02T00:00:00Z")


@pytest.fixture(autouse=True)
def small_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fewer boosting rounds: the behaviour under test does not depend on them."""
    monkeypatch.setattr(fc, "ROUNDS", 60)
    monkeypatch.setattr(fc, "CALIBRATION_ROUNDS", 40)


def seasonal(days: int, end: pd.Timestamp, seed: int, scale: float = 20.0) -> pd.Series:
    """Hourly inflow ending just before ``end``: a daily and weekly cycle plus noise."""
    index = pd.date_range(end - pd.Timedelta(hours=24 * days), periods=24 * days, freq="h")
    hour = index.hour.to_numpy()
    weekend = index.day_of_week.to_numpy() >= 5
    daily = 1 + 0.4 * np.sin(2 * np.pi * (hour - 8) / 24)
    rng = np.random.default_rng(seed)
    values = scale * daily * np.where(weekend, 0.85, 1.0) + rng.normal(0, 0.05 * scale, len(index))
    return pd.Series(values, index=index)


WEEK_AFTER = START + pd.Timedelta(days=7)


def frame(days: int = 63, end: pd.Timestamp = WEEK_AFTER) -> pd.DataFrame:
    return pd.DataFrame({"A": seasonal(days, end, 1), "B": seasonal(days, end, 2, scale=8.0)})


def test_data_from_the_start_on_is_never_read() -> None:
    data = frame()
    first = fc.forecast(data, START, calendar=MOROCCO)
    tampered = data.copy()
    after = tampered.index >= START
    tampered.loc[after, "A"] = 1e6
    tampered.loc[after, "B"] = np.nan
    second = fc.forecast(tampered, START, calendar=MOROCCO)
    for zone in ("A", "B"):
        assert first.zones[zone].available
        assert first.zones[zone].values == second.zones[zone].values
        assert first.zones[zone].upper == second.zones[zone].upper
    # ...while data before the start does matter.
    earlier = data.copy()
    earlier.loc[(earlier.index < START) & (earlier.index >= START - pd.Timedelta(days=2)), "A"] *= 2
    assert (
        fc.forecast(earlier, START, calendar=MOROCCO).zones["A"].values != first.zones["A"].values
    )


def test_forecast_follows_the_cycle_and_intervals_hold_the_truth_at_their_rate() -> None:
    data = frame(days=70)
    made = fc.forecast(data, START, calendar=MOROCCO, level=0.8)
    truth = data.loc[data.index >= START].iloc[:168]
    inside, errors = [], []
    for zone in ("A", "B"):
        f = made.zones[zone]
        assert len(f.values) == len(f.lower) == len(f.upper) == 168
        assert all(lo <= v <= hi for lo, v, hi in zip(f.lower, f.values, f.upper, strict=True))
        actual = truth[zone].to_numpy()
        inside.append((np.array(f.lower) <= actual) & (actual <= np.array(f.upper)))
        errors.append(np.abs(np.array(f.values) - actual).mean() / actual.mean())
    coverage = np.concatenate(inside).mean()
    assert 0.65 <= coverage <= 0.95, coverage
    # The noise is 5 % of the level: a forecast that learnt the cycle errs by about 4 %.
    assert max(errors) < 0.08, errors


def test_too_little_history_is_reported_not_raised() -> None:
    data = frame()
    data.loc[data.index < START - pd.Timedelta(days=20), "B"] = np.nan
    made = fc.forecast(data, START, calendar=MOROCCO)
    assert made.zones["A"].available
    b = made.zones["B"]
    assert not b.available and b.values == []
    assert b.reason is not None and "480 hours" in b.reason and "five weeks" in b.reason


def test_gaps_spikes_and_stuck_meters_are_cleaned_and_counted() -> None:
    series = seasonal(14, START, 3)
    series.iloc[100] = 500.0  # a spike
    series.iloc[200:202] = np.nan  # a short gap: interpolated
    series.iloc[250:260] = np.nan  # a long gap: left missing
    series.iloc[300:310] = 17.25  # a stuck meter
    series.iloc[320] = -1.0
    cleaned, report = fc.clean(series)
    assert report.spikes == 1 and abs(cleaned.iloc[100] - series.iloc[99]) < 5
    assert report.stuck == 10 and report.nonpositive == 1 and report.missing == 12
    # The spike, the short gap and the negative value are interpolated; long gaps stay.
    assert report.interpolated == 4 and cleaned.iloc[200:202].notna().all()
    assert cleaned.iloc[250:260].isna().all() and cleaned.iloc[300:310].isna().all()
    assert report.render() == {
        "hours": 336,
        "missing": 12,
        "nonPositive": 1,
        "spikes": 1,
        "stuck": 10,
        "interpolated": 4,
    }


def test_a_jump_at_the_same_hour_every_week_is_routine() -> None:
    series = seasonal(42, START, 4)
    weekly = np.arange(38, len(series), fc.WEEK)  # the same hour each week, near the peak
    series.iloc[weekly] += 40.0
    series.iloc[500] += 40.0  # once only
    found = fc.routine(series, fc.WEEK)
    ahead = found[len(series) :]
    hour = weekly[-1] + fc.WEEK - len(series)
    assert abs(ahead[hour] - 40.0) < 3 and np.count_nonzero(ahead) == 1
    # From the fourth week on (three weeks before it known), only the weekly hours.
    assert set(np.flatnonzero(found)) == {*weekly[3:], weekly[-1] + fc.WEEK}
    # Taken out first, the weekly jumps are no spikes to clean: only the one-off is.
    cleaned, report = fc.clean(series - found[: len(series)])
    assert report.spikes == 4  # the one-off and the first three weekly ones
    assert abs(cleaned.iloc[500] - series.iloc[499]) < 5


def test_the_weekly_routine_is_forecast(monkeypatch: pytest.MonkeyPatch) -> None:
    data = frame()
    hour = 14  # the start's weekday, 14:00 UTC, each week
    at = (data.index - (START + pd.Timedelta(hours=hour))) % pd.Timedelta(days=7) == pd.Timedelta(0)
    data.loc[at, "A"] += 40.0
    made = fc.forecast(data, START, calendar=MOROCCO).zones["A"].values
    # The same hour a day later has no jump.
    assert made[hour] - made[hour + fc.DAY] > 30
    monkeypatch.setattr(fc, "ROUTINE_MADS", None)
    plain = fc.forecast(data, START, calendar=MOROCCO).zones["A"].values
    assert abs(plain[hour] - plain[hour + fc.DAY]) < 10


def test_the_median_of_a_few_rows_is_numpys() -> None:
    rng = np.random.default_rng(5)
    for count in (1, 2, 3, 4):
        values = rng.normal(size=(count, 3000))
        values[:, ::3] = np.round(values[:, ::3])  # ties
        values[rng.random(values.shape) < 0.3] = np.nan
        values[:, :20] = np.nan  # all missing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmedian(values, axis=0)
        np.testing.assert_array_equal(fc._nanmedian(list(values)), expected)


def _regression(n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 5))
    x[:, 0] = rng.integers(0, 3, n)  # the zone: categorical
    y = 2 * x[:, 1] + np.sin(3 * x[:, 2]) + x[:, 0] + rng.normal(0, 0.1, n)
    x[:, 1:][rng.random((n, 4)) < 0.05] = np.nan
    return x, y


def test_models_are_those_trained_one_by_one_from_the_rows() -> None:
    x, y = _regression()
    rows = np.flatnonzero(np.random.default_rng(4).random(len(y)) < 0.8)
    fits: list[tuple[np.ndarray | None, int, int]] = [(None, 30, 0), (None, 30, 1), (rows, 20, 0)]
    models = fc._train(fc._dataset(x, y), fits)
    # The plain way: each model in turn, the subset binned from its raw rows.
    whole = lightgbm.Dataset(
        x, y, categorical_feature=[0], free_raw_data=False, params=fc._PARAMS
    ).construct()
    for model, (subset, rounds, seed) in zip(models, fits, strict=True):
        data = whole
        if subset is not None:
            data = lightgbm.Dataset(x[subset], y[subset], reference=whole, categorical_feature=[0])
        reference = lightgbm.train(fc._params(seed), data, num_boost_round=rounds)
        np.testing.assert_array_equal(fc._predict(model, x), reference.predict(x))


def test_models_trained_side_by_side_give_the_forecast_made_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = frame()
    monkeypatch.setattr(fc, "WORKERS", 1)
    alone = fc.forecast(data, START, calendar=MOROCCO)
    threads: set[int] = set()
    train = lightgbm.train

    def watched(*args: Any, **kwargs: Any) -> Any:
        threads.add(threading.get_ident())
        return train(*args, **kwargs)

    monkeypatch.setattr(lightgbm, "train", watched)
    monkeypatch.setattr(fc, "WORKERS", 4)
    together = fc.forecast(data, START, calendar=MOROCCO)
    assert len(threads) > 1
    for zone in ("A", "B"):
        a, b = alone.zones[zone], together.zones[zone]
        assert a.available and (a.values, a.lower, a.upper) == (b.values, b.lower, b.upper)


def test_predicting_leaves_lightgbm_on_one_thread() -> None:
    """LightGBM's thread count is process-wide: a prediction must not raise it while
    other models train, or their sums (and forecasts) would depend on the timing."""
    x, y = _regression()
    [model] = fc._train(fc._dataset(x, y), [(None, 5, 0)])
    threads = ctypes.c_int.in_dll(lightgbm.basic._LIB, "LGBM_DEFAULT_NUM_THREADS")
    model.predict(x)  # LightGBM's default: every core
    assert threads.value != fc._PARAMS["num_threads"]
    fc._predict(model, x)
    assert threads.value == fc._PARAMS["num_threads"] == 1


def test_calendar_knows_moroccan_holidays_and_ramadan() -> None:
    assert MOROCCO.is_holiday(dt.date(2025, 7, 30))  # Throne Day
    assert not MOROCCO.is_holiday(dt.date(2025, 7, 29))
    assert MOROCCO.is_ramadan(dt.date(2025, 3, 10)) and not MOROCCO.is_ramadan(dt.date(2025, 4, 10))
    italy = Calendar(country="IT", timezone="Europe/Rome", ramadan=False, extra=((11, 3),))
    assert italy.is_holiday(dt.date(2022, 12, 26)) and italy.is_holiday(dt.date(2022, 11, 3))
    assert not italy.is_ramadan(dt.date(2025, 3, 10))
    table = MOROCCO.features(pd.date_range("2025-03-09T22:00Z", periods=4, freq="h"))
    # Casablanca is UTC+0 during Ramadan 2025 (UTC+1 otherwise).
    assert table["hour"].tolist() == [22, 23, 0, 1]
    assert table["ramadan"].tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="no public holidays"):
        Calendar(country="XX")


def test_bridge_days_and_day_types() -> None:
    italy = Calendar(country="IT", timezone="Europe/Rome", ramadan=False, extra=((11, 3),))
    # All Saints' Day on a Tuesday and the patron saint on Thursday, 2022: Monday 31
    # October, Wednesday 2 and Friday 4 November are squeezed between days off.
    week = [dt.date(2022, 10, 30) + dt.timedelta(days=k) for k in range(8)]
    assert [italy.is_bridge(d) for d in week] == [0, 1, 0, 1, 0, 1, 0, 0]
    assert [italy.day_type(d) for d in week] == [6, 5, 6, 5, 6, 5, 5, 6]
    # An ordinary week keeps its weekdays.
    plain = [dt.date(2022, 11, 14) + dt.timedelta(days=k) for k in range(7)]
    assert [italy.day_type(d) for d in plain] == list(range(7))
    # Morocco: Throne Day (Wednesday 30 July 2025) is a Sunday-like day, with no bridge.
    assert MOROCCO.day_type(dt.date(2025, 7, 30)) == 6
    assert not MOROCCO.is_bridge(dt.date(2025, 7, 31))
    table = italy.features(pd.date_range("2022-10-30T23:00Z", periods=48, freq="h"))
    assert table["bridge"].tolist() == [1] * 24 + [0] * 24
    assert table["daytype"].tolist() == [5] * 24 + [6] * 24


ITALY = Calendar(country="IT", timezone="Europe/Rome", ramadan=False, extra=((11, 3),))


def _italian_design(first: str, last: str) -> tuple[fc._Design, pd.DatetimeIndex]:
    """A design over an Italian local grid whose inflow is each hour's own position."""
    grid = pd.date_range(
        pd.Timestamp(first, tz="Europe/Rome"), pd.Timestamp(last, tz="Europe/Rome"), freq="h"
    ).tz_convert("UTC")
    clock = np.rint(ITALY.utc_offset(grid)).astype(np.int64)
    y = np.arange(len(grid), dtype=np.float64)
    return fc._Design(y, ITALY.features(grid), None, 0, clock), grid


def test_lags_follow_the_local_clock_across_summer_time() -> None:
    design, grid = _italian_design("2022-09-20", "2022-11-10")
    local = grid.tz_convert("Europe/Rome").tz_localize(None)
    offset = ITALY.utc_offset(grid)
    assert offset[0] == 2 and offset[-1] == 1  # summer time ended on 30 October
    # From Monday 31 October, a week back is 169 hours: the same local hour.
    o = np.array([grid.get_loc(pd.Timestamp("2022-10-31", tz="Europe/Rome"))])
    t = o[0] + np.arange(fc.WEEK)
    for weeks in (1, 2, 4):
        back = design._back(t, weeks * fc.WEEK, o)
        assert (back < o).all()
        assert (local[back] == local[t] - pd.Timedelta(weeks=weeks)).all()
        assert ((t - back)[: fc.DAY] == weeks * fc.WEEK + 1).all()
    # In the week summer time starts, a week back is 167 hours from its first hour on,
    # except where that would be the origin itself: that hour keeps 168, never reading
    # from the future.
    design, grid = _italian_design("2022-02-20", "2022-04-10")
    local = grid.tz_convert("Europe/Rome").tz_localize(None)
    o = np.array([grid.get_loc(pd.Timestamp("2022-03-21", tz="Europe/Rome"))])
    t = o[0] + np.arange(fc.WEEK)
    back = design._back(t, fc.WEEK, o)
    assert (back < o).all()
    same = local[back] == local[t] - pd.Timedelta(weeks=1)
    assert same[:-1].all() and not same[-1] and t[-1] - back[-1] == fc.WEEK
    assert (t - back).tolist() == [168] * 146 + [167] * 21 + [168]


def test_the_last_hours_departure_is_a_feature_of_the_first_day() -> None:
    design, grid = _italian_design("2022-05-01", "2022-07-01")
    o = grid.get_loc(pd.Timestamp("2022-06-20", tz="Europe/Rome"))
    design.y[o - 6 : o] += 12.0  # the last 6 hours stand higher
    design.prefix = fc._prefix(design.y)
    # The inflow grows by one an hour: four weeks back is 420 hours lower, on median.
    level = float(np.mean(design.y[o - 4 * fc.WEEK : o]))
    six, day = design._anomaly(np.array([o]))
    assert six[0] == pytest.approx((420 + 12) / level)
    assert day[0] == pytest.approx((420 + 12 * 6 / 24) / level)
    rows = design.rows(np.array([o]), fc.WEEK, o + fc.WEEK)
    first_day_only = [
        c
        for c in range(rows.x.shape[1])
        if np.isfinite(rows.x[: fc.DAY, c]).all() and np.isnan(rows.x[fc.DAY :, c]).all()
    ]
    assert [rows.x[0, c] for c in first_day_only] == pytest.approx([six[0], day[0]])


def test_smoothing_takes_from_the_neighbouring_hours_and_keeps_the_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fc, "SMOOTH", 0.1)
    jagged = np.array([1.0, 3.0, 1.0, 3.0, 1.0])
    assert fc._smooth(jagged).tolist() == pytest.approx([1.0, 2.6, 1.4, 2.6, 1.0])
    assert fc._smooth(np.full(5, 2.0)).tolist() == pytest.approx([2.0] * 5)


def test_days_of_the_same_kind_are_found_before_the_origin() -> None:
    design, grid = _italian_design("2022-09-20", "2022-11-10")
    local = grid.tz_convert("Europe/Rome")
    o = np.array([grid.get_loc(pd.Timestamp("2022-10-31", tz="Europe/Rome"))] * 2)
    # 10:00 on All Saints' Day (a holiday: Sundays) and on Wednesday 2 November (a
    # bridge day: Saturdays).
    t = np.array(
        [
            grid.get_loc(pd.Timestamp("2022-11-01 10:00", tz="Europe/Rome")),
            grid.get_loc(pd.Timestamp("2022-11-02 10:00", tz="Europe/Rome")),
        ]
    )
    found = design._same_type(o, t, 4)
    days = [[local[int(v[k])].strftime("%m-%d %H") for v in found] for k in range(2)]
    assert days[0] == ["10-30 10", "10-23 10", "10-16 10", "10-09 10"]
    assert days[1] == ["10-29 10", "10-22 10", "10-15 10", "10-08 10"]


def test_holidays_depart_from_sundays_and_bridge_days_lean_on_saturdays() -> None:
    design, grid = _italian_design("2022-09-20", "2022-11-10")
    local = grid.tz_convert("Europe/Rome").tz_localize(None)
    o = grid.get_loc(pd.Timestamp("2022-10-31", tz="Europe/Rome"))
    rows = design.rows(np.array([o]), fc.WEEK, o + fc.WEEK)
    day = local[rows.time].strftime("%m-%d")
    at_ten = local[rows.time].hour == 10
    position = {str(stamp): k for k, stamp in enumerate(local)}
    scale = rows.level[0]
    # All Saints' Day, 10:00: the median of the last four Sundays at 10:00...
    sundays = [position[f"2022-10-{d} 10:00:00"] for d in ("09", "16", "23", "30")]
    holiday = np.flatnonzero((day == "11-01") & at_ten)[0]
    assert rows.base[holiday] * scale == pytest.approx(np.median(sundays))
    # ...a bridge day, as a working day, the same local hour of the last four weeks.
    lags = [position[f"2022-10-{d} 10:00:00"] for d in ("03", "10", "17", "24")]
    monday = np.flatnonzero((day == "10-31") & at_ten)[0]
    assert rows.base[monday] * scale == pytest.approx(np.median(lags))
    # Bridge days take more of the last Saturday's inflow.
    bridge = np.isin(day, ["10-31", "11-02", "11-04"])
    assert (rows.share[bridge] == fc.BRIDGE_BLEND).all()
    assert (rows.share[~bridge] == fc.BLEND).all()


async def test_the_daily_service_forecasts_every_network(
    store: EntityStore, tmp_path: Path
) -> None:
    path = tmp_path / "tiny.inp"
    path.write_text(TINY)
    await import_network(store, "", path, "tiny", Placement.anchored(*ANCHOR))
    now = demand.next_hour()
    for link, kind in (("P1", "Pipe"), ("V1", "Valve")):
        await _flow_history(store, element_id(kind, "tiny", link), kind, seasonal(42, now, 6))
    service = demand.DemandForecasts(store, every=3600)
    await service.start()
    assert await store.get("", demand.entity_id("tiny", "B")) is None  # nothing at start
    await service.stop()
    assert await service.round() == 2
    [a, b] = await demand.read(store, "", "tiny")
    # A's inflow (P1 less V1) is about zero: the cleaning drops non-positive hours.
    assert b["status"]["value"] == "available"
    assert b["validFrom"]["value"]["@value"] == now.strftime("%Y-%m-%dT%H:00:00.000Z")
    assert a["refZone"]["value"] == "A" and a["status"]["value"] == "unavailable"
    assert a["dataQuality"]["json"]["nonPositive"] == a["dataQuality"]["json"]["hours"] > 0
    assert "is valid" in a["unavailableReason"]["value"]


# -- the API ------------------------------------------------------------------------------


async def _finished(client: httpx.AsyncClient, location: str) -> dict[str, Any]:
    for _ in range(2000):
        job = (await client.get(location)).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        await asyncio.sleep(0.025)
    raise AssertionError(f"job {location} did not finish")


async def _flow_history(store: EntityStore, link: str, kind: str, series: pd.Series) -> None:
    ctx = await water_context()
    rows = []
    for when, value in series.items():
        moment = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        instance = {
            "type": "Property",
            "value": float(value),
            "unitCode": "G51",
            "observedAt": moment,
            "createdAt": moment,
            "modifiedAt": moment,
        }
        ms = int(when.timestamp() * 1000)
        rows.append(ImportRow(link, (ctx.expand(kind),), ctx.expand("flow"), ms, instance))
    await store.import_history("", rows)


async def test_forecast_over_http(client: httpx.AsyncClient, store: EntityStore) -> None:
    response = await client.post(
        f"{W}/networks",
        params={"name": "tiny", "anchor": "-2.93,35.17"},
        content=TINY,
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 201, response.text
    # Zone B is fed through V1 (J1 -> J2); zone A through P1 (R1 -> J1), less what leaves
    # it through V1. P1 has metered 10 days only, V1 45.
    await _flow_history(store, element_id("Pipe", "tiny", "P1"), "Pipe", seasonal(10, START, 4))
    await _flow_history(
        store, element_id("Valve", "tiny", "V1"), "Valve", seasonal(45, START, 5, 15.0)
    )
    response = await client.post(
        f"{W}/networks/tiny/forecast", json={"start": "2026-03-02T00:00:00Z", "horizon": 48}
    )
    assert response.status_code == 202, response.text
    job = await _finished(client, response.headers["Location"])
    assert job["status"] == "succeeded", job
    assert sorted(job["result"]["forecasts"]) == [
        "urn:ngsi-ld:WaterDemandForecast:tiny:A",
        "urn:ngsi-ld:WaterDemandForecast:tiny:B",
    ]
    response = await client.get(f"{W}/networks/tiny/forecast", params={"zone": "B"})
    assert response.status_code == 200
    [entity] = response.json()
    assert entity["type"] == "WaterDemandForecast"
    assert entity["status"]["value"] == "available", entity
    assert entity["refZone"]["value"] == "B"
    assert entity["validFrom"]["value"]["@value"] == "2026-03-02T00:00:00.000Z"
    assert entity["validTo"]["value"]["@value"] == "2026-03-04T00:00:00.000Z"
    series = entity["inflowForecast"]["json"]
    assert len(series["values"]) == len(series["lower"]) == 48 and series["step"] == "PT1H"
    # V1's flow swings between 9 and 21 L/s around 15: the forecast is on its scale.
    assert 12 < np.mean(series["values"]) < 18
    assert entity["dataQuality"]["json"]["missing"] == 0
    [other] = (await client.get(f"{W}/networks/tiny/forecast", params={"zone": "A"})).json()
    assert other["status"]["value"] == "unavailable"
    assert "240 hours" in other["unavailableReason"]["value"]
    assert "inflowForecast" not in other
    # The same entities through the NGSI-LD API.
    response = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:WaterDemandForecast:tiny:B")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "urn:ngsi-ld:WaterDemandForecast:tiny:B"


@pytest.mark.parametrize(
    ("body", "status", "kind", "words"),
    [
        ({"horizon": 500}, 400, "BadRequestData", "horizon"),
        ({"level": 1.5}, 400, "BadRequestData", "level"),
        ({"start": "yesterday"}, 400, "BadRequestData", "date-time"),
        ({"country": "XX"}, 400, "BadRequestData", "holidays"),
        ({"timezone": "Mars/Olympus"}, 400, "BadRequestData", "time zone"),
        ({"frobnicate": 1}, 400, "BadRequestData", "unknown"),
    ],
)
async def test_bad_forecast_requests_are_problem_details(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, kind: str, words: str
) -> None:
    await client.post(
        f"{W}/networks",
        params={"name": "tiny", "anchor": "-2.93,35.17"},
        content=TINY,
        headers={"Content-Type": "text/plain"},
    )
    response = await client.post(f"{W}/networks/tiny/forecast", json=body)
    assert response.status_code == status
    problem = response.json()
    assert problem["type"] == ERRORS + kind and words in problem["detail"]


async def test_unknown_network_or_zone_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{W}/networks/nowhere/forecast", json={})
    assert response.status_code == 404
    assert response.json()["type"] == ERRORS + "ResourceNotFound"
    await client.post(
        f"{W}/networks",
        params={"name": "tiny", "anchor": "-2.93,35.17"},
        content=TINY,
        headers={"Content-Type": "text/plain"},
    )
    response = await client.get(f"{W}/networks/tiny/forecast", params={"zone": "Z"})
    assert response.status_code == 404
    assert response.json()["type"] == ERRORS + "ResourceNotFound"
    assert (await client.get(f"{W}/networks/tiny/forecast")).json() == []


def test_the_first_day_model_learns_the_first_day_of_every_origin_recent_ones_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fc, "FIRST_DAY_HALF_LIFE_DAYS", 10.0)
    design, grid = _italian_design("2022-05-01", "2022-07-01")
    s = grid.get_loc(pd.Timestamp("2022-06-20", tz="Europe/Rome"))
    data = fc._first_day_data({"A": design}, s)
    # Origins every day from the day before the start back to four weeks of lags.
    origins = np.arange(s - fc.DAY, 4 * fc.WEEK - 1, -fc.DAY)
    assert data.num_data() == fc.DAY * len(origins)
    weight = data.get_weight()
    ages = np.repeat((s - origins) / fc.DAY, fc.DAY)
    np.testing.assert_allclose(weight, 0.5 ** (ages / 10.0))
    assert weight[0] == pytest.approx(0.5**0.1) and weight[-1] < weight[0]
    monkeypatch.setattr(fc, "FIRST_DAY_HALF_LIFE_DAYS", None)
    assert fc._first_day_data({"A": design}, s).get_weight() is None


def test_the_first_day_model_changes_the_first_day_only(monkeypatch: pytest.MonkeyPatch) -> None:
    data = frame()
    monkeypatch.setattr(fc, "FIRST_DAY_SHARE", 0.0)
    without = fc.forecast(data, START, calendar=MOROCCO)
    monkeypatch.setattr(fc, "FIRST_DAY_SHARE", 1.0)
    with_model = fc.forecast(data, START, calendar=MOROCCO)
    for zone in ("A", "B"):
        a, b = without.zones[zone].values, with_model.zones[zone].values
        # Hour 24 takes a tenth of hour 23 (smoothing): from hour 25 on, nothing changed.
        assert a[fc.DAY + 1 :] == b[fc.DAY + 1 :]
        assert a[: fc.DAY] != b[: fc.DAY]
