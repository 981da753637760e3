"""``cityverse import history``: CSV and NGSI-LD temporal JSON into the history.

The JSON form is the temporal representation of GS CIM 009 clause 4.5.7 (attributes as
arrays of instances) and the simplified one of clause 4.5.9 (``values`` pairs).
"""

from __future__ import annotations

import asyncio
import codecs
import io
import json
from pathlib import Path
from typing import Any

import pytest

from cityverse.cli import main
from cityverse.core.context import ContextResolver
from cityverse.ingest import history
from cityverse.ingest.history import (
    HistoryReport,
    csv_blocks,
    csv_rows,
    json_entities,
    json_rows,
    parallel_csv_chunks,
)
from cityverse.store.history import ms_of
from cityverse.store.sqlite import SqliteStore
from cityverse.store.temporal import ImportChunk, Period, TimeWindow
from cityverse.store.timeseries import prepare_import

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
TEMP = VOCAB + "temperature"
WQO = VOCAB + "WaterQualityObserved"
CSV = """id,type,attribute,observedAt,value,unitCode,datasetId
urn:ngsi-ld:WQO:1,WaterQualityObserved,temperature,2026-01-01T00:00:00Z,21.5,CEL,
urn:ngsi-ld:WQO:1,WaterQualityObserved,temperature,2026-01-01T00:05:00Z,22,CEL,
urn:ngsi-ld:WQO:2,WaterQualityObserved,temperature,2026-01-01T00:00:00+01:00,19.25,,
urn:ngsi-ld:WQO:2,WaterQualityObserved,status,2026-01-01T00:00:00Z,"{""state"": ""ok""}",,
urn:ngsi-ld:WQO:2,WaterQualityObserved,alarm,2026-01-01T00:00:00Z,true,,urn:ngsi-ld:Dataset:a
urn:ngsi-ld:WQO:2,WaterQualityObserved,note,2026-01-01T00:00:00Z,plain words,,
"""
BAD = """not a uri,WaterQualityObserved,temperature,2026-01-01T00:00:00Z,1,,
urn:ngsi-ld:WQO:3,WaterQualityObserved,temperature,yesterday,1,,
urn:ngsi-ld:WQO:3,WaterQualityObserved,temperature,2026-01-01T00:00:00Z,,,
urn:ngsi-ld:WQO:3,WaterQualityObserved,id,2026-01-01T00:00:00Z,1,,
urn:ngsi-ld:WQO:3,WaterQualityObserved,temperature,2026-01-01T00:00:00Z,1,,not a uri
urn:ngsi-ld:WQO:3,WaterQualityObserved
urn:ngsi-ld:WQO:3,WaterQualityObserved,temperature,2026-01-01T00:00:00Z,1,,
"""


def _rows(text: str) -> tuple[list[Any], HistoryReport]:
    report = HistoryReport()
    return list(csv_rows(io.StringIO(text), ContextResolver().core, report)), report


def test_csv_values_names_and_times() -> None:
    rows, report = _rows(CSV)
    assert report.rejected == 0 and report.read == 6 and len(report.entities) == 2
    first = rows[0]
    assert first.entity_id == "urn:ngsi-ld:WQO:1" and first.types == (WQO,)
    assert first.attr == TEMP and first.observed_at == ms_of("2026-01-01T00:00:00.000Z")
    assert first.instance == {"type": "Property", "value": 21.5, "unitCode": "CEL"}
    assert rows[1].instance["value"] == 22 and type(rows[1].instance["value"]) is int
    assert rows[2].observed_at == ms_of("2025-12-31T23:00:00.000Z")
    assert rows[3].instance["value"] == {"state": "ok"}
    assert rows[4].instance["value"] is True
    assert rows[4].dataset_id == "urn:ngsi-ld:Dataset:a" == rows[4].instance["datasetId"]
    assert rows[5].instance["value"] == "plain words"


