"""From a device's measures to NGSI-LD attribute instances on its entity.

A ``Profile`` is a device's provisioning (its own, over its group's) compiled once: the
entity id and type, and for each measure name the attribute it feeds, how its value is
converted (by the provisioned type: ``Number``, ``Integer``, ``Boolean``, ``Text``,
``DateTime``, ``geo:point``, ``Relationship`` ...), its unit code and expression::

    profile = Profile(group, device, "lamp1", "k1", ctx)
    instances, timed = profile.instances({"t": "25"}, arrival=now, now=now, problems=[])
    # {".../temperature": {"type": "Property", "value": 25, "unitCode": "CEL",
    #                      "observedAt": now, "createdAt": now, "modifiedAt": now}}

A value that does not fit its type is left out and reported in ``problems``; a
timestamp that does not parse rejects the whole measure (``MeasureError``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from cityverse.core.context import Context
from cityverse.core.entity import normalise_datetime, parse_attribute, valid_name, valid_uri
from cityverse.core.errors import BadRequestData
from cityverse.core.model import Entity, Instance
from cityverse.ingest.iot.expressions import Expression, Missing
from cityverse.ingest.iot.provisioning import (
    DEFAULT_TYPE,
    RESERVED_MEASURES,
    AttributeDef,
    Device,
    Group,
)

TIMESTAMP_KEYS = ("TimeInstant", "observedAt")
"""Measures that carry the time of observation rather than a value."""

Problems = list[tuple[str, str]]
"""(reason, detail) of each measure value left out."""


class MeasureError(Exception):
    """A measure (or a whole message) rejected, with the reason counted for operators."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


Build = Callable[[str, Any], Instance]
"""(attribute name, value) -> instance without system members; raises MeasureError."""


def _wrong(name: str, kind: str, value: Any) -> MeasureError:
    return MeasureError("wrong-type", f"attribute {name!r} is a {kind}: {value!r} is not one")


def _number(name: str, value: Any) -> Instance:
    kind = type(value)
    if kind is int or kind is float:
        number = value
    elif kind is str:
        try:
            number = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise _wrong(name, "number", value) from None
    else:
        raise _wrong(name, "number", value)
    if kind is not int and not math.isfinite(number):
        raise _wrong(name, "number", value)
    return {"type": "Property", "value": number}


def _integer(name: str, value: Any) -> Instance:
    number = _number(name, value)["value"]
    if isinstance(number, float):
        if not number.is_integer():
            raise _wrong(name, "integer", value)
        number = int(number)
    return {"type": "Property", "value": number}


def _boolean(name: str, value: Any) -> Instance:
    if type(value) is bool:
        return {"type": "Property", "value": value}
    text = str(value).strip().lower() if type(value) in (str, int) else None
    if text in ("true", "1"):
        return {"type": "Property", "value": True}
    if text in ("false", "0"):
        return {"type": "Property", "value": False}
    raise _wrong(name, "boolean", value)


def _text(name: str, value: Any) -> Instance:
    kind = type(value)
    if kind is str:
        return {"type": "Property", "value": value}
    if kind in (int, float, bool):
        return {"type": "Property", "value": str(value).lower() if kind is bool else str(value)}
    raise _wrong(name, "text", value)


def _datetime(name: str, value: Any) -> Instance:
    try:
        moment = normalise_datetime(value)
    except BadRequestData:
        raise _wrong(name, "date-time", value) from None
    return {"type": "Property", "value": {"@type": "DateTime", "@value": moment}}


def _point(name: str, value: Any) -> Instance:
    # geo:point is "latitude, longitude" (NGSI v2), a pair, or already GeoJSON.
    if isinstance(value, dict):
        return _geojson(name, value)
    parts = value.split(",") if isinstance(value, str) else value
    try:
        lat, lon = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise _wrong(name, "geo:point ('latitude, longitude')", value) from None
    return _geojson(name, {"type": "Point", "coordinates": [lon, lat]})


def _geojson(name: str, value: Any) -> Instance:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise _wrong(name, "GeoJSON geometry", value) from None
    try:
        [instance] = parse_attribute(
            name, {"type": "GeoProperty", "value": value}, _NO_NAMES, now=""
        )
    except (BadRequestData, ValueError):
        raise _wrong(name, "GeoJSON geometry", value) from None
    return {"type": "GeoProperty", "value": instance["value"]}


def _relationship(name: str, value: Any) -> Instance:
    if not valid_uri(value):
        raise _wrong(name, "relationship (a URI)", value)
    return {"type": "Relationship", "object": value}


def _json(name: str, value: Any) -> Instance:
    return {"type": "JsonProperty", "json": value}


def _plain(name: str, value: Any) -> Instance:
    return {"type": "Property", "value": value}


