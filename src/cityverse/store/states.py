"""Which entities a temporal query's predicates select: its states in the time window.

A temporal query (5.7.4) asks about the past, so its predicates (``q``, geo-queries,
``scopeQ``, type selections with ``;``) are tested on what an entity was during the
time window, not on what it is now. An entity matches when one of its states in the
window satisfies every predicate together. Its states in the window are

- its state when the window opens: the latest instance of each attribute and
  datasetId from before the window's start (when the window has one and nothing
  changed right at its start), and
- its state after the changes of each moment inside the window (changes at the same
  time, such as a batch or a deletion, make one state),

a change's time being its time on the query's ``timeproperty`` or, for an instance
without one (an attribute without observedAt, a deletion), its modifiedAt. A deleted
attribute leaves the state; an empty state (before the entity existed, after it was
deleted) matches nothing. So a deleted entity, or one known only through the temporal
API, matches what it was; ``q=speed>100`` finds the vehicles that went faster than 100
in the window, even if they are slower now::

    search = StateSearch.of(flt, window, now=now_ms())
    verdict = search.quick(candidate, current)   # True / False / None: read history
    fetched = [(kind, sid, run(sql, params))     # each read of each series it reads
               for sid in sids for kind, sql, params in search.reads(sid)]
    verdict = search.verdict(candidate, series, fetched)

The current entity is one more state when the window reaches the present; it answers
first, so that an entity that matches now costs no history read. Then ``screens``: a
numeric comparison that every state must satisfy (a q term like ``temperature>30``,
alone or joined by ``;``) is first asked of the store in SQL, on the attribute's
numbers in the window and the one before it; an entity none of whose instances could
satisfy it is out without its states being built (instances whose value is not a
number held apart answer "maybe")::

    for screen in search.screens:
        if not any(run(sql, params) for sid in sids_of(screen.attr)
                   for sql, params in search.screen_reads(sid, screen)):
            ...  # the entity does not match (A state rebuilt from
history lacks the entity's own createdAt and modifiedAt, which q may name.) Only the
attributes
the predicates read are rebuilt (a q expression's attribute names, a geo-query's
geoproperty); a predicate that reads none (``scopeQ``, a type selection) is tested on
the entity's id, types and scope alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from cityverse.core.geo import GeoQuery
from cityverse.core.model import Entity, Instance
from cityverse.core.query import (
    And,
    Comparison,
    Exists,
    NotExists,
    Or,
    QueryExpr,
    Range,
    ScopeExpr,
    TypeExpr,
)
from cityverse.store.base import EntityFilter, Predicate
from cityverse.store.history import NO_TIME, loaded
from cityverse.store.temporal import HistoryEntity, TimeWindow
from cityverse.store.timeseries import COLUMNS, MAX_TIME

_SELECT = (
    "SELECT {time}, observed, iid, created, modified, deleted, doc, num FROM history_instances"
)

Row = Sequence[Any]
"""A row of a read: time in the window's sense, observed, iid, created, modified,
deleted, doc, number (``loaded``'s arguments after the first)."""
Found = tuple[int, str | None, Any]
"""A series: sid, datasetId, template (the document of rows that store none)."""


def attributes_read(predicate: Predicate) -> frozenset[str] | None:
    """The attributes a predicate reads; None when it does not say (read them all).

    A predicate tells by an ``attribute_names`` member (q expressions) or a
    ``geoproperty`` (geo-queries); scope and type selections read none.
    """
    names = getattr(predicate, "attribute_names", None)
    if isinstance(names, frozenset):
        return names
    geoproperty = getattr(predicate, "geoproperty", None)
    if isinstance(geoproperty, str):
        return frozenset({geoproperty})
    if isinstance(predicate, ScopeExpr | TypeExpr):
        return frozenset()
    return None


@dataclass(frozen=True, slots=True)
class Screen:
    """A test every matching state passes: some instance of ``attr`` in the window (or
    the one before it) has a number for which ``condition`` (SQL on ``num``) holds, or
    holds no number apart."""

    attr: str
    condition: str
    params: tuple[int | float, ...]


_SQL_OPS = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "==": "="}


def screens_of(predicates: Iterable[Predicate]) -> tuple[Screen, ...]:
    """The screens the predicates imply: their numeric comparisons of an attribute's
    value that all of a state's predicates require (a q root, or a term of its ``;``)."""
    out: list[Screen] = []
    for predicate in predicates:
        if not isinstance(predicate, QueryExpr):
            continue
        root = predicate.root
        for term in root.terms if isinstance(root, And) else (root,):
            screen = _screen(term)
            if screen is not None:
                out.append(screen)
    return tuple(out)


def _number(value: Any) -> TypeGuard[int | float]:
    """A JSON number (not a boolean, which Python counts as an int)."""
    return type(value) is int or type(value) is float


