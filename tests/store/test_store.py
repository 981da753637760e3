"""The store protocol, run on every backend through the parametrised ``store`` fixture.

The store is where the entity operations of GS CIM 009 clause 5.6 (create, update,
delete, batch) become durable and where clause 5.7.2 (Query Entities) reads from.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from cityverse.core.errors import AlreadyExists, BadRequestData, NgsiError, ResourceNotFound
from cityverse.core.model import DEFAULT_CONTEXT_VOCAB, LOCATION, Entity
from cityverse.store.base import (
    DEFAULT_TENANT,
    Change,
    EntityFilter,
    EntityStore,
    Mutation,
    open_store,
)
from cityverse.store.postgres import PostgresStore
from cityverse.store.sqlite import SqliteStore

PIPE = "https://smartdatamodels.org/dataModel.WaterDistributionManagementEPANET/Pipe"
JUNCTION = "https://smartdatamodels.org/dataModel.WaterDistributionManagementEPANET/Junction"
TANK = "https://smartdatamodels.org/dataModel.WaterDistributionManagementEPANET/Tank"
DIAMETER = DEFAULT_CONTEXT_VOCAB + "diameter"
NAME = DEFAULT_CONTEXT_VOCAB + "name"
NOW = "2026-11-21T08:31:26.123Z"


# -- helpers: entities in the stored shape of core/model.py -----------------------------


def prop(value: Any, **members: Any) -> list[dict[str, Any]]:
    """A single-instance Property."""
    return [{"type": "Property", "value": value, "createdAt": NOW, "modifiedAt": NOW, **members}]


def point(lon: float, lat: float) -> list[dict[str, Any]]:
    """A single-instance GeoProperty holding a Point."""
    return [{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}]


def entity(entity_id: str, *types: str, **attrs: list[dict[str, Any]]) -> Entity:
    """An entity; keyword names are attribute names in the default context vocabulary."""
    expanded = {
        name if name.startswith("http") else DEFAULT_CONTEXT_VOCAB + name: value
        for name, value in attrs.items()
    }
    return {
        "id": entity_id,
        "type": list(types or (PIPE,)),
        "createdAt": NOW,
        "modifiedAt": NOW,
        "attrs": expanded,
    }


def located(entity_id: str, lon: float, lat: float) -> Entity:
    """An entity with a location."""
    return entity(entity_id, JUNCTION, **{LOCATION: point(lon, lat)})


def put(new: Entity) -> Mutation:
    """A change that stores ``new`` whatever is there."""
    return lambda current: new


def create(new: Entity) -> Mutation:
    """A change that creates ``new``, rejecting it if the id exists (5.6.1)."""

    def apply(current: Entity | None) -> Entity:
        if current is not None:
            raise AlreadyExists(f"{new['id']} already exists")
        return new

    return apply


def set_attr(name: str, value: Any) -> Mutation:
    """A change that sets one attribute of an existing entity (5.6.4)."""

    def apply(current: Entity | None) -> Entity:
        if current is None:
            raise ResourceNotFound("no such entity")
        return {**current, "attrs": {**current["attrs"], name: prop(value)}}

    return apply


def increment(current: Entity | None) -> Entity:
    """A change that adds one to the entity's name, a counter."""
    assert current is not None
    count = current["attrs"][NAME][0]["value"]
    return {**current, "attrs": {**current["attrs"], NAME: prop(count + 1)}}


def delete(current: Entity | None) -> None:
    """A change that deletes the entity."""
    return None


def keep(current: Entity | None) -> Entity | None:
    """A change that leaves the entity exactly as it is."""
    return current


async def create_all(store: EntityStore, entities: list[Entity], tenant: str = "") -> None:
    """Create entities in one call and check that every one was applied."""
    outcomes = await store.mutate(tenant, [Change(e["id"], put(e)) for e in entities])
    assert [o.error for o in outcomes] == [None] * len(entities)


class ValueAbove:
    """A predicate the store does not understand: attribute value above a bound."""

    def __init__(self, name: str, bound: float) -> None:
        self.name, self.bound = name, bound

    def matches(self, entity: Entity) -> bool:
        instances = entity["attrs"].get(self.name)
        return bool(instances) and instances[0].get("value", 0) > self.bound


def ids(entities: list[Entity]) -> list[str]:
    return [e["id"] for e in entities]


# -- create, read, update, delete -------------------------------------------------------


