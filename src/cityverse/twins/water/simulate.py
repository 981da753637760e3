"""Hydraulic runs of a network, with the model kept open between them.

A ``Network`` is what a run needs from the twin's entities (the .inp the engine opens,
zones, customers, isolation valves); a ``Simulator`` holds one open engine for it and
undoes every change a scenario made before the next one::

    sim = Simulator(network)
    base = sim.run()                                   # the network's own settings
    sim.scale_demand(sim.zone_nodes("DMA-1"), 0.8)
    drought = sim.run(demand_model="PDA")
    sim.reset()                                         # back to the network as imported

Demand-driven (DDA) and pressure-dependent (PDA) analysis are chosen per run; PDA uses
the network's minimum and required pressures (``minimumPressure``/``requiredPressure``
on the WaterNetwork), with a required pressure of at least 10 m when the file gives none
that is useful.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cityverse.twins.water import engine as en
from cityverse.twins.water.analyse import Topology
from cityverse.twins.water.engine import Engine, Results
from cityverse.twins.water.kpis import KpiParams, Layout, compute
from cityverse.twins.water.model import (
    LINK_TYPES,
    NODE_TYPES,
    element_name,
    inp_text,
    model_from_entities,
)

DEFAULT_REQUIRED_PRESSURE = 10.0


@dataclass(slots=True)
class Network:
    """The parts of a network's entities a run needs; plain data, cheap to send to a
    worker process."""

    name: str
    inp: str
    """The network as .inp text in LPS (SI) units."""
    zones: dict[str, str] = field(default_factory=dict)
    """Node EPANET id -> zone (its ``tag``)."""
    customers: dict[str, float] = field(default_factory=dict)
    """Junction -> service connections."""
    valves: list[tuple[str, str]] | None = None
    """Isolation valves as (pipe, node); None: one at each end of every pipe."""
    node_entities: dict[str, str] = field(default_factory=dict)
    """Node EPANET id -> entity id."""
    link_entities: dict[str, str] = field(default_factory=dict)
    """Link EPANET id -> entity id."""
    pressure_limits: tuple[float, float, float] = (0.0, DEFAULT_REQUIRED_PRESSURE, 0.5)

    @classmethod
    def from_entities(cls, name: str, bodies: list[dict[str, Any]]) -> Network:
        """Build from the network's entities, rendered normalized with WATER_CONTEXT."""
        wn = model_from_entities([b for b in bodies if b["type"] != "Device"])
        zones: dict[str, str] = {}
        node_ids: dict[str, str] = {}
        link_ids: dict[str, str] = {}
        customers: dict[str, float] = {}
        meters: dict[str, int] = {}
        valves = None
        for body in bodies:
            kind = body["type"]
            if kind in NODE_TYPES:
                element = element_name(body["id"])
                node_ids[element] = body["id"]
                tag = body.get("tag")
                if isinstance(tag, dict) and tag.get("value") is not None:
                    zones[element] = str(tag["value"])
            elif kind in LINK_TYPES:
                link_ids[element_name(body["id"])] = body["id"]
            elif kind == "Device":
                asset = (body.get("controlledAsset") or {}).get("object")
                category = (body.get("deviceCategory") or {}).get("value")
                if isinstance(asset, str) and "meter" in (category or []):
                    meters[element_name(asset)] = meters.get(element_name(asset), 0) + 1
            elif kind == "WaterNetwork":
                layer = (body.get("isolationValves") or {}).get("json")
                if isinstance(layer, list):
                    valves = [(str(v["pipe"]), str(v["node"])) for v in layer]
        for junction in wn.junction_name_list:
            has_demand = any(d.base_value > 0 for d in wn.get_node(junction).demand_timeseries_list)
            customers[junction] = float(max(meters.get(junction, 0), 1 if has_demand else 0))
        hyd = wn.options.hydraulic
        pmin = float(hyd.minimum_pressure or 0.0)
        preq = float(hyd.required_pressure or 0.0)
        if preq < pmin + DEFAULT_REQUIRED_PRESSURE / 2:
            preq = pmin + DEFAULT_REQUIRED_PRESSURE
        limits = (pmin, preq, float(hyd.pressure_exponent or 0.5))
        return cls(name, inp_text(wn, "LPS"), zones, customers, valves, node_ids, link_ids, limits)


