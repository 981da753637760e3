"""The engine binding against EPANET driven through EPyT's own API, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from cityverse.twins.water.engine import Engine, EngineError, NotConverged
from cityverse.twins.water.model import Placement, inp_text, network_entities, read_inp
from cityverse.twins.water.simulate import Network, Simulator
from tests.twins.water.conftest import ANCHOR, LTOWN, NET1_BROKEN, TINY


def test_twin_simulation_matches_epanet_run_directly() -> None:
    """Known answer: EPyT runs the original L-Town file; the twin runs its entities."""
    from epyt import epanet

    reference = epanet(str(LTOWN), display_msg=False, display_warnings=False)
    try:
        reference.setTimeSimulationDuration(6 * 3600)
        series = reference.getComputedHydraulicTimeSeries()
        ref_ids = reference.getNodeNameID()
        # EPyT also reports the extra steps that controls and tanks insert.
        on_step = np.asarray(series.Time) % 300 == 0
        ref_pressure = np.asarray(series.Pressure)[on_step]
        ref_flow = np.asarray(series.Flow)[on_step]
        ref_links = reference.getLinkNameID()
    finally:
        reference.unload()
    wn = read_inp(LTOWN)
    bodies = network_entities(wn, "ltown", Placement.anchored(*ANCHOR))
    network = Network.from_entities("ltown", bodies)
    sim = Simulator(network)
    results = sim.run(duration=6 * 3600, step=300)
    nodes = [sim.engine.node_index(n) for n in ref_ids]
    links = [sim.engine.link_index(n) for n in ref_links]
    assert results.pressure.shape == ref_pressure.shape
    assert np.abs(results.pressure[:, nodes] - ref_pressure).max() < 1e-3
    # L-Town's file is in m3/h; the twin works in L/s.
    assert np.abs(results.flow[:, links] * 3.6 - ref_flow).max() < 1e-2
    sim.close()


def test_a_file_epanet_rejects_names_the_error_and_line() -> None:
    with pytest.raises(EngineError) as caught:
        Engine.open(NET1_BROKEN)
    assert caught.value.code == 200
    assert "Error 215" in str(caught.value)
    assert caught.value.line == 24


def test_parameters_change_in_place_without_reparsing() -> None:
    with Engine.from_text(inp_text(read_inp(LTOWN), "LPS")) as engine:
        node = engine.node_index("n1")
        before = engine.solve().demand[0, node]
        engine.set_base_demand(node, 2, 0.0)
        after = engine.solve().demand[0, node]
        assert before > 0.1 and after == pytest.approx(0.0, abs=1e-9)


def test_non_convergence_names_time_and_element() -> None:
    """One trial at a tight accuracy cannot balance the network at the first step."""
    text = TINY.replace(
        "[OPTIONS]\n", "[OPTIONS]\n Trials 1\n Accuracy 0.00000001\n Unbalanced CONTINUE 0\n"
    )
    with Engine.from_text(text) as engine, pytest.raises(NotConverged) as caught:
        engine.run()
    assert caught.value.time == 0
    assert caught.value.element == "J4"
    assert "0:00:00" in str(caught.value) and "J4" in str(caught.value)
