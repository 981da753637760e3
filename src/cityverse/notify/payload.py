"""The notification a subscription sends (GS CIM 009 v1.8, 5.3.1), and its headers.

``notification(sub, entries, ctx)`` builds the Notification without ``notifiedAt``
(added when it is sent, once per attempt) and the headers it travels with; both go
into the outbox row as one JSON document::

    {"headers": {"Content-Type": "application/json", "Link": "<...>; rel=..."},
     "notification": {"id": "urn:ngsi-ld:Notification:...", "type": "Notification",
                      "subscriptionId": "urn:...", "data": [...]},
     "timeout": 500, "notifierInfo": {"MQTT-QoS": "1"}}      # when the endpoint sets them

Entities go through the gate of the subscription's owner first (``gated``): an entity it
may not read is left out, a personal attribute hidden or pseudonymised.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import orjson

from cityverse.broker.gate import visible
from cityverse.broker.request import Gate
from cityverse.core.context import Context
from cityverse.core.entity import render_entity, render_geojson
from cityverse.core.model import VALUE_MEMBER, Entity
from cityverse.notify.match import Compiled, Match

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
NULL = "urn:ngsi-ld:null"
"""The NGSI-LD Null: the value that stands for a deleted attribute."""


def gated(
    gate: Gate, entity: Entity, hit: Match | None, old: Entity | None
) -> tuple[Entity, Match | None, Entity | None] | None:
    """A change as the gate lets its owner see it; None when the entity is hidden."""
    if not gate.restricted:
        return entity, hit, old
    shown = visible(gate, entity)
    if shown is None:
        return None
    before = visible(gate, old) if old is not None else None
    if hit is not None and hit.deleted:
        # A hidden attribute's deletion is not told either (a pseudonymised one is: its
        # existence is no secret).
        types = entity["type"]
        deleted = frozenset(n for n in hit.deleted if gate.attribute(types, n) != "hide")
        hit = dataclasses.replace(hit, deleted=deleted)
    return shown, hit, before


def render_change(
    sub: Compiled, entity: Entity, hit: Match | None, old: Entity | None, at: str, ctx: Context
) -> dict[str, Any]:
    """One entity of a notification's data, in the subscription's format."""
    params = sub.doc["notification"]
    fmt = params.get("format", "normalized")
    attrs = params.get("attributes")
    if hit is not None and hit.trigger == "entityDeleted":
        return {"id": entity["id"], "type": _types(entity, ctx), "deletedAt": at}
    out = render_entity(
        entity,
        ctx,
        fmt=fmt,
        sys_attrs=bool(params.get("sysAttrs")),
        lang=sub.doc.get("lang"),
        attrs=frozenset(attrs) if attrs else None,
    )
    if hit is None:
        return out
    if "attributeDeleted" in sub.triggers:
        for name in sorted(hit.deleted):
            if attrs and name not in attrs:
                continue
            out[ctx.compact(name)] = (
                NULL
                if fmt == "keyValues"
                else {"type": "Property", "value": NULL, "deletedAt": at}
                if fmt == "normalized"
                else {"value": NULL, "deletedAt": at}
            )
    if params.get("showChanges") and old is not None and fmt != "keyValues":
        _show_changes(out, hit.updated, old, ctx)
    return out


def _types(entity: Entity, ctx: Context) -> Any:
    names = [ctx.compact(t) for t in entity["type"]]
    return names[0] if len(names) == 1 else names


def _show_changes(out: dict[str, Any], updated: frozenset[str], old: Entity, ctx: Context) -> None:
    """Add previousValue (previousObject, ...) to the updated attributes (5.2.14)."""
    for name in updated:
        key = ctx.compact(name)
        rendered = out.get(key)
        before = old["attrs"].get(name) or []
        if rendered is None or not before:
            continue
        if not isinstance(rendered, dict | list):
            # A bare concise value has nowhere to hold the previous one: make it explicit.
            rendered = out[key] = {"value": rendered}
        items = rendered if isinstance(rendered, list) else [rendered]
        for item in items:
            if not isinstance(item, dict):
                continue
            dataset = item.get("datasetId")
            previous = next((i for i in before if i.get("datasetId") == dataset), None)
            if previous is None:
                continue
            member = VALUE_MEMBER.get(previous["type"], "value")
            item["previous" + member[0].upper() + member[1:]] = previous.get(member)


def notification(sub: Compiled, data: list[dict[str, Any]], ctx: Context, tenant: str) -> bytes:
    """The outbox document (headers and Notification without notifiedAt) as JSON."""
    endpoint = sub.doc["notification"]["endpoint"]
    accept = endpoint.get("accept", JSON)
    body: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
        "type": "Notification",
        "subscriptionId": sub.id,
    }
    headers: dict[str, str] = {"Content-Type": accept}
    if accept == GEO_JSON:
        body["data"] = {"type": "FeatureCollection", "features": data}
    else:
        body["data"] = data
    if accept in (JSON_LD, GEO_JSON):
        body["@context"] = ctx.document()
    else:
        link = ctx.link_header()
        if link:
            headers["Link"] = link
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    for pair in endpoint.get("receiverInfo", ()):
        headers[pair["key"]] = pair["value"]
    envelope: dict[str, Any] = {"headers": headers, "notification": body}
    # How to send travels with the row, so that any process can send it as asked.
    if "timeout" in endpoint:
        envelope["timeout"] = endpoint["timeout"]
    if sub.throttling:
        envelope["throttling"] = sub.throttling
    if "notifierInfo" in endpoint:
        envelope["notifierInfo"] = {p["key"]: p["value"] for p in endpoint["notifierInfo"]}
    return orjson.dumps(envelope)


def render_for(
    sub: Compiled, entity: Entity, hit: Match | None, old: Entity | None, at: str, ctx: Context
) -> dict[str, Any]:
    """One entity as a data item: a GeoJSON Feature when the endpoint accepts geo+json."""
    endpoint = sub.doc["notification"]["endpoint"]
    if endpoint.get("accept") == GEO_JSON and (hit is None or hit.trigger != "entityDeleted"):
        params = sub.doc["notification"]
        attrs = params.get("attributes")
        return render_geojson(
            entity,
            ctx,
            fmt=params.get("format", "normalized"),
            sys_attrs=bool(params.get("sysAttrs")),
            lang=sub.doc.get("lang"),
            attrs=frozenset(attrs) if attrs else None,
        )
    return render_change(sub, entity, hit, old, at, ctx)
