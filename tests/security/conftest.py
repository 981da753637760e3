"""A secured app over each store, with one API key per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from cityverse.api.app import create_app
from cityverse.settings import Settings
from cityverse.store.base import EntityStore

ROLES = ("admin", "operator", "analyst", "developer", "citizen")


@dataclass
class Secured:
    """The app, a client without credentials, and a key per (tenant, role)."""

    app: Starlette
    client: httpx.AsyncClient
    keys: dict[tuple[str, str], str]

    def headers(self, role: str | None, tenant: str = "") -> dict[str, str]:
        out = {"NGSILD-Tenant": tenant} if tenant else {}
        if role is not None and role != "public":
            out["Authorization"] = "Bearer " + self.keys[(tenant, role)]
        return out


@pytest.fixture
async def secured(store: EntityStore, tmp_path: Path) -> AsyncIterator[Secured]:
    settings = Settings(data_dir=str(tmp_path), auth="on", rate_limit=0, context_timeout=1.0)
    app = create_app(settings, store=store)
    keys: dict[tuple[str, str], str] = {}
    for tenant in ("", "other"):
        for role in ROLES:
            token, _ = await app.state.guard.keys.create(tenant, role, f"{role} key")
            keys[(tenant, role)] = token
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://cityverse.test") as c:
        yield Secured(app, c, keys)
