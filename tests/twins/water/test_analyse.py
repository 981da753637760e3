"""Zones, connectivity and segments from the network's graph."""

from __future__ import annotations

from pathlib import Path

from cityverse.twins.water.analyse import Topology, derive_zones, disconnected_parts
from cityverse.twins.water.engine import Engine
from cityverse.twins.water.model import inp_text, read_inp
from tests.twins.water.conftest import LTOWN, TINY


def test_ltown_zones_are_bounded_by_its_prvs_and_pump() -> None:
    with Engine.from_text(inp_text(read_inp(LTOWN), "LPS")) as engine:
        topo = Topology.of(engine)
        zones = derive_zones(topo)
        prvs = ["PRV-1", "PRV-2", "PRV-3"]
        for name in prvs:
            a, b = topo.ends[engine.link_index(name)]
            # A PRV joins two zones: upstream and downstream differ.
            assert zones[topo.node_ids[a]] != zones[topo.node_ids[b]]
        # Every pipe stays inside one zone.
        for link, (a, b) in enumerate(topo.ends):
            if topo.is_pipe(link) and topo.node_types[a] == 0 and topo.node_types[b] == 0:
                assert zones[topo.node_ids[a]] == zones[topo.node_ids[b]]
        assert len([n for n in zones if n.startswith("n")]) == 782


def test_disconnected_junctions_are_reported(tmp_path: Path) -> None:
    text = TINY.replace("[PIPES]\n", "[PIPES]\n P9  J5  J6  100  100  130  0  Open\n")
    text = text.replace("[RESERVOIRS]", " J5  10  1  ;\n J6  10  1  ;\n\n[RESERVOIRS]")
    text = text.replace("[END]", " J5 3000 0\n J6 3100 0\n\n[END]")
    path = tmp_path / "split.inp"
    path.write_text(text)
    with Engine.open(path) as engine:
        assert disconnected_parts(Topology.of(engine)) == [["J5", "J6"]]


def test_a_closed_trunk_cuts_off_everything_downstream(tiny: Path) -> None:
    with Engine.open(tiny) as engine:
        topo = Topology.of(engine)
        cut = topo.unreachable([engine.link_index("P1")])
        assert sorted(topo.node_ids[i] for i in cut) == ["J1", "J2", "J3", "J4"]
