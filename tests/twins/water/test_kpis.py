"""KPIs on the tiny network, where every figure can be checked by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityverse.twins.water import engine as en
from cityverse.twins.water.kpis import KpiParams
from tests.twins.water.helpers import simulator_of


def test_water_balance_of_one_hour(tiny: Path) -> None:
    sim = simulator_of(tiny)
    results = sim.run(single=True)
    kpis = sim.kpis(results, KpiParams(apparent_loss_fraction=0.1, unbilled_fraction=0.05))
    net = kpis["network"]
    # 10 + 5 + 3 + 2 L/s for an hour.
    assert net["systemInputVolume"] == pytest.approx(72.0, abs=1e-3)
    assert net["consumption"] == pytest.approx(72.0, abs=1e-3)
    assert net["apparentLosses"] == pytest.approx(7.2, abs=1e-3)
    assert net["authorizedConsumption"] == pytest.approx(64.8, abs=1e-3)
    assert net["billedAuthorizedConsumption"] == pytest.approx(61.56, abs=1e-3)
    assert net["nonRevenueWater"] == pytest.approx(72.0 - 61.56, abs=1e-3)
    assert net["nonRevenueWaterPercent"] == pytest.approx(14.5, abs=1e-2)
    assert net["realLosses"] == pytest.approx(0.0, abs=1e-3)
    assert net["mainsLengthKm"] == pytest.approx(1.8)
    assert net["serviceConnections"] == 4
    # Zone B is fed through the PRV only: 5 + 3 + 2 L/s.
    zone_b = kpis["zones"]["B"]
    assert zone_b["systemInputVolume"] == pytest.approx(36.0, abs=1e-3)
    assert zone_b["mainsLengthKm"] == pytest.approx(0.8)
    assert kpis["zones"]["A"]["systemInputVolume"] == pytest.approx(36.0, abs=1e-3)


def test_leakage_is_real_loss_and_drives_the_ili(tiny: Path) -> None:
    sim = simulator_of(tiny)
    j4 = sim.node("J4")
    sim.set_node(j4, en.EMITTER, 0.1)
    results = sim.run(single=True)
    pressure = results.pressure[0, j4]
    net = sim.kpis(results)["network"]
    leak_m3 = 0.1 * pressure**0.5 * 3.6
    assert net["leakage"] == pytest.approx(leak_m3, rel=1e-3)
    assert net["realLosses"] == pytest.approx(leak_m3, rel=1e-2)
    assert net["systemInputVolume"] == pytest.approx(72.0 + leak_m3, rel=1e-3)
    uarl = (18 * 1.8 + 0.8 * 4) * net["meanPressure"]
    carl = net["realLosses"] * 1000 * 24
    assert net["infrastructureLeakageIndex"] == pytest.approx(carl / uarl, rel=1e-2)


def test_pressure_adequacy_counts_nodes_and_customers(tiny: Path) -> None:
    sim = simulator_of(tiny)
    results = sim.run(single=True)
    pressures = {n: results.pressure[0, sim.node(n)] for n in ("J1", "J2", "J3", "J4")}
    # The PRV holds J2 at 40 m; J1 sees the reservoir's 50 m less the friction of P1.
    assert pressures["J2"] == pytest.approx(40.0, abs=0.05)
    threshold = (pressures["J4"] + pressures["J3"]) / 2
    net = sim.kpis(results, KpiParams(min_pressure=threshold))["network"]
    assert net["nodesBelowMinPressure"] == 1
    assert net["nodesBelowMinPressurePercent"] == pytest.approx(25.0)
    assert net["customersBelowMinPressure"] == 1
    assert net["supplyHours"] == pytest.approx(24.0)


def test_kpi_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown KPI"):
        KpiParams.from_dict({"minPresure": 20})
    with pytest.raises(ValueError, match="below 1"):
        KpiParams.from_dict({"apparentLossFraction": 1.5})
    assert KpiParams.from_dict({"minPressure": 15}).min_pressure == 15.0
