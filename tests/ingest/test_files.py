"""``cityverse import geojson`` and ``cityverse import entities``: what is imported, what is
rejected and why, on Smart Data Models examples and on deliberately broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cityverse.cli import main
from cityverse.core.context import ContextResolver
from cityverse.ingest.files import entity_rows, feature_rows, import_rows
from cityverse.store.base import EntityStore
from cityverse.store.sqlite import SqliteStore

SDM = Path("/work/shared/smart-data-models")
if not SDM.is_dir():
    SDM = Path(__file__).resolve().parents[3] / "shared" / "smart-data-models"
LAMP = SDM / "dataModel.Streetlighting" / "Streetlight" / "examples"
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
SDM_LAMP = "https://smartdatamodels.org/dataModel.Streetlighting/Streetlight"

FEATURES = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "id": "L1",
            "geometry": {"type": "Point", "coordinates": [-2.32, 34.92]},
            "properties": {"power": 60, "status": "ok", "note": None},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [-2.3, 34.9]},
            "properties": {"power": 70},
        },
        {
            "type": "Feature",
            "id": "L3",
            "geometry": {"type": "Point", "coordinates": [500, 34.9]},
            "properties": {},
        },
        {"type": "Feature", "id": "L4", "geometry": None, "properties": {"bad name": 1}},
        "not a feature",
        {
            "type": "Feature",
            "id": "urn:ngsi-ld:Streetlight:L5",
            "geometry": None,
            "properties": {"power": 1},
        },
    ],
}


def _needs_examples() -> None:
    if not LAMP.is_dir():
        pytest.skip(f"Smart Data Models examples not found at {LAMP}")


async def test_geojson_features(store: EntityStore) -> None:
    rows = feature_rows(json.dumps(FEATURES).encode(), entity_type="Streetlight")
    report = await import_rows(store, "", rows, ContextResolver())
    assert report.imported == ["urn:ngsi-ld:Streetlight:L1", "urn:ngsi-ld:Streetlight:L5"]
    reasons = dict(report.rejected)
    assert "no entity id" in reasons["feature 2"]
    assert "longitude" in reasons["feature 3 (urn:ngsi-ld:Streetlight:L3)"]
    assert "not a valid name" in reasons["feature 4 (urn:ngsi-ld:Streetlight:L4)"]
    assert "not a GeoJSON Feature" in reasons["feature 5"]
    lamp = await store.get("", "urn:ngsi-ld:Streetlight:L1")
    assert lamp is not None
    assert lamp["type"] == [VOCAB + "Streetlight"]
    assert lamp["attrs"]["https://uri.etsi.org/ngsi-ld/location"][0]["value"] == {
        "type": "Point",
        "coordinates": [-2.32, 34.92],
    }
    assert lamp["attrs"][VOCAB + "power"][0]["value"] == 60
    assert VOCAB + "note" not in lamp["attrs"]


async def test_geojson_id_property_and_type_property(store: EntityStore) -> None:
    document = {
        "type": "Feature",
        "geometry": None,
        "properties": {"ref": "P-9", "type": "ParkingSpot", "free": True},
    }
    report = await import_rows(
        store, "", feature_rows(json.dumps(document).encode(), id_property="ref"), ContextResolver()
    )
    assert report.imported == ["urn:ngsi-ld:ParkingSpot:P-9"] and not report.rejected
    spot = await store.get("", "urn:ngsi-ld:ParkingSpot:P-9")
    assert spot is not None and VOCAB + "ref" not in spot["attrs"]


async def test_smart_data_models_examples(store: EntityStore) -> None:
    """Normalized and keyValues examples with their @context; the NGSI v2 one is refused."""
    _needs_examples()
    resolver = ContextResolver()
    for name in ("example-normalized.jsonld", "example.jsonld"):
        report = await import_rows(store, "", entity_rows((LAMP / name).read_bytes()), resolver)
        assert len(report.imported) == 1 and not report.rejected, report.rejected
    [entity_id] = report.imported
    lamp = await store.get("", entity_id)
    assert lamp is not None and lamp["type"] == [SDM_LAMP]
    report = await import_rows(
        store, "", entity_rows((LAMP / "example-normalized.json").read_bytes()), resolver
    )
    assert not report.imported and "geo:json" in report.rejected[0][1]


async def test_json_lines_with_bad_rows(store: EntityStore) -> None:
    lines = [
        json.dumps({"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor", "temperature": 21}),
        "{broken",
        "",
        json.dumps({"id": "not a uri", "type": "Sensor"}),
        json.dumps(
            {
                "id": "urn:ngsi-ld:Sensor:2",
                "type": "Sensor",
                "temperature": {"type": "Property", "value": 22},
            }
        ),
        json.dumps({"type": "FeatureCollection", "features": []}),
    ]
    report = await import_rows(store, "", entity_rows("\n".join(lines).encode()), ContextResolver())
    assert report.imported == ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2"]
    reasons = dict(report.rejected)
    assert "not valid JSON" in reasons["line 2"]
    assert "not a valid absolute URI" in reasons["line 4 (not a uri)"]
    assert "GeoJSON" in reasons["line 6"]


async def test_no_overwrite_rejects_existing(store: EntityStore) -> None:
    row = json.dumps({"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor", "t": 1}).encode()
    await import_rows(store, "", entity_rows(row), ContextResolver())
    report = await import_rows(store, "", entity_rows(row), ContextResolver(), overwrite=False)
    assert not report.imported and "already exists" in report.rejected[0][1]
    report = await import_rows(store, "", entity_rows(row), ContextResolver())
    assert report.imported and report.created == 0


def test_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYVERSE_DATA_DIR", str(tmp_path))
    path = tmp_path / "lamps.geojson"
    path.write_text(json.dumps(FEATURES))
    assert (
        main(["import", "geojson", str(path), "--type", "Streetlight", "--tenant", "berkane"]) == 1
    )
    out = capsys.readouterr().out
    assert (
        "imported 2 entities" in out
        and "rejected 4" in out
        and "rejected feature 2: no entity id" in out
    )
    good = tmp_path / "one.json"
    good.write_text(json.dumps({"id": "urn:ngsi-ld:Sensor:9", "type": "Sensor", "t": 1}))
    assert main(["import", "entities", str(good)]) == 0
    assert main(["import", "entities", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["import", "entities", str(good), "--tenant", "bad tenant"]) == 2


async def test_command_line_writes_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs_examples()
    monkeypatch.setenv("CITYVERSE_DATA_DIR", str(tmp_path))
    import asyncio

    code = await asyncio.to_thread(
        main, ["import", "entities", str(LAMP / "example-normalized.jsonld")]
    )
    assert code == 0
    store = SqliteStore(tmp_path / "cityverse.db")
    await store.open()
    try:
        assert (
            await store.get("", "urn:ngsi-ld:Streetlight:streetlight:guadalajara:4567") is not None
        )
    finally:
        await store.close()
