"""The notifier service's own life (notify/service.py): it stops, whatever its store does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cityverse.core import tasks
from cityverse.settings import Settings
from cityverse.store.base import EntityStore
from tests.notify.conftest import running
from tests.notify.receiver import Receiver
from tests.notify.test_delivery import E, pipe, sub, subscribe


def losing_one_cancellation(
    step: Callable[..., Awaitable[Any]],
) -> tuple[Callable[..., Awaitable[Any]], asyncio.Event]:
    """``step`` as it runs when its task is cancelled just as the connection it waits
    for comes: Python 3.11's ``asyncio.wait_for``, which psycopg_pool waits with, then
    returns normally and the step goes on. The first call waits until it is cancelled,
    drops the cancellation and runs the step; the event tells that it was reached."""
    reached = asyncio.Event()

    async def once(*args: Any) -> Any:
        if not reached.is_set():
            reached.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        return await step(*args)

    return once, reached


@pytest.mark.parametrize("step", ["finish_deliveries", "pending_changes"])
async def test_stop_ends_a_task_that_lost_its_cancellation(
    store: EntityStore, settings: Settings, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """The result writer (``finish_deliveries``) or the loop (``pending_changes``) goes
    on after its cancellation was lost in a store step; the app stops all the same."""
    lossy, reached = losing_one_cancellation(getattr(store, step))
    monkeypatch.setattr(store, step, lossy)
    async with Receiver() as receiver, running(store, settings, stop_within=5.0) as (client, _):
        await subscribe(client, sub(receiver.url))
        assert (await client.post(E, json=pipe(1))).status_code == 201
        await asyncio.wait_for(reached.wait(), 10.0)


async def test_stop_leaves_a_task_that_will_not_end_and_names_it(
    store: EntityStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A task that outlives every cancellation is left after ``STOP_WITHIN`` seconds and
    named in the log: the app still stops."""
    monkeypatch.setattr(tasks, "STOP_WITHIN", 0.3)
    reached, released = asyncio.Event(), asyncio.Event()

    async def stubborn(*args: Any) -> Any:
        reached.set()
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await released.wait()
        raise asyncio.CancelledError

    monkeypatch.setattr(store, "pending_changes", stubborn)
    async with running(store, settings, stop_within=5.0):
        await asyncio.wait_for(reached.wait(), 10.0)
    [left] = [t for t in asyncio.all_tasks() if t.get_name() == "notify:run"]
    assert not left.done()
    assert "notifier tasks still running 0.3 s after being cancelled: notify:run" in caplog.text
    released.set()
    left.cancel()
    await asyncio.wait({left}, timeout=5.0)
    assert left.done()
