"""The demo's simulated devices: what each one reads at a moment of city time.

``Devices.step(moment)`` returns the readings due since the previous step as NGSI-LD
batch-update items (``{"id", attribute..., "@context"}``), ready for the ingestion path.
Each kind of device reports at its own period of city time and only what changed where
that is what a real one does (street lights and parking sensors report events):

========================= ================ =========================================
 device                    period (city)    reading
========================= ================ =========================================
 water pressure/level/flow 5 min            EPANET (``hydraulics``), leak after story;
                                            ``observedBy`` the sensor's Device
 weather station           10 min           temperature, humidity, wind, pressure
 waste container           30 min           fillingLevel; emptied by the 07:00 round
 parking spot              5 min            status when it changes (occupancy by hour)
 street light              1 min            powerState, illuminanceLevel when changed
========================= ================ =========================================

Nothing here does I/O or reads a clock: the caller passes the moment, so tests drive
it with a fixed clock.
"""

from __future__ import annotations

import math
import random
import zlib
from datetime import datetime, timedelta
from typing import Any

from cityverse.core.entity import format_utc
from cityverse.demo import sun, water
from cityverse.demo.city import PARKING, STREETLIGHTING, WASTE, WEATHER, WEATHER_STATION
from cityverse.demo.clock import LOCAL_OFFSET
from cityverse.demo.frame import BERKANE
from cityverse.demo.hydraulics import HydraulicTables
from cityverse.demo.story import Story

Item = dict[str, Any]

WATER_PERIOD = timedelta(minutes=5)
WEATHER_PERIOD = timedelta(minutes=10)
WASTE_PERIOD = timedelta(minutes=30)
PARKING_PERIOD = timedelta(minutes=5)
LIGHT_PERIOD = timedelta(minutes=1)
COLLECTION_HOUR = 7
"""Local hour of the waste collection round."""
DIM_FROM, DIM_UNTIL = 23, 5
"""Local hours between which the lights burn at half power."""

_UNITS = {"pressure": "MTR", "level": "MTR", "flow": "G51"}
"""The water twin's units: metres of pressure and level, litres per second of flow."""

# Share of street parking taken, by local hour (a Moroccan town centre: busy late).
_OCCUPANCY = (
    0.35, 0.3, 0.3, 0.3, 0.3, 0.3, 0.35, 0.5, 0.7, 0.85, 0.9, 0.9,
    0.85, 0.7, 0.6, 0.65, 0.8, 0.9, 0.95, 0.95, 0.9, 0.75, 0.55, 0.45,
)  # fmt: skip


