"""Small builders and checks shared by the HTTP API tests."""

from __future__ import annotations

from typing import Any

import httpx

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
LD = "application/ld+json"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


def entity(entity_id: str, entity_type: str | None = None, **attrs: Any) -> dict[str, Any]:
    """A normalized entity; plain attribute values become Properties."""
    kind = entity_type or entity_id.split(":")[2]
    body: dict[str, Any] = {"id": entity_id, "type": kind}
    for name, value in attrs.items():
        if (isinstance(value, dict) and "type" in value) or isinstance(value, list):
            body[name] = value
        else:
            body[name] = {"type": "Property", "value": value}
    return body


def link(url: str) -> dict[str, str]:
    """A Link header naming a JSON-LD @context."""
    return {
        "Link": f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    }


def assert_problem(
    response: httpx.Response, status: int, kind: str | None = None
) -> dict[str, Any]:
    """Check a ProblemDetails answer (RFC 7807, GS CIM 009 5.5.2) and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    if kind is not None:
        assert body["type"] == ERRORS + kind, body
    return body
