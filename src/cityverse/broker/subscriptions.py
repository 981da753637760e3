"""Subscription operations of GS CIM 009 v1.8 clause 5.8, as plain functions over a store.

A Subscription body (5.2.12) is checked whole at creation and after each update: names
are expanded with the request's @context, q, scopeQ, geoQ and type expressions are
parsed, and any fault is a BadRequestData naming the member. The stored document keeps
names expanded, plus the expansion of each term its q and type expressions use, so the
notifier can match without the @context; it is rendered back with the @context of the
request that reads it.

A subscription created or changed by a restricted caller keeps who that was (subject and
roles, ``owner``: never shown in the API's representation); the notifier shows each
notification's entities as those roles may see them (``Broker.gate_for``).
"""

from __future__ import annotations

import uuid
from typing import Any, cast
from urllib.parse import urlsplit

from cityverse.broker.query import compile_pattern, parse_paging
from cityverse.broker.request import OWNER, Broker, Call, Gate, owner_of
from cityverse.core.context import Context
from cityverse.core.entity import iso_now, normalise_datetime, valid_name, valid_uri
from cityverse.core.errors import (
    AlreadyExists,
    BadRequestData,
    NgsiError,
    OperationNotSupported,
    ResourceNotFound,
)
from cityverse.core.geo import parse_geo_query
from cityverse.core.model import LOCATION
from cityverse.core.query import parse_q, parse_scope_q, parse_type_expr
from cityverse.notify.match import DEFAULT_TRIGGERS, TRIGGERS, compile_subscription, status
from cityverse.store.subscriptions import SubscriptionRow, SubscriptionStore

FORMATS = {
    "normalized": "normalized",
    "concise": "concise",
    "keyValues": "keyValues",
    "simplified": "keyValues",
}
ACCEPTS = ("application/json", "application/ld+json", "application/geo+json")
SCHEMES = ("http", "https", "mqtt", "mqtts")
MQTT_VERSIONS = ("mqtt3.1.1", "mqtt5.0")
UNSUPPORTED = ("csf", "temporalQ")

SUBSCRIPTION_CHANGED = "subscriptions"
"""The event ``Broker.signal`` carries after a subscription is created, changed or deleted."""


def subscription_store(broker: Broker) -> SubscriptionStore:
    """The broker's store as a subscription store, or OperationNotSupported."""
    store = broker.store
    if not hasattr(store, "create_subscription"):
        raise OperationNotSupported("this store does not keep subscriptions")
    return cast(SubscriptionStore, store)


# -- operations ------------------------------------------------------------------------


async def create(broker: Broker, call: Call, body: Any) -> str:
    """Create Subscription (5.8.1); returns the new subscription's id."""
    store = subscription_store(broker)
    if not isinstance(body, dict):
        raise BadRequestData("a subscription must be a JSON object of type Subscription")
    if body.get("type") != "Subscription":
        raise BadRequestData('a subscription must have "type": "Subscription"')
    sub_id = body.get("id")
    if sub_id is None:
        sub_id = f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"
    elif not valid_uri(sub_id):
        raise BadRequestData(f"subscription id {sub_id!r} is not a URI")
    now = iso_now()
    doc = parse_subscription(body, call.context, now=now, creating=True)
    doc["id"] = sub_id
    doc["createdAt"] = doc["modifiedAt"] = now
    stamp_owner(doc, call.gate)
    if not await store.create_subscription(call.tenant, sub_id, doc):
        raise AlreadyExists(f"subscription {sub_id!r} already exists", instance=sub_id)
    broker.signal(SUBSCRIPTION_CHANGED, call.tenant)
    return str(sub_id)


async def retrieve(broker: Broker, call: Call, sub_id: str, *, sys_attrs: bool) -> dict[str, Any]:
    """Retrieve Subscription (5.8.3), rendered with the request's @context."""
    row = await _existing(broker, call, sub_id)
    return render(row, call.context, sys_attrs=sys_attrs)


