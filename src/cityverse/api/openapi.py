"""The OpenAPI 3.1 document of the HTTP API, served at ``GET /ngsi-ld/v1/openapi.json``.

Every route the app serves is described here: the NGSI-LD API (GS CIM 009 v1.8 clause 6),
its temporal and subscription parts, the live stream, the IoT agent under ``/iot`` and the
water twin under ``/cityverse/v1/water``. ``OPERATIONS`` maps each (method, path) to its
operation; tests/api/test_openapi.py walks the app's routes and fails when one is missing
here or described here but not served, so the document cannot drift from the code.

The request schemas describe the shapes (entities and their attributes, subscriptions,
queries, provisioning) while staying loose enough to accept any valid NGSI-LD: concise
attributes may be bare values, and unknown members are allowed. Errors are NGSI-LD
ProblemDetails everywhere, except the IoT agent's FIWARE-style ``{"name", "message"}``.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cityverse import __version__

NGSI = "/ngsi-ld/v1"
WATER = "/cityverse/v1/water"
DOCUMENT_PATH = NGSI + "/openapi.json"

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"

_PATH_NAMES = {
    "entity_id": "entityId",
    "attr": "attrId",
    "context_id": "contextId",
    "instance_id": "instanceId",
    "subscription_id": "subscriptionId",
    "device_id": "deviceId",
    "job": "jobId",
    "alert": "alertId",
    "key_id": "keyId",
}
_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def openapi_path(route_path: str) -> str:
    """The document's path of a route path: ``{entity_id:entity_id}`` -> ``{entityId}``."""
    return _PATH_PARAM.sub(
        lambda m: "{" + _PATH_NAMES.get(m.group(1), m.group(1)) + "}", route_path
    )


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _p(*names: str) -> list[dict[str, str]]:
    return [_ref("parameters", name) for name in names]


def _s(name: str) -> dict[str, str]:
    return _ref("schemas", name)


# ------------------------------------------------------------------------------ schemas

