"""Building simulators from test networks without a store."""

from __future__ import annotations

from pathlib import Path

from cityverse.twins.water.model import Placement, network_entities, read_inp
from cityverse.twins.water.simulate import Network, Simulator
from tests.twins.water.conftest import ANCHOR


def network_of(path: Path, name: str = "test") -> Network:
    """The run-ready network of an .inp file, through its entities."""
    bodies = network_entities(read_inp(path), name, Placement.anchored(*ANCHOR))
    return Network.from_entities(name, bodies)


def simulator_of(path: Path, name: str = "test") -> Simulator:
    """An open simulator for an .inp file."""
    return Simulator(network_of(path, name))
