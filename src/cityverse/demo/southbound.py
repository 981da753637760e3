"""The demo devices' HTTP connections to the IoT agent's southbound (``/iot/json``, ``/iot/d``).

A device's message is one small POST, answered by a status line and a short body. The
demo sends them from the server's own process, on its event loop, a round of hundreds
each real second (every device at once when it starts): a general HTTP client's work
for each request (its models, cookies, pool and timeouts: about 1.6 ms of CPU here)
would cost that loop more than the agent spends on the measures, and would hold up the
dashboard's requests. ``DeviceLink`` writes the request and reads the answer itself
(0.04 ms), over a few connections kept open, one request at a time on each::

    link = DeviceLink("http://127.0.0.1:1026")
    status, body = await link.post("/iot/d?k=berkane-lights&i=light-h3-2-4-1",
                                   b"2026-06-21T04:31:00.000Z|p|on", "text/plain")
    await link.close()

It speaks plain HTTP/1.1 to the URL it is given: the bytes on the wire are those any
device sends, and the server handles them as it handles any device's.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

CONNECTIONS = 16
"""Connections kept open: the requests in flight at once."""
TIMEOUT = 120.0
"""Seconds a request may take, answer included."""
MAX_HEAD = 64 * 1024
"""The longest status line and headers read."""

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class SouthboundError(OSError):
    """The server closed the connection or answered something that is not HTTP/1.1."""


class DeviceLink:
    """A few HTTP/1.1 keep-alive connections to one server, for small POSTs."""

    def __init__(self, base: str, *, connections: int = CONNECTIONS) -> None:
        url = urlsplit(base)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"the devices speak plain HTTP to a host: {base!r}")
        self.host = url.hostname
        self.port = url.port or 80
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = f"{netloc}:{self.port}"
        self._idle: asyncio.Queue[Connection | None] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(None)
        self._open: set[asyncio.StreamWriter] = set()

    async def post(self, target: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        """POST ``body`` to ``target`` (path and query); the answer's status and body."""
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {self.authority}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        request = head.encode("latin-1") + body
        connection = await self._idle.get()
        try:
            async with asyncio.timeout(TIMEOUT):
                reused = connection is not None
                if connection is None:
                    connection = await self._connect()
                try:
                    status, answer, keep = await _exchange(connection, request)
                except (_Unanswered, ConnectionError):
                    # A connection kept open may have been closed by the server since its
                    # last answer (its keep-alive timeout): the request never reached it.
                    self._close(connection[1])
                    connection = None
                    if not reused:
                        raise
                    connection = await self._connect()
                    status, answer, keep = await _exchange(connection, request)
            if not keep:
                self._close(connection[1])
                connection = None
            return status, answer
        except BaseException:
            if connection is not None:
                self._close(connection[1])
                connection = None
            raise
        finally:
            self._idle.put_nowait(connection)

    async def close(self) -> None:
        """Close every connection."""
        for writer in list(self._open):
            self._close(writer)
        for _ in range(self._idle.qsize()):
            self._idle.get_nowait()
            self._idle.put_nowait(None)

    async def _connect(self) -> Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_HEAD)
        self._open.add(writer)
        return reader, writer

    def _close(self, writer: asyncio.StreamWriter) -> None:
        self._open.discard(writer)
        writer.close()


class _Unanswered(SouthboundError):
    """The connection ended before the first byte of an answer."""


async def _exchange(connection: Connection, request: bytes) -> tuple[int, bytes, bool]:
    """Send a request; (status, body, whether the connection may carry another)."""
    reader, writer = connection
    writer.write(request)
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise _Unanswered("the server closed the connection") from None
        raise SouthboundError("the server's answer ended early") from None
    except asyncio.LimitOverrunError:
        raise SouthboundError("the server's answer has too long a head") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise SouthboundError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    keep = parts[0] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body, keep = await reader.read(), False
    except (asyncio.IncompleteReadError, ValueError):
        raise SouthboundError("the server's answer ended early") from None
    return int(parts[1]), body, keep


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers are sent to a device
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
