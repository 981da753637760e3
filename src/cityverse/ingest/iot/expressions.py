"""Measure expressions: the part of the FIWARE JEXL language that transforms a reading.

An attribute provisioned with an ``expression`` gets the expression's result instead of
the raw measure. Supported, and evaluated without ``eval``: numbers, strings, ``true``,
``false``, ``null``, variables (the measures of the message by their device name and
attribute name, ``value`` for the attribute's own measure), ``+ - * / % **``,
comparisons, ``&&``, ``||``, ``!``, arrays, objects (``{type: 'Point', coordinates:
[lon, lat]}``), member access, and JEXL transforms after a pipe::

    compile_expression("value * 0.1").evaluate({"value": "250"})     # 25.0
    compile_expression("${@value * 0.1}")                              # the legacy syntax
    compile_expression("t | round").evaluate({"t": 24.6})             # 25
    compile_expression("level / 100 | tofixed(1)")

Arithmetic follows JavaScript as JEXL does: ``+`` with a string concatenates, the other
operators read strings as numbers. A result that is null or not a number (a variable
that is not a number, a division by zero) means "no value": the attribute is left out.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cityverse.core.entity import format_utc

Variables = Mapping[str, Any]
_Fn = Callable[[Variables], Any]

_LEGACY = re.compile(r"^\s*\$\{(.*)\}\s*$", re.S)
_AT_NAME = re.compile(r"@(\w+)")
_MAX_LENGTH = 2000


class ExpressionError(ValueError):
    """An expression that cannot be compiled (bad syntax or an unsupported construct)."""


class Missing(LookupError):
    """A variable the expression needs is not among the measures."""


class _NoValue(Exception):
    """The expression has no value (null, NaN, a division by zero)."""


@dataclass(frozen=True)
class Expression:
    """A compiled expression; ``names`` are the variables it reads."""

    source: str
    names: frozenset[str]
    _fn: _Fn

    def evaluate(self, variables: Variables) -> Any:
        """The value, or None when there is none; raises Missing for an absent variable."""
        try:
            result = self._fn(variables)
        except _NoValue:
            return None
        except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError):
            return None
        if isinstance(result, float) and not math.isfinite(result):
            return None
        return result


def compile_expression(text: str) -> Expression:
    """Compile a JEXL-like expression (or the legacy ``${@value * 2}`` form)."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("an expression must be a non-empty string")
    if len(text) > _MAX_LENGTH:
        raise ExpressionError(f"an expression is at most {_MAX_LENGTH} characters")
    source = text
    legacy = _LEGACY.match(text)
    if legacy:
        text = _AT_NAME.sub(r"\1", legacy.group(1))
    try:
        tree = ast.parse(_to_python(text).strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"expression {source!r} is not valid: {exc.msg}") from None
    names: set[str] = set()
    fn = _compile(tree.body, names)
    return Expression(source, frozenset(names), fn)