def test_csv_bad_rows_are_reported_with_their_line() -> None:
    header = CSV.splitlines()[0] + "\n"
    rows, report = _rows(header + BAD)
    assert len(rows) == 1 and rows[0].entity_id == "urn:ngsi-ld:WQO:3"
    lines = {where: reason for where, reason in report.reasons}
    assert report.rejected == 6
    assert "not an absolute URI" in lines["line 2"]
    assert "yesterday" in lines["line 3"]
    assert "empty" in lines["line 4"]
    assert "attribute name 'id'" in lines["line 5"]
    assert "datasetId" in lines["line 6"]
    assert "2 columns" in lines["line 7"]


def test_csv_header_must_name_the_columns() -> None:
    with pytest.raises(ValueError, match="observedAt"):
        _rows("entityId,entityType,attr,value\n")
    with pytest.raises(ValueError, match="empty"):
        _rows("")
    # Other spellings of the columns are accepted, in any order.
    rows, report = _rows(
        "value,timestamp,attr,entity_type,entity_id\n3,2026-01-01T00:00:00Z,t,T,urn:a:1\n"
    )
    assert report.rejected == 0 and rows[0].instance["value"] == 3


TEMPORAL = [
    {
        "id": "urn:ngsi-ld:WQO:j1",
        "type": "WaterQualityObserved",
        "temperature": [
            {"type": "Property", "value": 20.5, "observedAt": "2026-01-01T00:00:00Z"},
            {"value": 21, "observedAt": "2026-01-01T01:00:00Z", "unitCode": "CEL"},
            {"type": "Property", "value": 22, "instanceId": "urn:x:1"},
            {"type": "Property", "value": "x", "observedAt": "later"},
        ],
        "owner": {
            "type": "Relationship",
            "object": "urn:ngsi-ld:Person:1",
            "observedAt": "2026-01-01T00:00:00Z",
        },
        "level": {"type": "Property", "values": [[1.5, "2026-01-02T00:00:00Z"], [2.5, "bad"]]},
    },
    {
        "@context": {"temp": "https://example.org/temp"},
        "id": "urn:ngsi-ld:WQO:j2",
        "type": ["WaterQualityObserved", "Device"],
        "temp": [{"type": "Property", "value": 1, "observedAt": "2026-01-01T00:00:00Z"}],
    },
    {"id": "no uri", "type": "X"},
    "not an entity",
]


def _json(document: Any) -> tuple[list[Any], HistoryReport]:
    async def entities() -> Any:
        resolver = ContextResolver()
        return await json_entities(json.dumps(document).encode(), resolver, resolver.core)

    report = HistoryReport()
    return list(json_rows(asyncio.run(entities()), report)), report


def test_json_temporal_representation() -> None:
    rows, report = _json(TEMPORAL)
    got = [(r.entity_id, r.attr, r.instance.get("value", r.instance.get("object"))) for r in rows]
    assert got == [
        ("urn:ngsi-ld:WQO:j1", TEMP, 20.5),
        ("urn:ngsi-ld:WQO:j1", TEMP, 21),
        ("urn:ngsi-ld:WQO:j1", VOCAB + "owner", "urn:ngsi-ld:Person:1"),
        ("urn:ngsi-ld:WQO:j1", VOCAB + "level", 1.5),
        ("urn:ngsi-ld:WQO:j2", "https://example.org/temp", 1),
    ]
    assert rows[1].instance == {"type": "Property", "value": 21, "unitCode": "CEL"}
    assert rows[2].instance["type"] == "Relationship"
    assert rows[4].types == (WQO, VOCAB + "Device")
    reasons = dict(report.reasons)
    assert report.rejected == 5
    assert (
        "no observedAt"
        in reasons["entity 0 (urn:ngsi-ld:WQO:j1), attribute 'temperature', instance 2"]
    )
    assert "later" in reasons["entity 0 (urn:ngsi-ld:WQO:j1), attribute 'temperature', instance 3"]
    assert "bad" in reasons["entity 0 (urn:ngsi-ld:WQO:j1), attribute 'level', instance 1"]
    assert "URI" in reasons["entity 2 (no uri)"]
    assert "JSON object" in reasons["entity 3"]


def test_one_entity_alone_is_read_too() -> None:
    rows, report = _json(TEMPORAL[1])
    assert len(rows) == 1 and report.rejected == 0


# -- the command line ------------------------------------------------------------------------


