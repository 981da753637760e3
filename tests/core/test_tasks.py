"""Stopping background tasks (core/tasks.py): a stop always ends."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from cityverse.core import tasks
from cityverse.core.tasks import cancel_and_wait


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again() -> None:
    swallowed = 0

    async def loop() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # as a cancellation lost by asyncio.wait_for on 3.11

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task, None], what="test"), 5.0)
    assert task.cancelled() and swallowed == 1


async def test_a_task_that_never_ends_is_left_and_named(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tasks, "STOP_WITHIN", 0.2)
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await released.wait()

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task], what="test"), 5.0)
    assert not task.done()
    assert "test tasks still running 0.2 s after being cancelled: stubborn" in caplog.text
    released.set()
    await asyncio.wait_for(task, 5.0)


async def test_a_failed_task_does_not_fail_the_stop() -> None:
    async def fails() -> None:
        raise RuntimeError("already logged by its loop")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait([task], what="test")
    assert isinstance(task.exception(), RuntimeError)
