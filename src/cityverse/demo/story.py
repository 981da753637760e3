"""The demo's story: a morning in Berkane when a pipe bursts.

The demo replays the latest such morning that is over, fast, from 05:30 Berkane time,
then runs live (``clock``). Timeline, in city time from the morning's start:

======== ========================================================================
 +0:00    05:30, before dawn: street lights on (dimmed), tank filling, parking quiet
 ~+0:30   dawn: street lights switch off one by one (each has its own photocell)
 +1:30    07:00: the waste collection round empties the fullest containers
 +2:30    08:00: morning demand peak; a leak opens on pipe ``LEAK_PIPE``; the
          pressure sensors nearby drop by one to three metres
 +2:50    20 minutes later: an Alert (category water, subCategory leak) appears
 ~+14:30  dusk: street lights switch on; at 23:00 they dim to half power
======== ========================================================================

The Alert is the demo's scripted alert: it stands in for the water twin's leak detection
and is to be replaced by it (``ScriptedLeakAlert``); the leak itself is real in the
hydraulic model, so the pressures the sensors publish show it either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cityverse.core.entity import format_utc
from cityverse.demo import water
from cityverse.demo.contexts import hosted_url

LEAK_PIPE = "p257"
"""The pipe that bursts (a pipe that leaked in the BattLeDIM 2019 data of L-Town)."""
LEAK_AFTER = timedelta(hours=2, minutes=30)
"""City time from the demo's start to the leak (08:00 Berkane time)."""
ALERT_DELAY = timedelta(minutes=20)
"""City time from the leak to the scripted alert (a plausible detection delay)."""
SPAN = LEAK_AFTER + ALERT_DELAY
"""City time from the morning's start to the story's last event."""


@dataclass(frozen=True)
class Story:
    """When the leak starts and when its alert is raised, for the morning that starts at
    ``start``."""

    start: datetime
    leak_pipe: str = LEAK_PIPE
    leak_after: timedelta = LEAK_AFTER
    alert_delay: timedelta = ALERT_DELAY

    @property
    def leak_at(self) -> datetime:
        """The moment the pipe bursts."""
        return self.start + self.leak_after

    @property
    def alert_at(self) -> datetime:
        """The moment the scripted alert is raised."""
        return self.leak_at + self.alert_delay

    def leaking(self, moment: datetime) -> bool:
        """True once the leak has started (it is never repaired within the demo)."""
        return moment >= self.leak_at

    def alert_due(self, moment: datetime) -> bool:
        """True once the scripted alert should exist."""
        return moment >= self.alert_at


class ScriptedLeakAlert:
    """The demo's scripted leak alert, raised by the story in place of leak detection.

    When the water twin's leak detection runs, it raises its own Alert from the sensors'
    pressures and this class is no longer needed.
    """

    def __init__(self, story: Story, location: dict[str, Any], base: str) -> None:
        self.story = story
        self.location = location
        self.base = base
        self.raised = False

    @property
    def entity_id(self) -> str:
        """The Alert's id (one per story day)."""
        return f"urn:ngsi-ld:Alert:berkane-leak-{self.story.leak_pipe}-{self.story.start:%Y%m%d}"

    def entity(self) -> dict[str, Any]:
        """The SDM Alert entity for the leak."""
        issued = format_utc(self.story.alert_at)
        return {
            "id": self.entity_id,
            "type": "Alert",
            "category": {"type": "Property", "value": "water"},
            "subCategory": {"type": "Property", "value": "leak"},
            "severity": {"type": "Property", "value": "high"},
            "dateIssued": {"type": "Property", "value": issued},
            "validFrom": {"type": "Property", "value": issued},
            "description": {
                "type": "Property",
                "value": f"Pressure drop in the network: probable leak near pipe "
                f"{self.story.leak_pipe} (demo scripted alert)",
            },
            "alertSource": {
                "type": "Relationship",
                "object": water.entity_id("Pipe", self.story.leak_pipe),
            },
            "location": {"type": "GeoProperty", "value": self.location},
            "@context": hosted_url(self.base, "Alert"),
        }
