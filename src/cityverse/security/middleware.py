"""The guard in front of every route, the audit behind it, secure headers on the way out.

An ASGI middleware around the whole app: no route runs before ``Guard.admit`` has let
the request through, and the ``Access`` it returns rides in the ASGI scope to the
broker (``api.http.make_call`` makes it the call's gate). A refused request gets its
ProblemDetails here and reaches no route. After the response, writes, refusals and
disclosures of personal data are written to the audit log.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityverse.broker.request import OPEN
from cityverse.core.errors import NgsiError, Unauthenticated
from cityverse.security.audit import AuditLog
from cityverse.security.guard import Access, Guard
from cityverse.security.identity import Identity
from cityverse.security.routes import READ_METHODS

ACCESS = "cityverse.access"
"""The scope key of the request's ``Access`` (absent when security is off)."""
GATE = "cityverse.gate"
"""The scope key of the request's broker ``Gate`` (``api.http.make_call`` reads it)."""

_API_PREFIXES = ("/ngsi-ld/", "/iot/", "/cityverse/")
_IOT_ERRORS = {
    400: "WRONG_SYNTAX",
    401: "UNAUTHORIZED",
    403: "ACCESS_FORBIDDEN",
    429: "TOO_MANY_REQUESTS",
}
JSON = "application/json"


def secure_headers(tiles_url: str) -> list[tuple[bytes, bytes]]:
    """Headers that keep the dashboard's page to its own origin (and the tile server)."""
    tiles = ""
    if tiles_url:
        parts = urlsplit(tiles_url.replace("{", "").replace("}", ""))
        tiles = f" {parts.scheme}://{parts.netloc}"
    policy = (
        "default-src 'self'; "
        f"img-src 'self' data: blob:{tiles}; "
        f"connect-src 'self'{tiles}; "
        "worker-src 'self' blob:; child-src blob:; "
        "style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


class SecurityMiddleware:
    """Admit, then serve, then audit."""

    def __init__(self, app: ASGIApp, guard: Guard, audit: AuditLog | None) -> None:
        self.app = app
        self.guard = guard
        self.audit = audit
        self.page_headers = secure_headers(guard.settings.tiles_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        method: str = scope["method"]
        path: str = scope["path"]
        client = (scope.get("client") or ("-", 0))[0]
        if path == "/cityverse/v1/stream" and "ngsild-tenant" not in headers:
            # Browsers' EventSource cannot send headers: the stream's tenant is a parameter.
            tenant = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("tenant")
            if tenant:
                headers["ngsild-tenant"] = tenant[0]
        try:
            access = await self.guard.admit(headers, method, path, client)
        except NgsiError as exc:
            self._refused(exc, headers, method, path, client)
            body: Any = exc.to_problem()
            if path.startswith("/iot/"):
                # The IoT agent API answers errors in the FIWARE IoT agents' own shape.
                body = {"name": _IOT_ERRORS.get(exc.status, "BAD_REQUEST"), "message": exc.detail}
            response = Response(orjson.dumps(body), status_code=exc.status, media_type=JSON)
            if isinstance(exc, Unauthenticated):
                response.headers["WWW-Authenticate"] = 'Bearer realm="cityverse"'
            await response(scope, receive, send)
            return
        scope[ACCESS] = access
        scope[GATE] = access if self.guard.enabled else OPEN
        status = 0
        page = not path.startswith(_API_PREFIXES)

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if page:
                    message["headers"] = [*message.get("headers", ()), *self.page_headers]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._served(access, method, path, client, status)

    def _served(self, access: Access, method: str, path: str, client: str, status: int) -> None:
        if self.audit is None:
            return
        wrote = method not in READ_METHODS and access.operation not in ("measure", "open")
        if not wrote and not access.disclosures:
            return
        entry = _who(access.identity, access.tenant, client)
        entry.update(action=method, path=path, operation=access.operation, status=status)
        if access.disclosures:
            entry["personal"] = {k: sorted(v) for k, v in access.disclosures.items()}
        self.audit.record(entry)

    def _refused(
        self, exc: NgsiError, headers: dict[str, str], method: str, path: str, client: str
    ) -> None:
        if self.audit is None or exc.status not in (401, 403):
            return
        entry: dict[str, Any] = {
            "tenant": headers.get("ngsild-tenant", headers.get("fiware-service", "")),
            "subject": "?",
            "client": client,
        }
        entry.update(action=method, path=path, status=exc.status, refused=exc.detail)
        self.audit.record(entry)


def _who(identity: Identity, tenant: str, client: str) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "subject": identity.subject,
        "kind": identity.kind,
        "roles": sorted(identity.roles_in(tenant)),
        "client": client,
    }