def _screen(term: Any) -> Screen | None:
    if not isinstance(term, Comparison) or term.op not in _SQL_OPS:
        return None
    path = term.path
    if path.sub or path.meta is not None or path.keys or path.member:
        return None
    value = term.value
    if isinstance(value, Range) and term.op == "==":
        low, high = value.low, value.high
        if _number(low) and _number(high):
            return Screen(path.attr, "num BETWEEN ? AND ?", (low, high))
        return None
    if not _number(value):
        return None
    return Screen(path.attr, f"num {_SQL_OPS[term.op]} ?", (value,))


@dataclass(frozen=True, slots=True)
class StateSearch:
    """The test of one query's filter on the entities with history (see the module)."""

    flt: EntityFilter
    window: TimeWindow
    now: int
    attrs: frozenset[str] | None
    """The attributes whose history is rebuilt; None: all of them."""
    on_entity: tuple[Predicate, ...] = ()
    """The predicates that read no attribute (tested once, on the entity alone)."""
    by_value: bool = False
    """True when no predicate reads instance times: a state is then known by its values."""
    screens: tuple[Screen, ...] = ()
    """Tests in SQL that a matching entity passes (see the module)."""

    @classmethod
    def of(cls, flt: EntityFilter, window: TimeWindow | None, *, now: int) -> StateSearch:
        """The search of ``flt`` over ``window`` (the whole observedAt axis when None)."""
        reads: set[str] | None = set()
        on_entity: list[Predicate] = []
        for predicate in flt.predicates:
            names = attributes_read(predicate)
            if names is not None and not names:
                on_entity.append(predicate)
            if names is None or reads is None:
                reads = None
            else:
                reads |= names
        attrs = None if reads is None else frozenset(reads)
        by_value = not any(_reads_times(p) for p in flt.predicates)
        return cls(
            flt,
            window or TimeWindow(),
            now,
            attrs,
            tuple(on_entity),
            by_value,
            screens_of(flt.predicates),
        )

    def quick(self, candidate: HistoryEntity, current: Entity | None) -> bool | None:
        """The verdict without reading history, or None when history must answer."""
        pattern = self.flt.id_pattern
        if pattern is not None and not pattern.fullmatch(candidate.id):
            return False
        predicates = self.flt.predicates
        if not predicates:
            return True
        if self.on_entity and not all(p.matches(header(candidate)) for p in self.on_entity):
            return False
        if self.attrs is not None and not self.attrs:
            return True
        if (
            current is not None
            and self._reaches_now()
            and all(p.matches(current) for p in predicates)
        ):
            return True
        return None

    def _reaches_now(self) -> bool:
        w = self.window
        return (w.start is None or w.start <= self.now) and (w.end is None or self.now < w.end)

    def reads(self, sid: int) -> list[tuple[str, str, tuple[int, ...]]]:
        """The reads of one series: (``opening`` or ``inside``, statement with ``?``
        placeholders, parameters); ``pg()`` turns them into PostgreSQL's."""
        out: list[tuple[str, str, tuple[int, ...]]] = []
        for time, select, params, floor, lo, hi in self._sources(sid):
            if lo is not None:
                out.append(
                    (
                        "opening",
                        f"{select}{time} >= ? AND {time} < ? "
                        f"ORDER BY {time} DESC, iid DESC LIMIT 1",
                        (*params, floor, lo),
                    )
                )
            out.append(
                (
                    "inside",
                    f"{select}{time} >= ? AND {time} < ? ORDER BY {time}, iid",
                    (*params, max(floor, NO_TIME if lo is None else lo), hi),
                )
            )
        return out

    def screen_reads(self, sid: int, screen: Screen) -> list[tuple[str, tuple[Any, ...]]]:
        """Statements, each giving a row when an instance of the series in the window
        (or the one before it) may pass ``screen``."""
        maybe = f"(num IS NULL OR {screen.condition})"
        out: list[tuple[str, tuple[Any, ...]]] = []
        for time, select, params, floor, lo, hi in self._sources(sid):
            if lo is not None:
                opening = (
                    f"{select}{time} >= ? AND {time} < ? ORDER BY {time} DESC, iid DESC LIMIT 1"
                )
                out.append(
                    (
                        f"SELECT 1 FROM ({opening}) AS o WHERE {maybe}",
                        (*params, floor, lo, *screen.params),
                    )
                )
            out.append(
                (
                    f"{select}{time} >= ? AND {time} < ? AND {maybe} LIMIT 1",
                    (*params, max(floor, NO_TIME if lo is None else lo), hi, *screen.params),
                )
            )
        return out

    def _sources(self, sid: int) -> list[tuple[str, str, tuple[int, ...], int, int | None, int]]:
        """Per kind of instance: (time expression, select up to WHERE, its parameters,
        lowest time, window start, window end)."""
        column = COLUMNS[self.window.prop]
        lo = self.window.start
        hi = MAX_TIME if self.window.end is None else self.window.end
        if column == "observed":
            # Instances without observedAt (kept at NO_TIME) count at their modifiedAt:
            # one read on the index for the others, one for them.
            return [
                (
                    "observed",
                    _SELECT.format(time="observed") + " WHERE sid = ? AND ",
                    (sid,),
                    NO_TIME + 1,
                    lo,
                    hi,
                ),
                (
                    "modified",
                    _SELECT.format(time="modified") + " WHERE sid = ? AND observed = ? AND ",
                    (sid, NO_TIME),
                    NO_TIME,
                    lo,
                    hi,
                ),
            ]
        time = f"coalesce({column}, modified)"
        return [(time, _SELECT.format(time=time) + " WHERE sid = ? AND ", (sid,), NO_TIME, lo, hi)]

    def verdict(
        self,
        candidate: HistoryEntity,
        series: dict[str, list[Found]],
        fetched: Iterable[tuple[str, int, list[Row]]],
    ) -> bool:
        """Whether a state in the window satisfies every predicate, from the rows that
        each of ``reads`` returned (read kind, sid, rows)."""
        owner: dict[int, tuple[str, Any]] = {}
        for attr, found in series.items():
            for sid, _, template in found:
                owner[sid] = (attr, template)
        opening: dict[int, Row] = {}
        inside: dict[int, list[Row]] = {}
        for read, sid, rows in fetched:
            if read == "opening":
                for row in rows:
                    known = opening.get(sid)
                    if known is None or (row[0], row[2]) > (known[0], known[2]):
                        opening[sid] = row
            else:
                inside.setdefault(sid, []).extend(rows)
        changes = sorted(
            ((row[0], row[2], sid, row) for sid, rows in inside.items() for row in rows),
            key=lambda change: (change[0], change[1]),
        )
        test = _Test(self.flt.predicates, header(candidate), owner, self.by_value)
        state: dict[int, Row] = {}
        for sid, row in opening.items():
            _apply(state, sid, row)
        start = self.window.start
        # The state the window opened with counts when it held for part of the window.
        opened = start is not None and (not changes or changes[0][0] > start)
        if opened and test.holds(state):
            return True
        for index, (time, _, sid, row) in enumerate(changes):
            _apply(state, sid, row)
            # Changes at the same time make one state (a batch, a deletion).
            last = index + 1 == len(changes) or changes[index + 1][0] != time
            if last and test.holds(state):
                return True
        return False


