"""The OpenAPI document: served, well formed, and describing exactly the routes the app serves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from cityverse.api.app import create_app
from cityverse.api.openapi import DOCUMENT_PATH, OPERATIONS, document, openapi_path
from cityverse.settings import Settings
from cityverse.store.sqlite import SqliteStore

METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def served(app: Starlette) -> set[tuple[str, str]]:
    """(method, document path) of every route of the app; a mount serves files under it."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Mount):
            found.add(("GET", openapi_path(route.path + "/{path}")))
        else:
            assert isinstance(route, Route), f"unexpected route kind {route!r}"
            for method in route.methods or ():
                # Starlette answers HEAD for every GET route by itself.
                if method != "HEAD":
                    found.add((method, openapi_path(route.path)))
    return found


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_documented_and_every_operation_is_served(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=str(tmp_path), auth="off"))
    routes = served(app)
    doc = documented(document())
    assert not routes - doc, f"routes missing from the OpenAPI document: {sorted(routes - doc)}"
    assert not doc - routes, f"documented but not served: {sorted(doc - routes)}"
    assert len(routes) == len(OPERATIONS)


def test_route_paths_become_document_paths() -> None:
    assert openapi_path("/ngsi-ld/v1/entities/{entity_id:entity_id}/attrs/{attr}") == (
        "/ngsi-ld/v1/entities/{entityId}/attrs/{attrId}"
    )
    assert openapi_path("/ngsi-ld/v1/jsonldContexts/{context_id:path}") == (
        "/ngsi-ld/v1/jsonldContexts/{contextId}"
    )
    assert openapi_path("/cityverse/v1/water/networks/{network}") == (
        "/cityverse/v1/water/networks/{network}"
    )


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_the_document_is_well_formed() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    for ref in _refs(doc):
        _resolve(doc, ref)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    for path, item in doc["paths"].items():
        in_template = set(re.findall(r"\{(\w+)\}", path))
        for method, operation in item.items():
            params = [
                _resolve(doc, p["$ref"]) if "$ref" in p else p for p in operation["parameters"]
            ]
            in_path = {p["name"] for p in params if p["in"] == "path"}
            assert in_path == in_template, f"{method} {path}: path parameters {in_path}"
            keys = [(p["name"], p["in"]) for p in params]
            assert len(keys) == len(set(keys)), f"{method} {path}: a parameter is repeated"
            assert "default" in operation["responses"] or path.startswith("/ui/")
            assert operation["responses"], f"{method} {path} has no responses"


def test_errors_and_headers_are_described() -> None:
    doc = document()
    components = doc["components"]
    assert set(components["schemas"]["ProblemDetails"]["required"]) == {"type", "title", "status"}
    assert components["parameters"]["NgsildTenant"]["name"] == "NGSILD-Tenant"
    assert components["parameters"]["Link"]["in"] == "header"
    assert components["securitySchemes"]["bearerAuth"] == {
        **components["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    assert doc["security"] == [{"bearerAuth": []}]
    create = doc["paths"]["/ngsi-ld/v1/entities"]["post"]
    assert create["responses"]["default"] == {"$ref": "#/components/responses/Problem"}
    names = {p["$ref"].rsplit("/", 1)[-1] for p in create["parameters"]}
    assert {"NgsildTenant", "Link"} <= names


async def test_the_document_is_served(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    await store.open()
    try:
        app = create_app(Settings(data_dir=str(tmp_path), auth="off"), store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cityverse.test") as c:
            response = await c.get(DOCUMENT_PATH)
    finally:
        await store.close()
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == document()
