"""The temporal store (store/temporal.py) on every backend, through the ``store`` fixture.

History is what GS CIM 009 clause 5.7.3 (Query Temporal Evolution of Entities) and 5.7.4
read and clauses 5.6.11 to 5.6.16 (temporal entity operations) write. These tests check
the storage half: every change recorded with its transaction, windows, lastN and limits,
aggregation (clause 4.5.19) exact whether rollups or raw instances answer it, retention
and bulk import.
"""

from __future__ import annotations

import calendar
import math
import random
import re
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cityverse.core.errors import BadRequestData
from cityverse.core.geo import parse_geo_query
from cityverse.core.model import Entity, Instance
from cityverse.core.query import parse_q, parse_scope_q
from cityverse.store.base import Change, EntityFilter
from cityverse.store.history import INSTANCE_PREFIX, ms_of, now_ms, utc_of
from cityverse.store.temporal import ImportRow, Period, TimeWindow

SENSOR = "https://example.org/Sensor"
PUMP = "https://example.org/Pump"
TEMP = "https://example.org/temperature"
STATUS = "https://example.org/status"
LEVEL = "https://example.org/level"
DS = "urn:ngsi-ld:Dataset:backup"
HOUR = 3_600_000
DAY = 86_400_000
START = ms_of("2026-01-01T00:00:00.000Z")
ALL = frozenset({"totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq"})
NUMERIC = ALL - {"distinctCount"}


class _Warm:
    """A q-like predicate: the current temperature is above 18.5."""

    def matches(self, entity: Entity) -> bool:
        temps = entity.get("attrs", {}).get(TEMP, [])
        return bool(temps) and temps[0].get("value", 0) > 18.5


def at(ms: int) -> str:
    return utc_of(ms)


def prop(value: Any, observed: int | None, modified: int = START, **members: Any) -> Instance:
    instance: Instance = {
        "type": "Property",
        "value": value,
        "createdAt": at(START),
        "modifiedAt": at(modified),
        **members,
    }
    if observed is not None:
        instance["observedAt"] = at(observed)
    return instance


def entity(entity_id: str, attrs: dict[str, list[Instance]], *types: str, **more: Any) -> Entity:
    return {
        "id": entity_id,
        "type": list(types or (SENSOR,)),
        "createdAt": at(START),
        "modifiedAt": at(START),
        "attrs": attrs,
        **more,
    }


async def put(store: Any, new: Entity | None, entity_id: str | None = None) -> None:
    target = entity_id or (new["id"] if new else "")
    [outcome] = await store.mutate("", [Change(target, lambda current: new)])
    assert outcome.ok


async def update(store: Any, entity_id: str, attr: str, instances: list[Instance]) -> None:
    [outcome] = await store.mutate("", [Change(entity_id, _replacing(attr, instances))])
    assert outcome.ok


def _replacing(attr: str, instances: list[Instance]) -> Any:
    def apply(current: Entity | None) -> Entity:
        assert current is not None
        return {**current, "attrs": {**current["attrs"], attr: instances}}

    return apply


async def history(store: Any, entity_id: str, **window: Any) -> dict[str, Any]:
    return await store.instances(
        "", entity_id, None, TimeWindow(**window), last_n=None, limit=100_000
    )


def values(found: dict[str, Any], attr: str) -> list[Any]:
    return [i["value"] for i in found[attr].instances]


# -- recording every change ----------------------------------------------------------------


async def test_every_change_is_recorded(store: Any) -> None:
    """5.6.1 create, 5.6.2 update, 5.6.17 merge, 5.6.5 delete attribute, 5.6.6 delete."""
    sid = "urn:ngsi-ld:Sensor:1"
    await put(store, entity(sid, {TEMP: [prop(20, START)], STATUS: [prop("ok", START)]}))
    await update(store, sid, TEMP, [prop(21, START + HOUR, modified=START + HOUR)])
    await update(store, sid, TEMP, [prop(22, START + 2 * HOUR, modified=START + 2 * HOUR)])
    found = await history(store, sid)
    assert values(found, TEMP) == [20, 21, 22]
    assert values(found, STATUS) == ["ok"]  # not recorded again by the updates
    ids = [i["instanceId"] for i in found[TEMP].instances]
    assert len(set(ids)) == 3 and all(i.startswith(INSTANCE_PREFIX) for i in ids)
    assert found[TEMP].instances[1]["modifiedAt"] == at(START + HOUR)

    def drop_status(current: Entity | None) -> Entity:
        assert current is not None
        attrs = {k: v for k, v in current["attrs"].items() if k != STATUS}
        return {**current, "attrs": attrs, "modifiedAt": at(START + 3 * HOUR)}

    await store.mutate("", [Change(sid, drop_status)])
    deleted = await history(store, sid, prop="deletedAt")
    [gone] = deleted[STATUS].instances
    assert gone["value"] == "urn:ngsi-ld:null" and gone["deletedAt"] == at(START + 3 * HOUR)
    assert TEMP not in deleted

    await put(store, None, sid)
    entities = await store.history_entities("", EntityFilter(), limit=10)
    [only] = entities.entities
    assert only.id == sid and only.types == [SENSOR] and only.deleted_at is not None
    deleted = await history(store, sid, prop="deletedAt")
    assert [i["value"] for i in deleted[TEMP].instances] == ["urn:ngsi-ld:null"]
    # The observed history survives the deletion.
    assert values(await history(store, sid), TEMP) == [20, 21, 22]

    # Re-created, the entity is no longer deleted and its history goes on.
    await put(store, entity(sid, {TEMP: [prop(30, START + 5 * HOUR)]}))
    [again] = (await store.history_entities("", EntityFilter(), limit=10)).entities
    assert again.deleted_at is None
    assert values(await history(store, sid), TEMP) == [20, 21, 22, 30]


