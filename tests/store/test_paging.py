"""Paging and counting of entity queries (GS CIM 009 5.5.9), on both stores.

A filter that says nothing beyond types, ids and attrs is paged and counted in SQL, and
only the page's documents are decoded; any other filter is tested in Python on every
row. Both give the same page and the same count as the filter applied in Python to
every entity in creation order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

import cityverse.store.changes as changes
from cityverse.core.model import Entity
from cityverse.core.query import parse_q, parse_type_expr
from cityverse.store.base import Change, EntityFilter, EntityStore

NS = "https://ex.org/"
A, B, C = NS + "A", NS + "B", NS + "C"
NAME, SIZE, ODD = NS + "name", NS + "size", NS + 'we"ird.at\\tr'
NOW = "2026-11-21T08:31:26.123Z"


def _expand(term: str) -> str:
    return term if ":" in term else NS + term


def _entity(i: int, types: list[str], attrs: dict[str, Any]) -> Entity:
    return {
        "id": f"urn:ngsi-ld:X:{i:03d}",
        "type": types,
        "createdAt": NOW,
        "modifiedAt": NOW,
        "attrs": {
            name: [{"type": "Property", "value": value, "createdAt": NOW}]
            for name, value in attrs.items()
        },
    }


def _population() -> list[Entity]:
    """60 entities: types A, B, both or C, and some of name, size and an odd name."""
    out = []
    for i in range(60):
        types = [[A], [B], [A, B], [C]][i % 4]
        attrs: dict[str, Any] = {}
        if i % 3:
            attrs[NAME] = f"n{i}"
        if i % 5 == 0:
            attrs[SIZE] = i
        if i % 7 == 0:
            attrs[ODD] = True
        out.append(_entity(i, types, attrs))
    return out


def _put(entity: Entity) -> Change:
    return Change(entity["id"], lambda _: entity)


def _drop(entity_id: str) -> Change:
    return Change(entity_id, lambda _: None)


@pytest.fixture
async def stored(store: EntityStore) -> list[Entity]:
    """The population in creation order, after deletes, a re-creation (which moves the
    entity to the end) and changes of types and attributes; a second tenant too."""
    population = _population()
    for first in range(0, len(population), 20):
        outcomes = await store.mutate("", [_put(e) for e in population[first : first + 20]])
        assert all(o.ok for o in outcomes)
    by_id = {e["id"]: e for e in population}
    # Deleted, then one of them created again: last in creation order now.
    for entity_id in ("urn:ngsi-ld:X:004", "urn:ngsi-ld:X:011", "urn:ngsi-ld:X:030"):
        assert all(o.ok for o in await store.mutate("", [_drop(entity_id)]))
        del by_id[entity_id]
    again = _entity(11, [A], {SIZE: 11})
    assert all(o.ok for o in await store.mutate("", [_put(again)]))
    # Changed in place: keep their place.
    retyped = {**by_id["urn:ngsi-ld:X:002"], "type": [C]}
    stripped = {**by_id["urn:ngsi-ld:X:003"], "attrs": {}}
    assert all(o.ok for o in await store.mutate("", [_put(retyped), _put(stripped)]))
    by_id[retyped["id"]], by_id[stripped["id"]] = retyped, stripped
    elsewhere = [_entity(i, [A], {NAME: "x"}) for i in range(100, 110)]
    assert all(o.ok for o in await store.mutate("other", [_put(e) for e in elsewhere]))
    return [*by_id.values(), again]


class Always:
    """A predicate only Python can evaluate, true of every entity: the same filter with
    it goes the way every row is decoded and tested."""

    def matches(self, entity: Entity) -> bool:
        return True


def _python_only(flt: EntityFilter) -> EntityFilter:
    return EntityFilter(
        type_names=flt.type_names,
        ids=flt.ids,
        id_pattern=flt.id_pattern,
        attrs=flt.attrs,
        predicates=(*flt.predicates, Always()),
    )


def _as_broker(types: str, **parts: Any) -> EntityFilter:
    """The filter the broker builds for ``?type=types``: names and the expression."""
    expr = parse_type_expr(types, _expand)
    return EntityFilter(type_names=expr.names, predicates=(expr,), **parts)


IDS = frozenset(
    {"urn:ngsi-ld:X:001", "urn:ngsi-ld:X:011", "urn:ngsi-ld:X:020", "urn:nope"}
    | {f"urn:ngsi-ld:X:{i:03d}" for i in range(40, 60, 3)}
)
EMPTY = {"no type", "no id", "no attribute", "unknown names"}

EXACT = {
    "everything": EntityFilter(),
    "type names": EntityFilter(type_names=frozenset({A})),
    "type as the broker": _as_broker("A"),
    "two types": EntityFilter(type_names=frozenset({A, C})),
    "two types as the broker": _as_broker("A,C"),
    "alternative as the broker": _as_broker("(B|C)"),
    "ids": EntityFilter(ids=IDS),
    "attrs": EntityFilter(attrs=frozenset({SIZE, ODD})),
    "odd attribute name": EntityFilter(attrs=frozenset({ODD})),
    "type and attrs": _as_broker("B", attrs=frozenset({NAME})),
    "types, ids and attrs": _as_broker("A,B", ids=IDS, attrs=frozenset({NAME, SIZE})),
    "ids and one type": EntityFilter(type_names=frozenset({A}), ids=IDS),
    "no type": EntityFilter(type_names=frozenset()),
    "no id": EntityFilter(ids=frozenset()),
    "no attribute": EntityFilter(attrs=frozenset()),
    "unknown names": EntityFilter(
        type_names=frozenset({NS + "Z", "\x00"}),
        ids=frozenset({"urn:\x00"}),
        attrs=frozenset({NS + "zz", "a\x00"}),
    ),
}

PYTHON = {
    "idPattern": EntityFilter(id_pattern=re.compile(r"urn:ngsi-ld:X:0[0-3]\d")),
    "q": EntityFilter(
        type_names=frozenset({A}),
        predicates=(parse_type_expr("A", _expand), parse_q("size>10", _expand)),
    ),
    "both types": _as_broker("A;B"),
    "type expression alone": EntityFilter(predicates=(parse_type_expr("A", _expand),)),
    "narrower expression": EntityFilter(
        type_names=frozenset({A, B}), predicates=(parse_type_expr("A", _expand),)
    ),
    "opaque and attrs": _python_only(EntityFilter(attrs=frozenset({NAME}))),
}

PAGES = [
    (None, 0, True),
    (None, 0, False),
    (5, 0, True),
    (5, 3, False),
    (7, 10, True),
    (1, 25, False),
    (10, 1000, True),
    (None, 1000, False),
    (0, 0, True),
    (0, 7, True),
    (0, 0, False),
    (3, 10**30, True),
    (10**30, 2, True),
]


def _expected(entities: list[Entity], flt: EntityFilter, limit: int | None, offset: int) -> Any:
    matching = [e for e in entities if flt.matches(e)]
    end = None if limit is None else offset + limit
    return [e["id"] for e in matching[offset:end]], len(matching)


def test_exactness_is_told_by_the_filter() -> None:
    """Types, ids, attrs and a plain alternative of types are exact; the rest is not."""
    assert all(flt.sql_exact for flt in EXACT.values())
    assert not any(flt.sql_exact for flt in PYTHON.values())


@pytest.mark.parametrize("name", [*EXACT, *PYTHON])
async def test_pages_and_totals_equal_the_filter_applied_in_python(
    store: EntityStore, stored: list[Entity], name: str
) -> None:
    """Every page and count equals the filter applied to every entity in creation order,
    and equals what the decode-every-row path answers."""
    flt = EXACT.get(name) or PYTHON[name]
    matches = _expected(stored, flt, None, 0)[1]
    assert matches == 0 if name in EMPTY else 0 < matches < len(stored) or name == "everything"
    for limit, offset, count in PAGES:
        want, total = _expected(stored, flt, limit, offset)
        page = await store.query("", flt, limit=limit, offset=offset, count=count)
        assert [e["id"] for e in page.entities] == want, (name, limit, offset)
        assert page.total == (total if count else None), (name, limit, offset)
        slow = await store.query("", _python_only(flt), limit=limit, offset=offset, count=count)
        assert slow.entities == page.entities and slow.total == page.total


async def test_pages_cover_the_matches_once(store: EntityStore, stored: list[Entity]) -> None:
    """Walking the pages as the dashboard does gives every match once, in order."""
    flt = _as_broker("A,B", attrs=frozenset({NAME, ODD}))
    first = await store.query("", flt, limit=4, offset=0, count=True)
    assert first.total is not None and first.total > 8
    walked = list(first.entities)
    for offset in range(4, first.total, 4):
        walked += (await store.query("", flt, limit=4, offset=offset)).entities
    assert [e["id"] for e in walked] == [e["id"] for e in stored if flt.matches(e)]


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The ids of the documents the stores decode, in order."""
    seen: list[str] = []
    decode = changes.decode

    def counting(doc: bytes | str) -> Entity:
        entity = decode(doc)
        seen.append(entity["id"])
        return entity

    monkeypatch.setattr(changes, "decode", counting)
    yield seen