async def test_create_then_retrieve(store: EntityStore) -> None:
    """5.6.1 Create Entity, then 5.7.1 Retrieve Entity returns it unchanged."""
    pipe = entity("urn:ngsi-ld:Pipe:1", diameter=prop(203.0, unitCode="MMT"), name=prop("P1"))
    [outcome] = await store.mutate("", [Change(pipe["id"], create(pipe))])
    assert outcome.ok and outcome.old is None and outcome.new == pipe
    assert await store.get("", pipe["id"]) == pipe
    assert await store.get("", "urn:ngsi-ld:Pipe:missing") is None


async def test_create_existing_is_rejected(store: EntityStore) -> None:
    """5.6.1 Create Entity: an existing id gives AlreadyExists and leaves it unchanged."""
    first = entity("urn:ngsi-ld:Pipe:1", name=prop("first"))
    await create_all(store, [first])
    [outcome] = await store.mutate("", [Change(first["id"], create(entity(first["id"])))])
    assert isinstance(outcome.error, AlreadyExists)
    assert outcome.old == first and outcome.new is None
    assert await store.get("", first["id"]) == first


async def test_update_sees_current_and_keeps_creation_order(store: EntityStore) -> None:
    """5.6.4 Partial Attribute Update reads the stored entity; 5.7.2 order is unchanged."""
    await create_all(store, [entity(f"urn:ngsi-ld:Pipe:{i}", diameter=prop(i)) for i in range(3)])
    [outcome] = await store.mutate("", [Change("urn:ngsi-ld:Pipe:0", set_attr(DIAMETER, 99))])
    assert outcome.ok
    assert outcome.old is not None and outcome.old["attrs"][DIAMETER][0]["value"] == 0
    stored = await store.get("", "urn:ngsi-ld:Pipe:0")
    assert stored is not None and stored["attrs"][DIAMETER][0]["value"] == 99
    page = await store.query("", EntityFilter(), limit=None)
    assert ids(page.entities) == [f"urn:ngsi-ld:Pipe:{i}" for i in range(3)]


async def test_type_change_is_seen_by_type_query(store: EntityStore) -> None:
    """5.6.2 an update that changes the types moves the entity between type queries."""
    await create_all(store, [entity("urn:a", PIPE)])
    await store.mutate("", [Change("urn:a", put(entity("urn:a", TANK, JUNCTION)))])
    pipes = await store.query("", EntityFilter(type_names=frozenset({PIPE})), limit=None)
    tanks = await store.query("", EntityFilter(type_names=frozenset({TANK})), limit=None)
    assert pipes.entities == [] and ids(tanks.entities) == ["urn:a"]


async def test_delete(store: EntityStore) -> None:
    """5.6.6 Delete Entity removes it from retrieval and queries."""
    await create_all(store, [entity("urn:a"), entity("urn:b")])
    [outcome] = await store.mutate("", [Change("urn:a", delete)])
    assert outcome.ok and outcome.old is not None and outcome.new is None
    assert await store.get("", "urn:a") is None
    page = await store.query("", EntityFilter(type_names=frozenset({PIPE})), limit=None)
    assert ids(page.entities) == ["urn:b"]


async def test_delete_missing_is_a_no_op(store: EntityStore) -> None:
    """5.6.6 Delete Entity of an absent id: nothing stored, and no tenant is created."""
    [outcome] = await store.mutate("ghost", [Change("urn:none", delete)])
    assert outcome.ok and outcome.old is None and outcome.new is None
    assert await store.get("ghost", "urn:none") is None
    assert "ghost" not in await store.tenants()


async def test_identity_result_writes_nothing(store: EntityStore) -> None:
    """5.6.4 an update that changes nothing leaves the stored entity as it was."""
    pipe = entity("urn:a", name=prop("x"))
    await create_all(store, [pipe])
    [outcome] = await store.mutate("", [Change("urn:a", keep)])
    assert outcome.ok and outcome.old == pipe and outcome.new is outcome.old
    assert await store.get("", "urn:a") == pipe


async def test_large_document_round_trip(store: EntityStore) -> None:
    """5.6.1 an entity is stored exactly, however large and whatever its characters."""
    big = entity(
        "urn:big",
        text=prop('ü€𝄞 "quoted" \\ ' * 20_000),
        numbers=prop([1.5, -0.0, 1e300, 2**62, None, True]),
        nested=prop({"a": {"b": [{"c": []}]}}),
    )
    await create_all(store, [big])
    assert await store.get("", "urn:big") == big


