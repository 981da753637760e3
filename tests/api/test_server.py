"""The HTTP server's protocol (api/server.py): each loop turn's writes go out as one,
in order, and nothing is lost when the connection closes or an answer streams."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from cityverse.api.server import GatheringHttpToolsProtocol, _Gathering


class _Recorder:
    """A transport that records what it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return f"info:{name}"


async def test_one_turns_writes_are_sent_as_one_in_order() -> None:
    recorder = _Recorder()
    gathering = _Gathering(recorder, asyncio.get_running_loop())  # type: ignore[arg-type]
    gathering.write(b"HTTP/1.1 200 OK\r\n\r\n")
    gathering.write(memoryview(b"body"))
    assert recorder.sent == []
    await asyncio.sleep(0)
    assert recorder.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    gathering.write(b"next")
    await asyncio.sleep(0)
    assert recorder.sent[-1] == b"next"
    assert gathering.get_extra_info("peername") == "info:peername"


async def test_closing_sends_what_was_gathered_first() -> None:
    recorder = _Recorder()
    gathering = _Gathering(recorder, asyncio.get_running_loop())  # type: ignore[arg-type]
    gathering.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    gathering.close()
    assert recorder.sent == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and recorder.closed
    await asyncio.sleep(0)
    assert len(recorder.sent) == 1


async def _ticks(request: Request) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        for n in range(3):
            yield f"data: {n}\n\n".encode()
            await asyncio.sleep(0.3)

    return StreamingResponse(events(), media_type="text/event-stream")


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello " + request.query_params.get("n", ""))


@contextlib.asynccontextmanager
async def _server() -> AsyncIterator[int]:
    app = Starlette(routes=[Route("/hello", _hello), Route("/ticks", _ticks)])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", http=GatheringHttpToolsProtocol
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def _read_until(reader: asyncio.StreamReader, marker: bytes, timeout: float) -> bytes:
    data = b""
    while marker not in data:
        chunk = await asyncio.wait_for(reader.read(65536), timeout)
        if not chunk:
            break
        data += chunk
    return data


async def _until_closed(port: int, request: bytes) -> bytes:
    """What the server sends for ``request`` until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


async def test_pipelined_keep_alive_and_closing_answers_arrive_whole() -> None:
    async with _server() as port:
        data = await _until_closed(
            port,
            b"GET /hello?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /hello?n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        assert data.count(b"HTTP/1.1 200 OK") == 2
        assert data.index(b"hello 1") < data.index(b"hello 2")
        assert data.endswith(b"hello 2")


async def test_a_malformed_request_gets_its_400_before_the_close() -> None:
    async with _server() as port:
        data = await _until_closed(port, b"NOT HTTP AT ALL\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 400")


async def test_a_stream_delivers_each_event_when_it_is_made() -> None:
    async with _server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ticks HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        loop = asyncio.get_running_loop()
        start = loop.time()
        first = await _read_until(reader, b"data: 0", 5)
        assert b"data: 0" in first and b"data: 1" not in first
        assert loop.time() - start < 0.25  # not held until the next event
        rest = await _read_until(reader, b"data: 2", 5)
        assert b"data: 2" in first + rest
        writer.close()