_STRING_OR_LIST = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_NAME = {
    "description": "A name (4.6.2): a term of the @context, or an IRI.",
    "anyOf": [
        {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        {"type": "string", "format": "uri"},
    ],
}
_NAMES = {"anyOf": [_NAME, {"type": "array", "items": _NAME, "minItems": 1}]}
_URI = {"type": "string", "format": "uri"}
_SCOPES = {
    "description": "Scopes (4.18): levels like /Berkane/Centre.",
    "anyOf": [
        {"type": "string", "pattern": "^(/[A-Za-z0-9_-]+)+$"},
        {"type": "array", "items": {"type": "string", "pattern": "^(/[A-Za-z0-9_-]+)+$"}},
    ],
}
_OPEN_OBJECT: dict[str, Any] = {"type": "object"}

SCHEMAS: dict[str, Any] = {
    "ProblemDetails": {
        "description": "RFC 7807 ProblemDetails with an NGSI-LD error type (GS CIM 009 5.5.2).",
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {
                "type": "string",
                "examples": ["https://uri.etsi.org/ngsi-ld/errors/BadRequestData"],
            },
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 100, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
        },
    },
    "IotError": {
        "description": "An IoT agent error, as the FIWARE IoT agents answer them.",
        "type": "object",
        "required": ["name", "message"],
        "properties": {"name": {"type": "string"}, "message": {"type": "string"}},
    },
    "LdContext": {
        "description": "A JSON-LD @context: a URL, an object of term definitions, or an array.",
        "anyOf": [
            {"type": "string"},
            {"type": "object"},
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
        ],
    },
    "Geometry": {
        "description": "A GeoJSON geometry (RFC 7946).",
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {
                "type": "string",
                "enum": [
                    "Point",
                    "MultiPoint",
                    "LineString",
                    "MultiLineString",
                    "Polygon",
                    "MultiPolygon",
                    "GeometryCollection",
                ],
            },
            "coordinates": {"type": "array"},
            "geometries": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Property": {
        "type": "object",
        "propertyNames": _NAME,
        "required": ["value"],
        "properties": {
            "type": {"const": "Property"},
            "value": {},
            "unitCode": {"type": "string"},
            "observedAt": {"type": "string", "format": "date-time"},
            "datasetId": {"type": "string"},
        },
    },
    "Relationship": {
        "type": "object",
        "propertyNames": _NAME,
        "required": ["type", "object"],
        "properties": {
            "type": {"const": "Relationship"},
            "object": {"anyOf": [_URI, {"type": "array", "items": _URI}]},
            "objectType": _NAMES,
            "observedAt": {"type": "string", "format": "date-time"},
            "datasetId": {"type": "string"},
        },
    },
    "GeoProperty": {
        "type": "object",
        "propertyNames": _NAME,
        "required": ["type", "value"],
        "properties": {
            "type": {"const": "GeoProperty"},
            "value": _s("Geometry"),
            "observedAt": {"type": "string", "format": "date-time"},
            "datasetId": {"type": "string"},
        },
    },
    "LanguageProperty": {
        "type": "object",
        "propertyNames": _NAME,
        "required": ["type", "languageMap"],
        "properties": {
            "type": {"const": "LanguageProperty"},
            "languageMap": {
                "type": "object",
                "propertyNames": {"pattern": "^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$"},
                "additionalProperties": _STRING_OR_LIST,
            },
        },
    },
    "VocabProperty": {
        "type": "object",
        "propertyNames": _NAME,
        "required": ["type", "vocab"],
        "properties": {"type": {"const": "VocabProperty"}, "vocab": _NAMES},
    },
    "ListProperty": {
        "type": "object",
        "propertyNames": _NAME,
        "required": ["type", "valueList"],
        "properties": {"type": {"const": "ListProperty"}, "valueList": {"type": "array"}},
    },
    "ListRelationship": {
        "type": "object",
        "propertyNames": _NAME,
        "required": ["type", "objectList"],
        "properties": {"type": {"const": "ListRelationship"}, "objectList": {"type": "array"}},
    },
    "JsonProperty": {
        "type": "object",
        "propertyNames": _NAME,
        "required": ["type", "json"],
        "properties": {"type": {"const": "JsonProperty"}, "json": {}},
    },
    "Attribute": {
        "description": "An attribute (4.5): normalized (one of the typed forms), a multi-attribute"
        " array of instances with datasetIds, or a concise bare value.",
        "anyOf": [
            _s("Property"),
            _s("Relationship"),
            _s("GeoProperty"),
            _s("LanguageProperty"),
            _s("VocabProperty"),
            _s("ListProperty"),
            _s("ListRelationship"),
            _s("JsonProperty"),
            {"type": "array", "description": "Instances (with datasetIds), or a concise list."},
            {
                "type": ["string", "number", "boolean", "null"],
                "description": "A concise value (null deletes, in a merge).",
            },
        ],
    },
    "Entity": {
        "description": "An entity (4.5.2 normalized or 4.5.3 concise): id, type and attributes.",
        "type": "object",
        "required": ["id", "type"],
        "properties": {
            "id": {**_URI, "examples": ["urn:ngsi-ld:Streetlight:B-001"]},
            "type": _NAMES,
            "scope": _SCOPES,
            "location": _s("Attribute"),
        },
        "propertyNames": _NAME,
        "additionalProperties": _s("Attribute"),
    },
    "EntityFragment": {
        "description": "Attributes of one entity (append, update, merge bodies).",
        "type": "object",
        "propertyNames": _NAME,
        "additionalProperties": _s("Attribute"),
    },
    "EntityList": {"type": "array", "items": {"type": "object"}},
    "FeatureCollection": {
        "type": "object",
        "required": ["type", "features"],
        "properties": {
            "type": {"const": "FeatureCollection"},
            "features": {"type": "array", "items": {"type": "object"}},
        },
    },
    "EntityOrFeature": {
        "description": "An entity, or a GeoJSON Feature with Accept: application/geo+json.",
        "type": "object",
    },
    "UpdateResult": {
        "type": "object",
        "required": ["updated", "notUpdated"],
        "properties": {
            "updated": {"type": "array", "items": {"type": "string"}},
            "notUpdated": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "attributeName": {"type": "string"},
                        "reason": {"type": "string"},
                    },
                },
            },
        },
    },
    "BatchOperationResult": {
        "type": "object",
        "required": ["success", "errors"],
        "properties": {
            "success": {"type": "array", "items": {"type": "string"}},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["entityId", "error"],
                    "properties": {
                        "entityId": {"type": "string"},
                        "error": _s("ProblemDetails"),
                    },
                },
            },
        },
    },
    "EntityIdList": {"type": "array", "items": {"type": "string"}},
    "GeoQuery": {
        "type": "object",
        "required": ["georel", "geometry", "coordinates"],
        "properties": {
            "georel": {"type": "string", "examples": ["near;maxDistance==500"]},
            "geometry": {"type": "string", "examples": ["Point"]},
            "coordinates": {"anyOf": [{"type": "string"}, {"type": "array"}]},
            "geoproperty": {"type": "string"},
        },
    },
    "EntitySelector": {
        "type": "object",
        "properties": {"id": _URI, "idPattern": {"type": "string"}, "type": _NAME},
    },
    "TemporalQ": {
        "type": "object",
        "properties": {
            "timerel": {"type": "string", "enum": ["before", "after", "between"]},
            "timeAt": {"type": "string", "format": "date-time"},
            "endTimeAt": {"type": "string", "format": "date-time"},
            "timeproperty": {"type": "string"},
            "lastN": {"type": "integer", "minimum": 1},
            "aggrMethods": _STRING_OR_LIST,
            "aggrPeriodDuration": {"type": "string"},
        },
    },
    "Query": {
        "description": "A Query (5.2.23): entities, attrs, q, scopeQ, geoQ, temporalQ.",
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"const": "Query"},
            "entities": {"type": "array", "items": _s("EntitySelector")},
            "attrs": {"type": "array", "items": {"type": "string"}},
            "pick": _STRING_OR_LIST,
            "omit": _STRING_OR_LIST,
            "q": {"type": "string"},
            "scopeQ": {"type": "string"},
            "geoQ": _s("GeoQuery"),
            "temporalQ": _s("TemporalQ"),
            "lang": {"type": "string"},
        },
    },
    "Endpoint": {
        "type": "object",
        "required": ["uri"],
        "properties": {
            "uri": {"type": "string", "examples": ["http://127.0.0.1:9/notify"]},
            "accept": {"type": "string", "enum": [JSON, JSON_LD, GEO_JSON]},
            "receiverInfo": {"type": "array", "items": {"type": "object"}},
            "notifierInfo": {"type": "array", "items": {"type": "object"}},
        },
    },
    "NotificationParams": {
        "type": "object",
        "properties": {
            "attributes": {"type": "array", "items": {"type": "string"}},
            "format": {"type": "string"},
            "endpoint": _s("Endpoint"),
            "sysAttrs": {"type": "boolean"},
            "showChanges": {"type": "boolean"},
        },
    },
    "Subscription": {
        "description": "A Subscription (5.2.12).",
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "type": {"const": "Subscription"},
            "subscriptionName": {"type": "string"},
            "description": {"type": "string"},
            "entities": {"type": "array", "items": _s("EntitySelector")},
            "watchedAttributes": {"type": "array", "items": {"type": "string"}},
            "notificationTrigger": {"type": "array", "items": {"type": "string"}},
            "timeInterval": {"type": "number"},
            "q": {"type": "string"},
            "scopeQ": {"type": "string"},
            "geoQ": _s("GeoQuery"),
            "isActive": {"type": "boolean"},
            "notification": _s("NotificationParams"),
            "expiresAt": {"type": "string", "format": "date-time"},
            "throttling": {"type": "number"},
            "lang": {"type": "string"},
        },
    },
    "SubscriptionList": {"type": "array", "items": _s("Subscription")},
    "TemporalEntity": {
        "description": "A temporal entity (4.5.7): each attribute an array of instances.",
        "type": "object",
        "required": ["id"],
        "properties": {"id": _URI, "type": _NAMES},
        "propertyNames": _NAME,
        "additionalProperties": {
            "anyOf": [{"type": "array", "items": {"type": "object"}}, _s("Attribute")]
        },
    },
    "TemporalEntityList": {"type": "array", "items": {"type": "object"}},
    "InstanceFragment": {
        "description": "The new content of one attribute instance (its attribute name as key).",
        "type": "object",
        "additionalProperties": _s("Attribute"),
    },
    "TypeListing": {
        "description": "An EntityTypeList, or with details=true an array of EntityType.",
        "anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
    },
    "AttributeListing": {
        "description": "An AttributeList, or with details=true an array of Attribute.",
        "anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
    },
    "ContextListing": {
        "description": "URLs of the @contexts, or with details=true their descriptions.",
        "type": "array",
        "items": {"anyOf": [{"type": "string"}, {"type": "object"}]},
    },
    "ContextDocument": {
        "type": "object",
        "required": ["@context"],
        "properties": {"@context": _s("LdContext")},
    },
    "SourceIdentity": {
        "type": "object",
        "required": ["id", "type"],
        "properties": {
            "id": {"type": "string"},
            "type": {"const": "ContextSourceIdentity"},
            "contextSourceUptime": {"type": "string"},
            "contextSourceTimeAt": {"type": "string"},
            "contextSourceAlias": {"type": "string"},
        },
    },
    "ServiceGroup": {
        "description": "An IoT service group (iotagent-node-lib provisioning).",
        "type": "object",
        "properties": {
            "apikey": {"type": "string"},
            "resource": {"type": "string"},
            "entity_type": {"type": "string"},
            "attributes": {"type": "array", "items": {"type": "object"}},
            "lazy": {"type": "array", "items": {"type": "object"}},
            "commands": {"type": "array", "items": {"type": "object"}},
            "static_attributes": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Device": {
        "description": "An IoT device (iotagent-node-lib provisioning).",
        "type": "object",
        "properties": {
            "device_id": {"type": "string"},
            "entity_name": {"type": "string"},
            "entity_type": {"type": "string"},
            "apikey": {"type": "string"},
            "protocol": {"type": "string"},
            "transport": {"type": "string"},
            "endpoint": {"type": "string"},
            "attributes": {"type": "array", "items": {"type": "object"}},
            "commands": {"type": "array", "items": {"type": "object"}},
            "static_attributes": {"type": "array", "items": {"type": "object"}},
        },
    },
    "ServicesBody": {
        "type": "object",
        "properties": {"services": {"type": "array", "items": _s("ServiceGroup")}},
    },
    "GroupsBody": {
        "type": "object",
        "properties": {"groups": {"type": "array", "items": _s("ServiceGroup")}},
    },
    "DevicesBody": {
        "type": "object",
        "required": ["devices"],
        "properties": {"devices": {"type": "array", "items": _s("Device")}},
    },
    "DeviceKeys": {
        "type": "object",
        "required": ["devices"],
        "properties": {
            "devices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["deviceId"],
                    "properties": {"deviceId": {"type": "string"}, "apikey": {"type": "string"}},
                },
            }
        },
    },
    "Counted": {
        "type": "object",
        "required": ["count"],
        "properties": {"count": {"type": "integer", "minimum": 0}},
    },
    "CommandResults": {
        "type": "object",
        "required": ["commands"],
        "properties": {"commands": {"type": "array", "items": {"type": "object"}}},
    },
    "WaterJob": {
        "description": "An asynchronous water job: its status, and its result once done.",
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string"},
            "status": {"type": "string"},
            "network": {"type": "string"},
        },
    },
    "Scenario": {
        "description": "A water scenario (docs/water.md): kind and its parameters.",
        "type": "object",
        "properties": {"kind": {"type": "string"}, "name": {"type": "string"}},
    },
}


