"""The demo clock: city time that replays the recent past ``speed`` times faster, then runs
live, never ahead of the wall clock.

    clock = DemoClock(start=datetime(2026, 6, 21, 4, 30, tzinfo=UTC), speed=60)
    clock.now()     # 04:30 UTC now, 05:30 one real minute later, ... until it meets
                    # the wall clock; from then on, the wall clock's time

City time is ``min(start + speed x real seconds elapsed, wall clock)``: observations it
stamps are never in the future. Tests pass their own ``monotonic`` and ``wall`` (a fixed
clock they move by hand).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

LOCAL_OFFSET = timedelta(hours=1)
"""Morocco's legal time (UTC+1 outside Ramadan)."""
START_LOCAL_TIME = timedelta(hours=5, minutes=30)
"""The demo day starts before dawn, so the first minutes show the lights going off."""


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def morning_of(moment: datetime) -> datetime:
    """The latest 05:30 Berkane time (as UTC) at or before ``moment``."""
    local = moment.astimezone(UTC) + LOCAL_OFFSET
    day = datetime(local.year, local.month, local.day, tzinfo=UTC)
    morning = day + START_LOCAL_TIME - LOCAL_OFFSET
    return morning if morning <= moment else morning - timedelta(days=1)


def demo_start(now: datetime, story: timedelta = timedelta(0)) -> datetime:
    """The demo morning to replay: the latest 05:30 Berkane time whose first ``story``
    (the story's events) is over by ``now``, so that the replay shows all of it."""
    return morning_of(now - story)


class DemoClock:
    """City time: ``start`` when created, then ``speed`` city seconds per real second until
    it reaches the wall clock, then the wall clock."""

    def __init__(
        self,
        start: datetime,
        speed: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        if speed <= 0:
            raise ValueError("the demo speed must be greater than 0")
        self.start = start
        self.speed = speed
        self._monotonic = monotonic
        self._wall = wall
        self._t0 = monotonic()

    def _replayed(self) -> datetime:
        """Where the replay alone would be now."""
        return self.start + timedelta(seconds=(self._monotonic() - self._t0) * self.speed)

    def now(self) -> datetime:
        """The city's current time (UTC), never later than the wall clock."""
        return min(self._replayed(), self._wall())

    def live(self) -> bool:
        """True once the city has caught up with the wall clock."""
        return self._replayed() >= self._wall()

    def real_seconds_until(self, moment: datetime) -> float:
        """Wall-clock seconds until the city reaches ``moment`` (0 when it is past)."""
        replay = (moment - self._replayed()).total_seconds() / self.speed
        wall = (moment - self._wall()).total_seconds()
        return max(0.0, replay, wall)
