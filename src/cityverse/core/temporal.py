"""The temporal API's language: time windows, durations and the temporal representations.

Parsing (GS CIM 009 v1.8 clause 4.11, temporal query language, and clause 6.3.10's
temporal pagination): ``timerel``/``timeAt``/``endTimeAt`` become a ``Window`` of epoch
milliseconds on one time property::

    parse_window("between", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "observedAt")
    # Window("observedAt", start=1767225600000, end=1767312000000): start <= t < end

``before`` selects t < timeAt, ``after`` t > timeAt (start = timeAt + 1 ms, times being
whole milliseconds) and ``between`` timeAt <= t < endTimeAt. ``aggrPeriodDuration`` is
an ISO 8601 duration (``P1D``, ``PT15M``, ``P1W``, ``P1Y2M``...): years and months
become calendar ``months``, the rest fixed ``millis``; a zero duration (``PT0S``) means
one period over the whole window (clause 4.5.19).

Rendering (clauses 4.5.7 normalized, 4.5.8 concise, 4.5.9 simplified ``temporalValues``
and 4.5.19 aggregated): stored history instances (core/model.py shape plus
``instanceId`` and, for a deletion, ``deletedAt``) in, compacted JSON out, without
``@context``. The concise form is the normalized one without each instance's ``type``
wherever its value member tells it (``value``, ``object``, ``languageMap``...).

Every bad input raises ``BadRequestData`` with a detail naming the parameter. Nothing
here does I/O; the broker maps ``Window`` and ``Duration`` onto the store's types.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from cityverse.core.entity import (
    ENTITY_MEMBERS,
    NameMapper,
    format_utc,
    normalise_datetime,
    parse_attribute,
    render_entity,
    valid_name,
    valid_uri,
)
from cityverse.core.errors import BadRequestData
from cityverse.core.model import VALUE_MEMBER, Instance

TIMERELS = ("before", "after", "between")
TIME_PROPERTIES = ("observedAt", "createdAt", "modifiedAt", "deletedAt")
"""What ``timeproperty`` may name; observedAt is the default."""

AGGREGATION_METHODS = (
    "totalCount",
    "distinctCount",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "sumsq",
)
"""The ``aggrMethods`` of clause 4.5.19, in the order a response lists them."""

NORMALIZED = "normalized"
CONCISE = "concise"
TEMPORAL_VALUES = "temporalValues"
AGGREGATED_VALUES = "aggregatedValues"

NGSI_NULL = "urn:ngsi-ld:null"

# Clause 4.5.9: the member that holds the [value, time] pairs of each attribute type.
VALUES_MEMBER = {
    "Property": "values",
    "GeoProperty": "values",
    "Relationship": "objects",
    "LanguageProperty": "languageMaps",
    "VocabProperty": "vocabs",
    "ListProperty": "valueLists",
    "ListRelationship": "objectLists",
    "JsonProperty": "jsons",
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MAX_YEARS = 10_000
MAX_MONTHS = 12 * _MAX_YEARS
MAX_MILLIS = _MAX_YEARS * 366 * 86_400_000
"""Durations are capped at ten thousand years: longer ones are mistakes, not queries."""

_NUMBER = r"(\d{1,12})"
_DURATION = re.compile(
    rf"P(?!$)(?:{_NUMBER}Y)?(?:{_NUMBER}M)?(?:{_NUMBER}D)?"
    rf"(?:T(?=\d)(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:(\d{{1,12}}(?:[.,]\d{{1,9}})?)S)?)?"
)
_WEEKS = re.compile(rf"P{_NUMBER}W")


@dataclass(frozen=True, slots=True)
class Window:
    """Instances whose ``prop`` time t satisfies ``start <= t < end`` (None: unbounded)."""

    prop: str = "observedAt"
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True, slots=True)
class Duration:
    """An ISO 8601 duration: calendar ``months`` plus fixed ``millis``."""

    months: int = 0
    millis: int = 0

    @property
    def zero(self) -> bool:
        return self.months == 0 and self.millis == 0


@dataclass(frozen=True, slots=True)
class TemporalQuery:
    """A parsed temporal query: window, lastN and the representation asked for."""

    window: Window = Window()
    timerel: str | None = None
    time_at: int | None = None
    end_time_at: int | None = None
    last_n: int | None = None
    representation: str = NORMALIZED
    methods: tuple[str, ...] = ()
    period: Duration | None = None
    """The aggregation period; None is one period over the whole window."""


# ------------------------------------------------------------------------------ times


def to_millis(text: Any, what: str = "time") -> int:
    """Epoch milliseconds of an ISO 8601 date-time (with Z or an offset)."""
    try:
        normal = normalise_datetime(text)
    except BadRequestData:
        raise BadRequestData(
            f"{what} {text!r} is not a date-time like 2026-05-01T10:00:00Z"
            " (ISO 8601, with Z or an offset)"
        ) from None
    moment = datetime.strptime(normal, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


def format_millis(millis: int) -> str:
    """Epoch milliseconds as the stored UTC form ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    return format_utc(_EPOCH + timedelta(milliseconds=millis))


