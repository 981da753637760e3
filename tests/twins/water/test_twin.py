"""Importing networks into the store, reading them back, simulated state and sensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cityverse.core.errors import AlreadyExists, ResourceNotFound
from cityverse.store.base import EntityFilter, EntityStore
from cityverse.twins.water.engine import Engine
from cityverse.twins.water.model import (
    SDM_CONTEXT,
    SIMULATED,
    Placement,
    inp_text,
    model_from_entities,
)
from cityverse.twins.water.simulate import Network, Simulator
from cityverse.twins.water.twin import (
    attach_sensor,
    compare_state,
    import_network,
    load_network,
    water_context,
    write_state,
)
from tests.twins.water.conftest import ANCHOR, LTOWN, NET1

SDM = "https://smartdatamodels.org/dataModel.WaterDistributionManagementEPANET/"


def _by_type(bodies: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for body in bodies:
        counts[body["type"]] = counts.get(body["type"], 0) + 1
    return counts


async def test_net1_imports_every_element_with_sdm_names(store: EntityStore) -> None:
    report = await import_network(store, "", NET1, "net1", Placement.anchored(*ANCHOR))
    assert report.counts == {
        "WaterNetwork": 1,
        "Junction": 9,
        "Reservoir": 1,
        "Tank": 1,
        "Pipe": 12,
        "Pump": 1,
        "Pattern": 1,
        "Curve": 1,
    }
    pipe = await store.get("", "urn:ngsi-ld:Pipe:net1:10")
    assert pipe is not None
    assert pipe["type"] == [SDM + "Pipe"]
    # Net1 is in US units: 18 in and 10,530 ft become SI with unitCodes.
    [diameter] = pipe["attrs"][SDM + "diameter"]
    assert diameter["value"] == pytest.approx(457.2) and diameter["unitCode"] == "MMT"
    [length] = pipe["attrs"][SDM + "length"]
    assert length["value"] == pytest.approx(3209.544) and length["unitCode"] == "MTR"
    [starts] = pipe["attrs"][SDM + "startsAt"]
    [ends] = pipe["attrs"][SDM + "endsAt"]
    assert starts["object"] == "urn:ngsi-ld:Junction:net1:10"
    assert ends["object"] == "urn:ngsi-ld:Junction:net1:11"
    pump = await store.get("", "urn:ngsi-ld:Pump:net1:9")
    assert pump is not None
    assert pump["attrs"][SDM + "startsAt"][0]["object"] == "urn:ngsi-ld:Reservoir:net1:9"
    assert pump["attrs"][SDM + "headCurve"][0]["object"] == "urn:ngsi-ld:Curve:net1:1"


async def test_ltown_import_counts_geometry_and_relationships(store: EntityStore) -> None:
    report = await import_network(store, "", LTOWN, "ltown", Placement.anchored(*ANCHOR))
    assert report.counts["Junction"] == 782
    assert report.counts["Pipe"] == 905
    assert report.counts["Valve"] == 3 and report.counts["Pump"] == 1
    assert report.counts["Reservoir"] == 2 and report.counts["Tank"] == 1
    # BattLeDIM marks 82 AMR meters, 33 pressure sensors, 1 level and 3 flow sensors.
    assert report.counts["Device"] == 82 + 33 + 1 + 3
    assert report.disconnected == []
    assert sum(report.zones.values()) == 782
    bodies = await load_network(store, "", "ltown")
    assert _by_type(bodies) == report.counts
    junction = next(b for b in bodies if b["id"] == "urn:ngsi-ld:Junction:ltown:n1")
    lon, lat = junction["location"]["value"]["coordinates"]
    # n1 lies 138 m east and 1,550 m north of the anchor.
    assert lon == pytest.approx(
        ANCHOR[0] + 138.22 / (111_320 * np.cos(np.radians(35.17))), abs=2e-4
    )
    assert lat == pytest.approx(ANCHOR[1] + 1549.64 / 110_950, abs=2e-4)
    assert len(junction["demandCategory"]) == 3
    ids = {b["id"] for b in bodies}
    for body in bodies:
        for name in ("startsAt", "endsAt", "controlledAsset"):
            if name in body:
                assert body[name]["object"] in ids, f"{body['id']} {name} dangles"
    pipe = next(b for b in bodies if b["id"] == "urn:ngsi-ld:Pipe:ltown:p1")
    assert pipe["location"]["value"]["type"] == "LineString"
    assert (
        pipe["location"]["value"]["coordinates"][0]
        == next(b for b in bodies if b["id"] == pipe["startsAt"]["object"])["location"]["value"][
            "coordinates"
        ]
    )


async def test_import_does_not_overwrite_without_replace(store: EntityStore) -> None:
    await import_network(store, "", NET1, "net1", Placement.anchored(*ANCHOR))
    with pytest.raises(AlreadyExists):
        await import_network(store, "", NET1, "net1", Placement.anchored(*ANCHOR))
    report = await import_network(
        store, "", NET1, "net1", Placement.anchored(*ANCHOR), replace=True
    )
    assert report.replaced == sum(report.counts.values())


async def test_an_element_is_queryable_by_its_network_id_pattern(store: EntityStore) -> None:
    await import_network(store, "", NET1, "net1", Placement.anchored(*ANCHOR))
    ctx = await water_context()
    page = await store.query(
        "", EntityFilter(type_names=frozenset({ctx.expand("Junction")})), limit=None
    )
    assert len(page.entities) == 9
    assert ctx.expand("Junction") == SDM + "Junction"
    assert SDM_CONTEXT.endswith("context.jsonld")


async def test_round_trip_gives_the_same_hydraulics(store: EntityStore, tmp_path: Path) -> None:
    """Export the stored network, re-import the file, compare results node by node."""
    await import_network(store, "", LTOWN, "ltown", Placement.anchored(*ANCHOR))
    exported = tmp_path / "exported.inp"
    bodies = await load_network(store, "", "ltown")
    exported.write_text(inp_text(model_from_entities([b for b in bodies if b["type"] != "Device"])))
    await import_network(store, "", exported, "again", Placement.anchored(*ANCHOR))
    again = await load_network(store, "", "again")
    with (
        Engine.open(LTOWN) as original,
        Engine.from_text(
            inp_text(model_from_entities([b for b in again if b["type"] != "Device"]))
        ) as copy,
    ):
        a, b = original.run(duration=6 * 3600), copy.run(duration=6 * 3600)
        nodes = [copy.node_index(n) for n in original.node_ids]
        links = [copy.link_index(n) for n in original.link_ids]
        assert np.abs(a.pressure - b.pressure[:, nodes]).max() < 1e-3
        assert np.abs(a.flow - b.flow[:, links]).max() < 1e-2


async def test_simulated_state_beside_measured(store: EntityStore) -> None:
    await import_network(store, "", LTOWN, "ltown", Placement.anchored(*ANCHOR))
    device = await attach_sensor(store, "", "ltown", "n100", "pressure", "sensor")
    assert device.startswith("urn:ngsi-ld:Device:ltown:")
    with pytest.raises(ResourceNotFound):
        await attach_sensor(store, "", "ltown", "nowhere", "pressure", "sensor")
    network = Network.from_entities("ltown", await load_network(store, "", "ltown"))
    sim = Simulator(network)
    results = sim.run(duration=3600, step=300)
    from datetime import UTC, datetime

    start = datetime(2026, 7, 1, tzinfo=UTC)
    summary = await write_state(
        store,
        "",
        network,
        sim.engine,
        results,
        start=start,
        now=datetime(2026, 7, 1, 0, 30, tzinfo=UTC),
    )
    assert summary["stateAt"] == "2026-07-01T00:30:00.000Z"
    if summary["historyRows"] is not None:
        # Every reported step is history, observed on the run's clock.
        from cityverse.store.temporal import TimeWindow

        history = await store.instances(  # type: ignore[attr-defined]
            "", "urn:ngsi-ld:Junction:ltown:n100", None, TimeWindow(), last_n=None, limit=100
        )
        times = [i["observedAt"] for i in history[SDM + "pressure"].instances]
        steps = [f"2026-07-01T00:{m:02d}:00.000Z" for m in range(0, 60, 5)]
        assert times == [*steps, "2026-07-01T01:00:00.000Z"]
    stored = await store.get("", "urn:ngsi-ld:Junction:ltown:n100")
    assert stored is not None
    [simulated] = stored["attrs"][SDM + "pressure"]
    assert simulated["datasetId"] == SIMULATED
    row = 30 // 5
    assert simulated["value"] == pytest.approx(
        results.pressure[row, sim.engine.node_index("n100")], abs=1e-3
    )
    # A reading arrives as the default instance, observed by the sensor.
    ctx = await water_context()
    from cityverse.core.entity import parse_attributes

    reading = parse_attributes(
        {
            "pressure": {
                "type": "Property",
                "value": 40.0,
                "unitCode": "MTR",
                "observedAt": "2026-07-01T00:30:00Z",
                "observedBy": {"type": "Relationship", "object": device},
            }
        },
        ctx,
        now="2026-07-01T00:30:01.000Z",
    )
    from cityverse.broker.entities import UpdateResult, appending
    from cityverse.store.base import Change

    await store.mutate(
        "",
        [
            Change(
                stored["id"],
                appending(
                    stored["id"],
                    reading,
                    "2026-07-01T00:30:01.000Z",
                    overwrite=True,
                    result=UpdateResult(),
                ),
            )
        ],
    )
    rows = compare_state(await load_network(store, "", "ltown"))
    [row_n100] = [r for r in rows if r["entity"] == stored["id"]]
    assert row_n100["observedBy"] == device
    assert row_n100["difference"] == pytest.approx(40.0 - simulated["value"], abs=1e-3)
    sim.close()
