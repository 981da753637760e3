"""The NGSI-LD query languages as pure functions (GS CIM 009 v1.8, 4.9, 4.17, 4.19).

Each parser turns the text of a request parameter into a small tree that a store can
inspect (to push simple cases down to SQL) and that can test a stored entity
(``core.model``) exactly::

    expand = context.expand
    q = parse_q('(temperature>=20;temperature<=25)|capacity<=10', expand)
    q.root        # Or(terms=(And(terms=(Comparison(...), Comparison(...))), Comparison(...)))
    q.matches(entity)
    q.attribute_names   # frozenset({"https://.../temperature", "https://.../capacity"})

The tree (all frozen dataclasses, each with ``matches(entity) -> bool``):

- ``And(terms)`` / ``Or(terms)``: n-ary, never nested in a node of the same kind.
- ``Exists(path)`` / ``NotExists(path)``: ``q=attr`` and ``q=!attr``.
- ``Comparison(path, op, value)``: ``op`` is one of ``== != > >= < <= ~= !~=``;
  ``value`` is a ``Scalar`` (str, int, float, bool or ``Temporal``), a ``Range``, a
  tuple of scalars (a value list) or, for ``~=`` / ``!~=``, the regex source (str).
- ``Path(attr, sub, meta, keys, member)``: ``attr`` is the expanded attribute name
  (or, when ``member`` is true, one of the entity members ``id``, ``type``,
  ``createdAt``, ``modifiedAt``); ``sub`` the expanded sub-attribute names;
  ``meta`` an instance member (``observedAt``, ``unitCode``, ``datasetId``, ...);
  ``keys`` the trailing path into a JSON value, or a language tag (``*`` for any).
- ``ScopePattern(pattern)`` for scopeQ and ``TypeName(name)`` for type selections.

Matching follows 4.9: an attribute matches when any of its instances does; a value
that is an array matches ``==`` when any element does and ``!=`` when none does;
values of different data types never compare (``!=`` then matches); Relationships
only answer ``==`` and ``!=``. Unquoted DateTime values are normalised to the stored
timestamp form ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC), so they compare as strings.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Literal, Protocol, TypeAlias

from cityverse.core.entity import format_utc, valid_name
from cityverse.core.errors import BadRequestData, NgsiError
from cityverse.core.model import Entity, Instance

Expand = Callable[[str], str]
"""A @context's term expansion: short name -> IRI (an IRI is returned as is)."""

MAX_DEPTH = 64
"""Deepest nesting of parentheses accepted, so that evaluation stays shallow."""

ENTITY_MEMBERS = frozenset({"id", "type", "createdAt", "modifiedAt"})
"""Names that, first in a q path, mean the entity's own members, not attributes."""

INSTANCE_MEMBERS = frozenset(
    {"observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId", "objectType"}
)
"""Names that, last in a q path, mean a member of the attribute instance."""

OPERATORS = ("!~=", "~=", "==", "!=", ">=", "<=", ">", "<")  # longest first
ORDERING = frozenset({">", ">=", "<", "<="})

_LETTER = r"[^\W\d_]"
_NAME = rf"{_LETTER}\w*(?::{_LETTER}\w*)?"  # 4.6.2 name, optionally prefix:name
_NAME_RE = re.compile(_NAME)
_IRI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+")
_KEY_RE = re.compile(r"[^\[\].\s;|()]+")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
_DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_RE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z?")
_CANONICAL_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_SCOPE_LEVEL = r"(?:\w+|\+)"
_SCOPE_RE = re.compile(rf"/#|(?:/{_SCOPE_LEVEL})+(?:/#)?")
_JSON = json.JSONDecoder()


class Node(Protocol):
    """A node of a parsed expression: an exact test on a stored entity."""

    def matches(self, entity: Entity) -> bool: ...