async def test_rejected_and_unchanged_changes_record_nothing(store: Any) -> None:
    sid = "urn:ngsi-ld:Sensor:2"
    await put(store, entity(sid, {TEMP: [prop(1, START)]}))

    def reject(current: Entity | None) -> Entity:
        raise BadRequestData("no")

    await store.mutate("", [Change(sid, reject), Change(sid, lambda current: current)])
    assert values(await history(store, sid), TEMP) == [1]


async def test_many_entities_in_one_batch(store: Any) -> None:
    """A batch upsert (5.6.8) records each entity's instances with the same commit."""
    changes = []
    for n in range(120):
        new = entity(f"urn:ngsi-ld:Sensor:b{n}", {TEMP: [prop(n, START + n)]})
        changes.append(Change(new["id"], lambda current, new=new: new))
    await store.mutate("", changes)
    page = await store.history_entities("", EntityFilter(), limit=None, count=True)
    assert page.total == 120
    found = await history(store, "urn:ngsi-ld:Sensor:b77")
    assert values(found, TEMP) == [77]
    buckets = await store.aggregate(
        "", "urn:ngsi-ld:Sensor:b77", None, TimeWindow(), None, frozenset({"sum"})
    )
    assert buckets[TEMP][0].values == {"sum": 77.0}


# -- reading windows -------------------------------------------------------------------------


async def _series_of(store: Any, count: int) -> str:
    sid = "urn:ngsi-ld:Sensor:w"
    rows = [
        ImportRow(sid, (SENSOR,), TEMP, START + n * 60_000, prop(n, None)) for n in range(count)
    ]
    assert await store.import_history("", rows) == count
    return sid


async def test_window_bounds_limit_and_last_n(store: Any) -> None:
    """5.7.3: timerel between [timeAt, endTimeAt); lastN; the per-attribute limit."""
    sid = await _series_of(store, 50)
    window = TimeWindow("observedAt", START + 10 * 60_000, START + 20 * 60_000)
    found = await store.instances("", sid, None, window, last_n=None, limit=100)
    assert values(found, TEMP) == list(range(10, 20))
    assert found[TEMP].total == 10

    cut = await store.instances("", sid, None, window, last_n=None, limit=4)
    assert values(cut, TEMP) == [10, 11, 12, 13]
    assert cut[TEMP].total == 10
    assert (cut[TEMP].first, cut[TEMP].last) == (START + 10 * 60_000, START + 13 * 60_000)

    last = await store.instances("", sid, None, TimeWindow(), last_n=3, limit=100)
    assert values(last, TEMP) == [47, 48, 49]  # the newest, oldest first
    assert last[TEMP].total == 50
    smaller = await store.instances("", sid, None, TimeWindow(), last_n=10, limit=2)
    assert values(smaller, TEMP) == [48, 49]

    # lastN counts each datasetId apart: the newest 3 of the default and of DS.
    await store.append_history(
        "",
        sid,
        [SENSOR],
        {TEMP: [prop(100 + n, START + n * 60_000, datasetId=DS) for n in (1, 30)]},
    )
    both = await store.instances("", sid, None, TimeWindow(), last_n=3, limit=100)
    assert [(i["value"], i.get("datasetId")) for i in both[TEMP].instances] == [
        (101, DS),
        (130, DS),
        (47, None),
        (48, None),
        (49, None),
    ]
    assert (both[TEMP].total, both[TEMP].wanted) == (52, 5)
    newest = await store.instances("", sid, None, TimeWindow(), last_n=3, limit=2)
    assert [i["value"] for i in newest[TEMP].instances] == [48, 49]
    assert newest[TEMP].wanted == 5

    empty = TimeWindow("observedAt", START - DAY, START)
    assert await store.instances("", sid, None, empty, last_n=None, limit=10) == {}
    assert await store.instances("", "urn:ngsi-ld:None", None, window, last_n=None, limit=9) == {}


async def test_datasets_and_attribute_selection(store: Any) -> None:
    sid = "urn:ngsi-ld:Sensor:d"
    await put(
        store,
        entity(
            sid,
            {
                TEMP: [prop(1, START), prop(2, START + 1, datasetId=DS)],
                LEVEL: [prop(5, START + 2)],
            },
        ),
    )
    await update(store, sid, TEMP, [prop(3, START + 3), prop(2, START + 1, datasetId=DS)])
    found = await store.instances("", sid, frozenset({TEMP}), TimeWindow(), last_n=None, limit=10)
    assert set(found) == {TEMP}
    assert [(i["value"], i.get("datasetId")) for i in found[TEMP].instances] == [
        (1, None),
        (2, DS),
        (3, None),
    ]
    buckets = await store.aggregate(
        "", sid, frozenset({TEMP}), TimeWindow(), None, frozenset({"totalCount"})
    )
    assert [(b.dataset_id, b.values["totalCount"]) for b in buckets[TEMP]] == [(None, 2), (DS, 1)]


