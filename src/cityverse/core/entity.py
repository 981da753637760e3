"""NGSI-LD entities in and out: parse any incoming representation into the stored shape of
``cityverse.core.model`` and render a stored entity in every output representation.

Input (GS CIM 009 v1.8, clause 4.5): an entity or an attribute fragment in the
normalized representation (every attribute carries its ``type``), in the concise one
(the ``type`` is implied by the value member: ``value``, ``object``, ``languageMap``,
``vocab``, ``valueList``, ``objectList`` or ``json``; a bare GeoJSON geometry is a
GeoProperty; any other JSON value is the value of a Property), or any mix of the two.
So a Smart Data Models key-value example such as ``{"address": {"streetAddress": ...}}``
is accepted as a Property whose value is that object.

Output: ``render_entity`` in the normalized, concise or keyValues (simplified)
representation, ``render_geojson`` as a GeoJSON Feature (clause 4.5.16). Neither adds
``@context``; the caller does.

Names are expanded and compacted through a ``NameMapper`` (the request's @context).
Everything here is a pure function; every bad input raises ``BadRequestData`` with a
detail naming the faulty member, e.g. ``attribute 'temperature': Property has no 'value'``.

The NGSI-LD Null (clause 5.2.1, ``"urn:ngsi-ld:null"`` or JSON ``null``) is accepted only
when ``allow_null=True`` (merge-patch, clause 5.6.17). Then a deleted attribute is returned
as an empty list of instances, and a deleted sub-attribute as ``None`` under its name in
``sub``: the merge drops both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol

from cityverse.core.errors import BadRequestData, InvalidRequest
from cityverse.core.model import ATTRIBUTE_TYPES, LOCATION, VALUE_MEMBER, Entity, Instance

__all__ = [
    "FORMATS",
    "MAX_DEPTH",
    "MAX_NAME_BYTES",
    "NGSI_NULL",
    "NameMapper",
    "invalid",
    "iso_now",
    "normalise_datetime",
    "overlong",
    "parse_attribute",
    "parse_attributes",
    "parse_entity",
    "render_entity",
    "render_geojson",
    "too_long",
    "valid_name",
    "valid_uri",
]

NGSI_NULL = "urn:ngsi-ld:null"
MAX_NAME_BYTES = 1024
"""Longest entity id, type name, attribute name or datasetId, in UTF-8 bytes. No real
name comes near it, and PostgreSQL indexes an attribute's name with its datasetId, an
entity's id with its tenant, in entries of at most about 2,700 bytes."""
MAX_DEPTH = 16
"""Deepest accepted nesting of sub-attributes (an attribute is level 1)."""

FORMATS = frozenset({"normalized", "concise", "keyValues"})

GEOMETRY_TYPES = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)

# The informative examples of the specification (annex C) spell it this way.
_TYPE_ALIASES = {"VocabularyProperty": "VocabProperty"}

_VALUE_MEMBERS = ("value", "object", "languageMap", "vocab", "valueList", "objectList", "json")
_CONCISE_TYPE = {
    "object": "Relationship",
    "languageMap": "LanguageProperty",
    "vocab": "VocabProperty",
    "valueList": "ListProperty",
    "objectList": "ListRelationship",
    "json": "JsonProperty",
}

ENTITY_MEMBERS = frozenset(
    {"id", "@id", "type", "@type", "scope", "@context", "createdAt", "modifiedAt", "deletedAt"}
)
"""Members of an entity body that are not attributes; ``parse_attributes`` skips them."""

# System-generated or output-only members of an attribute: a client may echo them back.
_IGNORED_MEMBERS = frozenset({"createdAt", "modifiedAt", "deletedAt", "instanceId", "lang"})

RESERVED_NAMES = (
    ENTITY_MEMBERS
    | _IGNORED_MEMBERS
    | frozenset(_VALUE_MEMBERS)
    | frozenset({"datasetId", "observedAt", "unitCode", "objectType"})
)
"""Core member names that cannot name an attribute or a sub-attribute (clause 4.6.3)."""

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`\x00-\x1f\x7f]+")
# A term: no whitespace, no control characters, none of the characters that break
# JSON-LD terms, IRIs or the query languages, and no leading "@" (JSON-LD keywords).
_TERM = re.compile(
    r"[^\s\x00-\x1f\x7f<>\"'=;()&?/#,\[\]{}\\|^`@:][^\s\x00-\x1f\x7f<>\"'=;()&?/#,\[\]{}\\|^`:]*"
)
_SCOPE = re.compile(r"(/[^/\s\x00-\x1f\x7f#+,;()<>\"'=]+)+")
_LANG_TAG = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"([Zz]|[+-]\d{2}:?\d{2})"
)


