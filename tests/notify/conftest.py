"""Apps that run their services (the notifier) over the test's store, and store reopening."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from cityverse.api.app import create_app
from cityverse.settings import Settings
from cityverse.store.base import EntityStore
from cityverse.store.postgres import PostgresStore
from cityverse.store.sqlite import SqliteStore


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Quick retries and polling, so that failures and recoveries show within a test."""
    return Settings(
        data_dir=str(tmp_path),
        auth="off",
        notify_timeout=1.0,
        notify_retry_base=0.05,
        notify_retry_max=0.2,
        notify_poll=0.02,
        notify_lease=2.0,
    )


STOP_WITHIN = 20.0
"""Seconds an app is given to stop: one that does not fails its test, naming what still
runs, well before the suite's timeout."""


@contextlib.asynccontextmanager
async def lifespan(app: Starlette, stop_within: float = STOP_WITHIN) -> AsyncIterator[None]:
    """The app's lifespan: started on entry, stopped on exit within ``stop_within`` s."""
    context = app.router.lifespan_context(app)
    await context.__aenter__()
    try:
        yield
    finally:
        stopping = asyncio.ensure_future(context.__aexit__(None, None, None))
        # asyncio.wait, not wait_for: what still runs is listed before the stop is cancelled.
        done, _ = await asyncio.wait({stopping}, timeout=stop_within)
        if not done:
            others = asyncio.all_tasks() - {stopping, asyncio.current_task()}
            names = sorted({task.get_name() for task in others if not task.done()})
            named = [name for name in names if not re.fullmatch(r"Task-\d+", name)]
            stopping.cancel()
            raise AssertionError(
                f"the app did not stop within {stop_within:g} s; still running: "
                f"{', '.join(named)} and {len(names) - len(named)} unnamed tasks"
            )
        stopping.result()


@contextlib.asynccontextmanager
async def running(
    store: EntityStore, settings: Settings, *, stop_within: float = STOP_WITHIN
) -> AsyncIterator[tuple[httpx.AsyncClient, Starlette]]:
    """The app over ``store`` with its lifespan run (store opened, services started)."""
    app = create_app(settings, store=store)
    async with lifespan(app, stop_within):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://cityverse.test") as c:
            yield c, app


def same_store(store: Any) -> EntityStore:
    """A new store object over the same file or database schema (a restarted server)."""
    if isinstance(store, SqliteStore):
        return SqliteStore(store.path)
    assert isinstance(store, PostgresStore)
    return PostgresStore(store.conninfo, schema=store.schema)
