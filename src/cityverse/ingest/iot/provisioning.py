"""Provisioning documents of the FIWARE IoT Agent API: service groups and devices.

The bodies of ``/iot/services`` and ``/iot/devices`` are checked here and kept as they
were given (so that a GET returns what was provisioned), with the parsed parts beside
them. Errors carry the names and status codes of iotagent-node-lib::

    group = parse_group({"apikey": "k1", "resource": "/iot/json", "entity_type": "Lamp"},
                        service="openiot", subservice="/")
    device = parse_device({"device_id": "lamp1", "attributes": [...]}, "openiot", "/")

Every function here is pure; the registry stores and indexes the results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cityverse.core.entity import valid_name, valid_uri
from cityverse.ingest.iot.expressions import (
    Expression,
    ExpressionError,
    Missing,
    compile_expression,
)

DEFAULT_TYPE = "Thing"
"""The entity type of a device whose group and provisioning name none (as in FIWARE)."""

ATTRIBUTE_LISTS = ("attributes", "lazy", "commands", "static_attributes")
RESERVED_MEASURES = {"id": "measure_id", "type": "measure_type"}
"""Measures named like entity members are renamed, as the FIWARE agents do."""


class IotError(Exception):
    """An error of the provisioning or southbound API, in iotagent-node-lib's shape."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message

    def body(self) -> dict[str, str]:
        """The JSON body: ``{"name": ..., "message": ...}``."""
        return {"name": self.name, "message": self.message}


def wrong_syntax(message: str) -> IotError:
    """400 WRONG_SYNTAX: the body does not follow the provisioning schema."""
    return IotError(400, "WRONG_SYNTAX", f"Wrong syntax in request: {message}")


@dataclass(frozen=True)
class AttributeDef:
    """One provisioned attribute: active, lazy, command or static."""

    name: str
    type: str
    object_id: str | None = None
    expression: Expression | None = None
    unit_code: str | None = None
    value: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def measure(self) -> str:
        """The name the device reports it under."""
        return self.object_id or self.name


@dataclass
class Provision:
    """What groups and devices share: the mapping from measures to the entity."""

    service: str
    subservice: str
    apikey: str
    doc: dict[str, Any]
    entity_type: str | None = None
    attributes: list[AttributeDef] = field(default_factory=list)
    lazy: list[AttributeDef] = field(default_factory=list)
    commands: list[AttributeDef] = field(default_factory=list)
    static_attributes: list[AttributeDef] = field(default_factory=list)
    explicit_attrs: bool | frozenset[str] | None = None
    timestamp: bool | None = None
    transport: str | None = None
    endpoint: str | None = None
    protocol: str | None = None
    context: Any = None
    """The JSON-LD @context (a URL, or a list) that names the attributes; None: core."""


@dataclass
class Group(Provision):
    """A service group (config group): the template of the devices of one apikey."""

    resource: str = ""
    autoprovision: bool = True

    @property
    def key(self) -> tuple[str, str]:
        """Groups are unique by (resource, apikey) across services."""
        return (self.resource, self.apikey)

    def api(self) -> dict[str, Any]:
        """The group as the provisioning API shows it."""
        return {**self.doc, "service": self.service, "subservice": self.subservice}


