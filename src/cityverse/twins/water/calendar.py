"""The calendar a city's water demand follows: local hour and weekday, public holidays,
Ramadan.

Holidays come from the ``holidays`` package (Morocco ``MA``, Italy ``IT``, any ISO
country it knows); the months of Ramadan from ``hijridate`` (Umm al-Qura), for the
cities whose demand follows it::

    cal = Calendar(country="MA", timezone="Africa/Casablanca", ramadan=True)
    table = cal.features(pd.date_range("2026-02-01", periods=48, freq="h", tz="UTC"))
    table.columns  # hour, weekday, holiday, ramadan, season_sin, season_cos, bridge, daytype
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import numpy as np
import pandas as pd
from hijridate import Gregorian
from numpy.typing import NDArray

RAMADAN = 9
"""The ninth month of the Hijri year."""

COLUMNS = ("hour", "weekday", "holiday", "ramadan", "season_sin", "season_cos", "bridge", "daytype")
SATURDAY, SUNDAY = 5, 6


@cache
def _holiday_days(country: str, subdiv: str | None, year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdiv, years=year).keys())


@cache
def _is_ramadan(day: dt.date) -> bool:
    try:
        return Gregorian(day.year, day.month, day.day).to_hijri().month == RAMADAN
    except (OverflowError, ValueError):
        # Outside the Umm al-Qura tables (1937-2077): no Ramadan is known there.
        return False


@dataclass(frozen=True, slots=True)
class Calendar:
    """A place's calendar: ``country`` (ISO 3166 code for ``holidays``), its ``timezone``,
    whether Ramadan shapes demand, and extra local holidays (a patron saint's day)."""

    country: str = "MA"
    timezone: str = "Africa/Casablanca"
    ramadan: bool = True
    subdivision: str | None = None
    extra: tuple[tuple[int, int], ...] = field(default=())
    """Extra yearly holidays as (month, day)."""
    sunday_is_holiday: bool = False

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        try:
            holidays.country_holidays(self.country, subdiv=self.subdivision)
        except NotImplementedError:
            raise ValueError(f"no public holidays are known for country {self.country!r}") from None

    def is_holiday(self, day: dt.date) -> bool:
        """Whether ``day`` (a local date) is a public holiday."""
        if (day.month, day.day) in self.extra:
            return True
        if self.sunday_is_holiday and day.weekday() == 6:
            return True
        return day in _holiday_days(self.country, self.subdivision, day.year)

    def is_ramadan(self, day: dt.date) -> bool:
        """Whether ``day`` falls in Ramadan (always False when the calendar ignores it)."""
        return self.ramadan and _is_ramadan(day)

    def is_off(self, day: dt.date) -> bool:
        """Whether ``day`` is a weekend day or a public holiday."""
        return day.weekday() >= SATURDAY or self.is_holiday(day)

    def is_bridge(self, day: dt.date) -> bool:
        """Whether ``day`` is a working day between two days off (a holiday on Tuesday
        makes Monday one): many take it off."""
        one = dt.timedelta(days=1)
        return not self.is_off(day) and self.is_off(day - one) and self.is_off(day + one)

    def day_type(self, day: dt.date) -> int:
        """The weekday whose demand ``day`` should follow: its own on working days,
        Saturday (5) on a bridge day, Sunday (6) on a holiday."""
        if self.is_holiday(day):
            return SUNDAY
        if self.is_bridge(day):
            return SATURDAY
        return day.weekday()

    def utc_offset(self, index: pd.DatetimeIndex) -> NDArray[np.float64]:
        """The local clock's offset from UTC at each time of ``index`` (tz-aware), in
        hours: demand follows the clock, so a week back is 167 or 169 hours across a
        change of summer time."""
        local = index.tz_convert(self.timezone)
        offset = local.tz_localize(None) - index.tz_convert("UTC").tz_localize(None)
        return np.asarray(offset / pd.Timedelta(hours=1), dtype=np.float64)

    def features(self, index: pd.DatetimeIndex) -> pd.DataFrame:
        """One row per time of ``index`` (tz-aware): the calendar as numbers."""
        local = index.tz_convert(self.timezone)
        days = local.normalize()
        unique = pd.unique(days.date)
        holiday = {d: self.is_holiday(d) for d in unique}
        ramadan = {d: self.is_ramadan(d) for d in unique}
        bridge = {d: self.is_bridge(d) for d in unique}
        kind = {d: self.day_type(d) for d in unique}
        dates = days.date
        angle = 2 * np.pi * (local.day_of_year.to_numpy() - 1) / 365.25
        return pd.DataFrame(
            {
                "hour": local.hour.to_numpy(),
                "weekday": local.day_of_week.to_numpy(),
                "holiday": np.array([holiday[d] for d in dates], dtype=np.int8),
                "ramadan": np.array([ramadan[d] for d in dates], dtype=np.int8),
                "season_sin": np.sin(angle),
                "season_cos": np.cos(angle),
                "bridge": np.array([bridge[d] for d in dates], dtype=np.int8),
                "daytype": np.array([kind[d] for d in dates], dtype=np.int8),
            },
            index=index,
        )


MOROCCO = Calendar()
"""Moroccan cities: national holidays (civil and Islamic) and Ramadan."""