async def test_windows_on_system_times(store: Any) -> None:
    """timeproperty=modifiedAt and createdAt select on those times (5.7.3)."""
    sid = "urn:ngsi-ld:Sensor:m"
    await put(store, entity(sid, {STATUS: [prop("a", None, modified=START)]}))
    await update(store, sid, STATUS, [prop("b", None, modified=START + HOUR)])
    await update(store, sid, STATUS, [prop("c", None, modified=START + 2 * HOUR)])
    assert await history(store, sid) == {}  # no observedAt: nothing on that axis
    found = await history(store, sid, prop="modifiedAt", start=START + HOUR)
    assert values(found, STATUS) == ["b", "c"]
    assert found[STATUS].first == START + HOUR
    created = await history(store, sid, prop="createdAt", end=START + 1)
    assert values(created, STATUS) == ["a", "b", "c"]
    counts = await store.aggregate(
        "", sid, None, TimeWindow("modifiedAt"), None, frozenset({"totalCount", "distinctCount"})
    )
    assert counts[STATUS][0].values == {"totalCount": 3, "distinctCount": 3}


async def test_history_entities_filters_and_pages(store: Any) -> None:
    for n in range(5):
        types = (SENSOR,) if n % 2 == 0 else (PUMP,)
        attrs = {TEMP: [prop(18 + n, START)]} if n < 4 else {LEVEL: [prop(1, START)]}
        await put(store, entity(f"urn:ngsi-ld:E:{n}", attrs, *types))
    await put(store, None, "urn:ngsi-ld:E:2")

    async def ids(flt: EntityFilter, **kw: Any) -> list[str]:
        page = await store.history_entities("", flt, limit=kw.pop("limit", 10), **kw)
        return [e.id for e in page.entities]

    assert await ids(EntityFilter()) == [f"urn:ngsi-ld:E:{n}" for n in range(5)]
    assert await ids(EntityFilter(type_names=frozenset({PUMP}))) == [
        "urn:ngsi-ld:E:1",
        "urn:ngsi-ld:E:3",
    ]
    assert await ids(EntityFilter(ids=frozenset({"urn:ngsi-ld:E:2", "x"}))) == ["urn:ngsi-ld:E:2"]
    assert await ids(EntityFilter(id_pattern=re.compile(r".*:[34]"))) == [
        "urn:ngsi-ld:E:3",
        "urn:ngsi-ld:E:4",
    ]
    assert await ids(EntityFilter(attrs=frozenset({LEVEL}))) == ["urn:ngsi-ld:E:4"]
    # Predicates test what the entities were: E:2 (temperature 20) is deleted.
    assert await ids(EntityFilter(predicates=(_Warm(),))) == [
        "urn:ngsi-ld:E:1",
        "urn:ngsi-ld:E:2",
        "urn:ngsi-ld:E:3",
    ]
    assert await ids(EntityFilter(predicates=(_Warm(),)), count=True, limit=1, offset=1) == [
        "urn:ngsi-ld:E:2"
    ]
    page = await store.history_entities("", EntityFilter(), limit=2, offset=1, count=True)
    assert [e.id for e in page.entities] == ["urn:ngsi-ld:E:1", "urn:ngsi-ld:E:2"]
    assert page.total == 5
    assert page.entities[1].deleted_at is not None
    assert (await store.history_entities("other", EntityFilter(), limit=5)).entities == []


# -- predicates on past states (store/states.py) ---------------------------------------------


def q(text: str) -> Any:
    return parse_q(text, lambda name: "https://example.org/" + name)


async def matching(store: Any, *predicates: Any, **window: Any) -> list[str]:
    page = await store.history_entities(
        "",
        EntityFilter(predicates=predicates),
        limit=10,
        window=TimeWindow(**window) if window else None,
    )
    return [e.id for e in page.entities]


async def test_q_matches_what_an_entity_was(store: Any) -> None:
    """5.7.4: q holds when a state the entity held in the window satisfies it; a deleted
    entity matches what it was, a window sees the states it overlaps."""
    a, b = "urn:ngsi-ld:Sensor:qa", "urn:ngsi-ld:Sensor:qb"
    await put(store, entity(a, {TEMP: [prop(15, START)]}))
    await update(store, a, TEMP, [prop(25, START + HOUR)])
    await update(store, a, TEMP, [prop(16, START + 2 * HOUR)])
    await put(store, None, a)
    await put(store, entity(b, {TEMP: [prop(19, START)]}))
    warm = q("temperature>20")
    assert await matching(store, warm) == [a]
    assert await matching(store, warm, start=START + HOUR, end=START + HOUR + 1) == [a]
    # 25 held from 01:00 until 02:00, so a window from 01:30 opens with it...
    assert await matching(store, warm, start=START + 90 * 60_000) == [a]
    # ... and one from 02:00 does not: 16 replaced it then.
    assert await matching(store, warm, start=START + 2 * HOUR) == []
    assert await matching(store, warm, end=START + HOUR) == []
    # b exists and matches now: the current entity answers for a window reaching today.
    assert await matching(store, q("temperature<20")) == [a, b]
    assert await matching(store, q("temperature<20"), end=START + 1) == [a, b]
    assert await matching(store, q("temperature==16"), prop="modifiedAt") == [a]
    # Deleted: a state after the deletion is empty and matches nothing, not even !attr.
    assert await matching(store, q("!temperature")) == []