async def test_nul_character_is_stored_or_rejected_alone(store: EntityStore) -> None:
    """5.6.7 a value a backend cannot hold fails its own change with BadRequestData."""
    odd = entity("urn:odd", name=prop("a\x00b"))
    plain = entity("urn:plain")
    outcomes = await store.mutate(
        "", [Change("urn:odd", put(odd)), Change("urn:plain", put(plain))]
    )
    assert outcomes[1].ok and await store.get("", "urn:plain") == plain
    if outcomes[0].ok:
        assert await store.get("", "urn:odd") == odd
    else:
        assert isinstance(outcomes[0].error, BadRequestData)
        assert await store.get("", "urn:odd") is None


# -- batches: one call, many changes ----------------------------------------------------


async def test_errors_are_isolated_per_change(store: EntityStore) -> None:
    """5.6.7 Batch Entity Creation: a failing entity is reported alone, the others apply."""

    def crash(current: Entity | None) -> Entity:
        raise ValueError("unexpected failure")

    await create_all(store, [entity("urn:taken")])
    outcomes = await store.mutate(
        "",
        [
            Change("urn:1", create(entity("urn:1"))),
            Change("urn:taken", create(entity("urn:taken", TANK))),
            Change("urn:2", crash),
            Change("urn:3", create(entity("urn:3"))),
        ],
    )
    assert [o.id for o in outcomes] == ["urn:1", "urn:taken", "urn:2", "urn:3"]
    assert outcomes[0].ok and outcomes[3].ok
    assert isinstance(outcomes[1].error, AlreadyExists)
    error = outcomes[2].error
    assert error is not None and type(error) is NgsiError
    assert error.status == 500 and "unexpected failure" in error.detail
    assert await store.get("", "urn:2") is None
    taken = await store.get("", "urn:taken")
    assert taken is not None and taken["type"] == [PIPE]
    page = await store.query("", EntityFilter(), limit=None)
    assert ids(page.entities) == ["urn:taken", "urn:1", "urn:3"]


async def test_bad_change_results_are_errors(store: EntityStore) -> None:
    """5.6.7 a change returning something that is not an entity of its id fails alone."""
    outcomes = await store.mutate(
        "",
        [
            Change("urn:1", lambda current: entity("urn:other")),
            Change("urn:2", lambda current: {"id": "urn:2", "type": []}),
            Change("urn:3", put(entity("urn:3", name=prop({1, 2})))),
            Change("urn:4", put(entity("urn:4"))),
        ],
    )
    assert [o.error.status if o.error else None for o in outcomes] == [500, 500, 500, None]
    page = await store.query("", EntityFilter(), limit=None)
    assert ids(page.entities) == ["urn:4"]


async def test_an_id_over_the_limit_is_refused_alone(store: EntityStore) -> None:
    """An id longer than the stores' indexes hold (one a device's name made, say) is a
    BadRequestData for its change only, on every store."""
    long = "urn:x:" + "ab" * 600
    changes = [Change(long, put(entity(long))), Change("urn:ok", put(entity("urn:ok")))]
    first, second = await store.mutate("", changes)
    assert isinstance(first.error, BadRequestData) and "1024 bytes" in first.error.detail
    assert second.ok
    assert await store.get("", long) is None


async def test_same_id_twice_in_one_call(store: EntityStore) -> None:
    """5.6.8 Batch Entity Upsert: a later change to the same id sees the earlier result."""
    outcomes = await store.mutate(
        "",
        [
            Change("urn:a", create(entity("urn:a", diameter=prop(1)))),
            Change("urn:a", set_attr(DIAMETER, 2)),
            Change("urn:a", create(entity("urn:a"))),
        ],
    )
    assert outcomes[0].ok and outcomes[1].ok
    assert outcomes[1].old == outcomes[0].new
    assert isinstance(outcomes[2].error, AlreadyExists)
    stored = await store.get("", "urn:a")
    assert stored is not None and stored["attrs"][DIAMETER][0]["value"] == 2


async def test_delete_then_recreate_in_one_call(store: EntityStore) -> None:
    """5.6.10 then 5.6.7: deleted and created again in one call, the new one stays."""
    await create_all(store, [entity("urn:a", name=prop("old")), entity("urn:b")])
    outcomes = await store.mutate(
        "", [Change("urn:a", delete), Change("urn:a", create(entity("urn:a", TANK)))]
    )
    assert outcomes[0].ok and outcomes[1].ok and outcomes[1].old is None
    assert await store.get("", "urn:a") == entity("urn:a", TANK)
    page = await store.query("", EntityFilter(), limit=None)
    assert sorted(ids(page.entities)) == ["urn:a", "urn:b"]


