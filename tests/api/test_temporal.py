"""The temporal API (GS CIM 009 v1.8 5.6.11 to 5.6.16, 5.7.3, 5.7.4; HTTP binding 6.18 to
6.24), on every store: history written by entity operations, read in each representation."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from cityverse.settings import Settings
from tests.api.helpers import LD, assert_problem, entity, link

E = "/ngsi-ld/v1/entities"
TE = "/ngsi-ld/v1/temporal/entities"
TQ = "/ngsi-ld/v1/temporal/entityOperations/query"
CAR = "urn:ngsi-ld:Vehicle:B9211"
MAX = 5
"""The per-attribute instance limit of these tests' app (temporal_max_instances)."""


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=str(tmp_path),
        auth="off",
        max_body_bytes=256 * 1024,
        context_timeout=1.0,
        temporal_max_instances=MAX,
    )


def t(minute: int, hour: int = 12, day: int = 1) -> str:
    """A time on 2026-01-<day> as the API returns it."""
    return f"2026-01-{day:02d}T{hour:02d}:{minute:02d}:00.000Z"


def speed(value: Any, at: str, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, "observedAt": at, **extra}


def car(*speeds: dict[str, Any], entity_id: str = CAR, **attrs: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": entity_id, "type": "Vehicle", "speed": list(speeds)}
    body.update(attrs)
    return body


async def get(client: httpx.AsyncClient, url: str, status: int = 200, **kw: Any) -> Any:
    r = await client.get(url, **kw)
    assert r.status_code == status, r.text
    return r.json()


def values(attr: Any) -> list[Any]:
    """The values of a normalized temporal attribute, oldest first."""
    return [i["value"] for i in attr]


@pytest.fixture
async def history(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """One car with five speeds (12:01..12:05) and three fuel levels, made in one call."""
    body = car(
        *(speed(v, t(m)) for m, v in zip(range(1, 6), [120, 80, 100, 90, 60], strict=True)),
        fuelLevel=[speed(67, t(2)), speed(53, t(4)), speed(40, t(6))],
    )
    r = await client.post(TE, json=body)
    assert r.status_code == 201, r.text
    return client


# -- create, retrieve ---------------------------------------------------------------------


async def test_create_then_retrieve(history: httpx.AsyncClient) -> None:
    """5.6.11 creates a temporal entity (201, Location); 5.7.3 retrieves it normalized, each
    attribute an array of instances with instanceIds (4.5.7)."""
    body = await get(history, f"{TE}/{CAR}")
    assert body["id"] == CAR and body["type"] == "Vehicle"
    assert values(body["speed"]) == [120, 80, 100, 90, 60]
    assert [i["observedAt"] for i in body["speed"]] == [t(m) for m in range(1, 6)]
    assert values(body["fuelLevel"]) == [67, 53, 40]
    ids = [i["instanceId"] for i in body["speed"] + body["fuelLevel"]]
    assert len(set(ids)) == 8 and all(i.startswith("urn:") for i in ids)
    assert all(i["type"] == "Property" for i in body["speed"])


async def test_create_location_and_upsert(client: httpx.AsyncClient) -> None:
    """6.18.3.1: 201 with Location when new, 204 when the entity already has history."""
    r = await client.post(TE, json=car(speed(1, t(1))))
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{TE}/{CAR}"
    r = await client.post(TE, json=car(speed(2, t(2))))
    assert r.status_code == 204, r.text
    assert values((await get(client, f"{TE}/{CAR}"))["speed"]) == [1, 2]


async def test_create_with_json_ld_and_a_user_context(client: httpx.AsyncClient) -> None:
    """6.3.5: names expand with the body's @context and compact with the request's."""
    ctx = {"@context": {"velocity": "https://example.org/speed"}}
    body = {**car(), "velocity": [speed(7, t(1))], **ctx}
    del body["speed"]
    r = await client.post(TE, json=body, headers={"Content-Type": LD})
    assert r.status_code == 201, r.text
    plain = await get(client, f"{TE}/{CAR}")
    assert "https://example.org/speed" in plain
    r = await client.post("/ngsi-ld/v1/jsonldContexts", json=ctx)
    assert r.status_code == 201, r.text
    mine = await get(client, f"{TE}/{CAR}", headers=link(r.headers["location"]))
    assert values(mine["velocity"]) == [7]


async def test_retrieve_json_ld(history: httpx.AsyncClient) -> None:
    """6.3.6: Accept application/ld+json puts the @context in the body."""
    body = await get(history, f"{TE}/{CAR}", headers={"Accept": LD})
    assert "@context" in body


async def test_simplified_input(client: httpx.AsyncClient) -> None:
    """4.5.9 pairs are accepted on creation as well as normalized instances."""
    body = {
        "id": CAR,
        "type": "Vehicle",
        "speed": {"type": "Property", "values": [[3, t(1)], [4, t(2)]]},
    }
    r = await client.post(TE, json=body)
    assert r.status_code == 201, r.text
    assert values((await get(client, f"{TE}/{CAR}"))["speed"]) == [3, 4]


async def test_datasets(client: httpx.AsyncClient) -> None:
    """4.5.7: instances of every datasetId are in the attribute's array."""
    gps = "urn:ngsi-ld:Dataset:gps"
    r = await client.post(TE, json=car(speed(1, t(1)), speed(2, t(2), datasetId=gps)))
    assert r.status_code == 201, r.text
    body = await get(client, f"{TE}/{CAR}")
    assert [i.get("datasetId") for i in body["speed"]] == [None, gps]
    simple = await get(client, f"{TE}/{CAR}?options=temporalValues")
    assert simple["speed"] == [
        {"type": "Property", "values": [[1, t(1)]]},
        {"type": "Property", "values": [[2, t(2)]], "datasetId": gps},
    ]


async def test_concise_input(client: httpx.AsyncClient) -> None:
    """4.5.8: concise instances (no type) are accepted on creation and on append."""
    body = {
        "id": CAR,
        "type": "Vehicle",
        "speed": [{"value": 3, "observedAt": t(1)}, {"value": 4, "observedAt": t(2)}],
        "driver": {"object": "urn:ngsi-ld:Person:1", "observedAt": t(1)},
    }
    r = await client.post(TE, json=body)
    assert r.status_code == 201, r.text
    r = await client.post(f"{TE}/{CAR}/attrs", json={"speed": {"value": 5, "observedAt": t(3)}})
    assert r.status_code == 204, r.text
    got = await get(client, f"{TE}/{CAR}")
    assert values(got["speed"]) == [3, 4, 5]
    assert got["driver"][0]["type"] == "Relationship"


async def test_last_n_per_dataset(client: httpx.AsyncClient) -> None:
    """lastN gives the N most recent instances of each datasetId of an attribute."""
    gps = "urn:ngsi-ld:Dataset:gps"
    readings = [speed(m, t(m)) for m in range(1, 5)]
    readings += [speed(100 + m, t(m, hour=10), datasetId=gps) for m in range(1, 4)]
    assert (await client.post(TE, json=car(*readings))).status_code == 201
    r = await client.get(f"{TE}/{CAR}?lastN=2")
    assert r.status_code == 200, r.text
    assert [(i["value"], i.get("datasetId")) for i in r.json()["speed"]] == [
        (102, gps),
        (103, gps),
        (3, None),
        (4, None),
    ]
    simple = await get(client, f"{TE}/{CAR}?lastN=1&format=simplified")
    assert simple["speed"] == [
        {"type": "Property", "values": [[103, t(3, hour=10)]], "datasetId": gps},
        {"type": "Property", "values": [[4, t(4)]]},
    ]


# -- history written by entity operations ---------------------------------------------------


async def test_entity_operations_write_history(client: httpx.AsyncClient) -> None:
    """Every change made through the entity API adds to the entity's temporal evolution:
    create, update (PATCH attrs), merge, append, attribute deletion, entity deletion."""
    pid = "urn:ngsi-ld:Pipe:1"

    def flow(value: float, minute: int) -> dict[str, Any]:
        return {"type": "Property", "value": value, "observedAt": t(minute)}

    r = await client.post(E, json=entity(pid, flow=flow(1.0, 1), diameter=200))
    assert r.status_code == 201, r.text
    r = await client.patch(f"{E}/{pid}/attrs", json={"flow": flow(2.0, 2)})
    assert r.status_code == 204, r.text
    r = await client.patch(f"{E}/{pid}", json={"flow": flow(3.0, 3)})
    assert r.status_code == 204, r.text
    r = await client.post(f"{E}/{pid}/attrs", json={"pressure": flow(4.5, 4)})
    assert r.status_code == 204, r.text
    r = await client.patch(f"{E}/{pid}/attrs/flow", json={"value": 5.0, "observedAt": t(5)})
    assert r.status_code == 204, r.text

    body = await get(client, f"{TE}/{pid}")
    assert values(body["flow"]) == [1.0, 2.0, 3.0, 5.0]
    assert values(body["pressure"]) == [4.5]
    assert "diameter" not in body  # no observedAt: outside every observedAt window
    by_change = await get(client, f"{TE}/{pid}?timeproperty=modifiedAt")
    assert values(by_change["diameter"]) == [200]
    assert [i["modifiedAt"] for i in by_change["flow"]] == sorted(
        i["modifiedAt"] for i in by_change["flow"]
    )

    r = await client.delete(f"{E}/{pid}/attrs/pressure")
    assert r.status_code == 204, r.text
    deleted = await get(client, f"{TE}/{pid}?timeproperty=deletedAt")
    assert list(deleted) == ["id", "type", "pressure"]
    [marker] = deleted["pressure"]
    assert marker["value"] == "urn:ngsi-ld:null" and marker["deletedAt"]

    r = await client.delete(f"{E}/{pid}")
    assert r.status_code == 204, r.text
    gone = await get(client, f"{TE}/{pid}?timeproperty=deletedAt")
    assert {"flow", "diameter", "pressure"} <= set(gone)
    assert values((await get(client, f"{TE}/{pid}"))["flow"]) == [1.0, 2.0, 3.0, 5.0]


async def test_batch_upsert_writes_history(client: httpx.AsyncClient) -> None:
    """A batch upsert records each entity's new instances."""
    batch = [
        entity(
            f"urn:ngsi-ld:Meter:{i}", reading={"type": "Property", "value": i, "observedAt": t(1)}
        )
        for i in range(3)
    ]
    r = await client.post("/ngsi-ld/v1/entityOperations/upsert", json=batch)
    assert r.status_code == 201, r.text
    for item in batch:
        item["reading"] = {"type": "Property", "value": 10, "observedAt": t(2)}
    r = await client.post("/ngsi-ld/v1/entityOperations/upsert?options=update", json=batch)
    assert r.status_code == 204, r.text
    body = await get(client, f"{TE}?type=Meter")
    assert [values(e["reading"]) for e in body] == [[0, 10], [1, 10], [2, 10]]


# -- the temporal query language (4.11) -----------------------------------------------------


async def test_timerel_bounds(history: httpx.AsyncClient) -> None:
    """4.11: before is t < timeAt, after is t > timeAt, between is timeAt <= t < endTimeAt."""
    at = quote(t(3))
    before = await get(history, f"{TE}/{CAR}?attrs=speed&timerel=before&timeAt={at}")
    assert values(before["speed"]) == [120, 80]
    after = await get(history, f"{TE}/{CAR}?attrs=speed&timerel=after&timeAt={at}")
    assert values(after["speed"]) == [90, 60]
    end = quote(t(5))
    between = await get(
        history, f"{TE}/{CAR}?attrs=speed&timerel=between&timeAt={at}&endTimeAt={end}"
    )
    assert values(between["speed"]) == [100, 90]


async def test_time_with_offset(history: httpx.AsyncClient) -> None:
    """timeAt may carry an offset: 13:03+01:00 is 12:03Z."""
    at = quote("2026-01-01T13:03:00+01:00")
    before = await get(history, f"{TE}/{CAR}?attrs=speed&timerel=before&timeAt={at}")
    assert values(before["speed"]) == [120, 80]


async def test_attrs_projection(history: httpx.AsyncClient) -> None:
    """5.7.3: attrs keeps only the attributes named."""
    body = await get(history, f"{TE}/{CAR}?attrs=fuelLevel")
    assert set(body) == {"id", "type", "fuelLevel"}


async def test_last_n(history: httpx.AsyncClient) -> None:
    """lastN gives the N most recent instances of each attribute, oldest first."""
    r = await history.get(f"{TE}/{CAR}?lastN=2")
    assert r.status_code == 200, r.text
    assert "content-range" not in r.headers
    body = r.json()
    assert values(body["speed"]) == [90, 60]
    assert values(body["fuelLevel"]) == [53, 40]
    at = quote(t(4))
    before = await get(history, f"{TE}/{CAR}?attrs=speed&lastN=2&timerel=before&timeAt={at}")
    assert values(before["speed"]) == [80, 100]


async def test_timeproperty_modified_at(client: httpx.AsyncClient) -> None:
    """4.11: timeproperty=modifiedAt selects by when each instance was written."""
    r = await client.post(E, json=entity("urn:ngsi-ld:Lamp:1", power=60))
    assert r.status_code == 201, r.text
    stamp = (await get(client, f"{E}/urn:ngsi-ld:Lamp:1?options=sysAttrs"))["modifiedAt"]
    await asyncio.sleep(0.01)  # the next change is at a later millisecond
    r = await client.patch(f"{E}/urn:ngsi-ld:Lamp:1/attrs", json={"power": 100})
    assert r.status_code == 204, r.text
    body = await get(client, f"{TE}/urn:ngsi-ld:Lamp:1?timeproperty=modifiedAt")
    assert values(body["power"]) == [60, 100]
    after = await get(
        client,
        f"{TE}/urn:ngsi-ld:Lamp:1?timeproperty=modifiedAt&timerel=after&timeAt={quote(stamp)}",
    )
    assert values(after["power"]) == [100]
    before = await get(
        client,
        f"{TE}/urn:ngsi-ld:Lamp:1?timeproperty=modifiedAt&timerel=before&timeAt={quote(stamp)}",
    )
    assert "power" not in before


async def test_sys_attrs(history: httpx.AsyncClient) -> None:
    """options=sysAttrs adds createdAt and modifiedAt to every instance."""
    body = await get(history, f"{TE}/{CAR}?options=sysAttrs&attrs=speed")
    assert all("createdAt" in i and "modifiedAt" in i for i in body["speed"])
    plain = await get(history, f"{TE}/{CAR}?attrs=speed")
    assert not any("createdAt" in i for i in plain["speed"])


async def test_pick_and_omit(history: httpx.AsyncClient) -> None:
    """v1.8 pick keeps only the members named (attributes, id, type), omit drops them;
    with attrs, pick keeps what both name."""
    assert set(await get(history, f"{TE}/{CAR}?pick=fuelLevel")) == {"fuelLevel"}
    assert set(await get(history, f"{TE}/{CAR}?pick=id,speed")) == {"id", "speed"}
    assert set(await get(history, f"{TE}/{CAR}?omit=speed")) == {"id", "type", "fuelLevel"}
    assert set(await get(history, f"{TE}/{CAR}?omit=id,type")) == {"speed", "fuelLevel"}
    both = await get(history, f"{TE}/{CAR}?attrs=speed,fuelLevel&pick=id,fuelLevel")
    assert set(both) == {"id", "fuelLevel"}
    simple = await get(history, f"{TE}/{CAR}?omit=fuelLevel,type&options=temporalValues")
    assert set(simple) == {"id", "speed"}
    aggregated = await get(
        history, f"{TE}/{CAR}?omit=speed&options=aggregatedValues&aggrMethods=max"
    )
    assert aggregated["fuelLevel"]["max"][0][0] == 67 and "speed" not in aggregated
    queried = await get(history, f"{TE}?type=Vehicle&pick=speed&lastN=1")
    assert [set(e) for e in queried] == [{"speed"}]
    assert values(queried[0]["speed"]) == [60]
    r = await history.post(
        TQ,
        json={"type": "Query", "entities": [{"type": "Vehicle"}], "omit": ["speed", "type"]},
    )
    assert r.status_code == 200, r.text
    assert set(r.json()[0]) == {"id", "fuelLevel"}


# -- representations ---------------------------------------------------------------------


async def test_concise(history: httpx.AsyncClient) -> None:
    """4.5.8: format=concise (or options=concise) leaves out each instance's type."""
    body = await get(history, f"{TE}/{CAR}?format=concise&attrs=fuelLevel")
    assert [set(i) for i in body["fuelLevel"]] == [{"value", "observedAt", "instanceId"}] * 3
    assert values(body["fuelLevel"]) == [67, 53, 40]
    assert await get(history, f"{TE}/{CAR}?options=concise&attrs=fuelLevel") == body
    queried = await get(history, f"{TE}?type=Vehicle&options=concise&attrs=speed&lastN=1")
    [last] = queried[0]["speed"]
    assert last == {"value": 60, "observedAt": t(5), "instanceId": last["instanceId"]}
    # What a concise answer shows can be written back as it is.
    copy = {**body, "id": CAR + "2"}
    for item in copy["fuelLevel"]:
        del item["instanceId"]
    assert (await history.post(TE, json=copy)).status_code == 201
    again = await get(history, f"{TE}/{CAR}2?format=concise")
    assert values(again["fuelLevel"]) == [67, 53, 40]


async def test_temporal_values(history: httpx.AsyncClient) -> None:
    """4.5.9: options=temporalValues gives [value, time] pairs per attribute."""
    body = await get(history, f"{TE}/{CAR}?options=temporalValues")
    assert body == {
        "id": CAR,
        "type": "Vehicle",
        "speed": {
            "type": "Property",
            "values": [[v, t(m)] for m, v in zip(range(1, 6), [120, 80, 100, 90, 60], strict=True)],
        },
        "fuelLevel": {"type": "Property", "values": [[67, t(2)], [53, t(4)], [40, t(6)]]},
    }


async def test_temporal_values_of_a_relationship(client: httpx.AsyncClient) -> None:
    """4.5.9: a Relationship's pairs are under objects."""
    body = car(
        speed(1, t(1)),
        parkedIn=[
            {"type": "Relationship", "object": "urn:ngsi-ld:Parking:1", "observedAt": t(1)},
            {"type": "Relationship", "object": "urn:ngsi-ld:Parking:2", "observedAt": t(2)},
        ],
    )
    assert (await client.post(TE, json=body)).status_code == 201
    simple = await get(client, f"{TE}/{CAR}?options=temporalValues&attrs=parkedIn")
    assert simple["parkedIn"] == {
        "type": "Relationship",
        "objects": [["urn:ngsi-ld:Parking:1", t(1)], ["urn:ngsi-ld:Parking:2", t(2)]],
    }


DAY1 = [3.0, 5.0, 5.0, 11.0]
DAY2 = [2.0, 4.0]


@pytest.fixture
async def readings(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A meter with four readings on 1 January and two on 3 January."""
    day1 = [speed(v, t(10 * i, hour=8, day=1)) for i, v in enumerate(DAY1)]
    day2 = [speed(v, t(10 * i, hour=8, day=3)) for i, v in enumerate(DAY2)]
    r = await client.post(TE, json=car(*day1, *day2))
    assert r.status_code == 201, r.text
    return client


def expected(method: str, data: list[float]) -> float:
    """Each aggregation method, computed by hand (4.5.19)."""
    n = len(data)
    mean = sum(data) / n
    return {
        "totalCount": n,
        "distinctCount": len(set(data)),
        "sum": sum(data),
        "avg": mean,
        "min": min(data),
        "max": max(data),
        # The sample standard deviation, as PostgreSQL's stddev and Stellio give it.
        "stddev": math.sqrt(sum((x - mean) ** 2 for x in data) / (n - 1)),
        "sumsq": sum(x * x for x in data),
    }[method]


@pytest.mark.parametrize(
    "method", ["totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq"]
)
async def test_aggregated_per_day(readings: httpx.AsyncClient, method: str) -> None:
    """4.5.19: each method per P1D period from timeAt; periods without instances are left
    out; each entry is [value, startAt, endAt]."""
    at = quote("2026-01-01T00:00:00Z")
    end = quote("2026-01-04T00:00:00Z")
    url = (
        f"{TE}/{CAR}?options=aggregatedValues&aggrMethods={method}&aggrPeriodDuration=P1D"
        f"&timerel=between&timeAt={at}&endTimeAt={end}"
    )
    body = await get(readings, url)
    entries = body["speed"][method]
    assert body["speed"]["type"] == "Property"
    assert [e[1:] for e in entries] == [
        ["2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z"],
        ["2026-01-03T00:00:00.000Z", "2026-01-04T00:00:00.000Z"],
    ]
    assert entries[0][0] == pytest.approx(expected(method, DAY1))
    assert entries[1][0] == pytest.approx(expected(method, DAY2))


async def test_aggregated_whole_window(readings: httpx.AsyncClient) -> None:
    """4.5.19: without aggrPeriodDuration (or with PT0S) one period spans the whole range."""
    for duration in ("", "&aggrPeriodDuration=PT0S"):
        body = await get(
            readings, f"{TE}/{CAR}?options=aggregatedValues&aggrMethods=sum,max{duration}"
        )
        [[total, *_]] = body["speed"]["sum"]
        [[top, *_]] = body["speed"]["max"]
        assert total == pytest.approx(sum(DAY1 + DAY2))
        assert top == 11.0


async def test_aggregated_hourly_from_first_instance(readings: httpx.AsyncClient) -> None:
    """4.5.19: without timeAt, periods start at the first instance."""
    body = await get(
        readings,
        f"{TE}/{CAR}?options=aggregatedValues&aggrMethods=totalCount&aggrPeriodDuration=PT20M",
    )
    entries = body["speed"]["totalCount"]
    assert entries[0] == [2, t(0, hour=8), t(20, hour=8)]
    assert sum(e[0] for e in entries) == len(DAY1) + len(DAY2)


async def test_aggregated_per_dataset(client: httpx.AsyncClient) -> None:
    """4.5.19: each datasetId of an attribute is aggregated on its own."""
    gps = "urn:ngsi-ld:Dataset:gps"
    body = car(speed(1, t(1)), speed(3, t(2)), speed(10, t(1), datasetId=gps))
    assert (await client.post(TE, json=body)).status_code == 201
    got = await get(client, f"{TE}/{CAR}?options=aggregatedValues&aggrMethods=sum")
    assert [(a.get("datasetId"), a["sum"][0][0]) for a in got["speed"]] == [(None, 4), (gps, 10)]


async def test_aggregated_relationship_counts(client: httpx.AsyncClient) -> None:
    """4.5.19: totalCount and distinctCount count any value; sum has nothing to add."""
    parked = [
        {"type": "Relationship", "object": f"urn:ngsi-ld:Parking:{n}", "observedAt": t(m)}
        for m, n in enumerate([1, 2, 1])
    ]
    r = await client.post(E, json={"id": CAR, "type": "Vehicle", "parkedIn": parked[0]})
    assert r.status_code == 201, r.text
    r = await client.post(f"{TE}/{CAR}/attrs", json={"parkedIn": parked[1:]})
    assert r.status_code == 204, r.text
    got = await get(
        client, f"{TE}/{CAR}?options=aggregatedValues&aggrMethods=totalCount,distinctCount"
    )
    assert got["parkedIn"]["type"] == "Relationship"
    assert got["parkedIn"]["totalCount"][0][0] == 3
    assert got["parkedIn"]["distinctCount"][0][0] == 2


async def test_language_property_with_lang(client: httpx.AsyncClient) -> None:
    """4.15: lang picks one language of each instance of a LanguageProperty."""
    names = [
        {
            "type": "LanguageProperty",
            "languageMap": {"fr": f"rue {n}", "ar": f"شارع {n}"},
            "observedAt": t(n),
        }
        for n in (1, 2)
    ]
    assert (await client.post(TE, json=car(speed(1, t(1)), street=names))).status_code == 201
    got = await get(client, f"{TE}/{CAR}?attrs=street&lang=fr")
    assert [(i["value"], i["lang"]) for i in got["street"]] == [("rue 1", "fr"), ("rue 2", "fr")]
    simple = await get(client, f"{TE}/{CAR}?attrs=street&options=temporalValues")
    assert simple["street"]["languageMaps"][0] == [{"fr": "rue 1", "ar": "شارع 1"}, t(1)]


# -- query (5.7.4) ---------------------------------------------------------------------------


@pytest.fixture
async def fleet(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Three vehicles and a bus, each with history; vehicle 2 is in scope /Berkane."""
    for i in range(1, 4):
        body = entity(
            f"urn:ngsi-ld:Vehicle:{i}",
            speed=speed(10 * i, t(i)),
            brand="Volvo" if i < 3 else "Renault",
            location={
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [-2.3 + i, 34.9]},
            },
        )
        if i == 2:
            body["scope"] = "/Berkane"
        r = await client.post(E, json=body)
        assert r.status_code == 201, r.text
        r = await client.patch(
            f"{E}/urn:ngsi-ld:Vehicle:{i}/attrs", json={"speed": speed(10 * i + 1, t(i + 10))}
        )
        assert r.status_code == 204, r.text
    r = await client.post(E, json=entity("urn:ngsi-ld:Bus:1", speed=speed(5, t(1))))
    assert r.status_code == 201, r.text
    return client


def ids(body: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in body]


async def test_query_by_type(fleet: httpx.AsyncClient) -> None:
    """5.7.4: type selects entities; each comes with its history."""
    body = await get(fleet, f"{TE}?type=Vehicle")
    assert ids(body) == [f"urn:ngsi-ld:Vehicle:{i}" for i in range(1, 4)]
    assert [values(e["speed"]) for e in body] == [[10, 11], [20, 21], [30, 31]]


async def test_query_filters(fleet: httpx.AsyncClient) -> None:
    """5.7.4: id, idPattern, q, scopeQ and geo-queries select as in Query Entities."""
    assert ids(await get(fleet, f"{TE}?id=urn:ngsi-ld:Bus:1")) == ["urn:ngsi-ld:Bus:1"]
    pattern = quote("urn:ngsi-ld:Vehicle:[23]")
    assert ids(await get(fleet, f"{TE}?idPattern={pattern}")) == [
        "urn:ngsi-ld:Vehicle:2",
        "urn:ngsi-ld:Vehicle:3",
    ]
    q = quote('brand=="Renault"')
    assert ids(await get(fleet, f"{TE}?type=Vehicle&q={q}")) == ["urn:ngsi-ld:Vehicle:3"]
    assert ids(await get(fleet, f"{TE}?type=Vehicle&scopeQ=/Berkane")) == ["urn:ngsi-ld:Vehicle:2"]
    geo = "georel=near;maxDistance==1000&geometry=Point&coordinates=" + quote("[-1.3,34.9]")
    assert ids(await get(fleet, f"{TE}?type=Vehicle&{geo}")) == ["urn:ngsi-ld:Vehicle:1"]


async def test_query_with_time_and_attrs(fleet: httpx.AsyncClient) -> None:
    """5.7.4: the temporal query applies to each entity's attributes."""
    at = quote(t(10))
    body = await get(fleet, f"{TE}?type=Vehicle&attrs=speed&timerel=after&timeAt={at}")
    assert [values(e["speed"]) for e in body] == [[11], [21], [31]]


async def test_query_paging_and_count(fleet: httpx.AsyncClient) -> None:
    """6.3.10 / 6.3.13: limit and offset page entities; count=true counts them."""
    r = await fleet.get(f"{TE}?type=Vehicle&limit=2&offset=1&count=true")
    assert r.status_code == 200, r.text
    assert r.headers["ngsild-results-count"] == "3"
    assert ids(r.json()) == ["urn:ngsi-ld:Vehicle:2", "urn:ngsi-ld:Vehicle:3"]


async def test_query_via_post(fleet: httpx.AsyncClient) -> None:
    """6.24: POST temporal/entityOperations/query with a Query body and its temporalQ."""
    query = {
        "type": "Query",
        "entities": [{"type": "Vehicle"}],
        "attrs": ["speed"],
        "temporalQ": {"timerel": "before", "timeAt": t(10), "lastN": 1},
    }
    r = await fleet.post(TQ, json=query)
    assert r.status_code == 200, r.text
    assert [values(e["speed"]) for e in r.json()] == [[10], [20], [30]]
    r = await fleet.post(TQ + "?options=temporalValues", json=query)
    assert r.json()[0]["speed"] == {"type": "Property", "values": [[10, t(1)]]}


async def test_query_entities_known_only_by_history(history: httpx.AsyncClient) -> None:
    """5.7.4: an entity created through the temporal API is found by id, idPattern, type
    and attrs, by GET and by POST."""
    assert ids(await get(history, f"{TE}?id={CAR}&attrs=speed&lastN=1")) == [CAR]
    assert ids(await get(history, f"{TE}?idPattern=urn:ngsi-ld:Vehicle:.*&lastN=1")) == [CAR]
    assert ids(await get(history, f"{TE}?attrs=fuelLevel&lastN=1")) == [CAR]
    assert await get(history, f"{TE}?attrs=colour") == []
    for entities in ([{"id": CAR}], [{"type": "Vehicle"}, {"type": "Bus"}]):
        r = await history.post(TQ, json={"type": "Query", "entities": entities})
        assert r.status_code == 200, r.text
        assert ids(r.json()) == [CAR]


async def test_query_tests_what_entities_were(fleet: httpx.AsyncClient) -> None:
    """5.7.4: q and geo-queries test the states each entity held in the time window, so
    that a deleted entity matches what it was and a value that held in the window
    counts (see docs/api.md)."""
    r = await fleet.delete(f"{E}/urn:ngsi-ld:Vehicle:3")
    assert r.status_code == 204, r.text
    renault = quote('brand=="Renault"')
    assert ids(await get(fleet, f"{TE}?type=Vehicle&q={renault}")) == ["urn:ngsi-ld:Vehicle:3"]
    geo = "georel=near;maxDistance==1000&geometry=Point&coordinates=" + quote("[0.7,34.9]")
    assert ids(await get(fleet, f"{TE}?type=Vehicle&{geo}")) == ["urn:ngsi-ld:Vehicle:3"]
    # Vehicle 1 went at 10, then 11 from 12:11: a window from 12:05 opens with 10.
    fast = quote("speed==10")
    at = quote(t(5))
    assert ids(await get(fleet, f"{TE}?q={fast}&timerel=after&timeAt={at}")) == [
        "urn:ngsi-ld:Vehicle:1"
    ]
    assert ids(await get(fleet, f"{TE}?q={fast}&timerel=after&timeAt={quote(t(11))}")) == []
    r = await fleet.post(
        TQ,
        json={
            "type": "Query",
            "q": "speed>25",
            "temporalQ": {"timerel": "before", "timeAt": t(10)},
        },
    )
    assert r.status_code == 200, r.text
    assert ids(r.json()) == ["urn:ngsi-ld:Vehicle:3"]


async def test_query_needs_a_filter(fleet: httpx.AsyncClient) -> None:
    """5.7.4: a query must say which entities it is about."""
    assert_problem(await fleet.get(TE), 400, "BadRequestData")


# -- pagination of instances (6.3.10) ----------------------------------------------------


@pytest.fixture
async def long_history(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Twelve speeds (12:00..12:11) and three fuel levels: more than MAX instances."""
    body = car(
        *(speed(m, t(m)) for m in range(12)),
        fuelLevel=[speed(100 - m, t(m)) for m in (1, 5, 10)],
    )
    assert (await client.post(TE, json=body)).status_code == 201
    return client


async def test_forward_pages(long_history: httpx.AsyncClient) -> None:
    """6.3.10: beyond the limit the answer is 206 with Content-Range; without lastN it pages
    forwards, and every attribute covers the same time range."""
    r = await long_history.get(f"{TE}/{CAR}")
    assert r.status_code == 206, r.text
    assert r.headers["content-range"] == f"date-time {t(0)}-{t(4)}/*"
    body = r.json()
    assert values(body["speed"]) == [0, 1, 2, 3, 4]
    assert values(body["fuelLevel"]) == [99]
    # The next page starts after the range's end.
    r = await long_history.get(f"{TE}/{CAR}?timerel=after&timeAt={quote(t(4))}")
    assert r.status_code == 206
    assert r.headers["content-range"] == f"date-time {t(4)}-{t(9)}/*"
    assert values(r.json()["speed"]) == [5, 6, 7, 8, 9]
    r = await long_history.get(f"{TE}/{CAR}?timerel=after&timeAt={quote(t(9))}")
    assert r.status_code == 200, r.text
    assert "content-range" not in r.headers
    assert values(r.json()["speed"]) == [10, 11]


async def test_backward_pages(long_history: httpx.AsyncClient) -> None:
    """6.3.10: with lastN above the limit the answer pages backwards from the latest."""
    r = await long_history.get(f"{TE}/{CAR}?lastN=10")
    assert r.status_code == 206, r.text
    assert r.headers["content-range"] == f"date-time {t(11)}-{t(7)}/10"
    body = r.json()
    assert values(body["speed"]) == [7, 8, 9, 10, 11]
    assert values(body["fuelLevel"]) == [90]


async def test_backward_next_page(long_history: httpx.AsyncClient) -> None:
    """6.3.10: the next page backwards ends before the range's end."""
    r = await long_history.get(f"{TE}/{CAR}?lastN=10&timerel=before&timeAt={quote(t(7))}")
    assert r.status_code == 206, r.text
    assert r.headers["content-range"] == f"date-time {t(7)}-{t(2)}/10"
    assert values(r.json()["speed"]) == [2, 3, 4, 5, 6]
    assert values(r.json()["fuelLevel"]) == [95]


async def test_query_pages_instances_too(long_history: httpx.AsyncClient) -> None:
    """6.3.10: a query answer is partial like a retrieval."""
    r = await long_history.get(f"{TE}?type=Vehicle&attrs=speed")
    assert r.status_code == 206, r.text
    assert r.headers["content-range"] == f"date-time {t(0)}-{t(4)}/*"


async def test_temporal_values_are_paged(long_history: httpx.AsyncClient) -> None:
    r = await long_history.get(f"{TE}/{CAR}?options=temporalValues&attrs=speed")
    assert r.status_code == 206
    assert r.json()["speed"]["values"][-1] == [4, t(4)]


# -- amending history ---------------------------------------------------------------------


async def test_append_attributes(history: httpx.AsyncClient) -> None:
    """5.6.12: POST .../attrs adds instances (204)."""
    r = await history.post(
        f"{TE}/{CAR}/attrs",
        json={"speed": [speed(70, t(7))], "oilLevel": speed(0.5, t(7))},
    )
    assert r.status_code == 204, r.text
    body = await get(history, f"{TE}/{CAR}?lastN=1")
    assert values(body["speed"]) == [70]
    assert values(body["oilLevel"]) == [0.5]
    assert values(body["fuelLevel"]) == [40]


async def test_modify_and_delete_instance(history: httpx.AsyncClient) -> None:
    """5.6.14 and 5.6.15: one instance is replaced (keeping its instanceId) or deleted."""
    body = await get(history, f"{TE}/{CAR}")
    first, second = body["speed"][0]["instanceId"], body["speed"][1]["instanceId"]
    r = await history.patch(f"{TE}/{CAR}/attrs/speed/{first}", json=speed(129, t(1)))
    assert r.status_code == 204, r.text
    r = await history.delete(f"{TE}/{CAR}/attrs/speed/{second}")
    assert r.status_code == 204, r.text
    after = await get(history, f"{TE}/{CAR}")
    assert values(after["speed"]) == [129, 100, 90, 60]
    assert after["speed"][0]["instanceId"] == first
    assert values(after["fuelLevel"]) == [67, 53, 40]
    r = await history.delete(f"{TE}/{CAR}/attrs/speed/{second}")
    assert_problem(r, 404, "ResourceNotFound")


async def test_delete_attribute_history(client: httpx.AsyncClient) -> None:
    """5.6.13: the default instances, one datasetId's, or every one with deleteAll."""
    gps = "urn:ngsi-ld:Dataset:gps"
    body = car(speed(1, t(1)), speed(2, t(2), datasetId=gps), fuelLevel=[speed(5, t(1))])
    assert (await client.post(TE, json=body)).status_code == 201
    r = await client.delete(f"{TE}/{CAR}/attrs/speed")
    assert r.status_code == 204, r.text
    left = await get(client, f"{TE}/{CAR}")
    assert [i.get("datasetId") for i in left["speed"]] == [gps]
    r = await client.delete(f"{TE}/{CAR}/attrs/speed?datasetId={gps}")
    assert r.status_code == 204, r.text
    assert "speed" not in await get(client, f"{TE}/{CAR}")
    assert (await client.post(TE, json=body)).status_code == 204
    r = await client.delete(f"{TE}/{CAR}/attrs/speed?deleteAll=true")
    assert r.status_code == 204, r.text
    left = await get(client, f"{TE}/{CAR}")
    assert "speed" not in left and values(left["fuelLevel"]) == [5, 5]
    assert_problem(await client.delete(f"{TE}/{CAR}/attrs/speed"), 404, "ResourceNotFound")


async def test_delete_entity_history(history: httpx.AsyncClient) -> None:
    """5.6.16: the whole history goes; a second delete is 404."""
    r = await history.delete(f"{TE}/{CAR}")
    assert r.status_code == 204, r.text
    assert_problem(await history.get(f"{TE}/{CAR}"), 404, "ResourceNotFound")
    assert_problem(await history.delete(f"{TE}/{CAR}"), 404, "ResourceNotFound")


# -- errors ------------------------------------------------------------------------------


async def test_not_found(history: httpx.AsyncClient) -> None:
    """5.7.3 and the write operations: an entity without history answers 404."""
    other = "urn:ngsi-ld:Vehicle:none"
    assert_problem(await history.get(f"{TE}/{other}"), 404, "ResourceNotFound")
    r = await history.post(f"{TE}/{other}/attrs", json={"speed": speed(1, t(1))})
    assert_problem(r, 404, "ResourceNotFound")
    assert_problem(await history.delete(f"{TE}/{other}/attrs/speed"), 404, "ResourceNotFound")
    assert_problem(await history.delete(f"{TE}/{CAR}/attrs/colour"), 404, "ResourceNotFound")
    missing = "urn:ngsi-ld:attribute:instance:999999999"
    r = await history.patch(f"{TE}/{CAR}/attrs/speed/{missing}", json=speed(1, t(1)))
    assert_problem(r, 404, "ResourceNotFound")
    r = await history.patch(f"{TE}/{CAR}/attrs/speed/urn:ngsi-ld:other:1", json=speed(1, t(1)))
    assert_problem(r, 404, "ResourceNotFound")
    body = await get(history, f"{TE}/{CAR}")
    fuel = body["fuelLevel"][0]["instanceId"]
    r = await history.delete(f"{TE}/{CAR}/attrs/speed/{fuel}")
    assert_problem(r, 404, "ResourceNotFound")
    assert values((await get(history, f"{TE}/{CAR}"))["fuelLevel"]) == [67, 53, 40]


BAD_READS = [
    ("timerel=before", "timeAt"),
    ("timeAt=2026-01-01T00:00:00Z", "timerel"),
    ("timerel=between&timeAt=2026-01-01T00:00:00Z", "endTimeAt"),
    (
        "timerel=between&timeAt=2026-01-02T00:00:00Z&endTimeAt=2026-01-01T00:00:00Z",
        "endTimeAt",
    ),
    ("timerel=during&timeAt=2026-01-01T00:00:00Z", "timerel"),
    ("timerel=after&timeAt=yesterday", "timeAt"),
    ("timeproperty=expiresAt", "timeproperty"),
    ("lastN=0", "lastN"),
    ("lastN=-3", "lastN"),
    ("lastN=two", "lastN"),
    ("options=aggregatedValues", "aggrMethods"),
    ("options=aggregatedValues&aggrMethods=median", "median"),
    ("options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=1D", "aggrPeriodDuration"),
    ("options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=P1H", "aggrPeriodDuration"),
    ("options=temporalValues,aggregatedValues&aggrMethods=avg", "one temporal representation"),
    ("options=wide", "option"),
    ("attrs=a,,b", "attribute list"),
    ("format=wide", "format"),
    ("format=concise&options=temporalValues", "one temporal representation"),
    ("options=concise,aggregatedValues&aggrMethods=avg", "one temporal representation"),
    ("pick=speed,,id", "pick"),
    ("pick=", "pick"),
    ("omit=sp%20eed", "omit"),
    ("omit=", "omit"),
]


@pytest.mark.parametrize(("query", "word"), BAD_READS)
async def test_bad_reads(history: httpx.AsyncClient, query: str, word: str) -> None:
    """4.11, 4.5.19, 6.3.10: each bad parameter answers 400 BadRequestData naming it."""
    for url in (f"{TE}/{CAR}?{query}", f"{TE}?type=Vehicle&{query}"):
        body = assert_problem(await history.get(url), 400, "BadRequestData")
        assert word in body["detail"], body


async def test_bad_pick_in_query_body(history: httpx.AsyncClient) -> None:
    for pick in ([""], "a,,b", 5, [1]):
        r = await history.post(
            TQ, json={"type": "Query", "entities": [{"type": "Vehicle"}], "pick": pick}
        )
        assert "pick" in assert_problem(r, 400, "BadRequestData")["detail"]


async def test_bad_query_body(history: httpx.AsyncClient) -> None:
    r = await history.post(
        TQ,
        json={
            "type": "Query",
            "entities": [{"type": "Vehicle"}],
            "temporalQ": {"timerel": "before"},
        },
    )
    assert "timeAt" in assert_problem(r, 400, "BadRequestData")["detail"]
    r = await history.post(
        TQ,
        json={
            "type": "Query",
            "entities": [{"type": "Vehicle"}],
            "temporalQ": {"timerel": "before", "when": 1},
        },
    )
    assert "when" in assert_problem(r, 400, "BadRequestData")["detail"]


GOOD = [speed(1, t(1))]
BAD_WRITES = [
    ({"id": CAR, "type": "Vehicle", "speed": {"type": "Property", "value": 1}}, "observedAt"),
    ({"id": CAR, "type": "Vehicle", "speed": [5]}, "observedAt"),
    ({"id": CAR, "type": "Vehicle", "speed": []}, "instances"),
    ({"id": CAR, "type": "Vehicle", "speed": [speed(1, "noon")]}, "observedAt"),
    ({"id": CAR, "type": "Vehicle", "speed": {"type": "Property", "values": [[1]]}}, "pair"),
    ({"id": CAR, "type": "Vehicle", "sp eed": GOOD}, "name"),
    ({"id": CAR, "type": "Vehicle", "speed": GOOD, "fuel": speed(2, "")}, "observedAt"),
]
BAD_ENTITIES = [
    ({"id": "not a uri", "type": "Vehicle", "speed": GOOD}, "id"),
    ({"id": CAR, "speed": GOOD}, "type"),
    ({"id": CAR, "type": "", "speed": GOOD}, "type"),
    ([{"id": CAR, "type": "Vehicle", "speed": GOOD}], "object"),
]


@pytest.mark.parametrize(("body", "word"), BAD_ENTITIES)
async def test_bad_entities_change_nothing(
    history: httpx.AsyncClient, body: Any, word: str
) -> None:
    """5.6.11: a temporal entity without a valid id or type answers 400."""
    before = await get(history, f"{TE}/{CAR}")
    r = await history.post(TE, json=body)
    assert word in assert_problem(r, 400, "BadRequestData")["detail"]
    assert await get(history, f"{TE}/{CAR}") == before


@pytest.mark.parametrize(("body", "word"), BAD_WRITES)
async def test_bad_writes_change_nothing(
    history: httpx.AsyncClient, body: dict[str, Any], word: str
) -> None:
    """5.6.11, 5.6.12: an instance without a time, or any invalid content, answers 400 and
    nothing stored changes."""
    before = await get(history, f"{TE}/{CAR}")
    r = await history.post(TE, json=body)
    assert word in assert_problem(r, 400, "BadRequestData")["detail"]
    attrs = {k: v for k, v in body.items() if k not in ("id", "type")}
    r = await history.post(f"{TE}/{CAR}/attrs", json=attrs)
    assert word in assert_problem(r, 400, "BadRequestData")["detail"]
    assert await get(history, f"{TE}/{CAR}") == before


async def test_bad_instance_writes(history: httpx.AsyncClient) -> None:
    """5.6.14: the instanceId must be a URI; the body one instance with observedAt."""
    before = await get(history, f"{TE}/{CAR}")
    iid = before["speed"][0]["instanceId"]
    r = await history.patch(f"{TE}/{CAR}/attrs/speed/not-a-uri", json=speed(1, t(1)))
    assert_problem(r, 400, "BadRequestData")
    r = await history.patch(f"{TE}/{CAR}/attrs/speed/{iid}", json={"type": "Property", "value": 1})
    assert "observedAt" in assert_problem(r, 400, "BadRequestData")["detail"]
    r = await history.patch(f"{TE}/{CAR}/attrs/speed/{iid}", json=[speed(1, t(1))] * 2)
    assert_problem(r, 400, "BadRequestData")
    r = await history.patch(f"{TE}/{CAR}/attrs/sp(eed/{iid}", json=speed(1, t(1)))
    assert_problem(r, 400, "BadRequestData")
    r = await history.delete(f"{TE}/{CAR}/attrs/speed?deleteAll=maybe")
    assert_problem(r, 400, "BadRequestData")
    r = await history.delete(f"{TE}/not-a-uri")
    assert_problem(r, 400, "BadRequestData")
    assert await get(history, f"{TE}/{CAR}") == before


# -- tenants -------------------------------------------------------------------------------


async def test_tenants(client: httpx.AsyncClient) -> None:
    """6.3.? NGSILD-Tenant: history lives in its tenant; an unknown tenant is 404."""
    a = {"NGSILD-Tenant": "berkane"}
    r = await client.post(TE, json=car(speed(1, t(1))), headers=a)
    assert r.status_code == 201, r.text
    assert values((await get(client, f"{TE}/{CAR}", headers=a))["speed"]) == [1]
    assert_problem(await client.get(f"{TE}/{CAR}"), 404, "ResourceNotFound")
    r = await client.get(f"{TE}/{CAR}", headers={"NGSILD-Tenant": "oujda"})
    assert_problem(r, 404, "NonexistentTenant")
    r = await client.get(f"{TE}?type=Vehicle", headers={"NGSILD-Tenant": "oujda"})
    assert_problem(r, 404, "NonexistentTenant")
    assert ids(await get(client, f"{TE}?type=Vehicle", headers=a)) == [CAR]
    assert await get(client, f"{TE}?type=Vehicle") == []