def _to_python(text: str) -> str:
    """JEXL operators rewritten for Python's parser; string literals are left alone."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            end = i + 1
            while end < len(text) and text[end] != ch:
                end += 2 if text[end] == "\\" else 1
            out.append(text[i : end + 1])
            i = end + 1
            continue
        pair = text[i : i + 2]
        if text[i : i + 3] in ("===", "!=="):
            out.append(text[i : i + 2])
            i += 3
        elif pair == "&&":
            out.append(" and ")
            i += 2
        elif pair == "||":
            out.append(" or ")
            i += 2
        elif ch == "!" and pair != "!=":
            out.append(" not ")
            i += 1
        elif ch == "?" or ch == ";":
            raise ExpressionError(f"{ch!r} is not supported in expressions")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


_CONSTANTS = {"true": True, "false": False, "null": None, "undefined": None}


def _compile(node: ast.expr, names: set[str]) -> _Fn:
    if isinstance(node, ast.Constant):
        value = node.value
        if not isinstance(value, str | int | float | bool | type(None)):
            raise ExpressionError(f"constant {value!r} is not supported")
        return lambda v: value
    if isinstance(node, ast.Name):
        return _variable(node.id, names)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.BitOr):
            return _pipe(_compile(node.left, names), node.right, names)
        return _binary(node.op, _compile(node.left, names), _compile(node.right, names))
    if isinstance(node, ast.UnaryOp):
        return _unary(node.op, _compile(node.operand, names))
    if isinstance(node, ast.BoolOp):
        parts = [_compile(item, names) for item in node.values]
        return _bool_op(isinstance(node.op, ast.And), parts)
    if isinstance(node, ast.Compare):
        return _compare(node, names)
    if isinstance(node, ast.List | ast.Tuple):
        items = [_compile(item, names) for item in node.elts]
        return lambda v: [item(v) for item in items]
    if isinstance(node, ast.Dict):
        return _object(node, names)
    if isinstance(node, ast.Subscript):
        target, index = _compile(node.value, names), _compile(node.slice, names)
        return lambda v: _member(target(v), index(v))
    if isinstance(node, ast.Attribute):
        target, attr = _compile(node.value, names), node.attr
        return lambda v: _member(target(v), attr)
    raise ExpressionError(f"{type(node).__name__} is not supported in expressions")


def _variable(name: str, names: set[str]) -> _Fn:
    if name in _CONSTANTS:
        constant = _CONSTANTS[name]
        return lambda v: constant
    names.add(name)

    def read(v: Variables) -> Any:
        try:
            return v[name]
        except KeyError:
            raise Missing(name) from None

    return read


def _object(node: ast.Dict, names: set[str]) -> _Fn:
    keys: list[str] = []
    for key in node.keys:
        if isinstance(key, ast.Name):
            keys.append(key.id)
        elif isinstance(key, ast.Constant) and isinstance(key.value, str):
            keys.append(key.value)
        else:
            raise ExpressionError("object keys must be names or strings")
    values = [_compile(value, names) for value in node.values]
    return lambda v: {k: f(v) for k, f in zip(keys, values, strict=True)}


def _member(target: Any, key: Any) -> Any:
    if isinstance(target, dict):
        return target.get(key)
    if isinstance(target, list | str) and isinstance(key, int | float):
        return target[int(key)]
    return None


def number(value: Any) -> int | float:
    """A value read as a number the way JavaScript does; _NoValue when it is not one."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            result = float(text)
        except ValueError:
            raise _NoValue from None
        if math.isfinite(result):
            return result
    raise _NoValue


def _js_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str) or isinstance(b, str):
        return _js_text(a) + _js_text(b)
    return number(a) + number(b)


def _divide(a: Any, b: Any) -> Any:
    divisor = number(b)
    if divisor == 0:
        raise _NoValue
    result = number(a) / divisor
    return int(result) if result.is_integer() and abs(result) < 2**53 else result


def _modulo(a: Any, b: Any) -> Any:
    divisor = number(b)
    if divisor == 0:
        raise _NoValue
    return math.fmod(number(a), divisor)


def _power(a: Any, b: Any) -> Any:
    exponent = number(b)
    if abs(exponent) > 1000:
        raise _NoValue
    return number(a) ** exponent


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _add,
    ast.Sub: lambda a, b: number(a) - number(b),
    ast.Mult: lambda a, b: number(a) * number(b),
    ast.Div: _divide,
    ast.Mod: _modulo,
    ast.Pow: _power,
}


def _binary(op: ast.operator, left: _Fn, right: _Fn) -> _Fn:
    fn = _BINARY.get(type(op))
    if fn is None:
        raise ExpressionError(f"operator {type(op).__name__} is not supported")
    return lambda v: fn(left(v), right(v))


def _unary(op: ast.unaryop, operand: _Fn) -> _Fn:
    if isinstance(op, ast.USub):
        return lambda v: -number(operand(v))
    if isinstance(op, ast.UAdd):
        return lambda v: number(operand(v))
    if isinstance(op, ast.Not):
        return lambda v: not _truthy(operand(v))
    raise ExpressionError(f"operator {type(op).__name__} is not supported")


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and not (isinstance(value, float) and value != value)