async def test_predicates_read_states_not_instances(store: Any) -> None:
    """A state holds every attribute's latest instance: a q over two attributes, one
    without observedAt (placed at its modifiedAt), tests them together."""
    car = "urn:ngsi-ld:Vehicle:s"
    await put(
        store,
        entity(
            car,
            {TEMP: [prop(10, START)], STATUS: [prop("parked", None, modified=START)]},
        ),
    )
    await update(store, car, STATUS, [prop("moving", None, modified=START + HOUR)])
    await update(store, car, TEMP, [prop(30, START + 2 * HOUR, modified=START + 2 * HOUR)])
    await update(store, car, STATUS, [prop("parked", None, modified=START + 3 * HOUR)])
    hot_moving = q('temperature>20;status=="moving"')
    assert await matching(store, hot_moving) == [car]
    assert await matching(store, hot_moving, end=START + 2 * HOUR) == []
    assert await matching(store, hot_moving, start=START + 3 * HOUR) == []
    assert await matching(store, q('temperature<20;status=="moving"')) == [car]
    assert await matching(store, q('temperature>20;status=="parked"')) == [car]
    # The current entity (30, parked) answers a window reaching now.
    assert await matching(store, q('temperature>20;status=="parked"'), start=START) == [car]


async def test_numeric_q_asked_of_the_store_first_keeps_its_meaning(store: Any) -> None:
    """A numeric q term is first tested in SQL on the window's numbers; that test only
    ever rules out, so the reading before the window, values held in no number column
    (a JsonProperty's number, a string) and ranges still match as they should."""
    opened = "urn:ngsi-ld:Sensor:n-opened"  # 35 before the window, then cooler inside
    large = "urn:ngsi-ld:Sensor:n-large"  # 40 inside, as a JsonProperty
    text = "urn:ngsi-ld:Sensor:n-text"  # "hot" inside: not a number, never > 30
    cool = "urn:ngsi-ld:Sensor:n-cool"
    ranged = "urn:ngsi-ld:Sensor:n-range"  # 33.5 inside
    readings = {
        opened: [35, 20, 21],
        large: [20, {"type": "JsonProperty", "json": 40}, 21],
        text: [20, "hot", 21],
        cool: [20, 25, 30],
        ranged: [20, 33.5, 21],
    }
    for sensor, values in readings.items():
        await store.append_history(
            "",
            sensor,
            [SENSOR],
            {TEMP: [_reading(v, START + n * HOUR) for n, v in enumerate(values)]},
        )
    window = {"start": START + HOUR - 1, "end": START + 3 * HOUR}
    assert await matching(store, q("temperature>30"), **window) == [opened, large, ranged]
    later = {"start": START + HOUR + 1, "end": START + 3 * HOUR}
    assert await matching(store, q("temperature>30"), **later) == [large, ranged]
    assert await matching(store, q("temperature>34"), **window) == [opened, large]
    assert await matching(store, q("temperature==33..34"), **window) == [ranged]
    assert await matching(store, q("temperature<=20;temperature>19"), **window) == [
        opened,
        large,
        text,
        cool,
        ranged,
    ]
    assert await matching(store, q('temperature=="hot"'), **window) == [text]
    assert await matching(store, q("temperature>1e30"), **window) == []


def _reading(value: Any, observed: int) -> Instance:
    if isinstance(value, dict):
        return {**value, "observedAt": at(observed)}
    return prop(value, observed)


def test_screens_are_the_numeric_terms_every_state_needs() -> None:
    from cityverse.store.states import screens_of

    root = q('temperature>1;(status<2|level==3);level.unit>4;status=="x";level==1..5')
    screens = screens_of([root])
    assert [(s.attr, s.condition, s.params) for s in screens] == [
        (TEMP, "num > ?", (1,)),
        (LEVEL, "num BETWEEN ? AND ?", (1, 5)),
    ]
    assert screens_of([q("temperature>1|level<2"), q("temperature==true")]) == ()


async def test_q_on_instance_times(store: Any) -> None:
    """A q that reads an instance's observedAt tells apart states of equal values."""
    sid = "urn:ngsi-ld:Sensor:t"
    await store.append_history(
        "",
        sid,
        [SENSOR],
        {TEMP: [prop(15, START), prop(20, START + HOUR), prop(15, START + 2 * HOUR)]},
    )
    late = f"temperature==15;temperature.observedAt>={at(START + 2 * HOUR)}"
    assert await matching(store, q(late)) == [sid]
    assert await matching(store, q(late), end=START + 2 * HOUR) == []
    assert await matching(store, q(f"temperature.observedAt>{at(START + 2 * HOUR)}")) == []


async def test_geo_scope_and_datasets_on_history(store: Any) -> None:
    """Geo-queries test the locations an entity had, scopeQ its scope, and each
    datasetId is a part of the state of its own."""
    bin_ = "urn:ngsi-ld:WasteContainer:1"
    here = {"type": "Point", "coordinates": [-2.0, 34.7]}
    there = {"type": "Point", "coordinates": [-1.0, 34.7]}
    loc = "https://example.org/location"

    def place(point: dict[str, Any], at: int) -> Instance:
        return {"type": "GeoProperty", "value": point, "observedAt": utc_of(at)}

    await put(store, entity(bin_, {loc: [place(here, START)]}, scope=["/Oujda"]))
    await update(store, bin_, loc, [place(there, START + HOUR)])
    await update(store, bin_, TEMP, [prop(5, START + HOUR), prop(50, START + HOUR, datasetId=DS)])
    await put(store, None, bin_)
    near_here = parse_geo_query("near;maxDistance==1000", "Point", "[-2.0,34.7]", loc)
    assert await matching(store, near_here) == [bin_]
    assert await matching(store, near_here, start=START + HOUR) == []
    assert await matching(store, parse_scope_q("/Oujda")) == [bin_]
    assert await matching(store, parse_scope_q("/Berkane")) == []
    assert await matching(store, q("temperature>40")) == [bin_]
    assert await matching(store, q("temperature>40"), end=START + HOUR) == []
    assert await matching(store, q("temperature.datasetId==" + repr(DS).replace("'", '"'))) == [
        bin_
    ]