async def test_create_then_delete_in_one_call(store: EntityStore) -> None:
    """5.6.7 then 5.6.10 in one call: nothing is left."""
    outcomes = await store.mutate(
        "", [Change("urn:a", create(entity("urn:a"))), Change("urn:a", delete)]
    )
    assert outcomes[0].ok and outcomes[1].ok and outcomes[1].old == entity("urn:a")
    assert await store.get("", "urn:a") is None


async def test_large_batch_round_trip(store: EntityStore) -> None:
    """5.6.8 Batch Entity Upsert of 5,000 entities, created then all updated in one call."""
    n = 5_000
    entities = [located(f"urn:ngsi-ld:Junction:{i}", i / 1000, 34.9) for i in range(n)]
    await create_all(store, entities)
    outcomes = await store.mutate(
        "", [Change(e["id"], set_attr(DIAMETER, i)) for i, e in enumerate(entities)]
    )
    assert all(o.ok and o.old is not None for o in outcomes)
    page = await store.query(
        "", EntityFilter(type_names=frozenset({JUNCTION})), limit=None, count=True
    )
    assert page.total == n
    assert ids(page.entities) == ids(entities)
    assert [e["attrs"][DIAMETER][0]["value"] for e in page.entities] == list(range(n))


async def test_concurrent_single_changes_all_land(store: EntityStore) -> None:
    """5.6.4 concurrent partial updates: none is lost, read-modify-write stays atomic."""
    await create_all(store, [entity("urn:counter", name=prop(0))])
    creates = [
        store.mutate("", [Change(f"urn:{i}", create(entity(f"urn:{i}")))]) for i in range(200)
    ]
    increments = [store.mutate("", [Change("urn:counter", increment)]) for _ in range(200)]
    results = await asyncio.gather(*creates, *increments)
    assert all(outcome.ok for outcomes in results for outcome in outcomes)
    counter = await store.get("", "urn:counter")
    assert counter is not None and counter["attrs"][NAME][0]["value"] == 200
    page = await store.query("", EntityFilter(), limit=0, count=True)
    assert page.total == 201


async def test_concurrent_creates_of_one_id(store: EntityStore) -> None:
    """5.6.1 Create Entity raced by concurrent requests: exactly one creates it."""
    calls = [
        store.mutate("", [Change("urn:race", create(entity("urn:race", name=prop(i))))])
        for i in range(20)
    ]
    outcomes = [outcome for result in await asyncio.gather(*calls) for outcome in result]
    winners = [o for o in outcomes if o.ok]
    assert len(winners) == 1
    assert all(isinstance(o.error, AlreadyExists) for o in outcomes if not o.ok)
    assert await store.get("", "urn:race") == winners[0].new


# -- tenants ----------------------------------------------------------------------------


async def test_tenants_are_isolated(store: EntityStore) -> None:
    """4.14 multi-tenancy: the same id in two tenants names two entities."""
    await create_all(store, [entity("urn:a", name=prop("north"))], tenant="north")
    await create_all(store, [entity("urn:a", TANK, name=prop("south"))], tenant="south")
    north, south = await store.get("north", "urn:a"), await store.get("south", "urn:a")
    assert north is not None and north["attrs"][NAME][0]["value"] == "north"
    assert south is not None and south["attrs"][NAME][0]["value"] == "south"
    assert await store.get(DEFAULT_TENANT, "urn:a") is None
    page = await store.query("north", EntityFilter(), limit=None)
    assert ids(page.entities) == ["urn:a"] and page.entities[0] == north
    await store.mutate("north", [Change("urn:a", delete)])
    assert await store.get("south", "urn:a") == south
    assert await store.tenants() == [DEFAULT_TENANT, "north", "south"]


async def test_default_tenant_always_listed(store: EntityStore) -> None:
    """4.14 multi-tenancy: the default tenant exists before any write."""
    assert await store.tenants() == [DEFAULT_TENANT]


# -- queries ----------------------------------------------------------------------------


@pytest.fixture
async def city(store: EntityStore) -> list[Entity]:
    """Six entities of three types, created in this order."""
    entities = [
        entity("urn:ngsi-ld:Pipe:1", PIPE, diameter=prop(100)),
        entity("urn:ngsi-ld:Junction:1", JUNCTION, name=prop("J1")),
        entity("urn:ngsi-ld:Pipe:2", PIPE, diameter=prop(300)),
        entity("urn:ngsi-ld:Tank:1", TANK, JUNCTION, diameter=prop(5000)),
        entity("urn:ngsi-ld:Pipe:3", PIPE, name=prop("P3")),
        entity("urn:ngsi-ld:Junction:2", JUNCTION, diameter=prop(50)),
    ]
    for one in entities:  # one call each, so that creation order is the call order
        await create_all(store, [one])
    return entities