async def query(
    broker: Broker, call: Call, params: dict[str, str], *, sys_attrs: bool
) -> tuple[list[dict[str, Any]], int | None]:
    """Query Subscriptions (5.8.4): a page of the tenant's subscriptions and, if asked,
    their total."""
    store = subscription_store(broker)
    limit, offset, count = parse_paging(broker, params)
    rows, total = await store.list_subscriptions(call.tenant, limit=limit, offset=offset)
    body = [render(row, call.context, sys_attrs=sys_attrs) for row in rows]
    return body, total if count else None


async def update(broker: Broker, call: Call, sub_id: str, body: Any) -> None:
    """Update Subscription (5.8.2): the members given replace the stored ones (a null
    removes an optional member); ``notification`` members merge one level down."""
    store = subscription_store(broker)
    row = await _existing(broker, call, sub_id)
    if not isinstance(body, dict) or not body:
        raise BadRequestData("an update must be a non-empty JSON object of Subscription members")
    if "id" in body and body["id"] != sub_id:
        raise BadRequestData("the id of a subscription cannot be changed")
    if "type" in body and body["type"] != "Subscription":
        raise BadRequestData('a subscription must have "type": "Subscription"')
    current = render(row, call.context, sys_attrs=False, counters=False)
    merged = dict(current)
    for key, value in body.items():
        if key == "notification" and isinstance(value, dict):
            merged["notification"] = {**current.get("notification", {}), **value}
            merged["notification"] = {
                k: v for k, v in merged["notification"].items() if v is not None
            }
        elif value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    # The notification @context stays the one the subscription had unless a new one is given.
    context = call.context
    if "jsonldContext" not in body and row.doc.get("context") is not None:
        merged.pop("jsonldContext", None)
    now = iso_now()
    doc = parse_subscription(merged, context, now=now, creating="expiresAt" in body)
    if "jsonldContext" not in body and "context" in row.doc:
        doc["context"] = row.doc["context"]
    # Type and q expressions not given again keep the expansions they were written with.
    kept = [key for key in ("entities", "q") if key not in body and key in row.doc]
    for key in kept:
        doc[key] = row.doc[key]
    if kept:
        doc["terms"] = {**doc["terms"], **row.doc.get("terms", {})}
    doc["id"] = sub_id
    doc["createdAt"] = row.doc.get("createdAt", now)
    doc["modifiedAt"] = now
    # Whoever changes a subscription decides what it delivers and where: it then shows
    # what that caller may see, so that no one widens another's subscription to its own
    # endpoint.
    if not stamp_owner(doc, call.gate) and OWNER in row.doc:
        doc[OWNER] = row.doc[OWNER]
    if not await store.replace_subscription(call.tenant, sub_id, doc):
        raise ResourceNotFound(f"subscription {sub_id!r} not found", instance=sub_id)
    broker.signal(SUBSCRIPTION_CHANGED, call.tenant)


async def delete(broker: Broker, call: Call, sub_id: str) -> None:
    """Delete Subscription (5.8.5), with the notifications still waiting for it."""
    store = subscription_store(broker)
    _check_id(sub_id)
    if not await store.delete_subscription(call.tenant, sub_id):
        raise ResourceNotFound(f"subscription {sub_id!r} not found", instance=sub_id)
    broker.signal(SUBSCRIPTION_CHANGED, call.tenant)


async def _existing(broker: Broker, call: Call, sub_id: str) -> SubscriptionRow:
    store = subscription_store(broker)
    _check_id(sub_id)
    row = await store.get_subscription(call.tenant, sub_id)
    if row is None or row.kind != "subscription":
        raise ResourceNotFound(f"subscription {sub_id!r} not found", instance=sub_id)
    return row


def _check_id(sub_id: str) -> None:
    if not valid_uri(sub_id):
        raise BadRequestData(f"subscription id {sub_id!r} is not a URI")


def stamp_owner(doc: dict[str, Any], gate: Gate) -> bool:
    """Record in ``doc`` the owner the caller's gate speaks for; False when it has none."""
    owner = owner_of(gate)
    if owner is None:
        return False
    doc[OWNER] = owner.to_doc()
    return True


# -- parsing ---------------------------------------------------------------------------