def parse_timeproperty(raw: Any) -> str:
    """The ``timeproperty`` parameter (observedAt when absent)."""
    if raw is None:
        return "observedAt"
    if raw not in TIME_PROPERTIES:
        raise BadRequestData(f"timeproperty {raw!r} is not one of {', '.join(TIME_PROPERTIES)}")
    return str(raw)


def parse_window(timerel: Any, time_at: Any, end_time_at: Any, prop: str) -> Window:
    """The window of ``timerel``, ``timeAt`` and ``endTimeAt`` (4.11) on ``prop``."""
    end = to_millis(end_time_at, "endTimeAt") if end_time_at is not None else None
    if timerel is None:
        if time_at is not None:
            raise BadRequestData("timeAt needs timerel (before, after or between)")
        if end is not None:
            raise BadRequestData("endTimeAt needs timerel=between and timeAt")
        return Window(prop)
    if timerel not in TIMERELS:
        raise BadRequestData(f"timerel {timerel!r} is not one of {', '.join(TIMERELS)}")
    if time_at is None:
        raise BadRequestData(f"timerel={timerel} needs timeAt")
    start = to_millis(time_at, "timeAt")
    if timerel == "before":
        return Window(prop, None, start)
    if timerel == "after":
        return Window(prop, start + 1, None)
    if end is None:
        raise BadRequestData("timerel=between needs endTimeAt")
    if end <= start:
        raise BadRequestData(
            f"endTimeAt {end_time_at!r} must be after timeAt {time_at!r} with timerel=between"
        )
    return Window(prop, start, end)


def parse_last_n(raw: Any) -> int | None:
    """The ``lastN`` parameter: a positive integer, or None when absent."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise BadRequestData(f"lastN must be a positive integer, not {raw!r}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit():
        value = int(raw)
    else:
        raise BadRequestData(f"lastN must be a positive integer, not {raw!r}")
    if value < 1:
        raise BadRequestData(f"lastN must be a positive integer, not {raw!r}")
    return value


def parse_aggr_methods(raw: Any) -> tuple[str, ...]:
    """The ``aggrMethods`` (a comma-separated string or a list), in response order."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise BadRequestData("aggrMethods must be a comma-separated list of methods")
    names = {item.strip() for item in items}
    if not items or "" in names:
        raise BadRequestData(f"aggrMethods {raw!r} has an empty method")
    unknown = sorted(names.difference(AGGREGATION_METHODS))
    if unknown:
        raise BadRequestData(
            f"unknown aggregation method(s) {', '.join(unknown)}; known: "
            + ", ".join(AGGREGATION_METHODS)
        )
    return tuple(m for m in AGGREGATION_METHODS if m in names)