@pytest.mark.parametrize(
    "flt",
    [_as_broker("A"), _as_broker("A,B", attrs=frozenset({NAME})), EntityFilter(ids=IDS)],
    ids=["type", "types and attrs", "ids"],
)
async def test_an_exact_filter_decodes_only_the_page(
    store: EntityStore, stored: list[Entity], decoded: list[str], flt: EntityFilter
) -> None:
    """With count and an offset, only the page's documents are decoded."""
    page = await store.query("", flt, limit=3, offset=2, count=True)
    assert len(page.entities) == 3 and page.total == _expected(stored, flt, None, 0)[1]
    assert decoded == [e["id"] for e in page.entities]
    decoded.clear()
    counted = await store.query("", flt, limit=0, count=True)
    assert counted.entities == [] and counted.total == page.total
    assert decoded == []


async def test_another_filter_decodes_every_row(
    store: EntityStore, stored: list[Entity], decoded: list[str]
) -> None:
    """A filter only Python can judge is judged on every row the SQL lets through: those
    before the page, and all of them for the count. Its answer is still exact."""
    flt = _python_only(_as_broker("A"))
    page = await store.query("", flt, limit=3, offset=2, count=True)
    every = [e["id"] for e in stored if A in e["type"]]
    assert [e["id"] for e in page.entities] == every[2:5] and page.total == len(every)
    assert decoded == every
    pattern = EntityFilter(id_pattern=re.compile(r"urn:ngsi-ld:X:01\d"))
    decoded.clear()
    page = await store.query("", pattern, limit=2, offset=1, count=True)
    want, total = _expected(stored, pattern, 2, 1)
    assert [e["id"] for e in page.entities] == want and page.total == total
    assert len(decoded) == len(stored)


async def test_negative_paging_is_refused(store: EntityStore, stored: list[Entity]) -> None:
    """A negative limit or offset is a caller's error, told as such."""
    for flt in (EntityFilter(), _python_only(EntityFilter())):
        with pytest.raises(ValueError, match="must not be negative"):
            await store.query("", flt, limit=-1)
        with pytest.raises(ValueError, match="must not be negative"):
            await store.query("", flt, limit=2, offset=-3, count=True)
