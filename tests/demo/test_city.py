"""The demo city's generator: reproducible, complete, and accepted by the broker."""

from __future__ import annotations

from collections import Counter
from typing import Any

from shapely.geometry import shape

from cityverse.demo.city import DEFAULT_SEED, generate
from cityverse.demo.frame import BERKANE
from cityverse.demo.load import is_empty, load_city
from cityverse.store.base import DEFAULT_TENANT, EntityFilter, EntityStore

SDM = "https://smartdatamodels.org/"


def test_same_seed_same_city(city: list[dict[str, Any]]) -> None:
    assert generate(DEFAULT_SEED) == city


def test_another_seed_another_town_on_the_same_network(city: list[dict[str, Any]]) -> None:
    other = generate(DEFAULT_SEED + 1)
    buildings = {e["id"]: e for e in city if e["type"] == "Building"}
    others = {e["id"]: e for e in other if e["type"] == "Building"}
    assert buildings != others
    pipes = [e for e in city if e["type"] == "Pipe"]
    assert pipes == [e for e in other if e["type"] == "Pipe"]


def test_counts_per_type(city: list[dict[str, Any]]) -> None:
    counts = Counter(e["type"] for e in city)
    # L-Town as published (BattLeDIM 2020): 782 junctions, 905 pipes, 2 reservoirs, 1 tank,
    # 1 pump, 3 pressure-reducing valves.
    assert counts["Junction"] == 782
    assert counts["Pipe"] == 905
    assert (counts["Reservoir"], counts["Tank"], counts["Pump"], counts["Valve"]) == (2, 1, 1, 3)
    assert counts["WeatherObserved"] == 1
    assert 2000 <= counts["Building"] <= 8000
    assert 300 <= counts["RoadSegment"] <= 1000
    assert 20 <= counts["Road"] <= 80
    assert counts["Streetlight"] >= counts["RoadSegment"]
    assert 100 <= counts["ParkingSpot"] <= 800
    assert 100 <= counts["WasteContainer"] <= 500
    assert len({e["id"] for e in city}) == len(city)


def test_the_town_lies_round_the_network_in_berkane(city: list[dict[str, Any]]) -> None:
    network = [shape(e["location"]["value"]) for e in city if e["type"] == "Junction"]
    town = [shape(e["location"]["value"]) for e in city if e["type"] == "Building"]
    lon = [g.centroid.x for g in network]
    lat = [g.centroid.y for g in network]
    assert abs((min(lon) + max(lon)) / 2 - BERKANE[0]) < 0.001
    assert abs((min(lat) + max(lat)) / 2 - BERKANE[1]) < 0.001
    for building in town:
        x, y = building.centroid.x, building.centroid.y
        assert min(lon) - 0.003 < x < max(lon) + 0.003
        assert min(lat) - 0.003 < y < max(lat) + 0.003


def test_buildings_are_footprints_with_heights(city: list[dict[str, Any]]) -> None:
    for entity in (e for e in city if e["type"] == "Building"):
        polygon = shape(entity["location"]["value"])
        assert polygon.geom_type == "Polygon" and polygon.is_valid
        area_m2 = polygon.area * (111_320 * 0.82) * 110_950  # degrees² at 35° N
        assert 50 < area_m2 < 400
        floors = entity["floorsAboveGround"]["value"]
        assert floors * 3.2 < entity["height"]["value"] < floors * 3.2 + 1.5


def test_segments_belong_to_roads(city: list[dict[str, Any]]) -> None:
    roads = {e["id"]: e for e in city if e["type"] == "Road"}
    for segment in (e for e in city if e["type"] == "RoadSegment"):
        road = roads[segment["refRoad"]["object"]]
        assert segment["id"] in road["refRoadSegment"]["object"]
        assert segment["location"]["value"]["type"] == "LineString"


async def test_every_entity_is_accepted_by_the_broker(
    store: EntityStore, city: list[dict[str, Any]]
) -> None:
    assert await is_empty(store)
    result = await load_city(store, city)
    assert result.errors == []
    assert sorted(result.success) == sorted(e["id"] for e in city)
    assert not await is_empty(store)
    wanted = {
        f"{SDM}dataModel.Building/Building": "Building",
        f"{SDM}dataModel.Transportation/RoadSegment": "RoadSegment",
        f"{SDM}dataModel.Streetlighting/Streetlight": "Streetlight",
        f"{SDM}dataModel.WasteManagement/WasteContainer": "WasteContainer",
        f"{SDM}dataModel.Parking/ParkingSpot": "ParkingSpot",
        f"{SDM}dataModel.WaterDistributionManagementEPANET/Pipe": "Pipe",
    }
    counts = Counter(e["type"] for e in city)
    for expanded, short in wanted.items():
        page = await store.query(
            DEFAULT_TENANT, EntityFilter(type_names=frozenset({expanded})), limit=None, count=True
        )
        assert page.total == counts[short], short
    building = await store.get(
        DEFAULT_TENANT, next(e["id"] for e in city if e["type"] == "Building")
    )
    assert building is not None
    assert f"{SDM}dataModel.Building/height" in building["attrs"]
