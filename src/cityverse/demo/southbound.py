"""The demo devices' HTTP connections to the IoT agent's southbound (``/iot/json``, ``/iot/d``).

A device's message is one small POST, answered by a status line and a short body. The
demo sends them from the server's own process, on its event loop, a round of hundreds
each real second (every device at once when it starts), so each request must cost that
loop little CPU, or the dashboard's requests wait. ``DeviceLink`` keeps a few HTTP/1.1
connections open and sends one request at a time on each; ``h11`` frames the requests
and parses the answers (status line, headers, bodies sized, chunked or ended by the
connection's close), and nothing else stands between the request and the socket: no
models, cookies or redirects of a general client. A request costs about 0.3 ms of CPU
(a general client such as httpx: 2 to 3 ms)::

    link = DeviceLink("http://127.0.0.1:1026")
    status, body = await link.post("/iot/d?k=berkane-lights&i=light-h3-2-4-1",
                                   b"2026-06-21T04:31:00.000Z|p|on", "text/plain")
    await link.close()

It speaks plain HTTP/1.1 to the URL it is given: the bytes on the wire are those any
device sends, and the server handles them as it handles any device's.

A connection the server closed while it was idle (its keep-alive timeout) is opened
again and the request sent on the new one. Anything else that goes wrong (an answer
that is not HTTP/1.1, a connection closed before the answer is whole, no answer in
time) raises ``SouthboundError`` and drops the connection; the next request opens
another.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import h11

CONNECTIONS = 16
"""Connections kept open: the requests in flight at once."""
TIMEOUT = 120.0
"""Seconds a request may take, answer included."""
MAX_HEAD = 64 * 1024
"""The longest status line and headers read."""
READ_SIZE = 64 * 1024
"""The most bytes read from the socket at once."""


class SouthboundError(OSError):
    """The server closed the connection, answered something that is not HTTP/1.1, or
    did not answer in time."""


class DeviceLink:
    """A few HTTP/1.1 keep-alive connections to one server, for small POSTs."""

    def __init__(
        self, base: str, *, connections: int = CONNECTIONS, timeout: float = TIMEOUT
    ) -> None:
        url = urlsplit(base)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"the devices speak plain HTTP to a host: {base!r}")
        if connections < 1:
            raise ValueError(f"a link needs at least one connection: {connections}")
        if not timeout > 0:
            raise ValueError(f"the timeout must be a positive number of seconds: {timeout}")
        self.host = url.hostname
        self.port = url.port or 80
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = f"{netloc}:{self.port}"
        self.timeout = timeout
        self._host_header = (b"Host", self.authority.encode("ascii"))
        self._idle: asyncio.Queue[_Connection | None] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(None)
        self._open: set[_Connection] = set()

    async def post(self, target: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        """POST ``body`` to ``target`` (path and query); the answer's status and body."""
        try:
            request = h11.Request(
                method=b"POST",
                target=target,
                headers=[
                    self._host_header,
                    (b"Content-Type", content_type.encode("latin-1")),
                    (b"Content-Length", b"%d" % len(body)),
                ],
            )
        except (h11.LocalProtocolError, UnicodeError) as exc:
            raise ValueError(
                f"not a request line and headers HTTP allows ({exc}): "
                f"{target[:80]!r}, {content_type[:80]!r}"
            ) from None
        connection = await self._idle.get()
        try:
            try:
                async with asyncio.timeout(self.timeout) as deadline:
                    reused = connection is not None
                    if connection is None:
                        connection = await self._connect()
                    try:
                        status, answer = await connection.exchange(request, body)
                    except _Unanswered:
                        # A connection kept open may have been closed by the server since
                        # its last answer (its keep-alive timeout): the request never
                        # reached it.
                        self._close(connection)
                        connection = None
                        if not reused:
                            raise
                        connection = await self._connect()
                        status, answer = await connection.exchange(request, body)
            except TimeoutError:
                if not deadline.expired():
                    raise
                raise SouthboundError(
                    f"no answer from {self.authority} in {self.timeout:g} s"
                ) from None
            if not connection.next_cycle():
                self._close(connection)
                connection = None
            return status, answer
        except BaseException:
            if connection is not None:
                self._close(connection)
                connection = None
            raise
        finally:
            self._idle.put_nowait(connection)

    async def close(self) -> None:
        """Close every connection."""
        for connection in list(self._open):
            self._close(connection)
        for _ in range(self._idle.qsize()):
            self._idle.get_nowait()
            self._idle.put_nowait(None)

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        connection = _Connection(reader, writer)
        self._open.add(connection)
        return connection

    def _close(self, connection: _Connection) -> None:
        self._open.discard(connection)
        connection.writer.close()


class _Unanswered(SouthboundError):
    """The connection ended before the first byte of an answer."""


class _Connection:
    """One TCP connection and its HTTP/1.1 state."""

    __slots__ = ("http", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)

    async def exchange(self, request: h11.Request, body: bytes) -> tuple[int, bytes]:
        """Send a request; the answer's status and body."""
        http = self.http
        received = False
        status = 0
        chunks: list[bytes] = []
        try:
            self.writer.write(
                b"".join(
                    (
                        http.send(request) or b"",
                        http.send(h11.Data(data=body)) or b"",
                        http.send(h11.EndOfMessage()) or b"",
                    )
                )
            )
            await self.writer.drain()
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    data = await self.reader.read(READ_SIZE)
                    if not data and not received:
                        raise _Unanswered("the server closed the connection without answering")
                    received = True
                    http.receive_data(data)
                elif isinstance(event, h11.Data):
                    chunks.append(event.data)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.EndOfMessage):
                    return status, b"".join(chunks)
                elif not isinstance(event, h11.InformationalResponse):
                    raise SouthboundError(f"the server's answer stopped short: {event!r}")
        except h11.RemoteProtocolError as exc:
            raise SouthboundError(f"not a whole HTTP/1.1 answer: {exc}") from None
        except ConnectionError as exc:
            if not received:
                raise _Unanswered(f"the connection was lost before an answer: {exc}") from None
            raise SouthboundError(f"the connection was lost during the answer: {exc}") from None

    def next_cycle(self) -> bool:
        """Ready the connection for another request; False if it must be closed."""
        http = self.http
        if http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()
            return True
        return False
