"""What the demo's water sensors read: L-Town in EPANET (through WNTR), with and without a leak.

Two 24-hour extended-period runs at L-Town's own 5-minute step, computed once at start
(about 0.2 s each): the network as it is, and the network with a leak on the story's
pipe (an emitter at the pipe's midpoint). A sensor's reading at a time of day is
interpolated from the run in force.

    tables = simulate(leak_pipe="p257")
    tables.reading(Sensor("n1", "pressure", "Junction"), seconds=8 * 3600, leaking=True)  # m
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cityverse.demo.water import Sensor, ltown_path, sensors

DAY = 24 * 3600
LEAK_EMITTER = 0.002
"""Emitter coefficient of the leak (m³/s per √m of pressure): about 50 m³/h at 50 m."""


@dataclass(frozen=True)
class HydraulicTables:
    """Sensor series over one day, without and with the leak."""

    times: np.ndarray  # seconds from midnight
    normal: dict[Sensor, np.ndarray]
    leaking: dict[Sensor, np.ndarray]
    leak_flow: np.ndarray  # m³/h lost through the leak, over the day

    def reading(self, sensor: Sensor, seconds: float, *, leaking: bool) -> float:
        """The sensor's value at ``seconds`` after midnight (pressure, level: m; flow: L/s)."""
        series = (self.leaking if leaking else self.normal)[sensor]
        return float(np.interp(seconds % DAY, self.times, series))


def simulate(leak_pipe: str) -> HydraulicTables:
    """Run the two days of L-Town through EPANET and keep what the sensors see."""
    metered = sensors()
    normal, times, _ = _run(metered, None)
    leaking, _, lost = _run(metered, leak_pipe)
    return HydraulicTables(times=times, normal=normal, leaking=leaking, leak_flow=lost)


def _run(
    metered: list[Sensor], leak_pipe: str | None
) -> tuple[dict[Sensor, np.ndarray], np.ndarray, np.ndarray]:
    import wntr

    wn = wntr.network.WaterNetworkModel(str(ltown_path()))
    wn.options.time.duration = DAY
    leak_node = None
    if leak_pipe is not None:
        wn = wntr.morph.split_pipe(wn, leak_pipe, f"{leak_pipe}_leak", f"{leak_pipe}_leak_node")
        leak_node = f"{leak_pipe}_leak_node"
        wn.get_node(leak_node).emitter_coefficient = LEAK_EMITTER
    with tempfile.TemporaryDirectory(prefix="cityverse-demo-") as tmp:
        results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=str(Path(tmp) / "ltown"))
    times = results.node["pressure"].index.to_numpy(dtype=float)
    series: dict[Sensor, np.ndarray] = {}
    for sensor in metered:
        series[sensor] = _series(results, wn, sensor)
    lost = np.zeros_like(times)
    if leak_node is not None:
        lost = results.node["demand"][leak_node].to_numpy(dtype=float) * 3600
    return series, times, lost


def _series(results: Any, wn: Any, sensor: Sensor) -> np.ndarray:
    if sensor.kind == "pressure":
        values = results.node["pressure"][sensor.element]
    elif sensor.kind == "level":
        values = results.node["head"][sensor.element] - wn.get_node(sensor.element).elevation
    else:
        values = results.link["flowrate"][sensor.element] * 1000
    return np.round(values.to_numpy(dtype=float), 3)