_BUILDERS: dict[str, Build] = {
    "number": _number,
    "float": _number,
    "double": _number,
    "decimal": _number,
    "integer": _integer,
    "int": _integer,
    "boolean": _boolean,
    "bool": _boolean,
    "text": _text,
    "string": _text,
    "datetime": _datetime,
    "date-time": _datetime,
    "iso8601": _datetime,
    "geo:point": _point,
    "geo:json": _geojson,
    "geoproperty": _geojson,
    "point": _geojson,
    "linestring": _geojson,
    "polygon": _geojson,
    "multipoint": _geojson,
    "multilinestring": _geojson,
    "multipolygon": _geojson,
    "relationship": _relationship,
    "jsonproperty": _json,
}


def builder(type_name: str | None) -> Build:
    """How a value of a provisioned type becomes an instance (anything else: a Property)."""
    if type_name is None:
        return _plain
    return _BUILDERS.get(type_name.lower(), _plain)


class _Names:
    """Names as given: geometry checks need no @context."""

    def expand(self, term: str) -> str:
        return term

    def compact(self, iri: str) -> str:
        return iri

    def expand_vocab(self, value: str) -> str:
        return value

    def compact_vocab(self, iri: str) -> str:
        return iri


_NO_NAMES = _Names()


@dataclass(slots=True)
class Spec:
    """One active attribute, compiled: where a measure goes and how it converts."""

    name: str
    iri: str
    build: Build
    unit_code: str | None = None
    expression: Expression | None = None
    measure: str | None = None
    sub: dict[str, Instance] | None = None
    """Sub-attributes from the provisioned ``metadata`` (other than ``unitCode``)."""


def entity_id_for(entity_name: str | None, entity_type: str, device_id: str) -> str:
    """The entity of a device: its entity_name, else ``urn:ngsi-ld:<type>:<device_id>``."""
    short = entity_type.rsplit("/", 1)[-1].rsplit("#", 1)[-1]
    if entity_name:
        if valid_uri(entity_name):
            return entity_name
        return f"urn:ngsi-ld:{short}:{quote(entity_name, safe='')}"
    candidate = f"urn:ngsi-ld:{short}:{device_id}"
    return candidate if valid_uri(candidate) else f"urn:ngsi-ld:{short}:{quote(device_id, safe='')}"


def _sub_attributes(metadata: dict[str, Any], context: Context) -> dict[str, Instance] | None:
    """A provisioned attribute's ``metadata`` as sub-attributes of each instance it sets,
    as iotagent-node-lib does for NGSI-LD: ``{"observedBy": {"type": "Relationship",
    "value": "urn:..."}}`` becomes the Relationship ``observedBy`` (``unitCode`` is the
    instance's own member; a value that does not fit its type is left out)."""
    out: dict[str, Instance] = {}
    for key, meta in metadata.items():
        if key in ("unitCode", *TIMESTAMP_KEYS) or not valid_name(key):
            continue
        if isinstance(meta, dict) and "value" in meta:
            kind = meta.get("type")
            try:
                out[context.expand(key)] = builder(kind if isinstance(kind, str) else None)(
                    key, meta["value"]
                )
            except MeasureError:
                continue
        else:
            out[context.expand(key)] = {"type": "Property", "value": meta}
    return out or None


