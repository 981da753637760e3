"""Push the simple parts of a q query down into SQL, so that a store skips rows early.

The SQL condition is a superset of the exact q test: every entity the q matches passes
it, and the store still runs ``EntityFilter.matches`` on what comes back. So only the
cases that are cheap and certain are translated (comparisons of a top-level Property's
value with a number or a string, combined by ``;`` and ``|``); anything else is left to
Python, and a store without push-down is just slower, never wrong. On SQLite, an
equality with a string first looks for the string in the document's text, which costs
no JSON parse (its JSON without the opening quote: ``D3"`` finds ``"D3"`` and
``"https://.../D3"`` in one search).

    cond = sqlite_condition(flt, "CAST(e.doc AS TEXT)")
    if cond: sql += " AND " + cond.sql; params += cond.params
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from cityverse.core.query import And, Comparison, Or, QueryExpr, Range
from cityverse.store.base import EntityFilter

_ORDERED = {">", ">=", "<", "<="}


@dataclass(frozen=True, slots=True)
class Condition:
    """An SQL boolean expression and its parameters."""

    sql: str
    params: list[Any]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plain(value: Any) -> bool:
    return _number(value) or isinstance(value, str)


def _simple_path(node: Comparison) -> str | None:
    path = node.path
    if path.sub or path.meta or path.keys or path.member or '"' in path.attr or "\\" in path.attr:
        return None
    return path.attr


def _translate(node: Any, leaf: Any) -> Condition | None:
    """And/Or structure with ``leaf`` for each comparison; None where not translatable."""
    if isinstance(node, And):
        translated = [_translate(t, leaf) for t in node.terms]
        parts = [c for c in translated if c is not None]
        if not parts:
            return None
        _cheap_first(parts)
        return Condition(
            "(" + " AND ".join(p.sql for p in parts) + ")", [x for p in parts for x in p.params]
        )
    if isinstance(node, Or):
        options = [_translate(t, leaf) for t in node.terms]
        done = [p for p in options if p is not None]
        if len(done) < len(options):
            return None
        return Condition(
            "(" + " OR ".join(p.sql for p in done) + ")", [x for p in done for x in p.params]
        )
    if isinstance(node, Comparison):
        result: Condition | None = leaf(node)
        return result
    return None


def _cheap_first(parts: list[Condition]) -> None:
    """Put first the conditions that begin with substring searches: SQLite tests the
    terms of an AND in order, and those cost no JSON parse."""
    parts.sort(key=lambda part: not part.sql.lstrip("(").startswith("instr("))


def _q_nodes(flt: EntityFilter) -> list[Any]:
    return [p.root for p in flt.predicates if isinstance(p, QueryExpr)]


def _combine(flt: EntityFilter, leaf: Any) -> Condition | None:
    parts = [c for c in (_translate(root, leaf) for root in _q_nodes(flt)) if c is not None]
    if not parts:
        return None
    _cheap_first(parts)
    return Condition(" AND ".join(p.sql for p in parts), [x for p in parts for x in p.params])


def sqlite_condition(flt: EntityFilter, doc: str) -> Condition | None:
    """A superset condition on the SQLite JSON text expression ``doc``, or None."""

    def leaf(node: Comparison) -> Condition | None:
        attr = _simple_path(node)
        if attr is None:
            return None
        base = f'$.attrs."{attr}"'
        value = node.value
        if node.op in _ORDERED and _number(value):
            test, params = f"json_extract({doc}, ?) {node.op} ?", [value]
        elif node.op == "==" and _plain(value):
            test, params = f"json_extract({doc}, ?) = ?", [value]
        elif (
            node.op == "=="
            and isinstance(value, Range)
            and _number(value.low)
            and _number(value.high)
        ):
            test, params = f"json_extract({doc}, ?) BETWEEN ? AND ?", [value.low, value.high]
        elif node.op == "==" and isinstance(value, tuple) and value and all(map(_plain, value)):
            marks = ", ".join("?" for _ in value)
            test, params = f"json_extract({doc}, ?) IN ({marks})", list(value)
        else:
            return None
        # Anything but a single plain Property with a scalar value passes to Python.
        # The test itself comes first: SQLite stops at the first true term of an OR.
        sql = (
            f"({test} OR json_extract({doc}, ?) != 'Property'"
            f" OR json_array_length({doc}, ?) > 1 OR json_type({doc}, ?) IN ('array', 'object'))"
        )
        value_path = base + "[0].value"
        params = [value_path, *params, base + "[0].type", base, value_path]
        needles = _needles(node)
        if needles:
            # A string the entity equals is in its document as JSON, written as orjson
            # writes it: a substring search rules out most rows before any JSON parse.
            found = " OR ".join(f"instr({doc}, ?) > 0" for _ in needles)
            return Condition(f"(({found}) AND {sql})", [*needles, *params])
        return Condition(sql, params)

    return _combine(flt, leaf)


def _needles(node: Comparison) -> list[str]:
    """For ``==`` with strings, what the document's text must then contain: each string
    and its expanded IRI where q compares that too (a VocabProperty), as JSON text without
    the opening quote; empty when the values are not all strings. A needle that holds
    another is left out (the shorter one finds it too): ``D3"`` stands for both ``"D3"``
    and ``"https://.../D3"``. A needle that starts with a quote would stop at every
    key and string of the document."""
    values = node.value if isinstance(node.value, tuple) else (node.value,)
    if node.op != "==" or not values or not all(isinstance(v, str) for v in values):
        return []
    texts = [*values, *(node.expanded[v] for v in values if v in node.expanded)]
    ends = list(dict.fromkeys(orjson.dumps(text).decode()[1:] for text in texts))
    return [end for end in ends if not any(other in end for other in ends if other != end)]


def postgres_condition(flt: EntityFilter, doc: str) -> Condition | None:
    """A superset condition on the PostgreSQL jsonb expression ``doc``, or None.

    It uses SQL/JSON path filters, whose lax mode already looks into every instance and
    every element of an array value, and whose comparisons of mismatched kinds are
    false, as in q.
    """

    def leaf(node: Comparison) -> Condition | None:
        attr = _simple_path(node)
        if attr is None:
            return None
        value = node.value
        if node.op in _ORDERED and _number(value):
            test, variables = f"@.value {node.op} $v", {"v": value}
        elif node.op == "==" and _plain(value):
            test, variables = "@.value == $v", {"v": value}
        elif (
            node.op == "=="
            and isinstance(value, Range)
            and _number(value.low)
            and _number(value.high)
        ):
            test, variables = (
                "@.value >= $lo && @.value <= $hi",
                {"lo": value.low, "hi": value.high},
            )
        else:
            return None
        path = f'$.attrs."{attr}"[*] ? (@.type != "Property" || {test})'
        return Condition(
            f"jsonb_path_exists({doc}, %s::jsonpath, %s::jsonb)",
            [path, orjson.dumps(variables).decode()],
        )

    return _combine(flt, leaf)