async def test_q_on_entities_known_only_by_history(store: Any) -> None:
    """An entity written only through the temporal API matches by its instances."""
    sid = "urn:ngsi-ld:Sensor:only"
    await store.append_history(
        "", sid, [SENSOR], {TEMP: [prop(1, START), prop(40, START + HOUR), prop(2, START + DAY)]}
    )
    assert await store.get("", sid) is None
    assert await matching(store, q("temperature>30")) == [sid]
    assert await matching(store, q("temperature>30"), start=START + DAY) == []
    # 40 held from 01:00 until the next day's 2.
    assert await matching(store, q("temperature>30"), start=START + 2 * HOUR) == [sid]
    assert await matching(store, q("temperature>30"), end=START + HOUR) == []


# -- temporal operations ----------------------------------------------------------------------


async def test_append_history_leaves_the_current_entity_alone(store: Any) -> None:
    """5.6.11 Create or Update Temporal Representation of an Entity."""
    sid = "urn:ngsi-ld:Sensor:a"
    await store.append_history("", sid, [SENSOR], {TEMP: [prop(1, START), prop(2, START + 1)]})
    await store.append_history("", sid, [PUMP], {LEVEL: [prop(7, START)]})
    assert await store.get("", sid) is None
    [known] = (await store.history_entities("", EntityFilter(), limit=5)).entities
    assert known.types == [SENSOR, PUMP]
    found = await history(store, sid)
    assert values(found, TEMP) == [1, 2] and values(found, LEVEL) == [7]
    assert "" in await store.tenants()


async def test_delete_history(store: Any) -> None:
    """5.6.12 Delete Temporal Entity, 5.6.14 Delete Temporal Entity Attribute."""
    sid = "urn:ngsi-ld:Sensor:x"
    attrs = {
        TEMP: [prop(1, START), prop(2, START, datasetId=DS)],
        LEVEL: [prop(3, START)],
        STATUS: [prop("s", START)],
    }
    await store.append_history("", sid, [SENSOR], attrs)
    assert await store.delete_history("", sid, TEMP, dataset_id=DS)
    assert [i.get("datasetId") for i in (await history(store, sid))[TEMP].instances] == [None]
    assert not await store.delete_history("", sid, TEMP, dataset_id=DS)
    assert await store.delete_history("", sid, TEMP)
    assert await store.delete_history("", sid, LEVEL, delete_all=True)
    assert set(await history(store, sid)) == {STATUS}
    assert await store.delete_history("", sid)
    assert not await store.delete_history("", sid)
    assert (await store.history_entities("", EntityFilter(), limit=5)).entities == []


async def test_modify_and_delete_an_instance(store: Any) -> None:
    """5.6.15 Modify Attribute instance (instanceId kept), 5.6.16 Delete Attribute instance."""
    sid = await _series_of(store, 5)
    before = (await history(store, sid))[TEMP].instances
    target = before[2]["instanceId"]
    changed = prop(100, START + 10 * DAY, unitCode="CEL")
    del changed["createdAt"]
    assert await store.modify_instance("", sid, TEMP, target, changed)
    after = (await history(store, sid))[TEMP].instances
    assert [i["value"] for i in after] == [0, 1, 3, 4, 100]
    assert after[-1]["instanceId"] == target and after[-1]["unitCode"] == "CEL"
    assert after[-1]["createdAt"] == before[2]["createdAt"]
    assert await store.delete_instance("", sid, TEMP, before[0]["instanceId"])
    assert not await store.delete_instance("", sid, TEMP, before[0]["instanceId"])
    assert not await store.delete_instance("", sid, LEVEL, before[1]["instanceId"])
    assert not await store.modify_instance("", sid, TEMP, "urn:other:1", changed)
    assert not await store.modify_instance("", "urn:none", TEMP, target, changed)
    assert values(await history(store, sid), TEMP) == [1, 3, 4, 100]
    # Numbers are never given out twice, even after a deletion.
    await store.append_history("", sid, [SENSOR], {TEMP: [prop(5, START + 20 * DAY)]})
    ids = [i["instanceId"] for i in (await history(store, sid))[TEMP].instances]
    assert before[0]["instanceId"] not in ids and len(set(ids)) == 5


