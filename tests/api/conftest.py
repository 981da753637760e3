"""The HTTP API under test: the real app over each store, driven in-process by httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cityverse.api.app import create_app
from cityverse.settings import Settings
from cityverse.store.base import EntityStore


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    """Settings for a test app: small limits so that they are cheap to reach."""
    return Settings(
        data_dir=str(tmp_path), auth="off", max_body_bytes=256 * 1024, context_timeout=1.0
    )


@pytest.fixture
async def client(store: EntityStore, app_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process (the store is opened by its fixture)."""
    app = create_app(app_settings, store=store)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://cityverse.test") as c:
        yield c