def _with_context(schema: dict[str, Any]) -> dict[str, Any]:
    """The application/ld+json form of a body: the same, with its @context in it."""
    out = {**schema, "required": [*schema.get("required", []), "@context"]}
    out["properties"] = {**schema.get("properties", {}), "@context": _s("LdContext")}
    if "propertyNames" in schema:
        out["propertyNames"] = {"anyOf": [schema["propertyNames"], {"const": "@context"}]}
    return out


SCHEMAS.update(
    {
        name + "Ld": _with_context(SCHEMAS[name])
        for name in (
            "Entity",
            "EntityFragment",
            "TemporalEntity",
            "InstanceFragment",
            "Query",
            "Subscription",
        )
    }
)


# ---------------------------------------------------------------------------- parameters


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _path(name: str, description: str, example: str, *, uri: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": _URI if uri else {"type": "string", "minLength": 1},
        "example": example,
    }


_BOOL = {"type": "string", "enum": ["true", "false"]}
_INT = {"type": "integer", "minimum": 0}

PARAMETERS: dict[str, Any] = {
    "NgsildTenant": {
        "name": "NGSILD-Tenant",
        "in": "header",
        "required": False,
        "description": "The tenant (6.3.14): 1 to 64 letters, digits, '_', '-' or '.';"
        " absent means the default tenant.",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
    },
    "Link": {
        "name": "Link",
        "in": "header",
        "required": False,
        "description": "The JSON-LD @context of the request (6.3.5), as"
        ' <URL>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json".',
        "schema": {"type": "string"},
    },
    "FiwareService": {
        "name": "Fiware-Service",
        "in": "header",
        "required": False,
        "description": "The tenant of an IoT request (or NGSILD-Tenant; the same rules).",
        "schema": {"type": "string"},
    },
    "FiwareServicePath": {
        "name": "Fiware-ServicePath",
        "in": "header",
        "required": False,
        "description": "The service path, '/' by default; '/*' lists every path.",
        "schema": {"type": "string"},
    },
    "entityId": _path(
        "entityId", "The entity's id (a URI).", "urn:ngsi-ld:Streetlight:B-001", uri=True
    ),
    "attrId": _path("attrId", "An attribute name (a term or an IRI).", "illuminanceLevel"),
    "type": _path("type", "An entity type name.", "Streetlight"),
    "contextId": _path("contextId", "The local id of a hosted @context.", "b1f0c3"),
    "instanceId": _path(
        "instanceId", "The instanceId of a temporal instance (a URI).", "urn:x:1", uri=True
    ),
    "subscriptionId": _path(
        "subscriptionId", "The subscription's id (a URI).", "urn:sub:1", uri=True
    ),
    "deviceId": _path("deviceId", "The device's id.", "lamp-001"),
    "network": _path("network", "The water network's name.", "ltown"),
    "jobId": _path("jobId", "The water job's id.", "job-1"),
    "keyId": _path("keyId", "The id of an API key.", "k-1"),
    "tenantAdmin": _query("tenant", "The tenant acted on (an admin of every tenant only)."),
    "alertId": _path("alertId", "The id of a leak Alert entity.", "urn:ngsi-ld:Alert:1"),
    "typeQ": _query("type", "Entity type selection (4.17): A,B or (A;B)|C."),
    "id": _query("id", "Comma-separated entity ids."),
    "idPattern": _query("idPattern", "A regular expression the entity ids match."),
    "attrs": _query("attrs", "Comma-separated attribute names."),
    "pick": _query("pick", "Comma-separated members to keep (4.21)."),
    "omit": _query("omit", "Comma-separated members to leave out (4.21)."),
    "q": _query("q", 'A query (4.9), e.g. temperature>30;district=="D3".'),
    "scopeQ": _query("scopeQ", "A scope query (4.19), e.g. /Berkane/#."),
    "georel": _query("georel", "near;maxDistance==N, within, intersects, ... (4.10)."),
    "geometry": _query("geometry", "Point, LineString, Polygon, ... of the reference shape."),
    "coordinates": _query("coordinates", "GeoJSON coordinates of the reference shape."),
    "geoproperty": _query("geoproperty", "The GeoProperty the geo-query tests (location)."),
    "geometryProperty": _query("geometryProperty", "The GeoProperty of a GeoJSON answer."),
    "lang": _query("lang", "Language tags for LanguageProperties, or *."),
    "options": _query(
        "options",
        "Comma-separated: keyValues, concise, normalized, sysAttrs, noOverwrite, update,"
        " replace, temporalValues, aggregatedValues.",
    ),
    "format": _query("format", "normalized, concise, keyValues or simplified."),
    "limit": _query("limit", "Page size (5.5.9).", {"type": "integer"}),
    "offset": _query("offset", "Page start (5.5.9).", {"type": "integer"}),
    "count": _query("count", "true: answer NGSILD-Results-Count.", _BOOL),
    "local": _query("local", "true: every local entity (no other filter needed).", _BOOL),
    "details": _query("details", "true: descriptions instead of names.", _BOOL),
    "kind": _query("kind", "Hosted, Cached or ImplicitlyCreated.", {"type": "string"}),
    "reload": _query("reload", "true: reload a cached @context instead of deleting it.", _BOOL),
    "deleteAll": _query("deleteAll", "true: delete every instance of the attribute.", _BOOL),
    "datasetId": _query("datasetId", "The datasetId of the instance."),
    "timerel": _query("timerel", "before, after or between (4.11)."),
    "timeAt": _query("timeAt", "ISO 8601 date-time."),
    "endTimeAt": _query("endTimeAt", "ISO 8601 date-time (timerel=between)."),
    "timeproperty": _query("timeproperty", "observedAt, createdAt, modifiedAt or deletedAt."),
    "lastN": _query("lastN", "The last N instances of each attribute.", {"type": "integer"}),
    "aggrMethods": _query("aggrMethods", "totalCount, distinctCount, sum, avg, min, max, ..."),
    "aggrPeriodDuration": _query("aggrPeriodDuration", "ISO 8601 duration, e.g. PT1H, P1D."),
    # Stream
    "watchedAttributes": _query("watchedAttributes", "Comma-separated attributes to watch."),
    "tenantQ": _query("tenant", "The tenant, for clients that cannot send headers."),
    # IoT
    "i": _query("i", "The device id.", {"type": "string"}),
    "k": _query("k", "The API key of the device's service group.", {"type": "string"}),
    "t": _query("t", "The time of the measures (ISO 8601)."),
    "getCmd": _query("getCmd", "1: answer the device's pending commands.", {"type": "string"}),
    "resource": _query("resource", "The resource of the service group (e.g. /iot/d)."),
    "apikey": _query("apikey", "The API key of the service group."),
    "device": _query("device", "true: delete the group's devices too.", _BOOL),
    "iotLimit": _query("limit", "Page size.", _INT),
    "iotOffset": _query("offset", "Page start.", _INT),
    # Water
    "name": _query("name", "The network's name."),
    "crs": _query("crs", "The CRS of the .inp coordinates, e.g. EPSG:26191."),
    "anchor": _query("anchor", "lon,lat where the .inp's origin goes (instead of crs)."),
    "anchorOffset": _query("offset", "x,y metres added to the .inp coordinates with anchor."),
    "replace": _query("replace", "true: replace an existing network.", _BOOL),
    "units": _query("units", "Flow units of the exported .inp (e.g. LPS)."),
    "scenarios": _query("scenarios", "Comma-separated scenario ids."),
    "budget": _query("budget", "How many pressure sensors (1 to 500).", {"type": "integer"}),
    "zone": _query("zone", "One zone (the tag of its junctions)."),
}