def parse_duration(text: Any) -> Duration:
    """An ISO 8601 duration: ``P[n]Y[n]M[n]DT[n]H[n]M[n]S`` or ``P[n]W`` (clause 4.5.19)."""
    if not isinstance(text, str):
        raise BadRequestData(f"aggrPeriodDuration must be an ISO 8601 duration, not {text!r}")
    weeks = _WEEKS.fullmatch(text)
    if weeks:
        duration = Duration(millis=int(weeks.group(1)) * 7 * 86_400_000)
    else:
        match = _DURATION.fullmatch(text)
        if match is None:
            raise BadRequestData(
                f"aggrPeriodDuration {text!r} is not an ISO 8601 duration such as P1D, PT1H,"
                " PT15M, P1W, P1M, P1Y or P1DT12H"
            )
        years, months, days, hours, minutes, seconds = match.groups()
        exact = Decimal((seconds or "0").replace(",", ".")) * 1000
        if exact != exact.to_integral_value():
            raise BadRequestData(
                f"aggrPeriodDuration {text!r} is finer than the millisecond history keeps"
            )
        millis = (
            int(days or 0) * 86_400_000
            + int(hours or 0) * 3_600_000
            + int(minutes or 0) * 60_000
            + int(exact)
        )
        duration = Duration(months=int(years or 0) * 12 + int(months or 0), millis=millis)
    if duration.months > MAX_MONTHS or duration.millis > MAX_MILLIS:
        raise BadRequestData(f"aggrPeriodDuration {text!r} is longer than {_MAX_YEARS} years")
    return duration


# ------------------------------------------------------------------------------ query

_REPRESENTATIONS = {
    "concise": CONCISE,
    "temporalValues": TEMPORAL_VALUES,
    "simplified": TEMPORAL_VALUES,
    "keyValues": TEMPORAL_VALUES,
    "aggregatedValues": AGGREGATED_VALUES,
    "normalized": NORMALIZED,
}


def parse_representation(options: Collection[str], fmt: Any = None) -> str:
    """normalized, concise, temporalValues or aggregatedValues from ``options`` and
    ``format``."""
    asked = {_REPRESENTATIONS[o] for o in options if o in _REPRESENTATIONS}
    if fmt is not None:
        if fmt not in _REPRESENTATIONS:
            raise BadRequestData(f"format {fmt!r} is not one of {', '.join(_REPRESENTATIONS)}")
        asked.add(_REPRESENTATIONS[fmt])
    if len(asked) > 1:
        raise BadRequestData(
            "ask for one temporal representation only: " + ", ".join(sorted(asked))
        )
    return asked.pop() if asked else NORMALIZED


def parse_temporal_query(params: Mapping[str, Any], options: Collection[str]) -> TemporalQuery:
    """The temporal part of a request: URL parameters or a ``temporalQ`` (5.2.21) merged
    with ``lastN``, ``aggrMethods`` and ``aggrPeriodDuration``."""
    representation = parse_representation(options, params.get("format"))
    prop = parse_timeproperty(params.get("timeproperty"))
    timerel = params.get("timerel")
    time_at = params.get("timeAt")
    end_time_at = params.get("endTimeAt")
    window = parse_window(timerel, time_at, end_time_at, prop)
    last_n = parse_last_n(params.get("lastN"))
    methods: tuple[str, ...] = ()
    if params.get("aggrMethods") is not None:
        methods = parse_aggr_methods(params["aggrMethods"])
    period = None
    if params.get("aggrPeriodDuration") is not None:
        duration = parse_duration(params["aggrPeriodDuration"])
        period = None if duration.zero else duration
    if representation == AGGREGATED_VALUES and not methods:
        raise BadRequestData("options=aggregatedValues needs aggrMethods")
    if timerel == "after" and window.start is not None:
        at: int | None = window.start - 1
    else:
        at = window.end if timerel == "before" else window.start
    return TemporalQuery(
        window=window,
        timerel=timerel,
        time_at=at,
        end_time_at=window.end if timerel == "between" else None,
        last_n=last_n,
        representation=representation,
        methods=methods,
        period=period,
    )


# ------------------------------------------------------------------------------ input