async def test_retention_by_type(store: Any) -> None:
    now = START + 100 * DAY
    for name, kind in (("s", SENSOR), ("p", PUMP)):
        rows = [
            ImportRow(f"urn:ngsi-ld:{name}", (kind,), TEMP, START + d * DAY + 3_333, prop(d, None))
            for d in range(100)
        ]
        await store.import_history("", rows)
    await put(store, entity("urn:ngsi-ld:gone", {TEMP: [prop(1, START)]}))
    await put(store, None, "urn:ngsi-ld:gone")
    removed = await store.apply_retention("", {SENSOR: 10 * DAY, "*": 50 * DAY}, now)
    sensor = values(await history(store, "urn:ngsi-ld:s"), TEMP)
    pump = values(await history(store, "urn:ngsi-ld:p"), TEMP)
    assert sensor == list(range(90, 100)) and pump == list(range(50, 100))
    # The deleted entity's observation expired; its deletion (recorded now) did not.
    assert removed == 90 + 50 + 1
    gone = await history(store, "urn:ngsi-ld:gone", prop="deletedAt")
    assert [i["value"] for i in gone[TEMP].instances] == ["urn:ngsi-ld:null"]
    for name, first in (("s", 90), ("p", 50)):
        [bucket] = (
            await store.aggregate(
                "",
                f"urn:ngsi-ld:{name}",
                None,
                TimeWindow(),
                None,
                frozenset({"min", "totalCount"}),
            )
        )[TEMP]
        assert bucket.values == {"min": float(first), "totalCount": 100 - first}
    assert await store.apply_retention("", {}, now) == 0