_LD = ["NgsildTenant", "Link"]
_VIEW = ["attrs", "pick", "omit", "options", "format", "lang", "geometryProperty"]
_GEO = ["georel", "geometry", "coordinates", "geoproperty"]
_PAGE = ["limit", "offset", "count"]
_TEMPORAL = [
    "timerel",
    "timeAt",
    "endTimeAt",
    "timeproperty",
    "lastN",
    "aggrMethods",
    "aggrPeriodDuration",
    "attrs",
    "options",
    "format",
    "lang",
]
_IOT = ["FiwareService", "FiwareServicePath", "NgsildTenant"]

# ----------------------------------------------------------------------------- responses

_PROBLEM = {
    "description": "An error, as ProblemDetails.",
    "content": {JSON: {"schema": _s("ProblemDetails")}},
}
_IOT_ERROR = {
    "description": "An error: the agent's {name, message}, or ProblemDetails.",
    "content": {JSON: {"schema": {"anyOf": [_s("IotError"), _s("ProblemDetails")]}}},
}

RESPONSES: dict[str, Any] = {"Problem": _PROBLEM, "IotError": _IOT_ERROR}

_COUNT_HEADER = {
    "NGSILD-Results-Count": {
        "description": "The total number of matches (with count=true).",
        "schema": {"type": "integer"},
    }
}
_LOCATION = {
    "Location": {"description": "The URL of what was created.", "schema": {"type": "string"}}
}


def _content(schema: dict[str, Any], *media: str) -> dict[str, Any]:
    return {m: {"schema": schema} for m in (media or (JSON, JSON_LD))}