async def test_query_all_in_creation_order(store: EntityStore, city: list[Entity]) -> None:
    """5.7.2 Query Entities returns entities in a stable order: creation order here."""
    page = await store.query("", EntityFilter(), limit=None)
    assert page.entities == city and page.total is None


async def test_query_by_type(store: EntityStore, city: list[Entity]) -> None:
    """5.7.2 Query Entities by type: an entity matches when it has any of the types."""
    page = await store.query("", EntityFilter(type_names=frozenset({JUNCTION})), limit=None)
    assert ids(page.entities) == [e["id"] for e in city if JUNCTION in e["type"]]
    both = await store.query("", EntityFilter(type_names=frozenset({PIPE, TANK})), limit=None)
    assert ids(both.entities) == [e["id"] for e in city if {PIPE, TANK} & set(e["type"])]
    none = await store.query("", EntityFilter(type_names=frozenset({NAME})), limit=None)
    assert none.entities == []


async def test_query_by_ids_and_pattern(store: EntityStore, city: list[Entity]) -> None:
    """5.7.2 Query Entities by id list and by idPattern."""
    wanted = frozenset({"urn:ngsi-ld:Pipe:3", "urn:ngsi-ld:Junction:1", "urn:nothing"})
    page = await store.query("", EntityFilter(ids=wanted), limit=None)
    assert ids(page.entities) == ["urn:ngsi-ld:Junction:1", "urn:ngsi-ld:Pipe:3"]
    pattern = re.compile(r"urn:ngsi-ld:(Pipe|Tank):[12]")
    page = await store.query("", EntityFilter(id_pattern=pattern), limit=None)
    assert ids(page.entities) == [e["id"] for e in city if pattern.fullmatch(e["id"])]
    page = await store.query("", EntityFilter(type_names=frozenset({PIPE}), ids=wanted), limit=None)
    assert ids(page.entities) == ["urn:ngsi-ld:Pipe:3"]


async def test_query_by_attrs_and_predicates(store: EntityStore, city: list[Entity]) -> None:
    """5.7.2 Query Entities with attrs and a q expression, applied exactly."""
    page = await store.query("", EntityFilter(attrs=frozenset({NAME})), limit=None)
    assert ids(page.entities) == [e["id"] for e in city if NAME in e["attrs"]]
    big = EntityFilter(predicates=(ValueAbove(DIAMETER, 200),))
    page = await store.query("", big, limit=None)
    assert ids(page.entities) == ["urn:ngsi-ld:Pipe:2", "urn:ngsi-ld:Tank:1"]
    both = EntityFilter(
        type_names=frozenset({PIPE}),
        predicates=(ValueAbove(DIAMETER, 50), ValueAbove(DIAMETER, 200)),
    )
    page = await store.query("", both, limit=None)
    assert ids(page.entities) == ["urn:ngsi-ld:Pipe:2"]


async def test_query_pagination(store: EntityStore, city: list[Entity]) -> None:
    """5.5.9 pagination: limit and offset over the matches, count over all of them."""
    flt = EntityFilter(type_names=frozenset({PIPE, JUNCTION}))
    matching = [e for e in city if flt.matches(e)]
    first = await store.query("", flt, limit=2)
    second = await store.query("", flt, limit=2, offset=2, count=True)
    rest = await store.query("", flt, limit=None, offset=4)
    assert first.entities == matching[:2] and first.total is None
    assert second.entities == matching[2:4] and second.total == len(matching)
    assert rest.entities == matching[4:]
    beyond = await store.query("", flt, limit=10, offset=100, count=True)
    assert beyond.entities == [] and beyond.total == len(matching)


async def test_query_count_only(store: EntityStore, city: list[Entity]) -> None:
    """5.5.9 count with limit 0: the number of matches and no entities."""
    page = await store.query(
        "", EntityFilter(predicates=(ValueAbove(DIAMETER, 0),)), limit=0, count=True
    )
    assert page.entities == [] and page.total == sum(DIAMETER in e["attrs"] for e in city)
    empty = await store.query("", EntityFilter(), limit=0)
    assert empty.entities == [] and empty.total is None