class Devices:
    """Every simulated device of the demo city, with its state."""

    def __init__(
        self,
        entities: list[dict[str, Any]],
        tables: HydraulicTables,
        story: Story,
        seed: int,
    ) -> None:
        self.tables = tables
        self.story = story
        self.rng = random.Random(seed)
        self.sensors = water.sensors()
        self.lights: dict[str, tuple[float, str, float]] = {}
        """id -> (photocell threshold in degrees of sun elevation, powerState, level)."""
        self.waste: dict[str, tuple[float, float]] = {}
        """id -> (fillingLevel, fill rate per hour)."""
        self.parking: dict[str, str] = {}
        self.devices: dict[tuple[str, str], str] = {}
        """(element id, measured property) -> the sensor Device's id (``observedBy``)."""
        for entity in entities:
            kind, entity_id = entity["type"], entity["id"]
            if kind == "Device" and "sensor" in entity["deviceCategory"]["value"]:
                element = entity["controlledAsset"]["object"]
                for prop in entity["controlledProperty"]["value"]:
                    self.devices[(element, prop)] = entity_id
            elif kind == "Streetlight":
                # Photocells differ: the lights go on and off over some minutes.
                threshold = -1.5 + (zlib.crc32(entity_id.encode()) % 1000) / 1000 * 3.0
                self.lights[entity_id] = (threshold, "unknown", -1.0)
            elif kind == "WasteContainer":
                level = float(entity["fillingLevel"]["value"])
                self.waste[entity_id] = (level, self.rng.uniform(0.008, 0.03))
            elif kind == "ParkingSpot":
                self.parking[entity_id] = str(entity["status"]["value"])
        self._last: dict[str, datetime] = {}
        self._collected: set[str] = set()

    def step(self, moment: datetime) -> list[Item]:
        """The readings due at ``moment`` (city time, UTC) since the previous step."""
        items: list[Item] = []
        if self._due("light", moment, LIGHT_PERIOD):
            items += self._lights(moment)
        if self._due("water", moment, WATER_PERIOD):
            items += self._water(moment)
        if self._due("weather", moment, WEATHER_PERIOD):
            items.append(self._weather(moment))
        if self._due("parking", moment, PARKING_PERIOD):
            items += self._parking(moment)
        if self._due("waste", moment, WASTE_PERIOD):
            items += self._waste(moment)
        return items

    def _due(self, kind: str, moment: datetime, period: timedelta) -> bool:
        last = self._last.get(kind)
        if last is not None and moment - last < period:
            return False
        self._last[kind] = moment
        return True

    def _water(self, moment: datetime) -> list[Item]:
        seconds = _seconds_of_day(moment)  # L-Town's patterns start at midnight
        leaking = self.story.leaking(moment)
        observed = format_utc(moment)
        items = []
        for sensor in self.sensors:
            value = round(self.tables.reading(sensor, seconds, leaking=leaking), 2)
            reading = _reading(value, _UNITS[sensor.kind], observed)
            device = self.devices.get((sensor.entity_id, sensor.kind))
            if device is not None:
                reading["observedBy"] = {"type": "Relationship", "object": device}
            items.append({"id": sensor.entity_id, sensor.kind: reading, "@context": water.CONTEXT})
        return items

    def _weather(self, moment: datetime) -> Item:
        local = _local_hours(moment)
        # Warmest mid-afternoon, coolest before dawn; a breeze in the afternoon.
        temperature = 21 + 7 * math.sin((local - 9) / 24 * 2 * math.pi)
        humidity = 0.55 - 0.2 * math.sin((local - 9) / 24 * 2 * math.pi)
        wind = 2 + 3 * max(0.0, math.sin((local - 11) / 24 * 2 * math.pi))
        observed = format_utc(moment)
        noise = self.rng.gauss
        return {
            "id": WEATHER_STATION,
            "dateObserved": {"type": "Property", "value": observed},
            "temperature": _reading(round(temperature + noise(0, 0.2), 1), "CEL", observed),
            "relativeHumidity": _reading(round(humidity + noise(0, 0.01), 2), None, observed),
            "windSpeed": _reading(round(wind + noise(0, 0.3), 1), "MTS", observed),
            "windDirection": _reading(self.rng.choice((270, 280, 290, 300)), "DD", observed),
            "atmosphericPressure": _reading(round(1014 + noise(0, 0.3), 1), "A97", observed),
            "precipitation": _reading(0.0, "MMT", observed),
            "@context": WEATHER,
        }

    def _waste(self, moment: datetime) -> list[Item]:
        local = _local_hours(moment)
        day = (moment + LOCAL_OFFSET).date().isoformat()
        round_due = local >= COLLECTION_HOUR and day not in self._collected
        if round_due:
            self._collected.add(day)
        observed = format_utc(moment)
        hours = WASTE_PERIOD.total_seconds() / 3600
        busy = 1.5 if 8 <= local <= 21 else 0.4
        items = []
        for entity_id, (level, rate) in self.waste.items():
            emptied = round_due and level > 0.6
            level = 0.02 if emptied else min(1.0, level + rate * busy * hours)
            self.waste[entity_id] = (level, rate)
            item: Item = {
                "id": entity_id,
                "fillingLevel": _reading(round(level, 3), None, observed),
                "status": {"type": "Property", "value": "ok" if level < 0.9 else "full"},
                "@context": WASTE,
            }
            if emptied:
                item["dateLastEmptying"] = {"type": "Property", "value": observed}
            items.append(item)
        return items

    def _parking(self, moment: datetime) -> list[Item]:
        target = _OCCUPANCY[int(_local_hours(moment)) % 24]
        observed = format_utc(moment)
        items = []
        for entity_id, status in self.parking.items():
            # Each spot turns over now and then; the chance of finding it taken is the target.
            if self.rng.random() > 0.25:
                continue
            new = "occupied" if self.rng.random() < target else "free"
            if new == status:
                continue
            self.parking[entity_id] = new
            items.append(
                {
                    "id": entity_id,
                    "status": {"type": "Property", "value": new, "observedAt": observed},
                    "@context": PARKING,
                }
            )
        return items

    def _lights(self, moment: datetime) -> list[Item]:
        elevation = sun.elevation(moment, *BERKANE)
        local = _local_hours(moment)
        dimmed = local >= DIM_FROM or local < DIM_UNTIL
        observed = format_utc(moment)
        items = []
        for entity_id, (threshold, state, level) in self.lights.items():
            on = elevation < threshold
            new_state, new_level = ("on", 0.5 if dimmed else 1.0) if on else ("off", 0.0)
            if (new_state, new_level) == (state, level):
                continue
            self.lights[entity_id] = (threshold, new_state, new_level)
            items.append(
                {
                    "id": entity_id,
                    "powerState": {"type": "Property", "value": new_state, "observedAt": observed},
                    "illuminanceLevel": _reading(new_level, None, observed),
                    "@context": STREETLIGHTING,
                }
            )
        return items


def _reading(value: Any, unit: str | None, observed: str) -> dict[str, Any]:
    attr: dict[str, Any] = {"type": "Property", "value": value, "observedAt": observed}
    if unit:
        attr["unitCode"] = unit
    return attr


def _seconds_of_day(moment: datetime) -> float:
    local = moment + LOCAL_OFFSET
    return local.hour * 3600 + local.minute * 60 + local.second


def _local_hours(moment: datetime) -> float:
    return _seconds_of_day(moment) / 3600
