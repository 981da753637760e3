"""A real HTTP server that receives notifications: asyncio streams, HTTP/1.1 keep-alive.

    async with Receiver() as receiver:          # answers 204 to every POST
        ... receiver.url ...
        bodies = await receiver.wait(3)         # the first three bodies, parsed

``status`` sets the answer (500 makes every delivery fail); ``hang`` keeps requests
unanswered until the server closes (an endpoint that never answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson


class Receiver:
    """Records each POSTed body with its headers and the time it arrived."""

    def __init__(self, *, status: int = 204, hang: bool = False) -> None:
        self.status = status
        self.hang = hang
        self.received: list[tuple[dict[str, str], Any, float]] = []
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/notify"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def bodies(self) -> list[Any]:
        return [body for _, body, _ in self.received]

    async def wait(self, count: int, timeout: float = 10.0) -> list[Any]:
        """The first ``count`` bodies; fails if they do not all arrive in time."""
        async with self._arrived:
            try:
                await asyncio.wait_for(
                    self._arrived.wait_for(lambda: len(self.received) >= count), timeout
                )
            except TimeoutError:
                raise AssertionError(
                    f"{len(self.received)} of {count} notifications arrived at {self.url} "
                    f"within {timeout:g} s"
                ) from None
        return self.bodies[:count]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if self.hang:
                    await asyncio.Event().wait()
                async with self._arrived:
                    self.received.append((headers, orjson.loads(body), time.time()))
                    self._arrived.notify_all()
                writer.write(f"HTTP/1.1 {self.status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