async def test_query_other_tenant_is_empty(store: EntityStore, city: list[Entity]) -> None:
    """4.14 multi-tenancy: queries see only their tenant's entities."""
    page = await store.query("elsewhere", EntityFilter(), limit=None, count=True)
    assert page.entities == [] and page.total == 0


# -- hosted @context documents ----------------------------------------------------------


async def test_contexts_crud(store: EntityStore) -> None:
    """5.13 @context management: add, serve, list, replace and delete hosted contexts."""
    water = {"@context": {"Pipe": "https://smartdatamodels.org/Pipe", "nested": {"@id": "x"}}}
    light = {"@context": ["https://example.org/a.jsonld", {"lamp": "https://example.org/lamp"}]}
    assert await store.get_context("water") is None
    await store.put_context("water", water)
    await store.put_context("light", light)
    assert await store.get_context("water") == water
    assert sorted(await store.list_contexts()) == sorted([("water", water), ("light", light)])
    replacement = {"@context": {"Tank": "https://smartdatamodels.org/Tank"}}
    await store.put_context("water", replacement)
    assert await store.get_context("water") == replacement
    assert await store.delete_context("water") is True
    assert await store.delete_context("water") is False
    assert await store.list_contexts() == [("light", light)]


# -- backend specifics ------------------------------------------------------------------


async def test_sqlite_reopen_finds_the_data(tmp_path: Path) -> None:
    """5.6.1 created entities are durable: a new store on the same file finds them."""
    path = tmp_path / "deep" / "er" / "city.db"
    first = open_store(f"sqlite:///{path}")
    await first.open()
    await create_all(first, [entity("urn:a", name=prop("kept"))], tenant="t1")
    await first.put_context("ctx", {"@context": {}})
    await first.close()
    second = SqliteStore.from_url(f"sqlite:///{path}")
    await second.open()
    try:
        assert await second.get("t1", "urn:a") == entity("urn:a", name=prop("kept"))
        assert await second.tenants() == [DEFAULT_TENANT, "t1"]
        assert await second.get_context("ctx") == {"@context": {}}
    finally:
        await second.close()


def test_store_used_from_successive_event_loops(tmp_path: Path) -> None:
    """5.6.1 one store object opened and closed again under several event loops."""
    store = SqliteStore(tmp_path / "loops.db")

    async def round_trip(i: int) -> Entity | None:
        await store.open()
        try:
            await create_all(store, [entity(f"urn:{i}")])
            return await store.get("", "urn:0")
        finally:
            await store.close()

    assert [asyncio.run(round_trip(i)) for i in range(3)] == [entity("urn:0")] * 3


def test_sqlite_url_forms(tmp_path: Path) -> None:
    """The SQLite store is named by sqlite:///relative or sqlite:////absolute URLs."""
    assert SqliteStore.from_url("sqlite:///data/city.db").path == Path("data/city.db")
    assert SqliteStore.from_url(f"sqlite:///{tmp_path}/c.db").path == tmp_path / "c.db"
    for bad in ("sqlite://", "sqlite:///", "sqlite:///:memory:", "postgresql://x/y"):
        with pytest.raises(ValueError, match="SQLite"):
            SqliteStore.from_url(bad)


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    """A store used before open() or after close() says so."""
    store = SqliteStore(tmp_path / "c.db")
    with pytest.raises(RuntimeError, match="not open"):
        await store.get("", "urn:a")
    await store.open()
    await store.close()
    with pytest.raises(RuntimeError, match="not open"):
        await store.mutate("", [Change("urn:a", put(entity("urn:a")))])


def test_postgres_url_schema_parameter() -> None:
    """The PostgreSQL store takes its schema from ?schema= and keeps other parameters."""
    store = PostgresStore.from_url("postgresql://u@h/db?schema=city_1&connect_timeout=3")
    assert store.schema == "city_1"
    assert store.conninfo == "postgresql://u@h/db?connect_timeout=3"
    with pytest.raises(ValueError, match="identifier"):
        PostgresStore.from_url("postgresql://u@h/db?schema=bad;name")
    assert isinstance(open_store("postgres://u@h/db"), PostgresStore)
    # A server reached through its Unix socket: the URL has no host.
    socket = PostgresStore.from_url("postgresql:///db?host=/var/run/postgresql&schema=s")
    assert socket.conninfo == "postgresql:///db?host=%2Fvar%2Frun%2Fpostgresql"
    assert socket.schema == "s"


@pytest.fixture
async def pg_store(pg_url: str) -> Any:
    """An open PostgreSQL store in its own schema."""
    store = PostgresStore.from_url(f"{pg_url}?schema=geo_{secrets.token_hex(6)}")
    await store.open()
    yield store
    await store.close()