def _history(db: Path, entity_id: str, tenant: str = "") -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        store = SqliteStore(db)
        await store.open()
        try:
            return await store.instances(
                tenant, entity_id, None, TimeWindow(), last_n=None, limit=1000
            )
        finally:
            await store.close()

    return asyncio.run(read())


def test_cli_imports_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "readings.csv"
    source.write_text(CSV)
    db = tmp_path / "h.db"
    assert main(["import", "history", str(source), "--store", f"sqlite:///{db}"]) == 0
    out = capsys.readouterr().out
    assert "imported 6 instances of 2 entities" in out and "rejected 0" in out
    found = _history(db, "urn:ngsi-ld:WQO:1")
    assert [i["value"] for i in found[TEMP].instances] == [21.5, 22]
    assert found[TEMP].instances[0]["unitCode"] == "CEL"
    assert found[TEMP].instances[0]["observedAt"] == "2026-01-01T00:00:00.000Z"


def test_cli_reports_rejected_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "readings.csv"
    source.write_text(CSV.splitlines()[0] + "\n" + BAD)
    db = tmp_path / "h.db"
    assert main(["import", "history", str(source), "--store", f"sqlite:///{db}"]) == 1
    out = capsys.readouterr().out
    assert "imported 1 instances" in out and "rejected 6" in out
    assert "rejected line 3: " in out
    assert len(_history(db, "urn:ngsi-ld:WQO:3")[TEMP].instances) == 1


