"""The demo's simulated devices: what each one sends, and when, in city time.

``Devices.step(moment)`` returns the messages due since the previous step: one
``Message`` per device, holding its measures under the short names it is provisioned
with (``iot.KINDS``), each stamped with its ``TimeInstant``. Each kind of device reports
on its own grid of city time (every 5 minutes on the 5 minutes, ...) whatever the demo's
speed, so that a step covering several periods carries one measure per period. Street
lights and parking sensors report events (only what changed), as real ones do:

========================= ================ =========================================
 device                    period (city)    measures
========================= ================ =========================================
 water pressure/level/flow 5 min            EPANET (``hydraulics``), leak after story,
                                            with the sensor's noise
 weather station           10 min           temperature, humidity, wind, pressure
 waste container           30 min           fillingLevel; emptied by the 07:00 round
 parking spot              5 min            status when it changes (occupancy by hour)
 street light              1 min            powerState, illuminanceLevel when changed
========================= ================ =========================================

Each kind starts at its first grid time from ``since`` (the clock's start). What the
water sensors logged before (``logged``: the leak-free week the twin's leak detection
learns from) is history, not news: the demo adds it to the twin's history as such
(the temporal API), so that it neither changes the current state nor notifies anyone.
On a restart, each water sensor goes on after its last reading in the store
(``stored``), in its log as live, so that its history holds each moment once.

Nothing here does I/O or reads a clock: the caller passes the moment, so tests drive
it with a fixed clock.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cityverse.core.entity import format_utc
from cityverse.demo import iot, sun, water
from cityverse.demo.clock import LOCAL_OFFSET
from cityverse.demo.frame import BERKANE
from cityverse.demo.hydraulics import HydraulicTables
from cityverse.demo.story import Story

Measures = dict[str, Any]

WATER_PERIOD = timedelta(minutes=5)
WEATHER_PERIOD = timedelta(minutes=10)
WASTE_PERIOD = timedelta(minutes=30)
PARKING_PERIOD = timedelta(minutes=5)
LIGHT_PERIOD = timedelta(minutes=1)
PERIODS = {
    "water": WATER_PERIOD,
    "light": LIGHT_PERIOD,
    "weather": WEATHER_PERIOD,
    "parking": PARKING_PERIOD,
    "waste": WASTE_PERIOD,
}
COLLECTION_HOUR = 7
"""Local hour of the waste collection round."""
DIM_FROM, DIM_UNTIL = 23, 5
"""Local hours between which the lights burn at half power."""

_UNITS = {"pressure": "MTR", "level": "MTR", "flow": "G51"}
"""The water twin's units: metres of pressure and level, litres per second of flow."""
NOISE = {"pressure": 0.02, "level": 0.003, "flow": 0.02}
"""Standard deviation of a water sensor's noise (m, m, L/s); flow meters add 0.5 % of
the flow. No reading repeats itself for long, as a stuck sensor's would."""
_DECIMALS = {"pressure": 2, "level": 3, "flow": 2}

# Share of street parking taken, by local hour (a Moroccan town centre: busy late).
_OCCUPANCY = (
    0.35, 0.3, 0.3, 0.3, 0.3, 0.3, 0.35, 0.5, 0.7, 0.85, 0.9, 0.9,
    0.85, 0.7, 0.6, 0.65, 0.8, 0.9, 0.95, 0.95, 0.9, 0.75, 0.55, 0.45,
)  # fmt: skip


@dataclass(slots=True)
class Logged:
    """What one water sensor logged: readings of one attribute of its element, each
    observed by its Device."""

    entity_id: str
    attribute: str
    unit: str
    device: str
    """The sensor's Device (its ``observedBy``)."""
    readings: list[tuple[str, float]] = field(default_factory=list)
    """(observedAt, value), oldest first."""

    def temporal(self) -> dict[str, Any]:
        """The readings as a temporal representation of the attribute (GS CIM 009 5.6.12)."""
        observed_by = {"type": "Relationship", "object": self.device}
        return {
            self.attribute: [
                {
                    "type": "Property",
                    "value": value,
                    "observedAt": when,
                    "unitCode": self.unit,
                    "observedBy": observed_by,
                }
                for when, value in self.readings
            ]
        }


@dataclass(slots=True)
class Message:
    """What one device sends at once: its measures, oldest first, each with its
    ``TimeInstant``."""

    kind: str
    device: str
    measures: list[Measures] = field(default_factory=list)