class NameMapper(Protocol):
    """Expands and compacts names with a request's @context.

    Example::

        ctx.expand("temperature")        # "https://smartdatamodels.org/temperature"
        ctx.compact("https://smartdatamodels.org/temperature")   # "temperature"
        ctx.expand_vocab("non-commercial")  # VocabProperty values and objectType
    """

    def expand(self, term: str) -> str: ...

    def compact(self, iri: str) -> str: ...

    def expand_vocab(self, value: str) -> str: ...

    def compact_vocab(self, iri: str) -> str: ...


# ---------------------------------------------------------------------------- syntax


def valid_uri(text: Any, *, any_length: bool = False) -> bool:
    """Whether ``text`` is an absolute URI (RFC 3986/3987: scheme ":" rest) of at most
    ``MAX_NAME_BYTES`` (of any length with ``any_length``: an id that looks an entity
    up, which may have been stored before there was a limit)."""
    if not isinstance(text, str) or (not any_length and too_long(text)):
        return False
    return _URI.fullmatch(text) is not None


def valid_name(name: Any) -> bool:
    """Whether ``name`` is a valid type or attribute name (4.6.2): a term or an IRI, of
    at most ``MAX_NAME_BYTES``."""
    if not isinstance(name, str) or not name or too_long(name):
        return False
    return _TERM.fullmatch(name) is not None or valid_uri(name)