def _ok(
    description: str,
    schema: dict[str, Any] | None = None,
    *media: str,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = _content(schema, *media)
    if headers:
        response["headers"] = headers
    return response


def _body(schema: dict[str, Any], *media: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": _content(schema, *(media or (JSON, JSON_LD)))}


def _ld_body(name: str, *, array: bool = False, merge: bool = False) -> dict[str, Any]:
    """A body that is JSON (its @context in a Link header) or JSON-LD (its @context in it)."""
    plain: dict[str, Any] = _s(name)
    ld: dict[str, Any] = _s(name + "Ld")
    if array:
        plain = {"type": "array", "items": plain, "minItems": 1}
        ld = {"type": "array", "items": ld, "minItems": 1}
    content = {JSON: {"schema": plain}, JSON_LD: {"schema": ld}}
    if merge:
        content[MERGE_PATCH] = {"schema": plain}
    return {"required": True, "content": content}


def _op(
    operation_id: str,
    summary: str,
    tag: str,
    params: list[str],
    responses: dict[str, Any],
    body: dict[str, Any] | None = None,
    *,
    iot: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "parameters": _p(*params),
        "responses": {
            **responses,
            "default": _ref("responses", "IotError" if iot else "Problem"),
        },
    }
    if body is not None:
        operation["requestBody"] = body
    return operation


_NO_CONTENT = {"204": _ok("Done.")}
_UPDATE = {
    "204": _ok("Every attribute was changed."),
    "207": _ok("Some attributes were not changed.", _s("UpdateResult"), JSON),
}
_BATCH = {
    "204": _ok("Every entity was processed."),
    "207": _ok("Some entities failed.", _s("BatchOperationResult"), JSON),
}
_ENTITIES = _ok(
    "The matching entities (a FeatureCollection with Accept: application/geo+json).",
    headers=_COUNT_HEADER,
)
_ENTITIES["content"] = {
    JSON: {"schema": _s("EntityList")},
    JSON_LD: {"schema": _s("EntityList")},
    GEO_JSON: {"schema": _s("FeatureCollection")},
}
_TEMPORAL_OK = {
    "200": _ok("The temporal entities.", _s("TemporalEntityList"), headers=_COUNT_HEADER),
    "206": _ok(
        "Instances were cut by the per-attribute limit (Content-Range says where).",
        _s("TemporalEntityList"),
        headers=_COUNT_HEADER,
    ),
}

# ---------------------------------------------------------------------------- operations

E = NGSI + "/entities/{entityId}"
T = NGSI + "/temporal/entities/{entityId}"
S = NGSI + "/subscriptions/{subscriptionId}"
N = WATER + "/networks/{network}"

_NGSI_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    # -- entities (6.4 to 6.7)
    ("GET", NGSI + "/entities"): _op(
        "queryEntities",
        "Query entities (5.7.2); needs at least one filter, or local=true.",
        "Entities",
        [*_LD, "typeQ", "id", "idPattern", "q", "scopeQ", *_GEO, "local", *_VIEW, *_PAGE],
        {"200": _ENTITIES},
    ),
    ("POST", NGSI + "/entities"): _op(
        "createEntity",
        "Create an entity (5.6.1).",
        "Entities",
        _LD,
        {"201": _ok("Created.", headers=_LOCATION)},
        _ld_body("Entity"),
    ),
    ("GET", E): _op(
        "retrieveEntity",
        "Retrieve an entity (5.7.1).",
        "Entities",
        ["entityId", *_LD, *_VIEW],
        {"200": _ok("The entity.", _s("EntityOrFeature"), JSON, JSON_LD, GEO_JSON)},
    ),
    ("PUT", E): _op(
        "replaceEntity",
        "Replace an entity (5.6.18).",
        "Entities",
        ["entityId", *_LD],
        _NO_CONTENT,
        _ld_body("EntityFragment"),
    ),
    ("PATCH", E): _op(
        "mergeEntity",
        "Merge an entity (5.6.17): JSON Merge Patch semantics.",
        "Entities",
        ["entityId", *_LD],
        _NO_CONTENT,
        _ld_body("EntityFragment", merge=True),
    ),
    ("DELETE", E): _op(
        "deleteEntity", "Delete an entity (5.6.6).", "Entities", ["entityId", *_LD], _NO_CONTENT
    ),
    ("POST", E + "/attrs"): _op(
        "appendAttributes",
        "Append attributes (5.6.3); options=noOverwrite keeps existing ones.",
        "Entities",
        ["entityId", *_LD, "options"],
        _UPDATE,
        _ld_body("EntityFragment"),
    ),
    ("PATCH", E + "/attrs"): _op(
        "updateAttributes",
        "Update existing attributes (5.6.2).",
        "Entities",
        ["entityId", *_LD],
        _UPDATE,
        _ld_body("EntityFragment"),
    ),
    ("PATCH", E + "/attrs/{attrId}"): _op(
        "updateAttribute",
        "Partial attribute update (5.6.4).",
        "Entities",
        ["entityId", "attrId", *_LD],
        _NO_CONTENT,
        _body(_s("Attribute")),
    ),
    ("PUT", E + "/attrs/{attrId}"): _op(
        "replaceAttribute",
        "Replace an attribute (5.6.19).",
        "Entities",
        ["entityId", "attrId", *_LD],
        _NO_CONTENT,
        _body(_s("Attribute")),
    ),
    ("DELETE", E + "/attrs/{attrId}"): _op(
        "deleteAttribute",
        "Delete an attribute (5.6.5).",
        "Entities",
        ["entityId", "attrId", *_LD, "deleteAll", "datasetId"],
        _NO_CONTENT,
    ),
    # -- batch operations (6.14 to 6.17, 6.31, 6.23)
    ("POST", NGSI + "/entityOperations/create"): _op(
        "batchCreate",
        "Batch create (5.6.7).",
        "Batch",
        _LD,
        {**_BATCH, "201": _ok("Every entity was created.", _s("EntityIdList"), JSON)},
        _ld_body("Entity", array=True),
    ),
    ("POST", NGSI + "/entityOperations/upsert"): _op(
        "batchUpsert",
        "Batch upsert (5.6.8); options=update or replace (the default).",
        "Batch",
        [*_LD, "options"],
        {**_BATCH, "201": _ok("Some entities were created.", _s("EntityIdList"), JSON)},
        _ld_body("Entity", array=True),
    ),
    ("POST", NGSI + "/entityOperations/update"): _op(
        "batchUpdate",
        "Batch update (5.6.9); options=noOverwrite keeps existing attributes.",
        "Batch",
        [*_LD, "options"],
        _BATCH,
        _ld_body("Entity", array=True),
    ),
    ("POST", NGSI + "/entityOperations/merge"): _op(
        "batchMerge",
        "Batch merge (5.6.20).",
        "Batch",
        _LD,
        _BATCH,
        _ld_body("Entity", array=True, merge=True),
    ),
    ("POST", NGSI + "/entityOperations/delete"): _op(
        "batchDelete",
        "Batch delete (5.6.10): an array of entity ids.",
        "Batch",
        _LD,
        _BATCH,
        _body({"type": "array", "items": {"type": "string"}, "minItems": 1}),
    ),
    ("POST", NGSI + "/entityOperations/query"): _op(
        "queryEntitiesPost",
        "Query entities with a Query body (5.7.2).",
        "Batch",
        [*_LD, *_PAGE, *_VIEW],
        {"200": _ENTITIES},
        _ld_body("Query"),
    ),
    # -- discovery (6.25 to 6.28)
    ("GET", NGSI + "/types"): _op(
        "listTypes",
        "Entity types (5.7.5, 5.7.6).",
        "Discovery",
        [*_LD, "details"],
        {"200": _ok("The types.", _s("TypeListing"))},
    ),
    ("GET", NGSI + "/types/{type}"): _op(
        "getType",
        "One entity type's details (5.7.7).",
        "Discovery",
        ["type", *_LD],
        {"200": _ok("The type's details.", _OPEN_OBJECT)},
    ),
    ("GET", NGSI + "/attributes"): _op(
        "listAttributes",
        "Attributes (5.7.8, 5.7.9).",
        "Discovery",
        [*_LD, "details"],
        {"200": _ok("The attributes.", _s("AttributeListing"))},
    ),
    ("GET", NGSI + "/attributes/{attrId}"): _op(
        "getAttribute",
        "One attribute's details (5.7.10).",
        "Discovery",
        ["attrId", *_LD],
        {"200": _ok("The attribute's details.", _OPEN_OBJECT)},
    ),
    # -- @context documents (6.29, 6.30)
    ("GET", NGSI + "/jsonldContexts"): _op(
        "listContexts",
        "List @contexts (5.13.3).",
        "Contexts",
        ["details", "kind"],
        {"200": _ok("The @contexts.", _s("ContextListing"), JSON)},
    ),
    ("POST", NGSI + "/jsonldContexts"): _op(
        "addContext",
        "Host an @context (5.13.2).",
        "Contexts",
        [],
        {"201": _ok("Hosted; Location is its URL.", headers=_LOCATION)},
        _body(_s("ContextDocument")),
    ),
    ("GET", NGSI + "/jsonldContexts/{contextId}"): _op(
        "getContext",
        "One @context (5.13.4).",
        "Contexts",
        ["contextId", "details"],
        {"200": _ok("The @context.", _OPEN_OBJECT, JSON_LD)},
    ),
    ("DELETE", NGSI + "/jsonldContexts/{contextId}"): _op(
        "deleteContext",
        "Delete or reload an @context (5.13.5).",
        "Contexts",
        ["contextId", "reload"],
        _NO_CONTENT,
    ),
    # -- temporal (6.18 to 6.24)
    ("GET", NGSI + "/temporal/entities"): _op(
        "queryTemporal",
        "Query temporal evolution of entities (5.7.4).",
        "Temporal",
        [*_LD, "typeQ", "id", "idPattern", "q", "scopeQ", *_GEO, "local", *_TEMPORAL, *_PAGE],
        _TEMPORAL_OK,
    ),
    ("POST", NGSI + "/temporal/entities"): _op(
        "createTemporal",
        "Create or update a temporal entity (5.6.11).",
        "Temporal",
        _LD,
        {
            "201": _ok("Created.", headers=_LOCATION),
            "204": _ok("Instances added to an existing entity."),
        },
        _ld_body("TemporalEntity"),
    ),
    ("POST", NGSI + "/temporal/entityOperations/query"): _op(
        "queryTemporalPost",
        "Query temporal evolution with a Query body (5.7.4).",
        "Temporal",
        [*_LD, *_PAGE, "options", "format", "lang"],
        _TEMPORAL_OK,
        _ld_body("Query"),
    ),
    ("GET", T): _op(
        "retrieveTemporal",
        "Temporal evolution of one entity (5.7.3).",
        "Temporal",
        ["entityId", *_LD, *_TEMPORAL],
        {
            "200": _ok("The temporal entity.", _OPEN_OBJECT),
            "206": _ok("Instances were cut (Content-Range says where).", _OPEN_OBJECT),
        },
    ),
    ("DELETE", T): _op(
        "deleteTemporal",
        "Delete a temporal entity (5.6.16).",
        "Temporal",
        ["entityId", *_LD],
        _NO_CONTENT,
    ),
    ("POST", T + "/attrs"): _op(
        "appendTemporal",
        "Add attribute instances (5.6.12).",
        "Temporal",
        ["entityId", *_LD],
        _NO_CONTENT,
        _ld_body("TemporalEntity"),
    ),
    ("DELETE", T + "/attrs/{attrId}"): _op(
        "deleteTemporalAttribute",
        "Delete an attribute's history (5.6.13).",
        "Temporal",
        ["entityId", "attrId", *_LD, "deleteAll", "datasetId"],
        _NO_CONTENT,
    ),
    ("PATCH", T + "/attrs/{attrId}/{instanceId}"): _op(
        "modifyInstance",
        "Modify an attribute instance (5.6.14).",
        "Temporal",
        ["entityId", "attrId", "instanceId", *_LD],
        _NO_CONTENT,
        _ld_body("InstanceFragment"),
    ),
    ("DELETE", T + "/attrs/{attrId}/{instanceId}"): _op(
        "deleteInstance",
        "Delete an attribute instance (5.6.15).",
        "Temporal",
        ["entityId", "attrId", "instanceId", *_LD],
        _NO_CONTENT,
    ),
    # -- subscriptions (6.10, 6.11)
    ("POST", NGSI + "/subscriptions"): _op(
        "createSubscription",
        "Create a subscription (5.8.1).",
        "Subscriptions",
        _LD,
        {"201": _ok("Created.", headers=_LOCATION)},
        _ld_body("Subscription"),
    ),
    ("GET", NGSI + "/subscriptions"): _op(
        "querySubscriptions",
        "Query subscriptions (5.8.4).",
        "Subscriptions",
        [*_LD, *_PAGE, "options"],
        {"200": _ok("The subscriptions.", _s("SubscriptionList"), headers=_COUNT_HEADER)},
    ),
    ("GET", S): _op(
        "retrieveSubscription",
        "Retrieve a subscription (5.8.3).",
        "Subscriptions",
        ["subscriptionId", *_LD, "options"],
        {"200": _ok("The subscription.", _s("Subscription"))},
    ),
    ("PATCH", S): _op(
        "updateSubscription",
        "Update a subscription (5.8.2).",
        "Subscriptions",
        ["subscriptionId", *_LD],
        _NO_CONTENT,
        _ld_body("Subscription", merge=True),
    ),
    ("DELETE", S): _op(
        "deleteSubscription",
        "Delete a subscription (5.8.5).",
        "Subscriptions",
        ["subscriptionId", *_LD],
        _NO_CONTENT,
    ),
    ("GET", "/cityverse/v1/stream"): _op(
        "stream",
        "Live stream of entity changes (Server-Sent Events); needs type or watchedAttributes.",
        "Subscriptions",
        [
            *_LD,
            "typeQ",
            "id",
            "idPattern",
            "q",
            "scopeQ",
            *_GEO,
            "attrs",
            "watchedAttributes",
            "format",
            "options",
            "lang",
            "tenantQ",
        ],
        {"200": _ok("One notification event per change.", {"type": "string"}, "text/event-stream")},
    ),
    # -- the broker itself
    ("GET", NGSI + "/info/sourceIdentity"): _op(
        "sourceIdentity",
        "The broker's identity (5.15.2).",
        "Broker",
        [],
        {"200": _ok("The ContextSourceIdentity.", _s("SourceIdentity"), JSON)},
    ),
    ("GET", DOCUMENT_PATH): _op(
        "openapi",
        "This OpenAPI document.",
        "Broker",
        [],
        {"200": _ok("The OpenAPI 3.1 document.", _OPEN_OBJECT, JSON)},
    ),
    # -- the dashboard
    ("GET", "/"): _op(
        "dashboard",
        "The dashboard page.",
        "Dashboard",
        [],
        {"200": _ok("The page.", {"type": "string"}, "text/html")},
    ),
    ("GET", "/ui/static/{path}"): {
        "operationId": "dashboardAsset",
        "summary": "The dashboard's bundled assets.",
        "tags": ["Dashboard"],
        "parameters": [_path("path", "The asset's file name.", "app.js")],
        "responses": {
            "200": {"description": "The asset, with its ETag."},
            "304": {"description": "The asset has not changed (If-None-Match)."},
            "404": {"description": "No such asset."},
        },
    },
}


def _iot_operations() -> dict[tuple[str, str], dict[str, Any]]:
    ops: dict[tuple[str, str], dict[str, Any]] = {}
    southbound = [("/iot/d", "UltraLight 2.0", "text/plain"), ("/iot/json", "JSON", JSON)]
    for path, name, media in southbound:
        tag = "IoT devices"
        key = name.split()[0].lower()
        payload: dict[str, Any] = {"type": "string"} if media == "text/plain" else {}
        ops[("POST", path)] = _op(
            f"{key}Measure",
            f"A device's measures in {name}; getCmd=1 answers its pending commands.",
            tag,
            ["i", "k", "t", "getCmd"],
            {
                "200": _ok(
                    f"Accepted. With getCmd=1 the body holds the pending commands ({media});"
                    " else it is empty."
                )
            },
            _body(payload, media),
            iot=True,
        )
        ops[("GET", path)] = _op(
            f"{key}Poll",
            f"A device polls its pending commands ({name}).",
            tag,
            ["i", "k", "getCmd"],
            {"200": _ok(f"With getCmd=1 the pending commands ({media}); else an empty body.")},
            iot=True,
        )
        ops[("POST", path + "/commands")] = _op(
            f"{key}CommandResult",
            f"A device's answer to a command ({name}).",
            tag,
            ["i", "k"],
            {"200": _ok("Recorded.")},
            _body(payload, media),
            iot=True,
        )
    for path, key in (("/iot/services", "Services"), ("/iot/groups", "Groups")):
        tag = "IoT provisioning"
        ops[("POST", path)] = _op(
            f"create{key}",
            "Provision service groups.",
            tag,
            _IOT,
            {"201": _ok("Created.", _OPEN_OBJECT, JSON)},
            _body(_s(key + "Body"), JSON),
            iot=True,
        )
        ops[("GET", path)] = _op(
            f"list{key}",
            "The service groups of the tenant and service path.",
            tag,
            [*_IOT, "iotLimit", "iotOffset"],
            {"200": _ok("The groups, with count.", _s("Counted"), JSON)},
            iot=True,
        )
        ops[("PUT", path)] = _op(
            f"update{key}",
            "Change a service group (found by resource and apikey).",
            tag,
            [*_IOT, "resource", "apikey"],
            _NO_CONTENT,
            _body(_s("ServiceGroup"), JSON),
            iot=True,
        )
        ops[("DELETE", path)] = _op(
            f"delete{key}",
            "Remove a service group (found by resource and apikey).",
            tag,
            [*_IOT, "resource", "apikey", "device"],
            _NO_CONTENT,
            iot=True,
        )
    tag = "IoT provisioning"
    device = "/iot/devices/{deviceId}"
    more = {
        ("POST", "/iot/devices"): _op(
            "createDevices",
            "Provision devices.",
            tag,
            _IOT,
            {"201": _ok("Created.", _OPEN_OBJECT, JSON)},
            _body(_s("DevicesBody"), JSON),
            iot=True,
        ),
        ("GET", "/iot/devices"): _op(
            "listDevices",
            "The devices of the tenant and service path.",
            tag,
            [*_IOT, "iotLimit", "iotOffset"],
            {"200": _ok("The devices, with count.", _s("Counted"), JSON)},
            iot=True,
        ),
        ("GET", device): _op(
            "getDevice",
            "One device.",
            tag,
            ["deviceId", *_IOT, "apikey"],
            {"200": _ok("The device.", _s("Device"), JSON)},
            iot=True,
        ),
        ("PUT", device): _op(
            "updateDevice",
            "Change a device's fields.",
            tag,
            ["deviceId", *_IOT, "apikey"],
            _NO_CONTENT,
            _body(_s("Device"), JSON),
            iot=True,
        ),
        ("DELETE", device): _op(
            "deleteDevice",
            "Remove a device (its entity stays).",
            tag,
            ["deviceId", *_IOT, "apikey"],
            _NO_CONTENT,
            iot=True,
        ),
        ("POST", device + "/commands"): _op(
            "sendCommands",
            'Send commands to a device: {"command": value, ...}.',
            "IoT devices",
            ["deviceId", *_IOT, "apikey"],
            {"200": _ok("The commands' results.", _s("CommandResults"), JSON)},
            _body({"type": "object", "minProperties": 1}, JSON),
            iot=True,
        ),
        ("POST", "/iot/op/delete"): _op(
            "deleteDevices",
            "Remove devices by deviceId and apikey.",
            tag,
            _IOT,
            _NO_CONTENT,
            _body(_s("DeviceKeys"), JSON),
            iot=True,
        ),
        ("POST", "/iot/notify"): _op(
            "iotNotify",
            "An NGSI-LD notification whose entities carry command values.",
            "IoT devices",
            _IOT,
            {"200": _ok("The commands' results.", _s("CommandResults"), JSON)},
            _body(
                {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "array", "items": _s("Entity")}},
                },
                JSON,
            ),
            iot=True,
        ),
        ("GET", "/iot/about"): _op(
            "iotAbout",
            "Versions and transports of the agent.",
            "IoT devices",
            [],
            {"200": _ok("About the agent.", _OPEN_OBJECT, JSON)},
            iot=True,
        ),
        ("GET", "/iot/stats"): _op(
            "iotStats",
            "Counters and the last rejections.",
            "IoT devices",
            [],
            {"200": _ok("The statistics.", _OPEN_OBJECT, JSON)},
            iot=True,
        ),
    }
    return {**ops, **more}