async def test_import_in_several_chunks(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    module = type(store).__mro__[1].__module__
    monkeypatch.setattr(f"{module}.IMPORT_CHUNK", 7)
    rows = [
        ImportRow(
            f"urn:ngsi-ld:Sensor:{n % 3}",
            (SENSOR,),
            TEMP,
            START + n * 600_000,
            prop(n, None),
            DS if n % 5 == 0 else None,
        )
        for n in range(40)
    ]
    assert await store.import_history("", iter(rows)) == 40
    found = await history(store, "urn:ngsi-ld:Sensor:1")
    assert values(found, TEMP) == [n for n in range(40) if n % 3 == 1]
    backups = [n for n in range(40) if n % 3 == 1 and n % 5 == 0]
    assert [i["value"] for i in found[TEMP].instances if i.get("datasetId") == DS] == backups
    assert await store.import_history("", []) == 0


async def test_import_keeps_the_times_instances_give(store: Any) -> None:
    """Instances with their own createdAt/modifiedAt keep them; the others get the
    import's time (one chunk holding both kinds)."""
    plain = {"type": "Property", "value": 0}
    rows = [
        ImportRow(
            "urn:ngsi-ld:Sensor:t",
            (SENSOR,),
            TEMP,
            START + n * 60_000,
            prop(n, None, START + n) if n % 2 else {**plain, "value": n},
        )
        for n in range(6)
    ]
    before = at(now_ms() - 1000)
    assert await store.import_history("", rows) == 6
    found = (await history(store, "urn:ngsi-ld:Sensor:t"))[TEMP].instances
    assert [i["value"] for i in found] == list(range(6))
    for n, instance in enumerate(found):
        if n % 2:
            assert instance["createdAt"] == at(START) and instance["modifiedAt"] == at(START + n)
        else:
            assert instance["createdAt"] >= before and instance["modifiedAt"] >= before
    assert len({i["instanceId"] for i in found}) == 6


async def test_an_interrupted_import_keeps_whole_chunks(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = type(store).__mro__[1].__module__
    monkeypatch.setattr(f"{module}.IMPORT_CHUNK", 10)

    def rows() -> Any:
        for n in range(25):
            yield ImportRow("urn:ngsi-ld:Sensor:i", (SENSOR,), TEMP, START + n, prop(n, None))
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="went away"):
        await store.import_history("", rows())
    assert values(await history(store, "urn:ngsi-ld:Sensor:i"), TEMP) == list(range(20))
    [bucket] = (
        await store.aggregate(
            "", "urn:ngsi-ld:Sensor:i", None, TimeWindow(), None, frozenset({"totalCount"})
        )
    )[TEMP]
    assert bucket.values == {"totalCount": 20}


# -- aggregation, exact whether rollups or raw instances answer -----------------------------


def _months(t: int, k: int) -> int:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=t)
    index = moment.year * 12 + moment.month - 1 + k
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    moved = moment.replace(year=year, month=month + 1, day=day)
    return (moved - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _inside(points: list[tuple[int, Any]], window: TimeWindow) -> list[tuple[int, Any]]:
    return [
        (t, v)
        for t, v in points
        if (window.start is None or t >= window.start) and (window.end is None or t < window.end)
    ]


def _reference(
    points: list[tuple[int, Any]],
    window: TimeWindow,
    period: Period | None,
    methods: frozenset[str],
    span: tuple[int, int],
) -> list[tuple[int, dict[str, Any]]]:
    """The aggregation computed from the raw instances, independently of the store.
    Without window bounds, periods span the attribute's instances (every datasetId):
    ``span`` is their first and last time."""
    inside = _inside(points, window)
    if not inside:
        return []
    start = window.start if window.start is not None else span[0]
    end = window.end if window.end is not None else span[1] + 1
    bounds = []
    k = 0
    while True:
        if period is None:
            a, b = start, end
        else:
            a = _months(start + k * period.millis, k * period.months)
            b = _months(start + (k + 1) * period.millis, (k + 1) * period.months)
        if a >= end:
            break
        bounds.append((a, b))
        if period is None:
            break
        k += 1
    out = []
    for a, b in bounds:
        chosen = [v for t, v in inside if a <= t < b]
        if not chosen:
            continue
        nums = [float(v) for v in chosen if type(v) in (int, float)]
        row: dict[str, Any] = {}
        for method in methods:
            if method == "totalCount":
                row[method] = len(chosen)
            elif method == "distinctCount":
                row[method] = len({(type(v) in (int, float), v) for v in chosen})
            elif not nums:
                row[method] = None
            elif method == "sum":
                row[method] = math.fsum(nums)
            elif method == "avg":
                row[method] = math.fsum(nums) / len(nums)
            elif method == "min":
                row[method] = min(nums)
            elif method == "max":
                row[method] = max(nums)
            elif method == "sumsq":
                row[method] = math.fsum(v * v for v in nums)
            elif method == "stddev":
                row[method] = statistics.stdev(nums) if len(nums) > 1 else None
        out.append((a, row))
    return out


async def _points(store: Any, entity_id: str) -> dict[str | None, list[tuple[int, Any]]]:
    found = await store.instances("", entity_id, None, TimeWindow(), last_n=None, limit=10**6)
    series: dict[str | None, list[tuple[int, Any]]] = {}
    for instance in found.get(TEMP, type("E", (), {"instances": []})()).instances:
        series.setdefault(instance.get("datasetId"), []).append(
            (ms_of(instance["observedAt"]), instance["value"])
        )
    return series


QUERIES = [
    (TimeWindow(), Period(millis=DAY)),
    (TimeWindow("observedAt", START, START + 40 * DAY), Period(millis=DAY)),
    (TimeWindow("observedAt", START + 5 * HOUR + 17, START + 33 * DAY + 7), Period(millis=DAY)),
    (TimeWindow("observedAt", START + 1234567, None), Period(millis=6 * HOUR)),
    (TimeWindow("observedAt", START, START + 20 * DAY), Period(millis=HOUR)),
    (TimeWindow("observedAt", START + 3 * DAY, START + 9 * DAY), Period(millis=15 * 60_000)),
    (TimeWindow("observedAt", None, START + 50 * DAY + 5), Period(months=1)),
    (TimeWindow("observedAt", START + 7 * HOUR, START + 70 * DAY), Period(months=1, millis=DAY)),
    (TimeWindow("observedAt", START + 2 * DAY + 1, START + 61 * DAY - 1), None),
    (TimeWindow(), None),
    (TimeWindow("observedAt", START, START + 80 * DAY), Period(millis=7 * DAY)),
]


async def _check_exact(store: Any, entity_id: str, queries: list[Any] = QUERIES) -> None:
    points = await _points(store, entity_id)
    for window, period in queries:
        times = [t for series in points.values() for t, _ in _inside(series, window)]
        span = (min(times), max(times)) if times else (0, 0)
        # The count of a window (for Content-Range) comes from the rollups too.
        found = await store.instances("", entity_id, None, window, last_n=2, limit=1)
        assert (found[TEMP].total if found else 0) == len(times), window
        for methods in (NUMERIC, ALL):
            got = await store.aggregate("", entity_id, None, window, period, methods)
            buckets = got.get(TEMP, [])
            for dataset, series in points.items():
                mine = [(b.start, b.values) for b in buckets if b.dataset_id == dataset]
                expected = _reference(series, window, period, methods, span)
                assert [s for s, _ in mine] == [s for s, _ in expected], (window, period)
                for (_, value), (_, want) in zip(mine, expected, strict=True):
                    assert value.keys() == want.keys()
                    for method, figure in want.items():
                        if figure is None or isinstance(figure, int):
                            assert value[method] == figure, (method, window, period)
                        else:
                            assert value[method] == pytest.approx(figure, rel=1e-9, abs=1e-9)
            if period is not None and period.months == 0:
                for bucket in buckets:
                    assert bucket.end - bucket.start == period.millis


def _random_value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(["high", "low"])
    if roll < 0.3:
        return rng.randint(-50, 50)
    return round(rng.uniform(-20, 40), rng.choice([1, 3, 6]))


@pytest.mark.parametrize("seed", [1, 2])
async def test_aggregation_is_exact_through_every_kind_of_write(store: Any, seed: int) -> None:
    """Rollup-backed answers equal a raw computation after import, late live data,
    appended history, modified and deleted instances and retention (4.5.19)."""
    rng = random.Random(seed)
    sid = "urn:ngsi-ld:Sensor:agg"
    rows = []
    for _ in range(700):
        t = START + rng.randrange(0, 75 * DAY)
        dataset = DS if rng.random() < 0.2 else None
        rows.append(ImportRow(sid, (SENSOR,), TEMP, t, prop(_random_value(rng), None), dataset))
    await store.import_history("", rows)
    await _check_exact(store, sid)

    # Late data through the live path (the current entity exists only from now on).
    await put(store, entity(sid, {TEMP: [prop(1.5, START + 10 * DAY + 5)]}))
    for n in range(30):
        late = START + rng.randrange(0, 75 * DAY)
        await update(store, sid, TEMP, [prop(_random_value(rng), late, modified=START + n)])
    # Many changes in one call (a batch, or IoT measures) take the bulk path.
    batch = [
        [prop(_random_value(rng), START + rng.randrange(0, 75 * DAY), modified=START + 30 + n)]
        for n in range(40)
    ]
    await store.mutate("", [Change(sid, _replacing(TEMP, instances)) for instances in batch])
    await store.append_history(
        "", sid, [SENSOR], {TEMP: [prop(rng.uniform(0, 9), START + rng.randrange(0, 60 * DAY))]}
    )
    found = (await history(store, sid))[TEMP].instances
    for instance in rng.sample(found, 15):
        moved = prop(_random_value(rng), START + rng.randrange(0, 75 * DAY))
        if "datasetId" in instance:
            moved["datasetId"] = instance["datasetId"]
        assert await store.modify_instance("", sid, TEMP, instance["instanceId"], moved)
    for instance in rng.sample(found, 15):
        await store.delete_instance("", sid, TEMP, instance["instanceId"])
    await _check_exact(store, sid)

    cut_at = START + 90 * DAY
    await store.apply_retention("", {SENSOR: 70 * DAY + 3 * HOUR + 99}, cut_at)
    assert min(t for s in (await _points(store, sid)).values() for t, _ in s) >= cut_at - (
        70 * DAY + 3 * HOUR + 99
    )
    await _check_exact(store, sid)


async def test_non_numeric_values_count_only(store: Any) -> None:
    sid = "urn:ngsi-ld:Sensor:s"
    rows = [
        ImportRow(sid, (SENSOR,), STATUS, START + n * HOUR, prop(word, None))
        for n, word in enumerate(["on", "off", "on", "on", True])
    ]
    await store.import_history("", rows)
    [bucket] = (await store.aggregate("", sid, None, TimeWindow(), Period(millis=DAY), ALL))[STATUS]
    assert bucket.values["totalCount"] == 5 and bucket.values["distinctCount"] == 3
    assert all(bucket.values[m] is None for m in ("sum", "avg", "min", "max", "stddev", "sumsq"))
    assert bucket.start == START and bucket.end == START + DAY


async def test_aggregation_before_1970(store: Any) -> None:
    sid = "urn:ngsi-ld:Sensor:old"
    first = -5 * DAY - 7
    rows = [ImportRow(sid, (SENSOR,), TEMP, first + n * 5 * HOUR, prop(n, None)) for n in range(40)]
    await store.import_history("", rows)
    queries = [
        (TimeWindow("observedAt", -6 * DAY, 6 * DAY), Period(millis=DAY)),
        (TimeWindow(), Period(millis=HOUR * 3)),
    ]
    await _check_exact(store, sid, queries)


async def test_names_postgres_cannot_hold_are_refused(store: Any) -> None:
    sid = "urn:ngsi-ld:Sensor:\x00"
    try:
        await store.append_history("", sid, [SENSOR], {TEMP: [prop(1, START)]})
    except BadRequestData:
        return
    assert values(await history(store, sid), TEMP) == [1]


# -- the SQLite writer's memory of history rows ----------------------------------------------


async def test_sqlite_writers_sharing_a_file_see_each_others_deletions(tmp_path: Any) -> None:
    """Two server processes on one file: what one deletes, the other's writer no longer
    takes for granted (its live writes land in new series, none lost or misfiled)."""
    from cityverse.store.sqlite import SqliteStore

    first, second = SqliteStore(tmp_path / "shared.db"), SqliteStore(tmp_path / "shared.db")
    await first.open()
    await second.open()
    try:
        ids = [f"urn:ngsi-ld:Sensor:m{n}" for n in range(12)]

        async def write(store: Any, value: int) -> None:
            changes = [
                Change(i, lambda cur, i=i: entity(i, {TEMP: [prop(value, START + value)]}))
                for i in ids
            ]
            assert all(o.ok for o in await store.mutate("", changes))

        await write(first, 1)
        await write(first, 2)
        assert await second.delete_history("", ids[0])
        assert await second.delete_history("", ids[1], TEMP)
        await write(first, 3)
        for store in (first, second):
            assert values(await history(store, ids[0]), TEMP) == [3]
            assert values(await history(store, ids[1]), TEMP) == [3]
            assert values(await history(store, ids[2]), TEMP) == [1, 2, 3]
            buckets = await store.aggregate(
                "", ids[0], None, TimeWindow(), None, frozenset({"sum", "totalCount"})
            )
            assert buckets[TEMP][0].values == {"sum": 3.0, "totalCount": 1}
    finally:
        await first.close()
        await second.close()


async def test_sqlite_writer_forgets_rows_a_failed_write_rolled_back(tmp_path: Any) -> None:
    """A write that fails after recording history leaves no series the writer would
    reuse: the next write of the same entities records its instances."""
    from cityverse.store.sqlite import SqliteStore
    from cityverse.store.sqlite_temporal import Known

    store = SqliteStore(tmp_path / "rollback.db")
    await store.open()
    try:
        ids = [f"urn:ngsi-ld:Sensor:r{n}" for n in range(12)]
        changes = [Change(i, lambda cur, i=i: entity(i, {TEMP: [prop(5, START)]})) for i in ids]

        def fail_after(conn: Any) -> None:
            from cityverse.store.sqlite import _mutate

            _mutate(conn, "", changes)
            assert isinstance(conn.known, Known) and conn.known.sids
            raise RuntimeError("the write fails after its history was recorded")

        with pytest.raises(RuntimeError):
            await store._write(fail_after)
        assert await store.get("", ids[0]) is None
        assert all(o.ok for o in await store.mutate("", changes))
        assert values(await history(store, ids[7]), TEMP) == [5]
        page = await store.history_entities("", EntityFilter(), limit=None, count=True)
        assert page.total == 12
    finally:
        await store.close()
