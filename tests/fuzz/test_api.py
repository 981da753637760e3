"""The whole HTTP API fuzzed in-process from its OpenAPI document (a few cases per operation).

schemathesis generates requests from ``/ngsi-ld/v1/openapi.json``, valid and invalid, and
sends them to the ASGI app (its lifespan runs, so the store and the services are real).
No answer may be a 5xx, and every answer must match the document. bench/fuzz_api.py runs
the same against a real server with many more cases.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance
from starlette.applications import Starlette

from cityverse.api.app import create_app
from cityverse.api.openapi import document
from cityverse.settings import Settings
from cityverse.store.sqlite import SqliteStore

EXAMPLES = 6
"""Cases per operation: enough to reach past the first checks of each, fast enough for CI."""


@pytest.fixture
def app(tmp_path: Path, loopback_only: list[str]) -> Starlette:
    """A fresh app over its own SQLite store; schemathesis runs its lifespan."""
    return create_app(Settings(data_dir=str(tmp_path), auth="off", context_timeout=1.0))


# The coverage phase alone makes about 9,000 cases; bench/fuzz_api.py runs it. The cache
# of crashes stays off: nothing is written into the working tree.
CONFIG = SchemathesisConfig.from_dict(
    {
        "cache": {"enabled": False},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_dict(document(), config=CONFIG).exclude(
    # A stream that matches answers forever.
    operation_id="stream"
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error_and_answers_as_documented(case: schemathesis.Case, app: Starlette) -> None:
    case.call_and_validate(app=app, checks=[not_a_server_error, response_schema_conformance])


FOUND = [
    (
        "/ngsi-ld/v1/entities",
        {
            "id": "urn:ngsi-ld:T:1",
            "type": "T",
            "a": {"type": "Property", "value": 1, "observedAt": "2026-11-21T10:00:00+99:99"},
        },
        "is not a valid date-time",
    ),
    (
        "/ngsi-ld/v1/temporal/entities",
        {
            "id": "urn:ngsi-ld:T:1",
            "type": "T",
            "a": {"type": [], "objects": [["urn:x:1", "2026-11-21T10:00:00Z"]]},
        },
        "'type' must be a string",
    ),
]


@pytest.mark.parametrize(("path", "body", "detail"), FOUND)
async def test_requests_found_by_fuzzing_are_refused(
    tmp_path: Path, path: str, body: dict[str, object], detail: str
) -> None:
    """Requests that were 500s once fuzzing found them: now a 400 that says why."""
    store = SqliteStore(tmp_path / "store.db")
    await store.open()
    try:
        app = create_app(Settings(data_dir=str(tmp_path), auth="off"), store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cityverse.test") as c:
            response = await c.post(path, json=body)
    finally:
        await store.close()
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    assert detail in problem["detail"]


def test_the_guard_refuses_outside_addresses(loopback_only: list[str]) -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.org", 80)
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("192.0.2.1", 9))
    assert loopback_only == ["lookup 'example.org'", "connect ('192.0.2.1', 9)"]
    assert socket.getaddrinfo("127.0.0.1", 80)