def _water_operations() -> dict[tuple[str, str], dict[str, Any]]:
    tag = "Water"
    job = {"202": _ok("Accepted: Location is the job.", _s("WaterJob"), JSON, headers=_LOCATION)}
    options = _body(_OPEN_OBJECT, JSON, required=False)
    water = {
        ("GET", WATER + "/networks"): _op(
            "listNetworks",
            "The tenant's water networks.",
            tag,
            ["NgsildTenant"],
            {"200": _ok("The networks.", {"type": "array"}, JSON)},
        ),
        ("POST", WATER + "/networks"): _op(
            "importNetwork",
            "Import an EPANET .inp network (with crs, or anchor[&offset]).",
            tag,
            ["NgsildTenant", "name", "crs", "anchor", "anchorOffset", "replace"],
            {"201": _ok("Imported.", _OPEN_OBJECT, JSON, headers=_LOCATION)},
            _body({"type": "string"}, "text/plain"),
        ),
        ("GET", N): _op(
            "getNetwork",
            "A network: counts, zones and its WaterNetwork entity.",
            tag,
            ["network", "NgsildTenant"],
            {"200": _ok("The network.", _OPEN_OBJECT, JSON)},
        ),
        ("GET", N + "/export"): _op(
            "exportNetwork",
            "The network as an EPANET .inp file.",
            tag,
            ["network", "NgsildTenant", "units"],
            {"200": _ok("The .inp file.", {"type": "string"}, "text/plain")},
        ),
        ("POST", N + "/sensors"): _op(
            "addSensor",
            "Attach a sensor to an element: {element, property, category}.",
            tag,
            ["network", "NgsildTenant"],
            {"201": _ok("Attached.", _OPEN_OBJECT, JSON, headers=_LOCATION)},
            _body(
                {
                    "type": "object",
                    "required": ["element", "property"],
                    "properties": {
                        "element": {"type": "string"},
                        "property": {"type": "string"},
                        "category": {"type": "string"},
                    },
                },
                JSON,
            ),
        ),
        ("GET", N + "/state"): _op(
            "networkState",
            "Measured beside simulated values.",
            tag,
            ["network", "NgsildTenant"],
            {"200": _ok("The state.", {}, JSON)},
        ),
        ("POST", N + "/simulations"): _op(
            "simulate",
            "Run a hydraulic simulation (a water job).",
            tag,
            ["network", "NgsildTenant"],
            job,
            options,
        ),
        ("POST", N + "/scenarios"): _op(
            "postScenarios",
            "Run scenarios: one scenario object or an array of them (a water job).",
            tag,
            ["network", "NgsildTenant"],
            job,
            _body(
                {"anyOf": [_s("Scenario"), {"type": "array", "items": _s("Scenario")}]},
                JSON,
            ),
        ),
        ("GET", N + "/scenarios"): _op(
            "listScenarios",
            "Every scenario of the network with its status and KPIs.",
            tag,
            ["network", "NgsildTenant"],
            {"200": _ok("The scenarios.", {"type": "array"}, JSON)},
        ),
        ("POST", N + "/criticality"): _op(
            "criticality",
            "Rank every pipe by what its burst cuts off (a water job).",
            tag,
            ["network", "NgsildTenant"],
            job,
            options,
        ),
        ("GET", WATER + "/compare"): _op(
            "compareScenarios",
            "The KPIs of scenarios side by side.",
            tag,
            ["NgsildTenant", "scenarios"],
            {"200": _ok("The comparison.", _OPEN_OBJECT, JSON)},
        ),
        ("GET", WATER + "/jobs/{jobId}"): _op(
            "getJob",
            "A water job's status, result or error.",
            tag,
            ["jobId", "NgsildTenant"],
            {"200": _ok("The job.", _s("WaterJob"), JSON)},
        ),
        ("POST", N + "/leaks/detect"): _op(
            "detectLeaks",
            "Detect leaks: {from, to, trainingDays, relearnDays, kappa, threshold}.",
            tag,
            ["network", "NgsildTenant"],
            {"200": _ok("Alerts and data quality.", _OPEN_OBJECT, JSON)},
            options,
        ),
        ("GET", N + "/leaks"): _op(
            "listLeaks",
            "The network's water Alerts, newest first.",
            tag,
            ["network", "NgsildTenant"],
            {"200": _ok("The alerts.", {}, JSON)},
        ),
        ("POST", N + "/leaks/{alertId}/localise"): _op(
            "localiseLeak",
            "Localise a leak: {to, trainingDays, top}.",
            tag,
            ["network", "alertId", "NgsildTenant"],
            {"200": _ok("The likely places.", {}, JSON)},
            options,
        ),
        ("POST", N + "/sensor-placement"): _op(
            "sensorPlacement",
            "Junctions for N pressure sensors, the existing ones kept.",
            tag,
            ["network", "NgsildTenant", "budget"],
            {"200": _ok("The sensors.", _OPEN_OBJECT, JSON)},
        ),
        ("POST", N + "/forecast"): _op(
            "runForecast",
            "Forecast the demand of every zone (a water job).",
            tag,
            ["network", "NgsildTenant"],
            job,
            options,
        ),
        ("GET", N + "/forecast"): _op(
            "getForecasts",
            "The stored WaterDemandForecast entities.",
            tag,
            ["network", "NgsildTenant", "zone"],
            {"200": _ok("The forecasts.", {"type": "array"}, JSON)},
        ),
    }
    return water