class _Recorder:
    """Expands names with a @context and records each term's expansion."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.terms: dict[str, str] = {}

    def __call__(self, term: str) -> str:
        iri = self.ctx.expand(term)
        if iri != term:
            self.terms[term] = iri
        return iri


def parse_subscription(
    body: dict[str, Any], ctx: Context, *, now: str, creating: bool
) -> dict[str, Any]:
    """The stored document of a Subscription body (5.2.12); BadRequestData if invalid."""
    for key in UNSUPPORTED:
        if key in body:
            raise OperationNotSupported(f"{key} is not supported in subscriptions")
    expand = _Recorder(ctx)
    doc: dict[str, Any] = {"type": "Subscription"}
    for key in ("subscriptionName", "description"):
        if key in body:
            doc[key] = _string(body[key], key)
    if "entities" in body:
        doc["entities"] = _entities(body["entities"], expand)
    if "watchedAttributes" in body:
        doc["watchedAttributes"] = _names(body["watchedAttributes"], "watchedAttributes", expand)
    if "entities" not in doc and "watchedAttributes" not in doc:
        raise BadRequestData("a subscription needs entities, watchedAttributes or both")
    triggers = body.get("notificationTrigger", list(DEFAULT_TRIGGERS))
    if not isinstance(triggers, list) or not triggers:
        raise BadRequestData("notificationTrigger must be a non-empty array")
    for trigger in triggers:
        if trigger not in TRIGGERS:
            raise BadRequestData(
                f"unknown notificationTrigger {trigger!r}; known: {', '.join(TRIGGERS)}"
            )
    doc["notificationTrigger"] = list(dict.fromkeys(triggers))
    if "q" in body:
        doc["q"] = _string(body["q"], "q")
        parse_q(doc["q"], expand)
    if "scopeQ" in body:
        doc["scopeQ"] = _string(body["scopeQ"], "scopeQ")
        parse_scope_q(doc["scopeQ"])
    if "geoQ" in body:
        doc["geoQ"] = _geo(body["geoQ"], ctx)
    for key in ("timeInterval", "throttling"):
        if key in body:
            doc[key] = _positive(body[key], key)
    if "timeInterval" in doc and "watchedAttributes" in doc:
        raise BadRequestData("timeInterval and watchedAttributes cannot be used together")
    if "timeInterval" in doc and "throttling" in doc:
        raise BadRequestData("timeInterval and throttling cannot be used together")
    if "expiresAt" in body:
        expires = normalise_datetime(body["expiresAt"])
        if creating and expires <= now:
            raise BadRequestData(f"expiresAt {body['expiresAt']!r} is in the past")
        doc["expiresAt"] = expires
    is_active = body.get("isActive", True)
    if not isinstance(is_active, bool):
        raise BadRequestData("isActive must be true or false")
    doc["isActive"] = is_active
    if "lang" in body:
        doc["lang"] = _string(body["lang"], "lang")
    if "notification" not in body:
        raise BadRequestData("a subscription needs notification parameters (notification)")
    doc["notification"] = _notification(body["notification"], expand)
    source = ctx.source
    if "jsonldContext" in body:
        if not valid_uri(body["jsonldContext"]):
            raise BadRequestData("jsonldContext must be the URI of a @context")
        source = body["jsonldContext"]
    if isinstance(source, dict) and "@context" in source:
        source = source["@context"]
    if source is not None:
        doc["context"] = source
    doc["terms"] = expand.terms
    try:
        compile_subscription(SubscriptionRow("", "", doc))
    except NgsiError:
        raise
    except Exception as exc:  # a part that parsed alone but not together: never a 500
        raise BadRequestData(f"the subscription does not compile: {exc}") from None
    return doc


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequestData(f"{where} must be a non-empty string")
    return value


def _positive(value: Any, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise BadRequestData(f"{where} must be a number of seconds greater than 0, not {value!r}")
    return value


def _names(value: Any, where: str, expand: _Recorder) -> list[str]:
    if not isinstance(value, list) or not value:
        raise BadRequestData(f"{where} must be a non-empty array of attribute names")
    names: list[str] = []
    for name in value:
        if not valid_name(name):
            raise BadRequestData(f"{where}: {name!r} is not a valid attribute name")
        iri = expand.ctx.expand(name)
        if iri not in names:
            names.append(iri)
    return names


def _entities(value: Any, expand: _Recorder) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise BadRequestData("entities must be a non-empty array of EntitySelector")
    out = []
    for i, info in enumerate(value):
        where = f"entities[{i}]"
        if not isinstance(info, dict):
            raise BadRequestData(f"{where} must be an object (EntitySelector)")
        item: dict[str, str] = {}
        if "type" not in info:
            raise BadRequestData(f"{where}: type is mandatory in an EntitySelector (5.2.33)")
        item["type"] = _string(info["type"], f"{where}.type")
        parse_type_expr(item["type"], expand)
        if "id" in info:
            if not valid_uri(info["id"]):
                raise BadRequestData(f"{where}.id {info['id']!r} is not a URI")
            item["id"] = info["id"]
        if "idPattern" in info:
            item["idPattern"] = _string(info["idPattern"], f"{where}.idPattern")
            compile_pattern(item["idPattern"])
        out.append(item)
    return out


def _geo(value: Any, ctx: Context) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestData("geoQ must be an object with geometry, coordinates and georel")
    missing = [k for k in ("geometry", "coordinates", "georel") if k not in value]
    if missing:
        raise BadRequestData("geoQ is missing " + ", ".join(missing))
    prop = value.get("geoproperty")
    geoproperty = ctx.expand(_string(prop, "geoQ.geoproperty")) if prop is not None else LOCATION
    coordinates = value["coordinates"]
    if not isinstance(coordinates, str | list):
        raise BadRequestData("geoQ.coordinates must be an array or a string")
    parse_geo_query(value["georel"], value["geometry"], coordinates, geoproperty)
    return {
        "geometry": value["geometry"],
        "coordinates": coordinates,
        "georel": value["georel"],
        "geoproperty": geoproperty,
    }


def _key_values(value: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise BadRequestData(f"{where} must be an array of {{key, value}} objects")
    out = []
    for pair in value:
        if (
            not isinstance(pair, dict)
            or set(pair) != {"key", "value"}
            or not isinstance(pair["key"], str)
            or not pair["key"]
            or not isinstance(pair["value"], str)
        ):
            raise BadRequestData(f"{where}: each item must be {{'key': str, 'value': str}}")
        out.append({"key": pair["key"], "value": pair["value"]})
    return out


def _endpoint(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestData("notification.endpoint must be an object with a uri")
    uri = value.get("uri")
    if not isinstance(uri, str) or not valid_uri(uri):
        raise BadRequestData(f"notification.endpoint.uri {uri!r} is not a URI")
    parts = urlsplit(uri)
    if parts.scheme not in SCHEMES:
        raise BadRequestData(
            f"notification.endpoint.uri: scheme {parts.scheme!r} is not supported; "
            f"use {', '.join(SCHEMES)}"
        )
    try:
        port = parts.port
    except ValueError:
        raise BadRequestData(f"notification.endpoint.uri {uri!r} has an invalid port") from None
    if not parts.hostname or (port is not None and not 0 < port < 65536):
        raise BadRequestData(f"notification.endpoint.uri {uri!r} has no host")
    if parts.scheme.startswith("mqtt") and not parts.path.strip("/"):
        raise BadRequestData(f"notification.endpoint.uri {uri!r}: an MQTT URI needs a topic path")
    endpoint: dict[str, Any] = {"uri": uri}
    accept = value.get("accept", "application/json")
    if accept not in ACCEPTS:
        raise BadRequestData(f"notification.endpoint.accept must be one of {', '.join(ACCEPTS)}")
    endpoint["accept"] = accept
    if "timeout" in value:
        endpoint["timeout"] = _positive(value["timeout"], "notification.endpoint.timeout")
    for key in ("receiverInfo", "notifierInfo"):
        if key in value:
            endpoint[key] = _key_values(value[key], f"notification.endpoint.{key}")
    for pair in endpoint.get("notifierInfo", ()):
        if pair["key"] == "MQTT-QoS" and pair["value"] not in ("0", "1", "2"):
            raise BadRequestData("notifierInfo MQTT-QoS must be 0, 1 or 2")
        if pair["key"] == "MQTT-Version" and pair["value"] not in MQTT_VERSIONS:
            raise BadRequestData(f"notifierInfo MQTT-Version must be one of {MQTT_VERSIONS}")
    return endpoint


def _notification(value: Any, expand: _Recorder) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestData("notification must be an object (NotificationParams)")
    params: dict[str, Any] = {}
    if "attributes" in value:
        params["attributes"] = _names(value["attributes"], "notification.attributes", expand)
    fmt = value.get("format", "normalized")
    if fmt not in FORMATS:
        raise BadRequestData(f"notification.format must be one of {', '.join(FORMATS)}")
    params["format"] = FORMATS[fmt]
    for key in ("showChanges", "sysAttrs"):
        flag = value.get(key, False)
        if not isinstance(flag, bool):
            raise BadRequestData(f"notification.{key} must be true or false")
        params[key] = flag
    if "endpoint" not in value:
        raise BadRequestData("notification.endpoint is mandatory")
    params["endpoint"] = _endpoint(value["endpoint"])
    return params


# -- rendering -------------------------------------------------------------------------


def render(
    row: SubscriptionRow, ctx: Context, *, sys_attrs: bool, counters: bool = True
) -> dict[str, Any]:
    """A stored subscription as the API shows it, names compacted with ``ctx``."""
    doc = row.doc
    out: dict[str, Any] = {"id": row.id, "type": "Subscription"}
    for key in ("subscriptionName", "description"):
        if key in doc:
            out[key] = doc[key]
    if "entities" in doc:
        terms = doc.get("terms", {})
        out["entities"] = [_render_selector(info, terms, ctx) for info in doc["entities"]]
    if "watchedAttributes" in doc:
        out["watchedAttributes"] = [ctx.compact(n) for n in doc["watchedAttributes"]]
    out["notificationTrigger"] = doc["notificationTrigger"]
    for key in ("q", "scopeQ", "timeInterval", "throttling", "expiresAt", "lang"):
        if key in doc:
            out[key] = doc[key]
    if "geoQ" in doc:
        geo = dict(doc["geoQ"])
        geo["geoproperty"] = ctx.compact(geo["geoproperty"])
        out["geoQ"] = geo
    out["isActive"] = doc["isActive"]
    if counters:
        out["status"] = status(doc, iso_now())
    params = doc["notification"]
    notification: dict[str, Any] = {}
    if "attributes" in params:
        notification["attributes"] = [ctx.compact(n) for n in params["attributes"]]
    notification["format"] = params["format"]
    notification["showChanges"] = params["showChanges"]
    notification["sysAttrs"] = params["sysAttrs"]
    notification["endpoint"] = dict(params["endpoint"])
    if counters:
        _counters(notification, row)
    out["notification"] = notification
    if isinstance(doc.get("context"), str):
        out["jsonldContext"] = doc["context"]
    if sys_attrs:
        out["createdAt"] = doc.get("createdAt")
        out["modifiedAt"] = doc.get("modifiedAt")
    return out


def _render_selector(info: dict[str, str], terms: dict[str, str], ctx: Context) -> dict[str, str]:
    out = dict(info)
    kind = info["type"]
    # A plain type name shows in the reader's terms; an expression stays as written.
    if kind in terms and valid_name(kind):
        out["type"] = ctx.compact(terms[kind])
    return out


def _counters(notification: dict[str, Any], row: SubscriptionRow) -> None:
    notification["timesSent"] = row.times_sent
    notification["timesFailed"] = row.times_failed
    for key, value in (
        ("lastNotification", row.last_notification),
        ("lastSuccess", row.last_success),
        ("lastFailure", row.last_failure),
        ("lastFailureReason", row.last_failure_reason),
    ):
        if value is not None:
            notification[key] = value
    if row.last_notification is not None:
        failed = row.last_failure is not None and row.last_failure == row.last_notification
        notification["status"] = "failed" if failed else "ok"