class Devices:
    """Every simulated device of the demo city, with its state."""

    def __init__(
        self,
        entities: list[dict[str, Any]],
        tables: HydraulicTables,
        story: Story,
        seed: int,
        *,
        since: datetime | None = None,
        stored: Mapping[tuple[str, str], datetime] | None = None,
    ) -> None:
        self.tables = tables
        self.story = story
        self.rng = random.Random(seed)
        self.lights: dict[str, tuple[float, str, float]] = {}
        """device -> (photocell threshold in degrees of sun elevation, powerState, level)."""
        self.waste: dict[str, tuple[float, float]] = {}
        """device -> (fillingLevel, fill rate per hour)."""
        self.parking: dict[str, str] = {}
        """device -> status."""
        self.weather = ""
        sensor_devices: dict[tuple[str, str], str] = {}
        for entity in entities:
            kind, entity_id = entity["type"], entity["id"]
            if kind == "Device" and "sensor" in entity["deviceCategory"]["value"]:
                element = entity["controlledAsset"]["object"]
                for prop in entity["controlledProperty"]["value"]:
                    sensor_devices[(element, prop)] = entity_id
            elif kind == "Streetlight":
                # Photocells differ: the lights go on and off over some minutes.
                threshold = -1.5 + (zlib.crc32(entity_id.encode()) % 1000) / 1000 * 3.0
                self.lights[iot.device_id("light", entity_id)] = (threshold, "unknown", -1.0)
            elif kind == "WasteContainer":
                level = float(entity["fillingLevel"]["value"])
                rate = self.rng.uniform(0.008, 0.03)
                self.waste[iot.device_id("waste", entity_id)] = (level, rate)
            elif kind == "ParkingSpot":
                self.parking[iot.device_id("parking", entity_id)] = str(entity["status"]["value"])
            elif kind == "WeatherObserved":
                self.weather = iot.device_id("weather", entity_id)
        self.sensors = [
            (sensor, sensor_devices[(sensor.entity_id, sensor.kind)])
            for sensor in water.sensors()
            if (sensor.entity_id, sensor.kind) in sensor_devices
        ]
        """The water sensors and their Devices' ids."""
        self.stored = dict(stored or {})
        """(element id, property) -> a water sensor's last reading in the store: it reads
        nothing again up to then, neither in its log nor live."""
        self._next: dict[str, datetime] = {}
        """The next grid time of each kind (without one: its first step's moment, floored)."""
        if since is not None:
            for kind, period in PERIODS.items():
                self._next[kind] = _ceil(since, period)
        self._collected: set[str] = set()

    def step(self, moment: datetime) -> list[Message]:
        """The messages due at ``moment`` (city time, UTC) since the previous step."""
        out: dict[tuple[str, str], Message] = {}
        schedule = (  # water first: its messages go out first
            ("water", self._water),
            ("light", self._lights),
            ("weather", self._weather),
            ("parking", self._parking),
            ("waste", self._waste),
        )
        for kind, read in schedule:
            for at in self._due(kind, moment, PERIODS[kind]):
                stamp = format_utc(at)
                for device, measures in read(at):
                    message = out.get((kind, device))
                    if message is None:
                        message = out[(kind, device)] = Message(kind, device)
                    message.measures.append({"TimeInstant": stamp, **measures})
        return list(out.values())

    def logged(self, start: datetime, end: datetime) -> list[Logged]:
        """What the water sensors read every 5 minutes from ``start`` until before
        ``end``, each after its last stored reading."""
        out = [
            Logged(sensor.entity_id, sensor.kind, _UNITS[sensor.kind], device)
            for sensor, device in self.sensors
        ]
        after = self._after()
        at = _ceil(start, WATER_PERIOD)
        if all(last is not None for last in after):
            # Every sensor has read until some moment: no need to read the time before.
            at = max(at, _floor(min(filter(None, after)), WATER_PERIOD) + WATER_PERIOD)
        while at < end:
            stamp = format_utc(at)
            for record, value, last in zip(out, self._readings(at), after, strict=True):
                if last is None or at > last:
                    record.readings.append((stamp, value))
            at += WATER_PERIOD
        return out

    def _after(self) -> list[datetime | None]:
        """Each water sensor's last stored reading (None: none)."""
        return [self.stored.get((sensor.entity_id, sensor.kind)) for sensor, _ in self.sensors]

    def _due(self, kind: str, moment: datetime, period: timedelta) -> list[datetime]:
        """The grid times of ``kind`` from its next one up to ``moment``."""
        at = self._next.get(kind) or _floor(moment, period)
        times = []
        while at <= moment:
            times.append(at)
            at += period
        if times:
            self._next[kind] = at
        return times

    def _readings(self, at: datetime) -> list[float]:
        """What each water sensor reads at ``at``, with its noise."""
        seconds = _seconds_of_day(at)  # L-Town's patterns start at midnight
        leaking = self.story.leaking(at)
        out = []
        for sensor, _ in self.sensors:
            value = self.tables.reading(sensor, seconds, leaking=leaking)
            spread = NOISE[sensor.kind] + (0.005 * abs(value) if sensor.kind == "flow" else 0.0)
            out.append(round(value + self.rng.gauss(0, spread), _DECIMALS[sensor.kind]))
        return out

    def _water(self, at: datetime) -> list[tuple[str, Measures]]:
        kind = iot.KINDS["water"]
        readings = zip(self.sensors, self._readings(at), self._after(), strict=True)
        return [
            (iot.device_id("water", device), {kind.attribute(sensor.kind).object_id: value})
            for (sensor, device), value, last in readings
            if last is None or at > last
        ]

    def _weather(self, at: datetime) -> list[tuple[str, Measures]]:
        if not self.weather:
            return []
        local = _local_hours(at)
        # Warmest mid-afternoon, coolest before dawn; a breeze in the afternoon.
        temperature = 21 + 7 * math.sin((local - 9) / 24 * 2 * math.pi)
        humidity = 0.55 - 0.2 * math.sin((local - 9) / 24 * 2 * math.pi)
        wind = 2 + 3 * max(0.0, math.sin((local - 11) / 24 * 2 * math.pi))
        noise = self.rng.gauss
        measures = {
            "d": format_utc(at),
            "t": round(temperature + noise(0, 0.2), 1),
            "h": round(humidity + noise(0, 0.01), 2),
            "ws": round(wind + noise(0, 0.3), 1),
            "wd": self.rng.choice((270, 280, 290, 300)),
            "ap": round(1014 + noise(0, 0.3), 1),
            "r": 0.0,
        }
        return [(self.weather, measures)]

    def _waste(self, at: datetime) -> list[tuple[str, Measures]]:
        local = _local_hours(at)
        day = (at + LOCAL_OFFSET).date().isoformat()
        round_due = local >= COLLECTION_HOUR and day not in self._collected
        if round_due:
            self._collected.add(day)
        hours = WASTE_PERIOD.total_seconds() / 3600
        busy = 1.5 if 8 <= local <= 21 else 0.4
        out = []
        for device, (level, rate) in self.waste.items():
            emptied = round_due and level > 0.6
            level = 0.02 if emptied else min(1.0, level + rate * busy * hours)
            self.waste[device] = (level, rate)
            measures: Measures = {"f": round(level, 3), "s": "ok" if level < 0.9 else "full"}
            if emptied:
                measures["e"] = format_utc(at)
            out.append((device, measures))
        return out

    def _parking(self, at: datetime) -> list[tuple[str, Measures]]:
        target = _OCCUPANCY[int(_local_hours(at)) % 24]
        out = []
        for device, status in self.parking.items():
            # Each spot turns over now and then; the chance of finding it taken is the target.
            if self.rng.random() > 0.25:
                continue
            new = "occupied" if self.rng.random() < target else "free"
            if new == status:
                continue
            self.parking[device] = new
            out.append((device, {"s": new}))
        return out

    def _lights(self, at: datetime) -> list[tuple[str, Measures]]:
        elevation = sun.elevation(at, *BERKANE)
        local = _local_hours(at)
        dimmed = local >= DIM_FROM or local < DIM_UNTIL
        out = []
        for device, (threshold, state, level) in self.lights.items():
            on = elevation < threshold
            new_state, new_level = ("on", 0.5 if dimmed else 1.0) if on else ("off", 0.0)
            if (new_state, new_level) == (state, level):
                continue
            self.lights[device] = (threshold, new_state, new_level)
            out.append((device, {"p": new_state, "i": new_level}))
        return out


def _floor(moment: datetime, period: timedelta) -> datetime:
    step = period.total_seconds()
    return datetime.fromtimestamp(math.floor(moment.timestamp() / step) * step, UTC)


def _ceil(moment: datetime, period: timedelta) -> datetime:
    step = period.total_seconds()
    return datetime.fromtimestamp(math.ceil(moment.timestamp() / step) * step, UTC)


def _seconds_of_day(moment: datetime) -> float:
    local = moment + LOCAL_OFFSET
    return local.hour * 3600 + local.minute * 60 + local.second


def _local_hours(moment: datetime) -> float:
    return _seconds_of_day(moment) / 3600