def too_long(text: str) -> bool:
    """Whether an id or a name is longer than ``MAX_NAME_BYTES`` in UTF-8."""
    if len(text) <= MAX_NAME_BYTES // 4:  # at most four bytes a character
        return False
    return len(text.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES


def invalid(what: str, text: Any, expected: str) -> str:
    """Why ``text`` is not a valid ``what``: too long, or not ``expected``."""
    if isinstance(text, str) and too_long(text):
        return overlong(what, text)
    return f"{what} {text!r} is not {expected}"


def overlong(what: str, text: str) -> str:
    """That ``text``, a ``what``, is longer than ``MAX_NAME_BYTES``."""
    return f"{what} {_shown(text)} is longer than {MAX_NAME_BYTES} bytes"


def _shown(name: str) -> str:
    """``name`` quoted for a message, its first 60 characters when it is too long."""
    return repr(name) if not too_long(name) else f"{name[:60]!r}..."


def iso_now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    return format_utc(datetime.now(UTC))


def normalise_datetime(text: Any) -> str:
    """Validate an ISO 8601 date-time with ``Z`` or an offset and return it as UTC ``...mmmZ``."""
    match = _DATETIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise BadRequestData(
            f"{text!r} is not a date-time like 2024-05-01T10:00:00Z (ISO 8601, with Z or an offset)"
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        if offset == "Z" and len(fraction or "") == 3 and second and text[10] == "T":
            # Already the stored form (a device's usual timestamp): only check the date.
            datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
            return text
        if offset in ("Z", "z"):
            tz = UTC
        else:
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            # timezone() refuses offsets of 24 hours or more, such as +99:99.
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, tz
        ).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise BadRequestData(f"{text!r} is not a valid date-time: {exc}") from None
    return format_utc(moment)


def format_utc(moment: datetime) -> str:
    """A UTC datetime in the stored form ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    m = moment
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T"
        f"{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond // 1000:03d}Z"
    )


def _bad(where: str, message: str) -> BadRequestData:
    return BadRequestData(f"{where}: {message}")


def _check_name(name: Any, where: str) -> None:
    if isinstance(name, str) and too_long(name):
        raise _bad(where, f"longer than {MAX_NAME_BYTES} bytes")
    if not valid_name(name):
        raise _bad(
            where,
            "not a valid name (no spaces, no control characters, none of "
            "< > \" ' = ; ( ) & ? / # , and not starting with @), nor an absolute IRI",
        )
    if name in RESERVED_NAMES:
        raise _bad(where, f"{name!r} is a reserved NGSI-LD member and cannot be used as a name")


# ---------------------------------------------------------------------------- parsing


def parse_entity(body: Any, ctx: NameMapper, *, now: str) -> Entity:
    """Parse a whole entity (normalized or concise, 4.5) into the stored shape."""
    if not isinstance(body, dict):
        raise BadRequestData("an entity must be a JSON object")
    entity_id = body.get("id", body.get("@id"))
    if entity_id is None:
        raise BadRequestData("the entity has no 'id'")
    if not valid_uri(entity_id):
        raise BadRequestData(invalid("entity id", entity_id, "a valid absolute URI"))
    entity: Entity = {
        "id": entity_id,
        "type": _parse_types(body.get("type", body.get("@type")), ctx),
    }
    if "scope" in body:
        entity["scope"] = _parse_scope(body["scope"])
    entity["createdAt"] = now
    entity["modifiedAt"] = now
    entity["attrs"] = parse_attributes(body, ctx, now=now)
    return entity


def _parse_types(raw: Any, ctx: NameMapper) -> list[str]:
    if raw is None:
        raise BadRequestData("the entity has no 'type'")
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names:
        raise BadRequestData("entity 'type' must be a string or a non-empty array of strings")
    types: list[str] = []
    for name in names:
        if not valid_name(name):
            raise BadRequestData(invalid("entity type", name, "a valid name or IRI"))
        iri = ctx.expand(name)
        if iri not in types:
            types.append(iri)
    return types


def _parse_scope(raw: Any) -> list[str]:
    scopes = [raw] if isinstance(raw, str) else raw
    if not isinstance(scopes, list) or not scopes:
        raise BadRequestData("'scope' must be a string or a non-empty array of strings")
    out: list[str] = []
    for scope in scopes:
        if not isinstance(scope, str) or _SCOPE.fullmatch(scope) is None:
            raise BadRequestData(
                f"scope {scope!r} is not valid: expected levels like '/Berkane/Centre' (4.18)"
            )
        if scope not in out:
            out.append(scope)
    return out


def parse_attributes(
    body: Any, ctx: NameMapper, *, now: str, allow_null: bool = False
) -> dict[str, list[Instance]]:
    """Parse an attribute fragment (append, update, merge bodies) into expanded name -> instances.

    Entity members (``id``, ``type``, ``scope``, ``@context``, system timestamps) are
    skipped: the caller reads them. With ``allow_null`` an attribute set to the NGSI-LD
    Null comes back as an empty list.
    """
    if not isinstance(body, dict):
        raise BadRequestData("the attributes must be given as a JSON object")
    attrs: dict[str, list[Instance]] = {}
    terms: dict[str, str] = {}
    for name, value in body.items():
        if name in ENTITY_MEMBERS:
            continue
        instances = parse_attribute(name, value, ctx, now=now, allow_null=allow_null)
        iri = ctx.expand(name)
        if iri in terms:
            raise BadRequestData(f"attributes {terms[iri]!r} and {name!r} both expand to {iri!r}")
        terms[iri] = name
        attrs[iri] = instances
    return attrs


def parse_attribute(
    name: str, body: Any, ctx: NameMapper, *, now: str, allow_null: bool = False
) -> list[Instance]:
    """Parse one attribute (an instance or an array of instances) for the (compact) ``name``.

    The caller expands ``name``. The default instance (no ``datasetId``) comes first;
    every instance gets ``createdAt``/``modifiedAt`` = ``now``.
    """
    if type(body) is dict and len(body) == 2 and body.get("type") == "Property":
        # The common case of a device update: a plain Property with a scalar value.
        value = body.get("value")
        if type(value) in _PLAIN_SCALARS and value != NGSI_NULL and valid_name(name):
            return [{"type": "Property", "value": value, "createdAt": now, "modifiedAt": now}]
    where = f"attribute {_shown(name)}"
    _check_name(name, where)
    if isinstance(body, list) and _is_instance_list(body):
        instances: list[Instance] = []
        for index, item in enumerate(body):
            instance = _parse_instance(item, ctx, f"{where} (instance {index})", 1, allow_null)
            if instance is None:
                raise _bad(where, _NULL_IN_ARRAY)
            instances.append(instance)
    else:
        instance = _parse_instance(body, ctx, where, 1, allow_null)
        if instance is None:
            if isinstance(body, dict) and "datasetId" in body:
                raise _bad(where, _NULL_IN_ARRAY)
            return []
        instances = [instance]
    seen: set[str | None] = set()
    for instance in instances:
        dataset = instance.get("datasetId")
        if dataset in seen:
            raise _bad(
                where,
                "more than one instance without a datasetId"
                if dataset is None
                else f"datasetId {dataset!r} is used by more than one instance",
            )
        seen.add(dataset)
        instance["createdAt"] = now
        instance["modifiedAt"] = now
    instances.sort(key=lambda instance: "datasetId" in instance)
    return instances


_PLAIN_SCALARS = frozenset({str, int, float, bool})

_NULL_IN_ARRAY = (
    "an NGSI-LD Null cannot delete a single datasetId instance here; "
    "delete it with the datasetId parameter instead"
)


def _is_instance_list(body: list[Any]) -> bool:
    # A JSON array is a multi-attribute only when every item is an attribute instance and
    # one at least says so unambiguously (a datasetId or an attribute type); otherwise it
    # is the value of a concise Property, e.g. ["car"] or [{"parameter": "p", "value": 5}].
    return (
        bool(body)
        and all(isinstance(item, dict) and _instance_like(item) for item in body)
        and any("datasetId" in item or _typed(item) for item in body)
    )


def _typed(item: dict[str, Any]) -> bool:
    kind = item.get("type")
    return isinstance(kind, str) and (kind in ATTRIBUTE_TYPES or kind in _TYPE_ALIASES)


def _instance_like(item: dict[str, Any]) -> bool:
    return _typed(item) or "datasetId" in item or any(member in item for member in _VALUE_MEMBERS)


def _looks_geo(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("type"), str)
        and value["type"] in GEOMETRY_TYPES
        and ("coordinates" in value or "geometries" in value)
    )


def _is_null(value: Any) -> bool:
    return value is None or value == NGSI_NULL


def _null_member(member: str, raw: Any) -> bool:
    if _is_null(raw):
        return True
    if member == "languageMap":
        return raw == {"@none": NGSI_NULL}
    if member in ("valueList", "objectList"):
        return raw in ([NGSI_NULL], [{"object": NGSI_NULL}])
    return False


def _null(where: str, allow_null: bool) -> Instance | None:
    """The deletion marker (None) when the NGSI-LD Null is allowed here; an error otherwise."""
    if allow_null:
        return None
    raise _bad(
        where,
        "null and 'urn:ngsi-ld:null' (the NGSI-LD Null) are only allowed in a merge-patch, "
        "to delete",
    )


def _attribute_type(body: dict[str, Any], where: str) -> tuple[str | None, bool]:
    """The attribute type of an object and whether it was given explicitly (normalized)."""
    kind = body.get("type")
    if _typed(body):
        name = str(kind)
        return _TYPE_ALIASES.get(name, name), True
    members = [member for member in _VALUE_MEMBERS if member in body]
    if "type" in body and members:
        raise _bad(
            where,
            f"unknown attribute type {kind!r}; expected one of "
            + ", ".join(sorted(ATTRIBUTE_TYPES)),
        )
    if len(members) > 1:
        raise _bad(where, f"has both {members[0]!r} and {members[1]!r}; an attribute has one value")
    if members:
        member = members[0]
        if member == "value":
            return ("GeoProperty" if _looks_geo(body["value"]) else "Property"), False
        return _CONCISE_TYPE[member], False
    if _looks_geo(body):
        return "GeoProperty", False
    return None, False


def _parse_instance(
    body: Any, ctx: NameMapper, where: str, depth: int, allow_null: bool
) -> Instance | None:
    """One attribute or sub-attribute instance; None is a deletion (NGSI-LD Null)."""
    if depth > MAX_DEPTH:
        raise _bad(where, f"sub-attributes are nested deeper than {MAX_DEPTH} levels")
    if not isinstance(body, dict):
        if _is_null(body):
            return _null(where, allow_null)
        return {"type": "Property", "value": body}
    kind, explicit = _attribute_type(body, where)
    if kind is None:
        return {"type": "Property", "value": body}
    if kind == "GeoProperty" and not explicit and "value" not in body:
        return {"type": "GeoProperty", "value": _geometry(body, where)}
    member = VALUE_MEMBER[kind]
    if explicit:
        for other in _VALUE_MEMBERS:
            if other != member and other in body:
                raise _bad(where, f"a {kind} has no {other!r} member (its value is in {member!r})")
    if member not in body:
        raise _bad(where, f"{kind} has no {member!r}")
    raw = body[member]
    if _null_member(member, raw):
        return _null(where, allow_null)
    instance: Instance = {"type": kind, member: _VALIDATORS[kind](raw, ctx, where)}
    subs: dict[str, Instance | None] = {}
    sub_terms: dict[str, str] = {}
    for key, value in body.items():
        if key in (member, "type") or key in _IGNORED_MEMBERS:
            continue
        if key == "datasetId":
            if not valid_uri(value):
                raise _bad(where, invalid("datasetId", value, "a valid absolute URI"))
            instance["datasetId"] = value
        elif key == "observedAt":
            try:
                instance["observedAt"] = normalise_datetime(value)
            except BadRequestData as exc:
                raise _bad(where, f"observedAt: {exc.detail}") from None
        elif key == "unitCode":
            if not isinstance(value, str) or not value:
                raise _bad(where, "unitCode must be a non-empty string (a UN/CEFACT code)")
            instance["unitCode"] = value
        elif key == "objectType":
            if kind not in ("Relationship", "ListRelationship"):
                raise _bad(where, "only a Relationship or a ListRelationship has an objectType")
            instance["objectType"] = _names(value, ctx.expand_vocab, where, "objectType")
        else:
            sub_where = f"{where}, sub-attribute {key!r}"
            _check_name(key, sub_where)
            iri = ctx.expand(key)
            if iri in sub_terms:
                raise _bad(
                    where, f"sub-attributes {sub_terms[iri]!r} and {key!r} both expand to {iri!r}"
                )
            sub_terms[iri] = key
            subs[iri] = _parse_instance(value, ctx, sub_where, depth + 1, allow_null)
    if subs:
        instance["sub"] = subs
    return instance


def _geometry(value: Any, where: str) -> dict[str, Any]:
    from cityverse.core.geo import validate_geometry

    try:
        return validate_geometry(value)
    except BadRequestData as exc:
        raise _bad(where, exc.detail) from None


def _names(raw: Any, expand: Callable[[str], str], where: str, member: str) -> str | list[str]:
    if isinstance(raw, str):
        if not valid_name(raw):
            raise _bad(where, f"{member} {raw!r} is not a valid name or IRI")
        return expand(raw)
    if not isinstance(raw, list) or not raw:
        raise _bad(where, f"{member} must be a string or a non-empty array of strings")
    out: list[str] = []
    for item in raw:
        if not valid_name(item):
            raise _bad(where, f"{member} {item!r} is not a valid name or IRI")
        out.append(expand(item))
    return out


def _check_property(raw: Any, ctx: NameMapper, where: str) -> Any:
    return raw


def _check_geo(raw: Any, ctx: NameMapper, where: str) -> Any:
    if not isinstance(raw, dict):
        raise _bad(where, "the value of a GeoProperty must be a GeoJSON geometry object")
    return _geometry(raw, where)


def _check_object(raw: Any, ctx: NameMapper, where: str) -> Any:
    if isinstance(raw, str):
        if not valid_uri(raw):
            raise _bad(where, f"Relationship object {raw!r} is not a valid absolute URI")
        return raw
    if not isinstance(raw, list) or not raw:
        raise _bad(where, "a Relationship object must be a URI or a non-empty array of URIs")
    for item in raw:
        if not valid_uri(item):
            raise _bad(where, f"Relationship object {item!r} is not a valid absolute URI")
    return raw


def _check_language_map(raw: Any, ctx: NameMapper, where: str) -> Any:
    if not isinstance(raw, dict) or not raw:
        raise _bad(where, "languageMap must be a non-empty object of language tag -> string")
    for tag, text in raw.items():
        if tag != "@none" and _LANG_TAG.fullmatch(tag) is None:
            raise _bad(where, f"{tag!r} is not a language tag (BCP 47, e.g. 'fr' or 'ar-MA')")
        texts = text if isinstance(text, list) else [text]
        if not texts or not all(isinstance(item, str) for item in texts):
            raise _bad(where, f"languageMap[{tag!r}] must be a string or an array of strings")
    return raw


def _check_vocab(raw: Any, ctx: NameMapper, where: str) -> Any:
    return _names(raw, ctx.expand_vocab, where, "vocab")


def _check_value_list(raw: Any, ctx: NameMapper, where: str) -> Any:
    if not isinstance(raw, list):
        raise _bad(where, "valueList must be an array")
    return raw


def _check_object_list(raw: Any, ctx: NameMapper, where: str) -> Any:
    if not isinstance(raw, list):
        raise _bad(where, "objectList must be an array of URIs or of {'object': URI}")
    out: list[str] = []
    for item in raw:
        uri = item.get("object") if isinstance(item, dict) else item
        if not isinstance(uri, str) or not valid_uri(uri):
            raise _bad(where, f"objectList item {item!r} is not a URI nor an {{'object': URI}}")
        out.append(uri)
    return out


_VALIDATORS: dict[str, Callable[[Any, NameMapper, str], Any]] = {
    "Property": _check_property,
    "GeoProperty": _check_geo,
    "Relationship": _check_object,
    "LanguageProperty": _check_language_map,
    "VocabProperty": _check_vocab,
    "ListProperty": _check_value_list,
    "ListRelationship": _check_object_list,
    "JsonProperty": _check_property,
}


# ---------------------------------------------------------------------------- rendering


def render_entity(
    entity: Entity,
    ctx: NameMapper,
    *,
    fmt: str = "normalized",
    sys_attrs: bool = False,
    lang: str | None = None,
    attrs: Collection[str] | None = None,
    omit: Collection[str] | None = None,
    keep_id: bool = True,
    keep_type: bool = True,
) -> dict[str, Any]:
    """Render a stored entity as normalized, concise or keyValues JSON, without @context.

    ``attrs`` keeps only those expanded attribute names, ``omit`` drops them; ``lang``
    (clause 4.15, e.g. ``"fr,en;q=0.5"`` or ``"*"``) turns LanguageProperties into strings.
    """
    if fmt not in FORMATS:
        raise InvalidRequest(f"unknown representation {fmt!r}; expected one of {sorted(FORMATS)}")
    prefs = _parse_lang(lang) if lang is not None else None
    out: dict[str, Any] = {}
    if keep_id:
        out["id"] = entity["id"]
    if keep_type:
        out["type"] = _one_or_many([ctx.compact(kind) for kind in entity["type"]])
    if "scope" in entity:
        out["scope"] = _one_or_many(entity["scope"])
    if sys_attrs:
        for key in ("createdAt", "modifiedAt"):
            if key in entity:
                out[key] = entity[key]
    for iri, instances in entity["attrs"].items():
        if (attrs is not None and iri not in attrs) or (omit is not None and iri in omit):
            continue
        if not instances:
            continue
        name = ctx.compact(iri)
        if fmt == "keyValues":
            out[name] = _simplified(_default_instance(instances), ctx, prefs)
        elif len(instances) == 1:
            out[name] = _render_instance(instances[0], ctx, fmt, sys_attrs, prefs, bare=True)
        else:
            # Bare concise values in an array would read back as one Property's value.
            out[name] = [
                _render_instance(instance, ctx, fmt, sys_attrs, prefs, bare=False)
                for instance in instances
            ]
    return out


def render_geojson(
    entity: Entity,
    ctx: NameMapper,
    *,
    geoproperty: str = LOCATION,
    fmt: str = "normalized",
    sys_attrs: bool = False,
    lang: str | None = None,
    attrs: Collection[str] | None = None,
    omit: Collection[str] | None = None,
) -> dict[str, Any]:
    """Render a stored entity as a GeoJSON Feature (4.5.16); ``geoproperty`` is an expanded name."""
    properties = render_entity(
        entity, ctx, fmt=fmt, sys_attrs=sys_attrs, lang=lang, attrs=attrs, omit=omit, keep_id=False
    )
    geometry = None
    instances = entity["attrs"].get(geoproperty)
    if instances:
        instance = _default_instance(instances)
        if instance["type"] == "GeoProperty":
            geometry = instance["value"]
    return {"id": entity["id"], "type": "Feature", "geometry": geometry, "properties": properties}


def _one_or_many(items: list[Any]) -> Any:
    return items[0] if len(items) == 1 else list(items)


def _default_instance(instances: list[Instance]) -> Instance:
    for instance in instances:
        if "datasetId" not in instance:
            return instance
    return instances[0]


def _parse_lang(lang: str) -> list[str]:
    """Language tags in order of preference, from an Accept-Language-like list."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(lang.split(",")):
        tag, _, params = part.partition(";")
        weight = 1.0
        name, _, number = params.strip().partition("=")
        if name.strip() == "q":
            try:
                weight = float(number)
            except ValueError:
                weight = 1.0
        if tag.strip() and weight > 0:
            ranked.append((-weight, index, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]


def _pick_language(language_map: dict[str, Any], prefs: list[str]) -> tuple[str, Any]:
    """The best entry of a languageMap: exact tag, then same primary language, then @none."""
    for pref in prefs:
        if pref == "*":
            tag = "@none" if "@none" in language_map else next(iter(language_map))
            return tag, language_map[tag]
        wanted = pref.lower()
        for tag, text in language_map.items():
            if tag.lower() == wanted:
                return tag, text
        primary = wanted.split("-")[0]
        for tag, text in language_map.items():
            if tag.lower().split("-")[0] == primary:
                return tag, text
    tag = "@none" if "@none" in language_map else next(iter(language_map))
    return tag, language_map[tag]


def _rendered_value(instance: Instance, ctx: NameMapper) -> Any:
    kind = instance["type"]
    if kind == "VocabProperty":
        vocab = instance["vocab"]
        if isinstance(vocab, list):
            return [ctx.compact_vocab(item) for item in vocab]
        return ctx.compact_vocab(vocab)
    if kind == "ListRelationship":
        return [{"object": uri} for uri in instance["objectList"]]
    return instance[VALUE_MEMBER[kind]]


def _ambiguous_bare(value: Any) -> bool:
    """Whether a bare concise value would read back as something else than this Property."""
    if isinstance(value, dict):
        return (
            _typed(value) or any(member in value for member in _VALUE_MEMBERS) or _looks_geo(value)
        )
    if isinstance(value, list):
        return _is_instance_list(value)
    return False


def _render_instance(
    instance: Instance,
    ctx: NameMapper,
    fmt: str,
    sys_attrs: bool,
    prefs: list[str] | None,
    *,
    bare: bool,
) -> Any:
    kind = instance["type"]
    out: dict[str, Any] = {}
    if fmt == "normalized":
        out["type"] = kind
    if kind == "LanguageProperty" and prefs is not None:
        tag, text = _pick_language(instance["languageMap"], prefs)
        if fmt == "normalized":
            out["type"] = "Property"
        out["value"] = text
        out["lang"] = tag
    else:
        out[VALUE_MEMBER[kind]] = _rendered_value(instance, ctx)
    if "objectType" in instance:
        object_type = instance["objectType"]
        out["objectType"] = (
            [ctx.compact_vocab(item) for item in object_type]
            if isinstance(object_type, list)
            else ctx.compact_vocab(object_type)
        )
    for key in ("datasetId", "observedAt", "unitCode"):
        if key in instance:
            out[key] = instance[key]
    if sys_attrs:
        for key in ("createdAt", "modifiedAt"):
            if key in instance:
                out[key] = instance[key]
    for iri, sub in instance.get("sub", {}).items():
        if sub is not None:
            out[ctx.compact(iri)] = _render_instance(sub, ctx, fmt, sys_attrs, prefs, bare=True)
    if fmt == "concise" and kind in ("Property", "GeoProperty") and "lang" not in out:
        value = out["value"]
        if kind == "Property" and _looks_geo(value):
            # A geometry-shaped value reads back as a GeoProperty unless typed.
            return {"type": "Property", **out}
        if bare and len(out) == 1 and (kind == "GeoProperty" or not _ambiguous_bare(value)):
            return value
    return out


def _simplified(instance: Instance, ctx: NameMapper, prefs: list[str] | None) -> Any:
    """The keyValues (simplified, 4.5.4) form of one instance."""
    kind = instance["type"]
    if kind in ("Property", "GeoProperty"):
        return instance["value"]
    if kind == "Relationship":
        return instance["object"]
    if kind == "LanguageProperty":
        if prefs is not None:
            return _pick_language(instance["languageMap"], prefs)[1]
        return {"languageMap": instance["languageMap"]}
    if kind == "ListRelationship":
        return {"objectList": list(instance["objectList"])}
    return {VALUE_MEMBER[kind]: _rendered_value(instance, ctx)}