# --- values -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Temporal:
    """An unquoted DateTime, Date or Time (4.6.3), normalised to compare as a string.

    DateTime: ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC); Date: ``YYYY-MM-DD``;
    Time: ``HH:MM:SS.mmm``.
    """

    kind: Literal["DateTime", "Date", "Time"]
    text: str


Scalar: TypeAlias = str | int | float | bool | Temporal


@dataclass(frozen=True, slots=True)
class Range:
    """``low..high``, both included."""

    low: Scalar
    high: Scalar


QueryValue: TypeAlias = Scalar | Range | tuple[Scalar, ...]


def normalise_datetime(text: str) -> str | None:
    """An ISO 8601 date-time as the stored UTC form, or None if it is not one."""
    try:
        dt = datetime.fromisoformat(text)
        dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return format_utc(dt)


def _normalise_time(text: str) -> str | None:
    try:
        t = time.fromisoformat(text.removesuffix("Z"))
    except ValueError:
        return None
    return f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond // 1000:03d}"


def _normalise_target(target: Any, kind: str) -> str | None:
    """A stored value as the ``Temporal`` form of ``kind``, or None if of another type."""
    if not isinstance(target, str):
        return None
    if kind == "DateTime":
        if _CANONICAL_DATETIME_RE.fullmatch(target):
            return target
        if len(target) > 10 and target[10] == "T":
            return normalise_datetime(target)
        return None
    if kind == "Date":
        return target if _DATE_RE.fullmatch(target) else None
    return _normalise_time(target) if _TIME_RE.fullmatch(target) else None


def _is_number(x: Any) -> bool:
    # bool is an int in Python but a different JSON type; NaN never compares.
    return isinstance(x, int | float) and not isinstance(x, bool) and x == x


def _compare(target: Any, value: Scalar) -> int | None:
    """-1, 0 or 1 as target is below, equal to or above value; None if incomparable."""
    a: Any
    b: Any
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not _is_number(target):
            return None
        a, b = target, value
    elif isinstance(value, Temporal):
        a, b = _normalise_target(target, value.kind), value.text
        if a is None:
            return None
    elif isinstance(target, str):
        a, b = target, value
    else:
        return None
    return (a > b) - (a < b)


# --- paths and the tree ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Path:
    """Where a q term looks in an entity (see the module docstring)."""

    attr: str
    sub: tuple[str, ...] = ()
    meta: str | None = None
    keys: tuple[str, ...] = ()
    member: bool = False


Kind = Literal["value", "vocab", "rel"]
_VALUE_KINDS: dict[str, tuple[str, Kind]] = {
    "Property": ("value", "value"),
    "GeoProperty": ("value", "value"),
    "JsonProperty": ("json", "value"),
    "ListProperty": ("valueList", "value"),
    "VocabProperty": ("vocab", "vocab"),
    "Relationship": ("object", "rel"),
    "ListRelationship": ("objectList", "rel"),
}


def _flatten(value: Any) -> list[Any]:
    """Values an array stands for (any element matches), with JSON-LD @value unwrapped."""
    items = value if isinstance(value, list) else [value]
    return [x["@value"] if isinstance(x, dict) and "@value" in x else x for x in items]


def _instance_target(inst: Instance, path: Path) -> tuple[list[Any], Kind] | None:
    """The target values of one instance, or None if the path is not defined in it."""
    if path.meta is not None:
        meta = inst.get(path.meta)
        if meta is None:
            return None
        return [meta], "vocab" if path.meta == "objectType" else "value"
    typ = inst.get("type")
    if typ == "LanguageProperty":
        lang_map = inst.get("languageMap")
        if not isinstance(lang_map, dict) or len(path.keys) > 1:
            return None
        if path.keys and path.keys[0] != "*":
            if path.keys[0] not in lang_map:
                return None
            return _flatten(lang_map[path.keys[0]]), "value"
        return [s for v in lang_map.values() for s in _flatten(v)], "value"
    if not isinstance(typ, str) or typ not in _VALUE_KINDS:
        return None
    member, kind = _VALUE_KINDS[typ]
    if member not in inst:
        return None
    value = inst[member]
    if path.keys:
        if kind != "value" or typ == "ListProperty":
            return None
        for key in path.keys:
            # An ECMA-262 member expression: only objects have members.
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
    return _flatten(value), kind