def _security_operations() -> dict[tuple[str, str], dict[str, Any]]:
    tag = "Security"
    base = "/cityverse/v1/security"
    own = ["NgsildTenant", "tenantAdmin"]
    return {
        ("POST", base + "/keys"): _op(
            "createKey",
            'Create an API key: {"role", "name", "tenant"}; the key is shown once.',
            tag,
            ["NgsildTenant"],
            {"201": _ok("The key's record, with the key itself.", _OPEN_OBJECT, JSON)},
            _body(
                {
                    "type": "object",
                    "properties": {
                        "role": {"type": "string", "examples": ["operator"]},
                        "name": {"type": "string"},
                        "tenant": {"type": "string"},
                    },
                },
                JSON,
            ),
        ),
        ("GET", base + "/keys"): _op(
            "listKeys",
            "The tenant's API keys (never their secrets).",
            tag,
            own,
            {"200": _ok("The keys.", {"type": "array", "items": {"type": "object"}}, JSON)},
        ),
        ("DELETE", base + "/keys/{keyId}"): _op(
            "revokeKey", "Revoke an API key.", tag, ["keyId", *own], _NO_CONTENT
        ),
        ("GET", base + "/policy"): _op(
            "getPolicy",
            "The tenant's effective policy: roles and personal data.",
            tag,
            own,
            {"200": _ok("The policy.", _OPEN_OBJECT, JSON)},
        ),
        ("PUT", base + "/policy"): _op(
            "putPolicy",
            "Replace the tenant's policy (a bad policy changes nothing).",
            tag,
            own,
            _NO_CONTENT,
            _body(_OPEN_OBJECT, JSON),
        ),
        ("GET", base + "/inventory"): _op(
            "getInventory",
            "The tenant's personal-data inventory.",
            tag,
            own,
            {"200": _ok("The inventory.", {}, JSON)},
        ),
        ("GET", base + "/whoami"): _op(
            "whoami",
            "The caller's identity and roles in the tenant.",
            tag,
            ["NgsildTenant"],
            {"200": _ok("The identity.", _OPEN_OBJECT, JSON)},
        ),
    }


OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    **_NGSI_OPERATIONS,
    **_security_operations(),
    **_iot_operations(),
    **_water_operations(),
}
"""Every operation of the API by (method, document path)."""


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route."""
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), operation in OPERATIONS.items():
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CityVerse",
            "version": __version__,
            "description": "The HTTP API of CityVerse: an NGSI-LD context broker (ETSI GS CIM"
            " 009 v1.8), its IoT agent and the city's twins. Errors are ProblemDetails"
            " (RFC 7807). Requests carry an API key or a JWT as 'Authorization: Bearer"
            " <token>' when the server requires authentication.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": name}
            for name in (
                "Entities",
                "Batch",
                "Discovery",
                "Contexts",
                "Temporal",
                "Subscriptions",
                "Broker",
                "IoT devices",
                "IoT provisioning",
                "Water",
                "Security",
                "Dashboard",
            )
        ],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "responses": RESPONSES,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key or a JWT: 'Authorization: Bearer <token>'.",
                }
            },
        },
        "security": [{"bearerAuth": []}],
    }


@cache
def _body_bytes() -> bytes:
    return orjson.dumps(document())


async def openapi_json(request: Request) -> Response:
    """GET /ngsi-ld/v1/openapi.json: this document."""
    return Response(_body_bytes(), media_type=JSON)


routes = [Route(DOCUMENT_PATH, openapi_json, methods=["GET"])]
"""The document's route, added to the app's routes list."""