_PAIRS_MEMBER = {member: kind for kind, member in VALUES_MEMBER.items() if kind != "GeoProperty"}


def parse_temporal_entity(
    body: Any, ctx: NameMapper, *, now: str
) -> tuple[str, list[str], dict[str, list[Instance]]]:
    """The id, expanded types and attribute instances of a temporal entity (5.6.11)."""
    if not isinstance(body, dict):
        raise BadRequestData("a temporal entity must be a JSON object")
    entity_id = body.get("id", body.get("@id"))
    if entity_id is None:
        raise BadRequestData("the temporal entity has no 'id'")
    if not valid_uri(entity_id):
        raise BadRequestData(f"entity id {entity_id!r} is not a valid absolute URI")
    raw = body.get("type", body.get("@type"))
    if raw is None:
        raise BadRequestData("the temporal entity has no 'type'")
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names:
        raise BadRequestData("entity 'type' must be a string or a non-empty array of strings")
    types: list[str] = []
    for name in names:
        if not valid_name(name):
            raise BadRequestData(f"entity type {name!r} is not a valid name or IRI")
        iri = ctx.expand(name)
        if iri not in types:
            types.append(iri)
    return str(entity_id), types, parse_temporal_attributes(body, ctx, now=now)


def parse_temporal_attributes(body: Any, ctx: NameMapper, *, now: str) -> dict[str, list[Instance]]:
    """Attribute instances in the temporal representation (normalized, concise, or the
    simplified ``values`` pairs), each with an ``observedAt``; keys are expanded names."""
    if not isinstance(body, dict):
        raise BadRequestData("the attributes must be given as a JSON object")
    attrs: dict[str, list[Instance]] = {}
    terms: dict[str, str] = {}
    for name, value in body.items():
        if name in ENTITY_MEMBERS:
            continue
        instances = parse_temporal_attribute(name, value, ctx, now=now)
        iri = ctx.expand(name)
        if iri in terms:
            raise BadRequestData(f"attributes {terms[iri]!r} and {name!r} both expand to {iri!r}")
        terms[iri] = name
        attrs[iri] = instances
    return attrs


def parse_temporal_attribute(name: str, value: Any, ctx: NameMapper, *, now: str) -> list[Instance]:
    """One attribute's instances, oldest first as given; each must carry observedAt,
    the time that places it in the history."""
    if isinstance(value, dict) and "@context" in value:
        value = {k: v for k, v in value.items() if k != "@context"}
    items = value if isinstance(value, list) else [value]
    if not items:
        raise BadRequestData(f"attribute {name!r}: a temporal attribute needs instances")
    instances: list[Instance] = []
    for index, item in enumerate(items):
        where = f"attribute {name!r}" + (f" (instance {index})" if len(items) > 1 else "")
        pairs = _pairs(item)
        if pairs is not None:
            instances.extend(_from_pairs(name, item, pairs, ctx, now, where))
            continue
        if not isinstance(item, dict):
            raise BadRequestData(f"{where}: an instance must be a JSON object with observedAt")
        [instance] = parse_attribute(name, item, ctx, now=now)
        if "observedAt" not in instance:
            raise BadRequestData(
                f"{where}: a temporal instance needs observedAt, the time it was true"
            )
        instances.append(instance)
    return instances


def _pairs(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    found = [m for m in _PAIRS_MEMBER if m in item]
    return found[0] if len(found) == 1 else None


def _from_pairs(
    name: str, item: dict[str, Any], member: str, ctx: NameMapper, now: str, where: str
) -> list[Instance]:
    kind = item.get("type", _PAIRS_MEMBER[member])
    if not isinstance(kind, str):
        raise BadRequestData(f"{where}: 'type' must be a string")
    if member == "values" and kind not in ("Property", "GeoProperty"):
        raise BadRequestData(f"{where}: 'values' pairs belong to a Property or GeoProperty")
    if member != "values" and VALUES_MEMBER.get(kind) != member:
        raise BadRequestData(f"{where}: {kind!r} does not take {member!r}")
    pairs = item[member]
    if not isinstance(pairs, list):
        raise BadRequestData(f"{where}: {member!r} must be an array of [value, time] pairs")
    value_member = VALUE_MEMBER[kind]
    out: list[Instance] = []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, list) or len(pair) != 2:
            raise BadRequestData(f"{where}: {member}[{index}] must be a [value, time] pair")
        fragment: dict[str, Any] = {"type": kind, value_member: pair[0], "observedAt": pair[1]}
        if "datasetId" in item:
            fragment["datasetId"] = item["datasetId"]
        [instance] = parse_attribute(name, fragment, ctx, now=now)
        out.append(instance)
    return out


