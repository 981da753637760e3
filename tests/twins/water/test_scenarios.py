"""Each scenario kind changes what it should, and only that; batches run in parallel."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityverse.twins.water.scenarios import (
    ScenarioError,
    criticality,
    parse_scenario,
    run_batch,
    run_scenario,
)
from tests.twins.water.conftest import LTOWN
from tests.twins.water.helpers import network_of, simulator_of


def _run(sim, spec):  # type: ignore[no-untyped-def]
    outcome = run_scenario(sim, parse_scenario(spec))
    assert outcome["status"] == "succeeded", outcome
    return outcome


def test_drought_cut_lowers_demand_by_the_percentage(tiny: Path) -> None:
    sim = simulator_of(tiny)
    base = _run(sim, {"kind": "baseline", "single": True})["kpis"]
    cut = _run(sim, {"kind": "drought", "cuts": {"B": 30}, "single": True})["kpis"]
    assert cut["zones"]["B"]["consumption"] == pytest.approx(
        0.7 * base["zones"]["B"]["consumption"], rel=1e-6
    )
    assert cut["zones"]["A"]["consumption"] == pytest.approx(base["zones"]["A"]["consumption"])
    # The simulator is back to the network as imported.
    again = _run(sim, {"kind": "baseline", "single": True})["kpis"]
    assert again["network"]["consumption"] == pytest.approx(base["network"]["consumption"])


def test_prv_setting_lowers_downstream_pressure_and_leakage(tiny: Path) -> None:
    sim = simulator_of(tiny)
    leak = {"coefficient": 0.05, "exponent": 1.0, "zones": ["B"]}
    high = _run(sim, {"kind": "pressure", "leakage": leak, "single": True})["kpis"]["zones"]["B"]
    low = _run(sim, {"kind": "pressure", "valves": {"V1": 25}, "leakage": leak, "single": True})[
        "kpis"
    ]["zones"]["B"]
    assert low["meanPressure"] < high["meanPressure"] - 10
    assert low["leakage"] < high["leakage"] * 0.75
    assert low["realLosses"] < high["realLosses"]


def test_burst_isolates_the_segment_the_valves_bound(tiny: Path) -> None:
    network = network_of(tiny)
    network.valves = [("P3", "J2"), ("P1", "R1"), ("P1", "J1")]
    from cityverse.twins.water.simulate import Simulator

    sim = Simulator(network)
    details = _run(sim, {"kind": "burst", "pipe": "P4", "single": True})["details"]
    assert details["segmentPipes"] == ["P3", "P4"]
    assert details["segmentNodes"] == ["J3", "J4"]
    assert details["valvesToClose"] == [{"pipe": "P3", "node": "J2"}]
    assert details["nodesCutOff"] == ["J3", "J4"]
    assert details["customersCutOff"] == 2
    assert details["baseDemandCutOff"] == pytest.approx(5.0)


def test_burst_with_a_valve_at_each_pipe_end(tiny: Path) -> None:
    sim = simulator_of(tiny)
    outcome = _run(sim, {"kind": "burst", "pipe": "P4", "single": True})
    details = outcome["details"]
    assert details["segmentPipes"] == ["P4"]
    assert details["valvesToClose"] == [{"pipe": "P4", "node": "J3"}, {"pipe": "P4", "node": "J4"}]
    assert details["nodesCutOff"] == ["J4"]
    assert outcome["kpis"]["network"]["consumption"] == pytest.approx(18 * 3.6, abs=1e-3)


def test_intermittent_supply_gives_the_hours_asked(tiny: Path) -> None:
    sim = simulator_of(tiny)
    spec = {"kind": "intermittent", "supplyHours": {"B": 6}, "start": 6, "duration": 86_400}
    outcome = _run(sim, spec)
    assert outcome["details"]["supplyHours"]["B"]["inletsClosed"] == ["V1"]
    zones = outcome["kpis"]["zones"]
    assert zones["B"]["supplyHours"] == pytest.approx(6.0, abs=1.01)
    assert zones["A"]["supplyHours"] == pytest.approx(24.0)
    assert zones["B"]["consumption"] < 0.35 * 10 * 86.4


def test_pump_outage_stops_the_pump_despite_its_controls() -> None:
    sim = simulator_of(LTOWN)
    base = _run(sim, {"kind": "baseline", "duration": 6 * 3600})["kpis"]["network"]
    out = _run(sim, {"kind": "outage", "element": "PUMP_1", "duration": 6 * 3600})
    assert base["pumpEnergy"] > 1
    assert out["kpis"]["network"]["pumpEnergy"] == pytest.approx(0.0, abs=1e-6)
    assert out["details"]["linksClosed"] == ["PUMP_1"]
    tank = _run(sim, {"kind": "outage", "element": "T1", "duration": 6 * 3600})
    assert sorted(tank["details"]["linksClosed"]) == ["PUMP_1", "p239"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "flood"}, "kind must be one of"),
        ({"kind": "drought", "cuts": {"B": 120}}, "between 0 and 100"),
        ({"kind": "drought"}, "cuts must be a non-empty object"),
        ({"kind": "burst"}, "names its 'pipe'"),
        ({"kind": "outage", "element": "PUMP_1", "from": 5, "to": 2}, "ends"),
        ({"kind": "baseline", "demandModel": "XYZ"}, "DDA or PDA"),
        ({"kind": "baseline", "colour": 1}, "unknown baseline scenario parameters"),
    ],
)
def test_bad_scenarios_are_refused(spec: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "drought", "cuts": {"Z": 10}}, "no zone 'Z'.*zones: A, B"),
        ({"kind": "burst", "pipe": "P9"}, "no link 'P9'"),
        ({"kind": "burst", "pipe": "V1"}, "not a pipe"),
        ({"kind": "outage", "element": "J1"}, "not a pump or a tank"),
        ({"kind": "pressure", "valves": {"P1": 20}}, "not a valve"),
    ],
)
def test_unknown_zones_and_elements_are_refused(tiny: Path, spec: dict, message: str) -> None:
    sim = simulator_of(tiny)
    with pytest.raises(ScenarioError, match=message):
        run_scenario(sim, parse_scenario(spec))
    # Nothing of a refused scenario stays applied.
    assert _run(sim, {"kind": "baseline", "single": True})["kpis"]["network"][
        "consumption"
    ] == pytest.approx(72.0, abs=1e-3)


def test_batch_on_two_processes_matches_one_by_one(tiny: Path) -> None:
    network = network_of(tiny)
    specs = [{"kind": "drought", "cuts": {"*": c}, "single": True} for c in (0, 10, 20, 30, 40)]
    parallel = run_batch(network, specs, workers=2)
    serial = run_batch(network, specs, workers=1)
    # Single-period solves start from the last solution: equal within the accuracy.
    for a, b in zip(parallel, serial, strict=True):
        assert a["kpis"]["network"]["meanPressure"] == pytest.approx(
            b["kpis"]["network"]["meanPressure"], abs=1e-3
        )
    assert [round(o["kpis"]["network"]["consumption"], 3) for o in parallel] == [
        round(72.0 * (1 - c / 100), 3) for c in (0, 10, 20, 30, 40)
    ]


def test_criticality_ranks_the_trunk_main_first(tiny: Path) -> None:
    ranking = criticality(network_of(tiny), workers=1)
    assert [r["pipe"] for r in ranking] == ["P1", "P3", "P4"]
    assert ranking[0]["unservedDemand"] == pytest.approx(20.0, abs=1e-3)
    assert ranking[0]["customersCutOff"] == 4
    assert [r["rank"] for r in ranking] == [1, 2, 3]