class Profile:
    """A device's measures-to-entity mapping: its provisioning over its group's."""

    def __init__(
        self,
        group: Group | None,
        device: Device | None,
        device_id: str,
        apikey: str,
        context: Context,
    ) -> None:
        parts = [p for p in (group, device) if p is not None]
        self.group = group
        self.device = device
        self.device_id = device_id
        self.apikey = apikey
        self.tenant = parts[-1].service
        self.subservice = parts[-1].subservice
        self.context = context
        self.entity_type = next(
            (p.entity_type for p in reversed(parts) if p.entity_type), DEFAULT_TYPE
        )
        self.type_iri = context.expand(self.entity_type)
        self.entity_id = entity_id_for(
            device.entity_name if device else None, self.entity_type, device_id
        )
        self.explicit = next(
            (p.explicit_attrs for p in reversed(parts) if p.explicit_attrs is not None), False
        )
        self.timestamp = next(
            (p.timestamp for p in reversed(parts) if p.timestamp is not None), True
        )
        # The device's own definitions win over its group's for the same measure.
        active: dict[str, AttributeDef] = {}
        for part in parts:
            for definition in part.attributes:
                active[definition.measure] = definition
        self.specs: dict[str, Spec] = {}
        self.computed: list[Spec] = []
        for measure, definition in active.items():
            spec = Spec(
                definition.name,
                context.expand(definition.name),
                builder(definition.type),
                definition.unit_code,
                definition.expression,
                measure,
                _sub_attributes(definition.metadata, context),
            )
            self.specs[measure] = spec
            if definition.expression is not None:
                self.computed.append(spec)
        self.commands: dict[str, AttributeDef] = {}
        statics: dict[str, AttributeDef] = {}
        for part in parts:
            self.commands.update({c.name: c for c in part.commands})
            statics.update({s.name: s for s in part.static_attributes})
        self.statics = list(statics.values())
        self.static_iris = [context.expand(s.name) for s in self.statics]
        self._undeclared: dict[str, Spec | None] = {}

    def setting(self, name: str) -> Any:
        """A provisioning field, the device's over the group's (None when neither has it)."""
        for part in (self.device, self.group):
            if part is not None and getattr(part, name) is not None:
                return getattr(part, name)
        return None

    def command_iri(self, suffix: str) -> str:
        """The expanded name of a command's attribute (``dim_status``, ``dim_info``)."""
        return self.context.expand(suffix)

    def _spec_for(self, key: str) -> Spec | None:
        spec = self.specs.get(key)
        if spec is not None:
            return spec
        try:
            return self._undeclared[key]
        except KeyError:
            pass
        found: Spec | None = None
        name = RESERVED_MEASURES.get(key, key)
        explicit = self.explicit
        if (
            explicit is not True
            and key not in self.commands
            and valid_name(name)
            and (not isinstance(explicit, frozenset) or name in explicit)
        ):
            found = Spec(name, self.context.expand(name), _plain)
        if len(self._undeclared) < 1000:
            self._undeclared[key] = found
        return found

    def instances(
        self, measures: dict[str, Any], *, arrival: str, now: str, problems: Problems
    ) -> tuple[dict[str, Instance], bool]:
        """The instances a measure sets, and whether the device gave its time."""
        raw_time = measures.get("TimeInstant", measures.get("observedAt"))
        if raw_time is not None:
            try:
                observed: str | None = normalise_datetime(raw_time)
            except BadRequestData:
                raise MeasureError(
                    "bad-timestamp",
                    f"timestamp {raw_time!r} is not ISO 8601 with Z or an offset",
                ) from None
        else:
            observed = arrival if self.timestamp else None
        out: dict[str, Instance] = {}
        variables: dict[str, Any] | None = None
        for key, value in measures.items():
            if key in TIMESTAMP_KEYS:
                continue
            spec = self._spec_for(key)
            if spec is None:
                if not valid_name(RESERVED_MEASURES.get(key, key)):
                    problems.append(("bad-attribute", f"measure name {key!r} is not valid"))
                continue
            if spec.expression is not None:
                variables = variables if variables is not None else self._variables(measures)
                with contextlib.suppress(Missing):
                    value = spec.expression.evaluate({**variables, "value": value})
                variables[spec.name] = value
            if value is None:
                continue
            try:
                instance = spec.build(spec.name, value)
            except MeasureError as exc:
                problems.append((exc.reason, exc.detail))
                continue
            if observed is not None:
                instance["observedAt"] = observed
            if spec.unit_code is not None:
                instance["unitCode"] = spec.unit_code
            if spec.sub:
                instance["sub"] = dict(spec.sub)
            instance["createdAt"] = now
            instance["modifiedAt"] = now
            out[spec.iri] = instance
        for spec in self.computed:
            if spec.measure in measures or spec.expression is None:
                continue
            variables = variables if variables is not None else self._variables(measures)
            try:
                value = spec.expression.evaluate(variables)
            except Missing:
                continue
            if value is None:
                continue
            variables[spec.name] = value
            try:
                instance = spec.build(spec.name, value)
            except MeasureError as exc:
                problems.append((exc.reason, exc.detail))
                continue
            if observed is not None:
                instance["observedAt"] = observed
            if spec.unit_code is not None:
                instance["unitCode"] = spec.unit_code
            if spec.sub:
                instance["sub"] = dict(spec.sub)
            instance["createdAt"] = now
            instance["modifiedAt"] = now
            out[spec.iri] = instance
        return out, raw_time is not None

    def _variables(self, measures: dict[str, Any]) -> dict[str, Any]:
        variables: dict[str, Any] = {
            "id": self.device_id,
            "type": self.entity_type,
            "entity_name": self.entity_id,
            "service": self.tenant,
            "subservice": self.subservice,
        }
        variables.update(measures)
        for key, value in measures.items():
            spec = self.specs.get(key)
            if spec is not None:
                variables.setdefault(spec.name, value)
        return variables

    def static_instances(self, now: str) -> dict[str, list[Instance]]:
        """The static attributes, as instances (those whose value does not fit are left out)."""
        out: dict[str, list[Instance]] = {}
        for definition, iri in zip(self.statics, self.static_iris, strict=True):
            try:
                instance = builder(definition.type)(definition.name, definition.value)
            except MeasureError:
                continue
            if definition.unit_code is not None:
                instance["unitCode"] = definition.unit_code
            instance["createdAt"] = now
            instance["modifiedAt"] = now
            out[iri] = [instance]
        return out

    def new_entity(self, now: str) -> Entity:
        """The entity created for the device on its first measure or command."""
        attrs = self.static_instances(now)
        for name in self.commands:
            for suffix, value in (("_status", "UNKNOWN"), ("_info", "")):
                attrs[self.command_iri(name + suffix)] = [
                    {"type": "Property", "value": value, "createdAt": now, "modifiedAt": now}
                ]
        return {
            "id": self.entity_id,
            "type": [self.type_iri],
            "createdAt": now,
            "modifiedAt": now,
            "attrs": attrs,
        }