# ------------------------------------------------------------------------------ rendering


class BucketLike(Protocol):
    """One aggregation period: [start, end) and a value per method."""

    start: int
    end: int
    values: dict[str, Any]
    dataset_id: str | None


@dataclass(frozen=True, slots=True)
class Shown:
    """How one temporal entity is shown besides its attributes: its scope and deletion,
    and whether ``id`` and ``type`` are kept (``pick`` and ``omit`` may drop them)."""

    scope: Sequence[str] | None = None
    deleted_at: int | None = None
    sys_attrs: bool = False
    keep_id: bool = True
    keep_type: bool = True


def _header(entity_id: str, types: Sequence[str], ctx: NameMapper, shown: Shown) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if shown.keep_id:
        out["id"] = entity_id
    if shown.keep_type:
        compacted = [ctx.compact(t) for t in types]
        out["type"] = compacted[0] if len(compacted) == 1 else compacted
    if shown.scope:
        out["scope"] = shown.scope[0] if len(shown.scope) == 1 else list(shown.scope)
    if shown.sys_attrs and shown.deleted_at is not None:
        out["deletedAt"] = format_millis(shown.deleted_at)
    return out


def _nulled(instance: Instance) -> Instance:
    """A deletion instance shows the NGSI-LD Null as its value (clause 4.5.7)."""
    kind = instance.get("type")
    out = dict(instance)
    if kind == "LanguageProperty":
        out["languageMap"] = {"@none": NGSI_NULL}
    elif kind == "ListProperty":
        out["valueList"] = [NGSI_NULL]
    elif kind == "ListRelationship":
        out["objectList"] = [NGSI_NULL]
    elif kind == "Relationship":
        out["object"] = NGSI_NULL
        out.pop("objectType", None)
    elif kind == "VocabProperty":
        out["vocab"] = NGSI_NULL
    elif kind == "JsonProperty":
        out["json"] = NGSI_NULL
    else:
        out["value"] = NGSI_NULL
    return out


def _time_of(instance: Instance, prop: str) -> str | None:
    value = instance.get(prop)
    if isinstance(value, int) and not isinstance(value, bool):
        return format_millis(value)
    return value if isinstance(value, str) else None


def render_instances(
    iri: str,
    instances: Sequence[Instance],
    ctx: NameMapper,
    *,
    prop: str = "observedAt",
    sys_attrs: bool = False,
    lang: str | None = None,
    concise: bool = False,
) -> list[dict[str, Any]]:
    """The normalized (4.5.7) or concise (4.5.8) temporal form of one attribute's
    instances, oldest first."""
    if not instances:
        return []
    shown = [_nulled(i) if i.get("deletedAt") is not None else i for i in instances]
    # An attribute of several instances renders each as an object, never as a bare
    # concise value: a lone instance is rendered twice and kept once.
    fake = {"id": "", "type": [], "attrs": {iri: shown if len(shown) > 1 else shown * 2}}
    rendered = render_entity(
        fake,
        ctx,
        fmt=CONCISE if concise else NORMALIZED,
        sys_attrs=sys_attrs,
        lang=lang,
        keep_id=False,
        keep_type=False,
    )
    items: list[dict[str, Any]] = next(iter(rendered.values()))[: len(instances)]
    for item, instance in zip(items, instances, strict=True):
        if "instanceId" in instance:
            item["instanceId"] = instance["instanceId"]
        # The time axis of the answer is shown even without sysAttrs.
        for key in (prop, "deletedAt"):
            if key not in item:
                moment = _time_of(instance, key)
                if moment is not None:
                    item[key] = moment
    return items


