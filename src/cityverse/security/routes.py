"""Which operation every route of the HTTP API performs: the table the guard decides on.

Each (method, path) of the app maps to one operation of ``policy.OPERATIONS`` or to:

- ``open``: served to everyone (the dashboard's page and files, the API description);
- ``measure``: a device's southbound message, authenticated by its service group's
  API key (``k``) as the FIWARE IoT agents do; the agent refuses unknown keys.

A route not in the table is refused to everyone but a tenant's admin, so a new route
cannot be served unguarded by mistake (``tests/security/test_routes.py`` checks that
every route of the app is classified).
"""

from __future__ import annotations

import re

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ALL = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})

_TABLE: list[tuple[frozenset[str], str, str]] = [
    # NGSI-LD core: queries by POST are reads.
    (frozenset({"POST"}), r"/ngsi-ld/v1/entityOperations/query", "read"),
    (frozenset({"POST"}), r"/ngsi-ld/v1/temporal/entityOperations/query", "read"),
    (frozenset({"POST"}), r"/ngsi-ld/v1/entityOperations/delete", "delete"),
    (frozenset({"POST"}), r"/ngsi-ld/v1/entityOperations/[a-z]+", "write"),
    (frozenset({"GET", "HEAD"}), r"/ngsi-ld/v1/openapi\.json", "open"),
    (_ALL, r"/ngsi-ld/v1/subscriptions(/.*)?", "subscribe"),
    (_ALL, r"/cityverse/v1/stream", "subscribe"),
    (READ_METHODS, r"/ngsi-ld/v1/.*", "read"),
    (frozenset({"DELETE"}), r"/ngsi-ld/v1/.*", "delete"),
    (frozenset({"POST", "PUT", "PATCH"}), r"/ngsi-ld/v1/.*", "write"),
    # The IoT agent: devices' own messages, and provisioning.
    (frozenset({"GET", "HEAD", "POST"}), r"/iot/(d|json)(/commands)?", "measure"),
    (frozenset({"GET", "HEAD"}), r"/iot/about", "open"),
    (_ALL, r"/iot/.*", "devices"),
    # The water twin: reading it, and running what-if work on it.
    (READ_METHODS, r"/cityverse/v1/water/.*", "read"),
    (frozenset({"POST"}), r"/cityverse/v1/water/networks", "write"),
    (frozenset({"POST"}), r"/cityverse/v1/water/networks/[^/]+/sensors", "write"),
    (frozenset({"POST"}), r"/cityverse/v1/water/.*", "scenarios"),
    # Administration of the tenant's security; anyone may ask who they are.
    (frozenset({"GET", "HEAD"}), r"/cityverse/v1/security/whoami", "open"),
    (_ALL, r"/cityverse/v1/security/.*", "admin"),
    # The dashboard.
    (frozenset({"GET", "HEAD"}), r"/", "open"),
    (frozenset({"GET", "HEAD"}), r"/ui/static/.*", "open"),
]
_COMPILED = [(methods, re.compile(pattern), op) for methods, pattern, op in _TABLE]
UNCLASSIFIED = "admin"


_BY_METHOD = {"GET": "read", "HEAD": "read", "OPTIONS": "read", "DELETE": "delete"}


def classify(method: str, path: str) -> str:
    """The operation of a request; ``admin`` for anything the table does not know."""
    if path.startswith(("/ngsi-ld/v1/entities", "/ngsi-ld/v1/temporal/entities")):
        # The hot path of the API (and of unbounded entity ids): decided by the method.
        return _BY_METHOD.get(method, "write")
    return _match(method, path) or UNCLASSIFIED


def _match(method: str, path: str) -> str | None:
    for methods, pattern, operation in _COMPILED:
        if method in methods and pattern.fullmatch(path):
            return operation
    return None


def is_classified(method: str, path: str) -> bool:
    """True when the table names the route (the test of the app's routes uses it)."""
    return _match(method, path) is not None
