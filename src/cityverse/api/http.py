"""Translating HTTP to broker calls and back: bodies, media types, @context, tenants.

GS CIM 009 clause 6.3 (HTTP binding): Content-Type and Accept negotiation, the JSON-LD
@context in a Link header or in the body, the NGSILD-Tenant header, and ProblemDetails.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from cityverse.broker.request import OPEN, Broker, Call, parse_tenant
from cityverse.core.context import Context
from cityverse.core.errors import (
    BadRequestData,
    InvalidRequest,
    NgsiError,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from cityverse.security.middleware import GATE

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
PROBLEM = "application/json"
LD_CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


def problem_response(error: NgsiError) -> Response:
    """The ProblemDetails response for an error."""
    return Response(orjson.dumps(error.to_problem()), status_code=error.status, media_type=PROBLEM)


async def read_json(request: Request, broker: Broker, *, merge_patch: bool = False) -> Any:
    """The request's JSON body, after checking its media type, size and nesting."""
    media = media_type(request.headers.get("content-type"))
    allowed = (JSON, JSON_LD, MERGE_PATCH) if merge_patch else (JSON, JSON_LD)
    if media not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type {media or 'missing'!r} is not supported; use {' or '.join(allowed)}"
        )
    limit = broker.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise InvalidRequest("the request has no body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
    check_depth(body, broker.settings.max_json_depth)
    return body


def check_depth(value: Any, limit: int) -> None:
    """Raise BadRequestData when JSON nests deeper than ``limit`` levels."""
    if not _within_depth(value, limit):
        raise BadRequestData(f"the JSON body nests deeper than {limit} levels")


def _within_depth(value: Any, remaining: int) -> bool:
    # Recursion is bounded by ``remaining``, so it cannot exhaust the stack; only
    # containers are visited, which keeps large batches cheap.
    if remaining <= 0:
        return False
    kind = type(value)
    items = value.values() if kind is dict else value if kind is list else ()
    for item in items:
        item_kind = type(item)
        if (item_kind is dict or item_kind is list) and not _within_depth(item, remaining - 1):
            return False
    return True


@lru_cache(maxsize=256)
def media_type(header: str | None) -> str:
    """The bare media type of a Content-Type header."""
    if not header:
        return ""
    return header.split(";", 1)[0].strip().lower()


@lru_cache(maxsize=256)
def negotiate(accept: str | None, geo: bool = False) -> str:
    """The response media type for an Accept header (6.3.4), or NotAcceptable."""
    offered = [JSON, JSON_LD, GEO_JSON] if geo else [JSON, JSON_LD]
    if not accept:
        return JSON
    best, best_q = "", 0.0
    for part in accept.split(","):
        fields = part.strip().split(";")
        kind = fields[0].strip().lower()
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if kind in ("*/*", "application/*"):
            candidate = JSON
        elif kind in offered:
            candidate = kind
        else:
            continue
        if q > best_q:
            best, best_q = candidate, q
    if not best:
        raise NotAcceptable(f"cannot answer in {accept!r}; offered: {', '.join(offered)}")
    return best


@lru_cache(maxsize=256)
def context_link(header: str | None) -> str | None:
    """The @context URL of a Link header (6.3.5), or None."""
    if not header:
        return None
    found = []
    for match in _LINK.finditer(header):
        url, params = match.group(1), match.group(2)
        if LD_CONTEXT_REL in params:
            found.append(url.strip())
    if len(found) > 1:
        raise BadRequestData("more than one JSON-LD @context Link header")
    return found[0] if found else None


async def make_call(request: Request, broker: Broker, body: Any = None) -> Call:
    """The normalised call of a request: tenant and @context (from Link or body)."""
    tenant = parse_tenant(request.headers.get("ngsild-tenant"))
    link = context_link(request.headers.get("link"))
    ld_body = media_type(request.headers.get("content-type")) == JSON_LD and body is not None
    if ld_body:
        if link is not None:
            raise BadRequestData(
                "with application/ld+json the @context goes in the body, not a Link header"
            )
        first = body[0] if isinstance(body, list) and body else body
        if not isinstance(first, dict) or "@context" not in first:
            raise BadRequestData("an application/ld+json body must hold an @context")
        ctx: Context = await broker.contexts.resolve(first["@context"])
    else:
        if isinstance(body, dict) and "@context" in body:
            raise BadRequestData(
                "an application/json body must not hold an @context: send it in a Link header"
                " or use Content-Type application/ld+json"
            )
        ctx = await broker.contexts.resolve(link) if link else broker.contexts.core
    gate = request.scope.get(GATE, OPEN)
    return Call(tenant=tenant, context=ctx, ld_body=ld_body, gate=gate)


def json_response(
    content: Any,
    ctx: Context,
    media: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON response compacted with ``ctx``: @context in the body for JSON-LD, else Link."""
    hdrs = dict(headers or {})
    if media == JSON_LD:
        document = ctx.document()
        if isinstance(content, list):
            content = [{**item, "@context": document} for item in content]
        elif isinstance(content, dict):
            content = {**content, "@context": document}
    else:
        link = ctx.link_header()
        if link:
            hdrs["Link"] = link
    return Response(orjson.dumps(content), status_code=status, media_type=media, headers=hdrs)