def render_temporal(
    entity_id: str,
    types: Sequence[str],
    attrs: Mapping[str, Sequence[Instance]],
    ctx: NameMapper,
    *,
    prop: str = "observedAt",
    lang: str | None = None,
    concise: bool = False,
    shown: Shown = Shown(),
) -> dict[str, Any]:
    """An entity in the normalized (4.5.7) or concise (4.5.8) temporal representation:
    every attribute an array of instances, each with its ``instanceId``."""
    out = _header(entity_id, types, ctx, shown)
    for iri, instances in attrs.items():
        if instances:
            out[ctx.compact(iri)] = render_instances(
                iri,
                instances,
                ctx,
                prop=prop,
                sys_attrs=shown.sys_attrs,
                lang=lang,
                concise=concise,
            )
    return out


def _simple_value(instance: Instance, ctx: NameMapper) -> Any:
    if instance.get("deletedAt") is not None:
        instance = _nulled(instance)
    kind = instance["type"]
    if kind == "Relationship":
        return instance["object"]
    if kind == "LanguageProperty":
        return instance["languageMap"]
    if kind == "VocabProperty":
        vocab = instance["vocab"]
        if isinstance(vocab, list):
            return [ctx.compact_vocab(v) for v in vocab]
        return ctx.compact_vocab(vocab)
    if kind == "ListProperty":
        return instance["valueList"]
    if kind == "ListRelationship":
        return instance["objectList"]
    if kind == "JsonProperty":
        return instance["json"]
    return instance["value"]


def render_values(
    instances: Iterable[Instance], ctx: NameMapper, *, prop: str = "observedAt"
) -> dict[str, Any] | list[dict[str, Any]]:
    """One attribute in the simplified temporal representation (4.5.9): per datasetId
    ``{"type": ..., "values": [[value, time], ...]}`` (an array when there are several)."""
    groups: dict[tuple[str | None, str], list[list[Any]]] = {}
    for instance in instances:
        key = (instance.get("datasetId"), instance["type"])
        groups.setdefault(key, []).append([_simple_value(instance, ctx), _time_of(instance, prop)])
    out: list[dict[str, Any]] = []
    for (dataset_id, kind), pairs in groups.items():
        item: dict[str, Any] = {"type": kind, VALUES_MEMBER.get(kind, "values"): pairs}
        if dataset_id is not None:
            item["datasetId"] = dataset_id
        out.append(item)
    return out[0] if len(out) == 1 else out


def render_temporal_values(
    entity_id: str,
    types: Sequence[str],
    attrs: Mapping[str, Sequence[Instance]],
    ctx: NameMapper,
    *,
    prop: str = "observedAt",
    shown: Shown = Shown(),
) -> dict[str, Any]:
    """An entity in the simplified temporal representation (4.5.9, temporalValues)."""
    out = _header(entity_id, types, ctx, shown)
    for iri, instances in attrs.items():
        if instances:
            out[ctx.compact(iri)] = render_values(instances, ctx, prop=prop)
    return out


def aggregated_attribute(
    periods: Sequence[BucketLike], methods: Sequence[str], kind: str = "Property"
) -> dict[str, Any] | list[dict[str, Any]]:
    """One attribute in the aggregated representation (4.5.19): per datasetId
    ``{"type": ..., "avg": [[value, startAt, endAt], ...], ...}`` (an array when several)."""
    groups: dict[str | None, list[BucketLike]] = {}
    for bucket in periods:
        groups.setdefault(bucket.dataset_id, []).append(bucket)
    out: list[dict[str, Any]] = []
    for dataset_id, buckets in groups.items():
        item: dict[str, Any] = {"type": kind}
        for method in methods:
            # A method left out of every period (a personal value's sum...) is not shown.
            results = [
                [b.values.get(method), format_millis(b.start), format_millis(b.end)]
                for b in buckets
                if method in b.values
            ]
            if results:
                item[method] = results
        if dataset_id is not None:
            item["datasetId"] = dataset_id
        out.append(item)
    return out[0] if len(out) == 1 else out