@dataclass
class Device(Provision):
    """A provisioned (or auto-provisioned) device."""

    device_id: str = ""
    entity_name: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Devices are unique by (service, subservice, device_id, apikey)."""
        return (self.service, self.subservice, self.device_id, self.apikey)

    def api(self) -> dict[str, Any]:
        """The device as the provisioning API shows it."""
        body = {**self.doc, "service": self.service, "service_path": self.subservice}
        body.setdefault("apikey", self.apikey)
        return body


# -- parsing ---------------------------------------------------------------------------


def parse_group(body: Any, service: str, subservice: str) -> Group:
    """A service group from one item of a ``services`` (or ``groups``) array."""
    if not isinstance(body, dict):
        raise wrong_syntax("each service group must be a JSON object")
    for name in ("apikey", "resource"):
        if not isinstance(body.get(name), str):
            raise wrong_syntax(f"a service group needs a string '{name}'")
    resource = body["resource"]
    if resource and not resource.startswith("/"):
        raise wrong_syntax(f"resource {resource!r} must be a path like /iot/json")
    doc = {k: v for k, v in body.items() if k not in ("service", "subservice")}
    if "type" in doc and "entity_type" not in doc:
        doc["entity_type"] = doc.pop("type")
    autoprovision = doc.get("autoprovision", True)
    if not isinstance(autoprovision, bool):
        raise wrong_syntax("autoprovision must be true or false")
    group = Group(service, subservice, body["apikey"], doc, resource=resource)
    group.autoprovision = autoprovision
    _parse_common(group, doc)
    return group


def parse_device(body: Any, service: str, subservice: str) -> Device:
    """A device from one item of a ``devices`` array."""
    if not isinstance(body, dict):
        raise wrong_syntax("each device must be a JSON object")
    device_id = body.get("device_id")
    if not isinstance(device_id, str) or not device_id:
        raise wrong_syntax("a device needs a non-empty string 'device_id'")
    if any(c in device_id for c in "/#+\x00") or device_id != device_id.strip():
        raise wrong_syntax(f"device_id {device_id!r} cannot hold '/', '#', '+' or spaces")
    apikey = body.get("apikey", "")
    if not isinstance(apikey, str):
        raise wrong_syntax("apikey must be a string")
    doc = {k: v for k, v in body.items() if k not in ("service", "service_path", "subservice")}
    device = Device(service, subservice, apikey, doc, device_id=device_id)
    entity_name = doc.get("entity_name")
    if entity_name is not None and (not isinstance(entity_name, str) or not entity_name):
        raise wrong_syntax("entity_name must be a non-empty string")
    device.entity_name = entity_name
    _parse_common(device, doc)
    return device


def updated_doc(old: dict[str, Any], changes: Any, *, fixed: tuple[str, ...]) -> dict[str, Any]:
    """A provisioning document with the fields of a PUT body replaced (node-lib's update)."""
    if not isinstance(changes, dict):
        raise wrong_syntax("the body must be a JSON object")
    for name in fixed:
        if name in changes and changes[name] != old.get(name):
            raise IotError(400, "BAD_REQUEST", f"{name} cannot be changed by an update")
    return {**old, **changes}


def _parse_common(target: Provision, doc: dict[str, Any]) -> None:
    entity_type = doc.get("entity_type")
    if entity_type is not None and not (isinstance(entity_type, str) and valid_name(entity_type)):
        raise wrong_syntax(f"entity_type {entity_type!r} is not a valid type name")
    target.entity_type = entity_type
    target.attributes = _attributes(doc, "attributes")
    target.lazy = _attributes(doc, "lazy")
    target.commands = _attributes(doc, "commands", default_type="command")
    target.static_attributes = _attributes(doc, "static_attributes", static=True)
    target.explicit_attrs = _explicit(doc.get("explicitAttrs"))
    for name in ("timestamp",):
        if doc.get(name) is not None and not isinstance(doc[name], bool):
            raise wrong_syntax(f"{name} must be true or false")
    target.timestamp = doc.get("timestamp")
    transport = doc.get("transport")
    if transport is not None and (
        not isinstance(transport, str)
        or transport.upper()
        not in (
            "MQTT",
            "HTTP",
        )
    ):
        raise wrong_syntax(f"transport {transport!r} is not MQTT or HTTP")
    target.transport = transport.upper() if isinstance(transport, str) else None
    endpoint = doc.get("endpoint")
    if endpoint is not None and not (
        isinstance(endpoint, str) and endpoint.startswith(("http://", "https://"))
    ):
        raise wrong_syntax(f"endpoint {endpoint!r} is not an http(s) URL")
    target.endpoint = endpoint
    protocol = doc.get("protocol")
    if protocol is not None and not isinstance(protocol, str):
        raise wrong_syntax("protocol must be a string")
    target.protocol = protocol
    context = doc.get("jsonLdContext")
    if context is not None and not (
        (isinstance(context, str) and valid_uri(context))
        or (isinstance(context, list) and context and all(valid_uri(c) for c in context))
    ):
        raise wrong_syntax("jsonLdContext must be a URL or a list of URLs")
    target.context = context


def _attributes(
    doc: dict[str, Any], key: str, *, default_type: str | None = None, static: bool = False
) -> list[AttributeDef]:
    raw = doc.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise wrong_syntax(f"{key} must be an array")
    result = []
    seen: set[str] = set()
    for item in raw:
        definition = _attribute(item, key, default_type, static)
        if definition.measure in seen and not static:
            raise wrong_syntax(f"{key}: {definition.measure!r} is mapped twice")
        seen.add(definition.measure)
        result.append(definition)
    return result


def _attribute(item: Any, key: str, default_type: str | None, static: bool) -> AttributeDef:
    if not isinstance(item, dict):
        raise wrong_syntax(f"each item of {key} must be an object with a name and a type")
    name = item.get("name")
    if not isinstance(name, str) or not valid_name(name) or name in ("id", "type"):
        raise wrong_syntax(f"{key}: {name!r} is not a valid attribute name")
    kind = item.get("type", default_type)
    if not isinstance(kind, str) or not kind:
        raise wrong_syntax(f"{key}: attribute {name!r} needs a type")
    object_id = item.get("object_id")
    if object_id is not None and (not isinstance(object_id, str) or not object_id):
        raise wrong_syntax(f"{key}: object_id of {name!r} must be a non-empty string")
    expression = None
    if item.get("expression") is not None:
        try:
            expression = compile_expression(item["expression"])
        except ExpressionError as exc:
            raise wrong_syntax(f"{key}: attribute {name!r}: {exc}") from None
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise wrong_syntax(f"{key}: metadata of {name!r} must be an object")
    unit = item.get("unitCode", metadata.get("unitCode"))
    if isinstance(unit, dict):
        unit = unit.get("value")
    if unit is not None and not isinstance(unit, str):
        raise wrong_syntax(f"{key}: unitCode of {name!r} must be a string")
    if static and "value" not in item:
        raise wrong_syntax(f"static attribute {name!r} needs a value")
    return AttributeDef(
        name=name,
        type=kind,
        object_id=object_id,
        expression=expression,
        unit_code=unit,
        value=item.get("value"),
        metadata=metadata,
    )


def _explicit(raw: Any) -> bool | frozenset[str] | None:
    if raw is None or isinstance(raw, bool):
        return raw
    names: Any = raw
    if isinstance(raw, str):
        try:
            names = compile_expression(raw).evaluate({})
        except (ExpressionError, Missing) as exc:
            raise wrong_syntax(f"explicitAttrs: {exc}") from None
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return frozenset(names)
    raise wrong_syntax("explicitAttrs must be true, false or an array of attribute names")
