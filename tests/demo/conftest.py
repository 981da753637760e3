"""The app in-process for the demo's tests: its IoT agent and water jobs running, an HTTP
client on it, and the demo's devices speaking to it as they speak to a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from cityverse.api.app import create_app
from cityverse.broker.request import Broker
from cityverse.demo.city import DEFAULT_SEED, generate
from cityverse.demo.hydraulics import HydraulicTables, simulate
from cityverse.demo.service import HttpPublisher
from cityverse.demo.story import LEAK_PIPE
from cityverse.ingest.iot.agent import IotAgent
from cityverse.settings import Settings
from cityverse.store.base import EntityStore
from cityverse.twins.water.jobs import WaterJobs

BASE = "http://cityverse.test"


class FixedClock:
    """A monotonic clock and a wall clock that move together, only when told."""

    def __init__(self, wall: datetime) -> None:
        self.seconds = 1000.0
        self.real = wall

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return self.real

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.real += timedelta(seconds=seconds)


@dataclass
class Server:
    """The app over a test's store, and a client on it."""

    app: Starlette
    client: httpx.AsyncClient

    @property
    def broker(self) -> Broker:
        broker: Broker = self.app.state.broker
        return broker

    def publisher(self) -> HttpPublisher:
        """An HTTP publisher that reaches this app (the client stays open after it)."""
        return HttpPublisher(BASE, client=self.client)


@asynccontextmanager
async def serving(store: EntityStore, tmp_path: Path) -> AsyncIterator[Server]:
    """The app over ``store`` (which the test owns) with its IoT agent and water jobs."""
    app = create_app(Settings(data_dir=str(tmp_path), auth="off"), store=store)
    services = [s for s in app.state.services if isinstance(s, IotAgent | WaterJobs)]
    for service in services:
        await service.start()
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=300) as client:
            yield Server(app, client)
    finally:
        for service in reversed(services):
            await service.stop()


@pytest.fixture(scope="module")
def city() -> list[dict[str, Any]]:
    """The demo city's entities (one generation per test module)."""
    return generate(DEFAULT_SEED)


@pytest.fixture(scope="module")
def tables() -> HydraulicTables:
    """The hydraulic tables of the story's leak (one simulation per test module)."""
    return simulate(LEAK_PIPE)