def _resolve(path: Path, entity: Entity) -> Iterator[tuple[list[Any], Kind]]:
    """Target values of each instance of the path's element present in the entity."""
    if path.member:
        if path.attr == "type":
            yield list(entity.get("type", ())), "vocab"
        elif path.attr in entity:
            yield [entity[path.attr]], "value"
        return
    attrs = entity.get("attrs")
    instances = attrs.get(path.attr) if isinstance(attrs, dict) else None
    if not isinstance(instances, list):
        return
    for inst in instances:
        node: Any = inst
        for name in path.sub:
            subs = node.get("sub")
            node = subs.get(name) if isinstance(subs, dict) else None
            if not isinstance(node, dict):
                break
        else:
            if isinstance(node, dict):
                got = _instance_target(node, path)
                if got is not None:
                    yield got


@dataclass(frozen=True, slots=True)
class And:
    """All terms match."""

    terms: tuple[Node, ...]

    def matches(self, entity: Entity) -> bool:
        return all(t.matches(entity) for t in self.terms)


@dataclass(frozen=True, slots=True)
class Or:
    """At least one term matches."""

    terms: tuple[Node, ...]

    def matches(self, entity: Entity) -> bool:
        return any(t.matches(entity) for t in self.terms)


@dataclass(frozen=True, slots=True)
class Exists:
    """``q=attr``: the entity has the target element."""

    path: Path

    def matches(self, entity: Entity) -> bool:
        return any(True for _ in _resolve(self.path, entity))


@dataclass(frozen=True, slots=True)
class NotExists:
    """``q=!attr``: the entity lacks the target element."""

    path: Path

    def matches(self, entity: Entity) -> bool:
        return not any(True for _ in _resolve(self.path, entity))


@dataclass(frozen=True, slots=True)
class Comparison:
    """``path op value``; ``expanded`` maps string values to their expanded IRIs (for
    VocabProperty, ``objectType`` and entity types, which are stored expanded)."""

    path: Path
    op: str
    value: QueryValue
    expanded: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, entity: Entity) -> bool:
        return any(self._matches_instance(vs, kind) for vs, kind in _resolve(self.path, entity))

    def _matches_instance(self, values: list[Any], kind: Kind) -> bool:
        op = self.op
        if op == "==":
            return any(self._equals(t, kind) for t in values)
        if op == "!=":
            return not any(self._equals(t, kind) for t in values)
        if kind == "rel":  # 4.9: Relationships answer only equal and unequal
            return False
        if op == "~=":
            assert self.pattern is not None
            return any(isinstance(t, str) and self.pattern.search(t) for t in values)
        if op == "!~=":
            assert self.pattern is not None
            strings = [t for t in values if isinstance(t, str)]
            return bool(strings) and not any(self.pattern.search(t) for t in strings)
        assert not isinstance(self.value, Range | tuple)
        for t in values:
            c = _compare(t, self.value)
            if c is not None and (
                (op == ">" and c > 0)
                or (op == ">=" and c >= 0)
                or (op == "<" and c < 0)
                or (op == "<=" and c <= 0)
            ):
                return True
        return False

    def _equals(self, target: Any, kind: Kind) -> bool:
        value = self.value
        if isinstance(value, Range):
            low, high = _compare(target, value.low), _compare(target, value.high)
            return low is not None and high is not None and low >= 0 and high <= 0
        if isinstance(value, tuple):
            return any(self._scalar_equals(target, v, kind) for v in value)
        return self._scalar_equals(target, value, kind)

    def _scalar_equals(self, target: Any, value: Scalar, kind: Kind) -> bool:
        if isinstance(value, bool):
            return isinstance(target, bool) and target is value
        if isinstance(value, str):
            if not isinstance(target, str):
                return False
            return target == value or (kind == "vocab" and target == self.expanded.get(value))
        return _compare(target, value) == 0