def render_aggregated(
    entity_id: str,
    types: Sequence[str],
    buckets: Mapping[str, Sequence[BucketLike]],
    methods: Sequence[str],
    ctx: NameMapper,
    *,
    attr_types: Mapping[str, str] | None = None,
    shown: Shown = Shown(),
) -> dict[str, Any]:
    """An entity in the aggregated temporal representation (4.5.19)."""
    out = _header(entity_id, types, ctx, shown)
    kinds = attr_types or {}
    for iri, periods in buckets.items():
        if periods:
            kind = kinds.get(iri, "Property")
            out[ctx.compact(iri)] = aggregated_attribute(periods, methods, kind)
    return out


# ------------------------------------------------------------------------------ paging


class HistoryLike(Protocol):
    """The instances of one attribute in a window, with how many the window holds and
    how many of them were asked for (None: all of them)."""

    instances: list[Instance]
    total: int
    first: int | None
    last: int | None
    wanted: int | None


@dataclass(frozen=True, slots=True)
class Range:
    """The time range a partial (206) answer covers, for its Content-Range header.

    Forwards (no lastN) ``start <= end`` and the answer holds instances up to ``end``;
    backwards (lastN) ``start >= end`` and it holds instances back to ``end``.
    """

    start: int
    end: int
    backwards: bool
    size: int | None = None

    def header(self) -> str:
        """The ``Content-Range`` value: ``date-time <start>-<end>/<lastN or *>``."""
        size = "*" if self.size is None else str(self.size)
        return f"date-time {format_millis(self.start)}-{format_millis(self.end)}/{size}"

    def keeps(self, moment: str | None) -> bool:
        """Whether an instance at ``moment`` (stored UTC form) lies inside the range."""
        if moment is None:
            return False
        edge = format_millis(self.end)
        return moment >= edge if self.backwards else moment <= edge


def cut_range(histories: Mapping[str, HistoryLike], query: TemporalQuery) -> Range | None:
    """The range of one entity's answer when an attribute was cut by the per-attribute
    limit (clause 6.3.10), or None when every attribute is whole."""
    wanted = query.last_n
    cut = [h for h in histories.values() if h.instances and len(h.instances) < _asked(h, wanted)]
    firsts = [h.first for h in histories.values() if h.first is not None]
    lasts = [h.last for h in histories.values() if h.last is not None]
    if not cut or not firsts or not lasts:
        return None
    if wanted is None:
        end = min(h.last for h in cut if h.last is not None)
        start = query.time_at if query.timerel in ("after", "between") else None
        return Range(start if start is not None else min(firsts), end, False)
    end = max(h.first for h in cut if h.first is not None)
    if query.timerel == "between":
        start = query.end_time_at
    elif query.timerel == "before":
        start = query.time_at
    else:
        start = None
    return Range(start if start is not None else max(lasts), end, True, wanted)


def _asked(history: HistoryLike, last_n: int | None) -> int:
    if history.wanted is not None:
        return history.wanted
    return history.total if last_n is None else min(history.total, last_n)


def merge_ranges(ranges: Iterable[Range | None]) -> Range | None:
    """The range of a query answer: the narrowest that every entity's cut allows."""
    found = [r for r in ranges if r is not None]
    if not found:
        return None
    if found[0].backwards:
        return Range(max(r.start for r in found), max(r.end for r in found), True, found[0].size)
    return Range(min(r.start for r in found), min(r.end for r in found), False)


def clip(instances: Sequence[Instance], where: Range, prop: str) -> list[Instance]:
    """The instances inside ``where``, so that every attribute covers the same range."""
    return [i for i in instances if where.keeps(_time_of(i, prop))]
