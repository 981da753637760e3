"""The demo's story: a morning in Berkane when a pipe bursts, and the twin finds it.

The demo replays the latest such morning that is over, fast, from 05:30 Berkane time,
then runs live (``clock``). Timeline, in city time from the morning's start:

======== ========================================================================
 -7 days  the water sensors' logged week, uploaded when the demo starts: the leak-free
          history the twin's leak detection learns the network's normal from
 +0:00    05:30, before dawn: street lights on (dimmed), tank filling, parking quiet
 ~+0:30   dawn: street lights switch off one by one (each has its own photocell)
 +1:30    07:00: the waste collection round empties the fullest containers
 +2:30    08:00: morning demand peak; a leak opens on pipe ``LEAK_PIPE``; the
          pressure sensors nearby drop by one to three metres
 +3:30    09:00: the first hour of the leak is complete; the water twin's hourly leak
          test (``detection``) raises an Alert with the candidate pipes and the area
          to search
 ~+14:30  dusk: street lights switch on; at 23:00 they dim to half power
======== ========================================================================

Nothing here is scripted but the leak itself, which is real in the hydraulic model: the
pressures the sensors publish show it, and the twin's own detection finds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

LEAK_PIPE = "p257"
"""The pipe that bursts (a pipe that leaked in the BattLeDIM 2019 data of L-Town)."""
LEAK_AFTER = timedelta(hours=2, minutes=30)
"""City time from the demo's start to the leak (08:00 Berkane time)."""
DETECTION_ALLOWANCE = timedelta(hours=2)
"""City time the story leaves the twin to find the leak: its test judges whole hours, so
the alert comes when the leak's first full hour is over (09:00), an hour to spare."""
SPAN = LEAK_AFTER + DETECTION_ALLOWANCE
"""City time from the morning's start to the story's last event."""
HISTORY = timedelta(days=7)
"""The leak-free week the water sensors have logged before the morning."""


@dataclass(frozen=True)
class Story:
    """When the leak starts, for the morning that starts at ``start`` (no leak at all
    when ``leak_pipe`` is None), and how long the water sensors logged before it."""

    start: datetime
    leak_pipe: str | None = LEAK_PIPE
    leak_after: timedelta = LEAK_AFTER
    history: timedelta = HISTORY

    @property
    def leak_at(self) -> datetime:
        """The moment the pipe bursts."""
        return self.start + self.leak_after

    @property
    def history_from(self) -> datetime:
        """Where the water sensors' logged history begins: ``history`` before the top of
        the morning's first hour, so that the leak test, which learns from that history
        and judges whole hours after it, judges whole hours from the start."""
        return self.start.replace(minute=0, second=0, microsecond=0) - self.history

    def leaking(self, moment: datetime) -> bool:
        """True once the leak has started (it is never repaired within the demo)."""
        return self.leak_pipe is not None and moment >= self.leak_at