def test_cli_json_with_tenant_and_context(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = tmp_path / "context.jsonld"
    context.write_text(json.dumps({"@context": {"temperature": "https://example.org/t"}}))
    source = tmp_path / "berkane.jsonld"
    source.write_text(json.dumps(TEMPORAL[0]))
    db = tmp_path / "h.db"
    argv = ["import", "history", str(source), "--store", f"sqlite:///{db}", "--tenant", "berkane"]
    assert main([*argv, "--context", str(context)]) == 1
    assert "imported 4 instances of 1 entities" in capsys.readouterr().out
    found = _history(db, "urn:ngsi-ld:WQO:j1", "berkane")
    assert [i["value"] for i in found["https://example.org/t"].instances] == [20.5, 21]
    assert _history(db, "urn:ngsi-ld:WQO:j1") == {}

    async def aggregate() -> Any:
        store = SqliteStore(db)
        await store.open()
        try:
            return await store.aggregate(
                "berkane",
                "urn:ngsi-ld:WQO:j1",
                None,
                TimeWindow(),
                Period(millis=86_400_000),
                frozenset({"avg"}),
            )
        finally:
            await store.close()

    assert asyncio.run(aggregate())["https://example.org/t"][0].values == {"avg": 20.75}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["readings.xyz"], "--format"),
        (["missing.csv"], "cannot read"),
        (["readings.csv", "--store", "mysql://x"], "unknown store URL scheme"),
        (["readings.csv", "--tenant", "no spaces"], "invalid tenant"),
        (["header.csv"], "no column for"),
        (["readings.csv", "--context", "nowhere"], "neither a file nor a URL"),
        (["broken.json"], "not JSON"),
    ],
)
def test_cli_errors_are_readable(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CITYVERSE_DATA_DIR", str(tmp_path))
    (tmp_path / "readings.xyz").write_text(CSV)
    (tmp_path / "readings.csv").write_text(CSV)
    (tmp_path / "header.csv").write_text("a,b,c\n1,2,3\n")
    (tmp_path / "broken.json").write_text("{")
    assert main(["import", "history", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cityverse import history: ") and message in err


# -- large CSV files: blocks parsed in other processes ----------------------------------------

MULTILINE = (
    'urn:ngsi-ld:WQO:4,WaterQualityObserved,status,2026-01-01T00:00:00Z,"{""state"":\n'
    '""ok, "" }",,\r\n'
    'urn:ngsi-ld:WQO:4,WaterQualityObserved,note,2026-01-01T00:00:00Z,"two\nlines",,\n'
)


def test_csv_blocks_end_where_records_end() -> None:
    text = (CSV + MULTILINE + BAD + MULTILINE * 3).encode()
    for size in (1, 7, 40, 97, 300, len(text)):
        blocks = list(csv_blocks(io.BytesIO(text), size))
        assert b"".join(block for _, block in blocks) == text
        offset = 0
        for line, block in blocks:
            assert line == text[:offset].count(b"\n") + 1
            offset += len(block)
            # Each block holds whole records: its quotes pair up.
            assert block.count(b'"') % 2 == 0 and block.endswith(b"\n")


def _flat(chunks: list[ImportChunk]) -> list[tuple[Any, ...]]:
    return [
        (*chunk.series[k], observed, chunk.now, num, doc)
        for chunk in chunks
        for k, observed, num, doc in chunk.rows
    ]


def test_parallel_csv_gives_what_the_serial_reader_gives() -> None:
    text = CSV + MULTILINE + BAD + CSV.split("\n", 1)[1] * 3
    now = ms_of("2026-11-21T00:00:00Z")
    ctx = ContextResolver().core
    serial = HistoryReport()
    expected = prepare_import(csv_rows(io.StringIO(text), ctx, serial), now)

    async def parallel(report: HistoryReport) -> list[ImportChunk]:
        stream = io.BytesIO(codecs.BOM_UTF8 + text.encode())
        chunks = parallel_csv_chunks(stream, ctx, report, 2, now, block_size=120)
        return [chunk async for chunk in chunks]

    report = HistoryReport()
    chunks = asyncio.run(parallel(report))
    assert len(chunks) > 5
    assert _flat(chunks) == _flat([expected])
    assert (report.read, report.rejected, report.entities) == (
        serial.read,
        serial.rejected,
        serial.entities,
    )
    assert report.reasons == serial.reasons and report.rejected == 6


def test_cli_parses_a_large_csv_in_other_processes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "readings.csv"
    source.write_text(CSV + MULTILINE + BAD)
    monkeypatch.setattr(history, "BLOCK", 100)
    db = tmp_path / "h.db"
    argv = ["import", "history", str(source), "--store", f"sqlite:///{db}", "--workers", "2"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "imported 9 instances of 4 entities" in out and "rejected 6" in out
    # Physical lines of the file, records over two lines counted as two.
    assert "rejected line 13: " in out and "rejected line 16: datasetId" in out
    found = _history(db, "urn:ngsi-ld:WQO:4")
    status = found["https://uri.etsi.org/ngsi-ld/status"].instances[0]["value"]
    assert status == {"state": "ok, "} and found[VOCAB + "note"].instances[0]["value"] == (
        "two\nlines"
    )
    assert [i["value"] for i in _history(db, "urn:ngsi-ld:WQO:1")[TEMP].instances] == [21.5, 22]


async def test_parallel_chunks_store_what_rows_store(store: Any) -> None:
    """On both stores: a file imported through parser processes reads back as the same
    file imported row by row (integers, JSON, booleans, text and datasetIds included)."""
    text = CSV + MULTILINE + CSV.split("\n", 1)[1]
    ctx = ContextResolver().core
    serial = await store.import_history("serial", csv_rows(io.StringIO(text), ctx, HistoryReport()))
    chunks = parallel_csv_chunks(
        io.BytesIO(text.encode()), ctx, HistoryReport(), 2, ms_of("2026-11-21T00:00:00Z"), 150
    )
    assert await store.import_chunks("parallel", chunks) == serial == 14

    def plain(found: dict[str, Any]) -> dict[str, Any]:
        return {
            attr: [
                {k: v for k, v in i.items() if k not in ("instanceId", "createdAt", "modifiedAt")}
                for i in history.instances
            ]
            for attr, history in found.items()
        }

    for entity_id in ("urn:ngsi-ld:WQO:1", "urn:ngsi-ld:WQO:2", "urn:ngsi-ld:WQO:4"):
        args = (entity_id, None, TimeWindow())
        one = await store.instances("serial", *args, last_n=None, limit=100)
        other = await store.instances("parallel", *args, last_n=None, limit=100)
        assert plain(one) == plain(other) and one
    found = await store.instances(
        "parallel", "urn:ngsi-ld:WQO:1", None, TimeWindow(), last_n=None, limit=10
    )
    values = [i["value"] for i in found[TEMP].instances]
    assert values == [21.5, 21.5, 22, 22] and type(values[2]) is int