class Simulator:
    """One open engine for a network; scenario changes are undone by ``reset``."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.engine = Engine.from_text(network.inp)
        self.topo = Topology.of(self.engine)
        self.zones = network.zones
        self.layout = Layout.of(self.topo, self.zones)
        self.customers = np.array(
            [network.customers.get(name, 0.0) for name in self.engine.node_ids]
        )
        self.pipe_length = np.where(
            [self.topo.is_pipe(i) for i in range(len(self.engine.link_ids))],
            self.engine.link_values(en.LENGTH),
            0.0,
        )
        self._model = self.engine.demand_model()
        self._nodes: dict[tuple[int, int], float] = {}
        self._links: dict[tuple[int, int], float] = {}
        self._demands: dict[tuple[int, int], float] = {}
        self._options: dict[int, float] = {}
        self._controls = self.engine.control_count()
        self._disabled: set[int] = set()

    # -- changes, each remembered for reset --------------------------------------------

    def set_node(self, index: int, prop: int, value: float) -> None:
        """Change a node property until ``reset``."""
        key = (index, prop)
        if key not in self._nodes:
            self._nodes[key] = float(self.engine.node_values(prop)[index])
        self.engine.set_node(index, prop, value)

    def set_link(self, index: int, prop: int, value: float) -> None:
        """Change a link property until ``reset``."""
        if prop == en.INITSTATUS and int(self.topo.link_types[index]) >= en.LINK_PRV:
            # A valve is made active again by its setting, not by a status.
            key = (index, en.INITSETTING)
            if key not in self._links:
                self._links[key] = float(self.engine.link_values(en.INITSETTING)[index])
        key = (index, prop)
        if key not in self._links:
            self._links[key] = float(self.engine.link_values(prop)[index])
        self.engine.set_link(index, prop, value)

    def set_option(self, option: int, value: float) -> None:
        """Change an analysis option until ``reset``."""
        if option not in self._options:
            self._options[option] = self.engine.option(option)
        self.engine.set_option(option, value)

    def scale_demand(self, nodes: NDArray[np.int64] | list[int], factor: float) -> None:
        """Multiply every demand category of these nodes by ``factor``."""
        if len(nodes) == len(self.layout.junctions) and set(map(int, nodes)) == set(
            self.layout.junctions.tolist()
        ):
            # Every junction: one change to the global demand multiplier does it.
            current = self.engine.option(en.DEMANDMULT)
            self.set_option(en.DEMANDMULT, current * factor)
            return
        for node in nodes:
            for category in range(self.engine.demand_count(int(node))):
                key = (int(node), category)
                if key not in self._demands:
                    self._demands[key] = self.engine.base_demand(int(node), category)
                self.engine.set_base_demand(int(node), category, self._demands[key] * factor)

    def add_control(self, kind: int, link: int, setting: float, node: int, level: float) -> None:
        """Add a simple control until ``reset``."""
        self.engine.add_control(kind, link, setting, node, level)

    def hold_link(self, link: int) -> None:
        """Switch off the network's own controls on a link until ``reset`` (an outage
        must not be undone by a level control)."""
        for index in range(1, self._controls + 1):
            if index not in self._disabled and self.engine.control_link(index) == link:
                self.engine.set_control_enabled(index, False)
                self._disabled.add(index)

    def reset(self) -> None:
        """Undo every change since the network was opened."""
        engine = self.engine
        for index in self._disabled:
            engine.set_control_enabled(index, True)
        self._disabled.clear()
        for count in range(engine.control_count(), self._controls, -1):
            engine.delete_control(count)
        for (node, category), value in self._demands.items():
            engine.set_base_demand(node, category, value)
        for (node, prop), value in self._nodes.items():
            engine.set_node(node, prop, value)
        for (link, prop), value in sorted(self._links.items(), key=lambda kv: kv[0][1]):
            if prop == en.INITSTATUS and value > 1:
                continue  # an active valve: its setting, restored after, re-activates it
            engine.set_link(link, prop, value)
        for option, value in self._options.items():
            engine.set_option(option, value)
        engine.set_demand_model(*self._model)
        self._nodes.clear()
        self._links.clear()
        self._demands.clear()
        self._options.clear()

    # -- lookups -----------------------------------------------------------------------

    def node(self, name: str) -> int:
        """Index of a node by EPANET id; KeyError names it."""
        try:
            return self.engine.node_index(name)
        except KeyError:
            raise KeyError(f"no node {name!r} in network {self.network.name!r}") from None

    def link(self, name: str) -> int:
        """Index of a link by EPANET id; KeyError names it."""
        try:
            return self.engine.link_index(name)
        except KeyError:
            raise KeyError(f"no link {name!r} in network {self.network.name!r}") from None

    def zone_nodes(self, zone: str) -> NDArray[np.int64]:
        """Junction indices of a zone (``*``: every junction); KeyError if unknown."""
        if zone == "*":
            return np.flatnonzero(self.topo.node_types == en.NODE_JUNCTION)
        members = self.layout.members
        if zone not in members:
            known = ", ".join(sorted(members)) or "none"
            raise KeyError(f"no zone {zone!r} in network {self.network.name!r} (zones: {known})")
        return members[zone]

    # -- runs --------------------------------------------------------------------------

    def run(
        self,
        *,
        duration: int | None = None,
        step: int | None = None,
        demand_model: str | None = None,
        single: bool = False,
        at: int = 0,
    ) -> Results:
        """Run the hydraulics: extended period (default) or one period at ``at`` s."""
        if demand_model == "PDA":
            self.engine.set_demand_model(en.PDA, *self.network.pressure_limits)
        elif demand_model == "DDA":
            self.engine.set_demand_model(en.DDA, *self._model[1:])
        elif demand_model is not None:
            raise ValueError(f"demandModel must be DDA or PDA, not {demand_model!r}")
        if single:
            return self.engine.solve(at)
        return self.engine.run(duration=duration, step=step)

    def kpis(self, results: Results, params: KpiParams | None = None) -> dict[str, Any]:
        """The KPIs of a run of this network."""
        return compute(
            results,
            self.topo,
            self.layout,
            self.customers,
            params or KpiParams(),
            self.pipe_length,
        )

    def close(self) -> None:
        """Release the engine."""
        self.engine.close()