@dataclass(frozen=True, slots=True)
class ScopePattern:
    """One scopeQ pattern: ``/a/b``, ``/a/+/c``, ``/a/#`` or ``/#`` (4.19)."""

    pattern: str
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, entity: Entity) -> bool:
        scopes = entity.get("scope") or []
        if self.regex is None:  # "/#": any explicitly scoped entity
            return bool(scopes)
        return any(isinstance(s, str) and self.regex.fullmatch(s) for s in scopes)


@dataclass(frozen=True, slots=True)
class TypeName:
    """One expanded entity type of a type selection (4.17)."""

    name: str

    def matches(self, entity: Entity) -> bool:
        return self.name in entity.get("type", ())


# --- results --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryExpr:
    """A parsed q expression (4.9); a ``store.base.Predicate``."""

    text: str
    root: Node
    attribute_names: frozenset[str]

    def matches(self, entity: Entity) -> bool:
        """True when the entity satisfies the expression."""
        return self.root.matches(entity)


@dataclass(frozen=True, slots=True)
class ScopeExpr:
    """A parsed scopeQ expression (4.19); a ``store.base.Predicate``."""

    text: str
    root: Node

    def matches(self, entity: Entity) -> bool:
        """True when the entity's scopes satisfy the expression."""
        return self.root.matches(entity)


@dataclass(frozen=True, slots=True)
class TypeExpr:
    """A parsed entity type selection (4.17); a ``store.base.Predicate``.

    ``names``: every matching entity has at least one of these types.
    """

    text: str
    root: Node
    names: frozenset[str]

    def matches(self, entity: Entity) -> bool:
        """True when the entity's types satisfy the selection."""
        return self.root.matches(entity)


# --- parsing ------------------------------------------------------------------------


class _Parser(ABC):
    """Recursive descent over ``or := and ("|" and)*``, ``and := primary (";" primary)*``,
    ``primary := "(" or ")" | term``; subclasses parse terms."""

    language = "expression"
    or_ops = "|"

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, message: str, pos: int | None = None) -> BadRequestData:
        pos = self.pos if pos is None else pos
        start = max(0, pos - 30)
        around = self.text[start : pos + 30]
        if start > 0:
            around = "..." + around
        if pos + 30 < len(self.text):
            around += "..."
        return BadRequestData(
            f"Invalid {self.language}: {message} at position {pos} (in {around!r})"
        )

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Node:
        if not self.text.strip():
            raise BadRequestData(f"Invalid {self.language}: it is empty")
        node = self.or_expr()
        if self.peek():
            raise self.fail(f"unexpected {self.peek()!r}")
        return node

    def or_expr(self) -> Node:
        terms = [self.and_expr()]
        while (c := self.peek()) and c in self.or_ops:
            self.pos += 1
            terms.append(self.and_expr())
        return _combine(Or, terms)

    def and_expr(self) -> Node:
        terms = [self.primary()]
        while self.peek() == ";":
            self.pos += 1
            terms.append(self.primary())
        return _combine(And, terms)

    def primary(self) -> Node:
        c = self.peek()
        if c == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"parentheses nested deeper than {MAX_DEPTH}")
            self.pos += 1
            node = self.or_expr()
            if self.peek() != ")":
                found = self.peek()
                raise self.fail(f"expected ')', found {found!r}" if found else "missing ')'")
            self.pos += 1
            self.depth -= 1
            return node
        if not c:
            raise self.fail("unexpected end, a term is missing")
        if c in ");|,":
            raise self.fail(f"unexpected {c!r}, a term is missing")
        return self.term()

    @abstractmethod
    def term(self) -> Node:
        """One term of the language (each language parses its own)."""


def _combine(kind: type[And] | type[Or], terms: list[Node]) -> Node:
    if len(terms) == 1:
        return terms[0]
    flat: list[Node] = []
    for t in terms:
        flat.extend(t.terms if isinstance(t, kind) else (t,))
    return kind(tuple(flat))