def _bool_op(conjunction: bool, parts: list[_Fn]) -> _Fn:
    def run(v: Variables) -> Any:
        result: Any = None
        for part in parts:
            result = part(v)
            if _truthy(result) != conjunction:
                return result
        return result

    return run


def _loose(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    if isinstance(a, int | float | str | bool) and isinstance(b, int | float | str | bool):
        try:
            return number(a), number(b)
        except _NoValue:
            return _js_text(a), _js_text(b)
    return a, b


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}


def _compare(node: ast.Compare, names: set[str]) -> _Fn:
    if len(node.ops) != 1:
        raise ExpressionError("chained comparisons are not supported")
    test = _COMPARE.get(type(node.ops[0]))
    if test is None:
        raise ExpressionError(f"comparison {type(node.ops[0]).__name__} is not supported")
    left, right = _compile(node.left, names), _compile(node.comparators[0], names)
    return lambda v: test(*_loose(left(v), right(v)))


# -- transforms -------------------------------------------------------------------------


def _to_fixed(value: Any, decimals: Any = 0) -> str:
    return f"{float(number(value)):.{int(number(decimals))}f}"


def _iso_date(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format_utc(datetime.fromtimestamp(value / 1000, UTC))
    raise _NoValue


def _parse_int(value: Any) -> int:
    match = re.match(r"\s*[-+]?\d+", str(value))
    if match is None:
        raise _NoValue
    return int(match.group())


def _round(value: Any) -> int:
    return math.floor(number(value) + 0.5)


TRANSFORMS: dict[str, Callable[..., Any]] = {
    "round": _round,
    "floor": lambda x: math.floor(number(x)),
    "ceil": lambda x: math.ceil(number(x)),
    "tofixed": _to_fixed,
    "parsefloat": lambda x: float(number(x)),
    "parseint": _parse_int,
    "tostring": _js_text,
    "touppercase": lambda x: _js_text(x).upper(),
    "tolowercase": lambda x: _js_text(x).lower(),
    "trim": lambda x: _js_text(x).strip(),
    "length": lambda x: len(_js_text(x)),
    "indexOf": lambda x, sub: _js_text(x).find(_js_text(sub)),
    "substr": lambda x, start, length=None: _js_text(x)[
        int(number(start)) : None if length is None else int(number(start)) + int(number(length))
    ],
    "split": lambda x, sep: _js_text(x).split(_js_text(sep)),
    "replacestr": lambda x, old, new: _js_text(x).replace(_js_text(old), _js_text(new), 1),
    "replaceallstr": lambda x, old, new: _js_text(x).replace(_js_text(old), _js_text(new)),
    "toisodate": _iso_date,
    "typeof": lambda x: (
        "number"
        if isinstance(x, int | float) and not isinstance(x, bool)
        else "string"
        if isinstance(x, str)
        else "boolean"
        if isinstance(x, bool)
        else "object"
    ),
}
"""The JEXL transforms of the FIWARE agents that a measure usually needs."""


def _pipe(left: _Fn, right: ast.expr, names: set[str]) -> _Fn:
    index: _Fn | None = None
    if isinstance(right, ast.Subscript):
        index = _compile(right.slice, names)
        right = right.value
    if isinstance(right, ast.Name):
        name, args = right.id, []
    elif isinstance(right, ast.Call) and isinstance(right.func, ast.Name) and not right.keywords:
        name, args = right.func.id, [_compile(arg, names) for arg in right.args]
    else:
        raise ExpressionError("a pipe must be followed by a transform, like '| round'")
    transform = TRANSFORMS.get(name)
    if transform is None:
        known = ", ".join(sorted(TRANSFORMS))
        raise ExpressionError(f"unknown transform {name!r} (known: {known})")

    def run(v: Variables) -> Any:
        result = transform(left(v), *[arg(v) for arg in args])
        return result if index is None else _member(result, index(v))

    return run