async def _geometries(store: PostgresStore) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(store.conninfo) as conn:
        cursor = await conn.execute(
            "SELECT id, public.ST_AsGeoJSON(geom)::json, public.ST_SRID(geom) "
            f'FROM "{store.schema}".entities'
        )
        return {i: (g, srid) for i, g, srid in await cursor.fetchall()}


@pytest.mark.postgres
async def test_postgres_geometry_follows_location(pg_store: PostgresStore) -> None:
    """4.7 GeoProperty location: the indexed geometry follows the default instance."""
    shaped = entity(
        "urn:b",
        JUNCTION,
        **{
            LOCATION: [
                {
                    "type": "GeoProperty",
                    "value": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
                }
            ]
        },
    )
    await create_all(pg_store, [located("urn:a", -2.32, 34.92), shaped, entity("urn:c")])
    geoms = await _geometries(pg_store)
    assert geoms["urn:a"] == ({"type": "Point", "coordinates": [-2.32, 34.92]}, 4326)
    assert geoms["urn:b"][0]["type"] == "Polygon" and geoms["urn:c"] == (None, None)
    await pg_store.mutate("", [Change("urn:a", put(located("urn:a", 1.5, 2.5)))])
    await pg_store.mutate("", [Change("urn:b", put(entity("urn:b", JUNCTION)))])
    geoms = await _geometries(pg_store)
    assert geoms["urn:a"][0] == {"type": "Point", "coordinates": [1.5, 2.5]}
    assert geoms["urn:b"] == (None, None)