def compile_regex(source: str) -> re.Pattern[str]:
    """``re.compile`` of a client's pattern, without its FutureWarnings.

    A FutureWarning ("possible nested set") is about a later Python, not this request:
    under warnings-as-errors it would be a 500.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return re.compile(source)


class _QParser(_Parser):
    language = "q"

    def __init__(self, text: str, expand: Expand) -> None:
        super().__init__(text)
        self.expand = expand
        self.attribute_names: set[str] = set()

    def term(self) -> Node:
        if self.text.startswith("!", self.pos) and not self.text.startswith("!=", self.pos):
            self.pos += 1
            return NotExists(self.path())
        path = self.path()
        op = self.operator()
        if op is None:
            return Exists(path)
        if op in ("~=", "!~="):
            return self.regex_comparison(path, op)
        start = self.pos
        value = self.value()
        if op in ORDERING:
            if isinstance(value, Range | tuple):
                raise self.fail(f"{op!r} takes a single value, not a range or a list", start)
            if isinstance(value, bool):
                raise self.fail(f"{op!r} needs a number, a string or a date/time", start)
        expanded: dict[str, str] = {}
        if not path.member or path.attr == "type":
            expanded = self.expand_values(value)
        return Comparison(path, op, value, expanded=expanded)

    def path(self) -> Path:
        start = self.pos
        names = [self.name()]
        while self.text.startswith(".", self.pos):
            self.pos += 1
            names.append(self.name())
        keys: list[str] = []
        if self.text.startswith("[", self.pos):
            self.pos += 1
            keys.append(self.key())
            while self.text.startswith(".", self.pos):
                self.pos += 1
                keys.append(self.key())
            if not self.text.startswith("]", self.pos):
                raise self.fail("expected ']' closing the path into the value")
            self.pos += 1
        first, rest = names[0], names[1:]
        if first in ENTITY_MEMBERS:
            if rest or keys:
                raise self.fail(f"the entity member {first!r} has no sub-attributes", start)
            return Path(first, member=True)
        meta = rest.pop() if rest and rest[-1] in INSTANCE_MEMBERS else None
        for name in rest:
            if name in INSTANCE_MEMBERS:
                raise self.fail(f"{name!r} can only end an attribute path", start)
        if meta is not None and keys:
            raise self.fail(f"{meta!r} has no members to select with [...]", start)
        attr = self.expand(first)
        self.attribute_names.add(attr)
        return Path(attr, tuple(self.expand(n) for n in rest), meta, tuple(keys))

    def name(self) -> str:
        m = _NAME_RE.match(self.text, self.pos)
        if not m:
            c = self.text[self.pos : self.pos + 1]
            raise self.fail(
                f"expected an attribute name, found {c!r}" if c else "expected an attribute name"
            )
        self.pos = m.end()
        return m.group()

    def key(self) -> str:
        m = _KEY_RE.match(self.text, self.pos)
        if not m:
            raise self.fail("expected a member name inside [...]")
        self.pos = m.end()
        return m.group()

    def operator(self) -> str | None:
        self.skip_space()
        for op in OPERATORS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        c = self.peek()
        if not c or c in ";|)":
            return None
        if c == "=":
            raise self.fail("'=' is not an operator, use '=='")
        raise self.fail(
            f"expected an operator (== != > >= < <= ~= !~=) or the end of the term, found {c!r}"
        )

    def regex_comparison(self, path: Path, op: str) -> Comparison:
        start = self.pos
        source = self.quoted() if self.peek() == '"' else self.unquoted_regex()
        if not source:
            raise self.fail("missing regular expression", start)
        try:
            pattern = compile_regex(source)
        except (re.error, RecursionError, OverflowError, ValueError) as exc:
            raise self.fail(f"invalid regular expression {source!r} ({exc})", start) from None
        return Comparison(path, op, source, pattern=pattern)

    def unquoted_regex(self) -> str:
        # Parentheses balance inside the regex; ';' and '|' at its top level end it.
        start, depth, text = self.pos, 0, self.text
        i = start
        while i < len(text):
            c = text[i]
            if c == "\\":
                i += 2
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    break
                depth -= 1
            elif c in ";|" and depth == 0:
                break
            i += 1
        self.pos = min(i, len(text))
        return text[start : self.pos]

    def value(self) -> QueryValue:
        first = self.item()
        if self.text.startswith("..", self.pos):
            self.pos += 2
            start = self.pos
            high = self.item()
            if self.text.startswith(",", self.pos) or self.text.startswith("..", self.pos):
                raise self.fail("a range takes exactly two values")
            return self.range(first, high, start)
        if not self.text.startswith(",", self.pos):
            return first
        items = [first]
        while self.text.startswith(",", self.pos):
            self.pos += 1
            items.append(self.item())
        if self.text.startswith("..", self.pos):
            raise self.fail("a list cannot hold ranges")
        return tuple(items)

    def range(self, low: Scalar, high: Scalar, pos: int) -> Range:
        def group(v: Scalar) -> str:
            if isinstance(v, bool):
                raise self.fail("a range needs numbers, strings or dates/times, not booleans", pos)
            if isinstance(v, int | float):
                return "number"
            return v.kind if isinstance(v, Temporal) else "string"

        if group(low) != group(high):
            raise self.fail(f"both ends of a range must be of one type ({low!r}..{high!r})", pos)
        return Range(low, high)

    def item(self) -> Scalar:
        start = self.pos
        if self.peek() == '"':
            return self.quoted()
        text, i = self.text, self.pos
        while i < len(text) and text[i] not in ",;|)" and not text[i].isspace():
            if text.startswith("..", i):
                break
            i += 1
        token = text[self.pos : i]
        if not token:
            raise self.fail("missing value", start)
        self.pos = i
        return self.interpret(token, start)

    def quoted(self) -> str:
        start = self.pos
        try:
            value, end = _JSON.raw_decode(self.text, self.pos)
        except (ValueError, RecursionError):
            raise self.fail("unterminated or invalid quoted string", start) from None
        self.pos = end
        assert isinstance(value, str)
        return value

    def interpret(self, token: str, pos: int) -> Scalar:
        if token in ("true", "false"):
            return token == "true"
        if m := _NUMBER_RE.fullmatch(token):
            try:
                number: int | float = float(token) if m.group(1) or m.group(2) else int(token)
            except ValueError:
                raise self.fail(f"number {token[:20]!r} is too long", pos) from None
            if not math.isfinite(number):
                raise self.fail(f"number {token!r} is out of range", pos)
            return number
        if _DATETIME_RE.fullmatch(token):
            normalised = normalise_datetime(token)
            if normalised is None:
                raise self.fail(f"invalid date-time {token!r}", pos)
            return Temporal("DateTime", normalised)
        if _DATE_RE.fullmatch(token):
            try:
                date.fromisoformat(token)
            except ValueError:
                raise self.fail(f"invalid date {token!r}", pos) from None
            return Temporal("Date", token)
        if _TIME_RE.fullmatch(token):
            normalised = _normalise_time(token)
            if normalised is None:
                raise self.fail(f"invalid time {token!r}", pos)
            return Temporal("Time", normalised)
        if token[0] in "=<>!~\"'":
            # Operator characters cannot start a value: "a>>3" or "a===1" are typos.
            raise self.fail(f"a value cannot start with {token[0]!r}", pos)
        # An unquoted URI, or a bare term (a VocabProperty value, 4.9 example 12).
        return token

    def expand_values(self, value: QueryValue) -> dict[str, str]:
        items: tuple[Any, ...]
        if isinstance(value, Range):
            items = (value.low, value.high)
        elif isinstance(value, tuple):
            items = value
        else:
            items = (value,)
        expanded: dict[str, str] = {}
        for v in items:
            if isinstance(v, str) and (_NAME_RE.fullmatch(v) or _IRI_RE.fullmatch(v)):
                # A value needs expanding only if it is a vocabulary term; if not, it
                # compares as it is.
                with contextlib.suppress(NgsiError):
                    expanded[v] = self.expand(v)
        return expanded


class _ScopeParser(_Parser):
    language = "scopeQ"
    or_ops = "|,"

    def term(self) -> Node:
        start, text = self.pos, self.text
        i = start
        while i < len(text) and text[i] not in ";|,()" and not text[i].isspace():
            i += 1
        token = text[start:i]
        if not _SCOPE_RE.fullmatch(token):
            raise self.fail(
                f"{token!r} is not a scope pattern (/level/level..., '+' for one level, "
                "a final '/#' for the levels below)",
                start,
            )
        self.pos = i
        if token == "/#":
            return ScopePattern(token)
        deep = token.endswith("/#")
        levels = token.removesuffix("/#").split("/")[1:]
        regex = "".join("/[^/]+" if lv == "+" else "/" + re.escape(lv) for lv in levels)
        return ScopePattern(token, re.compile(regex + ("(?:/.*)?" if deep else "")))


class _TypeParser(_Parser):
    language = "entity type selection"
    or_ops = "|,"

    def __init__(self, text: str, expand: Expand) -> None:
        super().__init__(text)
        self.expand = expand

    def term(self) -> Node:
        start, text = self.pos, self.text
        i = start
        while i < len(text) and text[i] not in ";|,()" and not text[i].isspace():
            i += 1
        token = text[start:i]
        if not is_valid_name(token):
            raise self.fail(f"{token!r} is not a valid entity type name or URI", start)
        self.pos = i
        return TypeName(self.expand(token))


def _necessary_types(node: Node) -> frozenset[str]:
    """Types of which any entity matching ``node`` has at least one."""
    if isinstance(node, TypeName):
        return frozenset({node.name})
    if isinstance(node, Or):
        return frozenset().union(*(_necessary_types(t) for t in node.terms))
    assert isinstance(node, And)
    return min((_necessary_types(t) for t in node.terms), key=len)


def is_valid_name(name: str) -> bool:
    """True for a 4.6.2 name (``name`` or ``prefix:name``) or an absolute IRI."""
    return bool(_NAME_RE.fullmatch(name) or _IRI_RE.fullmatch(name))


# --- public API -----------------------------------------------------------------------


def parse_q(text: str, expand: Expand) -> QueryExpr:
    """Parse an NGSI-LD q expression (4.9); BadRequestData if it is not valid."""
    parser = _QParser(text, expand)
    root = parser.parse()
    return QueryExpr(text, root, frozenset(parser.attribute_names))


def parse_scope_q(text: str) -> ScopeExpr:
    """Parse an NGSI-LD scopeQ expression (4.19); BadRequestData if it is not valid."""
    return ScopeExpr(text, _ScopeParser(text).parse())


def parse_type_expr(text: str, expand: Expand) -> TypeExpr:
    """Parse an entity type selection (4.17): ``A,B``, ``A|B``, ``(A;B)|C``."""
    root = _TypeParser(text, expand).parse()
    return TypeExpr(text, root, _necessary_types(root))


def parse_attr_list(text: str, expand: Expand) -> list[str]:
    """Expanded names of a comma-separated attrs/pick/omit list, in order, once each."""
    names: list[str] = []
    for position, item in enumerate(text.split(","), start=1):
        name = item.strip()
        if not name:
            raise BadRequestData(f"Invalid attribute list {text!r}: item {position} is empty")
        # The same rule as for the names an entity may carry, so that every stored
        # attribute can be asked for.
        if not valid_name(name):
            raise BadRequestData(
                f"Invalid attribute list {text!r}: {name!r} is not a valid attribute name nor a URI"
            )
        expanded = expand(name)
        if expanded not in names:
            names.append(expanded)
    return names
