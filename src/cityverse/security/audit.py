"""The audit log: append-only, hash-chained, keyed, one JSON record per line.

Every write, every administrative act and every disclosure of personal data leaves a
record (who, what, when, from where, with what outcome). Each line carries ``prev``, the
``mac`` of the line before, and its own ``mac``: an HMAC-SHA256, under the site's secret,
of its content including ``prev``. Changing, removing, inserting or reordering a line
breaks the chain at that line, and without the secret the chain cannot be rebuilt::

    log = AuditLog(path, key)
    log.record({"tenant": "", "subject": "key:3f2a", "action": "PATCH", ...})
    await log.flush()
    result = verify(path, key)          # result.ok, result.records, result.problem

Records are buffered and written in batches (``flush``, every ``FLUSH_SECONDS`` while
the app runs) under an exclusive file lock, so that several server processes share
one chain.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from cityverse.core.entity import iso_now
from cityverse.core.tasks import cancel_and_wait

log = logging.getLogger("cityverse.audit")

FLUSH_SECONDS = 0.2
GENESIS = "0" * 64


def _mac(key: bytes, record: dict[str, Any]) -> str:
    body = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    return hmac.new(key, body, hashlib.sha256).hexdigest()


class AuditLog:
    """Appends records to the chained log file; a Service of the app."""

    def __init__(self, path: str | Path, key: bytes) -> None:
        self.path = Path(path)
        self.key = key
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def record(self, entry: dict[str, Any]) -> None:
        """Queue a record; it gets its time now and its place in the chain when flushed."""
        self._pending.append({"time": iso_now(), **entry})

    def flush_now(self) -> int:
        """Write the queued records (blocking); the number written."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            prev = _last_mac(fd)
            lines = []
            for entry in batch:
                chained = {**entry, "prev": prev}
                prev = _mac(self.key, chained)
                lines.append(orjson.dumps({**chained, "mac": prev}) + b"\n")
            os.write(fd, b"".join(lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        return len(batch)

    async def flush(self) -> None:
        """Write the queued records without blocking the event loop."""
        if self._pending:
            await asyncio.to_thread(self.flush_now)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        await cancel_and_wait([self._task], what="audit log")
        self.flush_now()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except OSError:
                log.exception("the audit log %s cannot be written", self.path)


def _last_mac(fd: int) -> str:
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return GENESIS
    chunk = 4096
    while True:
        start = max(0, size - chunk)
        data = os.pread(fd, size - start, start)
        lines = data.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or start == 0:
            try:
                return str(orjson.loads(lines[-1])["mac"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                # A torn or foreign last line: chain on from its hash, so verify flags it.
                return hashlib.sha256(lines[-1]).hexdigest()
        chunk *= 4


@dataclass(frozen=True)
class Verification:
    """The outcome of checking a log: how many records, and the first problem if any."""

    records: int
    problem: str | None = None
    line: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(path: str | Path, key: bytes) -> Verification:
    """Walk the chain from the first line; stop at the first line that does not hold."""
    prev = GENESIS
    count = 0
    for number, raw in _lines(Path(path)):
        try:
            entry = orjson.loads(raw)
            mac = entry.pop("mac")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return Verification(count, "the line is not an audit record", number)
        if entry.get("prev") != prev:
            return Verification(
                count, "the chain is broken: a record was removed, inserted or moved", number
            )
        if not hmac.compare_digest(str(mac), _mac(key, entry)):
            return Verification(count, "the record was altered (its MAC does not match)", number)
        prev = str(mac)
        count += 1
    return Verification(count)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, raw
