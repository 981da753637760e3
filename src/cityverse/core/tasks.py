"""Stopping background tasks so that a stop always ends.

Every service of the app stops its tasks with ``cancel_and_wait``::

    await cancel_and_wait([self.task], what="retention")

A single ``task.cancel()`` followed by an unbounded wait can hang: on Python 3.11,
``asyncio.wait_for`` returns normally when a cancellation arrives as the awaited thing
completes, and psycopg_pool waits for a free connection with it, so a task cancelled at
that moment carries on as if it never was (a loop goes back to polling) and the wait
never ends. Here a task that goes on is cancelled again, and after ``STOP_WITHIN``
seconds one that still runs is left behind, named in the log, so that the app stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("cityverse")

RECANCEL = 0.05
"""Seconds a cancelled task is given to end before it is cancelled again."""
STOP_WITHIN = 10.0
"""Seconds ``cancel_and_wait`` waits for its tasks to end; it then leaves those still
running and says which they are."""


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None], *, what: str) -> None:
    """Cancel the tasks and wait until they have ended, cancelling again any that goes
    on; ``what`` names their owner in the log if some outlive ``STOP_WITHIN``. A task's
    own exception is retrieved, not raised: the loops log their failures themselves."""
    given = [task for task in tasks if task is not None]
    pending = {task for task in given if not task.done()}
    deadline = time.monotonic() + STOP_WITHIN
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            names = ", ".join(sorted(task.get_name() for task in pending))
            log.error(
                "%s tasks still running %g s after being cancelled: %s", what, STOP_WITHIN, names
            )
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL, left))
    for task in given:
        if task.done() and not task.cancelled():
            task.exception()