@pytest.mark.postgres
async def test_postgres_geometry_follows_location_in_bulk(pg_store: PostgresStore) -> None:
    """4.7 GeoProperty location, through batch create and batch upsert (5.6.7, 5.6.8)."""
    n = 120
    await create_all(pg_store, [located(f"urn:{i}", i / 10, 1.0) for i in range(n)])
    moved = [located(f"urn:{i}", 1.0, i / 10) for i in range(n // 2)]
    moved += [entity(f"urn:{i}") for i in range(n // 2, n)]
    await create_all(pg_store, moved)
    geoms = await _geometries(pg_store)
    assert all(geoms[f"urn:{i}"][0]["coordinates"] == [1.0, i / 10] for i in range(n // 2))
    assert all(geoms[f"urn:{i}"] == (None, None) for i in range(n // 2, n))


@pytest.mark.postgres
async def test_postgres_invalid_geometry_is_kept_unindexed(pg_store: PostgresStore) -> None:
    """4.7 a location GEOS cannot read is stored as given, with no indexed geometry."""
    odd = entity("urn:odd", **{LOCATION: point(0, 0)})
    odd["attrs"][LOCATION][0]["value"] = {"type": "Point", "coordinates": ["east", 1]}
    await create_all(pg_store, [odd])
    assert await pg_store.get("", "urn:odd") == odd
    assert (await _geometries(pg_store))["urn:odd"] == (None, None)


@pytest.mark.postgres
async def test_postgres_create_retried_after_concurrent_insert(pg_store: PostgresStore) -> None:
    """5.6.1 Create Entity: when another server creates the id first, the call is run
    again over what is stored now and reports AlreadyExists."""
    rival = entity("urn:race", TANK)
    seen: list[Entity | None] = []

    def create_while_rival_commits(current: Entity | None) -> Entity:
        seen.append(current)
        if len(seen) == 1:
            with psycopg.connect(pg_store.conninfo, autocommit=True) as conn:
                conn.execute(
                    f'INSERT INTO "{pg_store.schema}".entities (tenant, id, types, doc) '
                    "VALUES ('', %s, %s, %s::jsonb)",
                    (rival["id"], rival["type"], orjson.dumps(rival).decode()),
                )
        return create(entity("urn:race"))(current)

    [outcome] = await pg_store.mutate("", [Change("urn:race", create_while_rival_commits)])
    assert seen == [None, rival]
    assert isinstance(outcome.error, AlreadyExists)
    assert await pg_store.get("", "urn:race") == rival


@pytest.mark.postgres
async def test_postgres_small_concurrent_writes_share_transactions(
    pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """5.6.4 concurrent partial updates on PostgreSQL: those that wait for a write under
    way go together in one transaction, applied in the order they came, and each
    caller gets its own outcome."""
    transactions = 0
    apply = pg_store._apply

    async def counted(tenant: str, changes: Any) -> Any:
        nonlocal transactions
        transactions += 1
        return await apply(tenant, changes)

    monkeypatch.setattr(pg_store, "_apply", counted)
    await create_all(pg_store, [entity("urn:counter", name=prop(0))])
    transactions = 0
    calls = [pg_store.mutate("", [Change("urn:counter", increment)]) for _ in range(100)]
    results = await asyncio.gather(*calls)
    assert [[o.new["attrs"][NAME][0]["value"] for o in r if o.new] for r in results] == [
        [n] for n in range(1, 101)
    ]
    assert transactions < 10
    counter = await pg_store.get("", "urn:counter")
    assert counter is not None and counter["attrs"][NAME][0]["value"] == 100


@pytest.mark.postgres
async def test_postgres_a_write_that_fails_fails_alone(
    pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call whose write the database refuses gets the error; the calls it would have
    been written with are written without it."""
    import cityverse.store.postgres as module

    mutate = module._mutate

    async def refusing(conn: Any, tenant: str, changes: Any, known: bool) -> Any:
        if any(change.id == "urn:refused" for change in changes):
            raise psycopg.errors.DataException("refused")
        return await mutate(conn, tenant, changes, known)

    monkeypatch.setattr(module, "_mutate", refusing)
    await create_all(pg_store, [entity("urn:counter", name=prop(0))])
    calls = [pg_store.mutate("", [Change("urn:counter", increment)]) for _ in range(20)]
    calls.insert(10, pg_store.mutate("", [Change("urn:refused", put(entity("urn:refused")))]))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[10], psycopg.errors.DataException)
    assert all(isinstance(r, list) and r[0].ok for i, r in enumerate(results) if i != 10)
    counter = await pg_store.get("", "urn:counter")
    assert counter is not None and counter["attrs"][NAME][0]["value"] == 20
    assert await pg_store.get("", "urn:refused") is None


@pytest.mark.postgres
async def test_postgres_an_unreachable_database_fails_combined_writes_at_once(
    pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the database cannot be reached, the calls written together all get the error
    at once rather than one attempt each after the other."""
    import cityverse.store.postgres as module

    attempts = 0

    async def unreachable(conn: Any, tenant: str, changes: Any, known: bool) -> Any:
        nonlocal attempts
        attempts += 1
        raise psycopg.OperationalError("the server closed the connection")

    monkeypatch.setattr(module, "_mutate", unreachable)
    calls = [pg_store.mutate("", [Change(f"urn:{i}", put(entity(f"urn:{i}")))]) for i in range(10)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, psycopg.OperationalError) for r in results)
    assert attempts == 1


# -- what discovery tells -------------------------------------------------------------


async def test_shape_version_grows_when_discovery_may_change(store: EntityStore) -> None:
    """A creation, a deletion, a type, an attribute's name or kind move the tenant's
    shape version; a new value does not, nor a failed change or another tenant's."""
    seen = [await store.shape_version(DEFAULT_TENANT)]

    async def changed(*changes: Change, tenant: str = DEFAULT_TENANT) -> bool:
        await store.mutate(tenant, list(changes))
        now = await store.shape_version(DEFAULT_TENANT)
        grew = now > seen[-1]
        assert now >= seen[-1]
        seen.append(now)
        return grew

    pipe = entity("urn:ngsi-ld:Pipe:1", diameter=prop(200))
    assert await changed(Change(pipe["id"], create(pipe)))
    assert not await changed(Change(pipe["id"], set_attr(DIAMETER, 250)))
    assert not await changed(Change(pipe["id"], keep))
    assert not await changed(Change(pipe["id"], create(pipe)))  # refused: it exists
    assert await changed(Change(pipe["id"], set_attr(NAME, "main")))
    relation = [{"type": "Relationship", "object": "urn:ngsi-ld:Tank:1"}]
    assert await changed(
        Change(pipe["id"], lambda e: {**e, "attrs": {**e["attrs"], NAME: relation}})
    )
    assert await changed(
        Change(pipe["id"], lambda e: {**e, "attrs": {**e["attrs"], NAME: [*relation, *prop(1)]}})
    )
    assert await changed(Change(pipe["id"], lambda e: {**e, "type": [PIPE, TANK]}))
    assert not await changed(
        Change("urn:ngsi-ld:Pipe:9", create(entity("urn:ngsi-ld:Pipe:9"))), tenant="other"
    )
    assert await changed(Change(pipe["id"], delete))
    assert not await changed(Change(pipe["id"], delete))  # nothing left to delete