def header(candidate: HistoryEntity) -> Entity:
    """An entity with history as the predicates that read no attribute see it."""
    entity: Entity = {"id": candidate.id, "type": list(candidate.types), "attrs": {}}
    if candidate.scope:
        entity["scope"] = list(candidate.scope)
    return entity


def _apply(state: dict[int, Row], sid: int, row: Row) -> None:
    if row[5] is not None:  # a deletion
        state.pop(sid, None)
    else:
        state[sid] = row


class _Test:
    """The predicates' verdict on states; a state whose values were already tested
    gets the same verdict without building it again, unless the predicates read the
    times that tell its instances apart."""

    def __init__(
        self,
        predicates: Sequence[Predicate],
        base: Entity,
        owner: dict[int, tuple[str, Any]],
        by_value: bool,
    ) -> None:
        self.predicates = predicates
        self.base = base
        self.owner = owner
        self.seen: set[frozenset[tuple[int, Any, Any]]] | None = set() if by_value else None

    def holds(self, state: dict[int, Row]) -> bool:
        if not state:
            return False
        if self.seen is not None:
            # The document and the number are an instance but for its times and id.
            values = frozenset((sid, row[6], row[7]) for sid, row in state.items())
            if values in self.seen:
                return False
            self.seen.add(values)
        attrs: dict[str, list[Instance]] = {}
        for sid, row in state.items():
            attr, template = self.owner[sid]
            _, observed, iid, created, modified, _, doc, num = row
            instance = loaded(
                doc if doc is not None else template, iid, observed, created, modified, None, num
            )
            attrs.setdefault(attr, []).append(instance)
        entity = {**self.base, "attrs": attrs}
        return all(p.matches(entity) for p in self.predicates)


def _reads_times(predicate: Predicate) -> bool:
    """Whether a predicate may read an instance's times (``speed.observedAt>...``):
    then states that differ only by them are told apart."""
    if attributes_read(predicate) == frozenset() or isinstance(predicate, GeoQuery):
        return False
    if not isinstance(predicate, QueryExpr):
        return True
    nodes: list[Any] = [predicate.root]
    while nodes:
        node = nodes.pop()
        if isinstance(node, And | Or):
            nodes.extend(node.terms)
        elif isinstance(node, Exists | NotExists | Comparison):
            if node.path.meta in _TIMES or node.path.member:
                return True
        else:
            return True
    return False


_TIMES = frozenset({"observedAt", "createdAt", "modifiedAt", "deletedAt", "instanceId"})
