"""The demo devices' own HTTP/1.1 connections: to a real server, and to one that closes
connections, chunks its answers or refuses."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from cityverse.api.app import create_app
from cityverse.demo import iot, southbound
from cityverse.demo.devices import Message
from cityverse.demo.service import HttpPublisher
from cityverse.demo.southbound import DeviceLink, SouthboundError
from cityverse.settings import Settings

LIGHT = "urn:ngsi-ld:Streetlight:berkane-t1"
STREETLIGHTING = "https://smart-data-models.github.io/dataModel.Streetlighting/context.jsonld"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _serving(tmp_path: Path) -> AsyncIterator[str]:
    """The app, security off, served by uvicorn on a free loopback port."""
    port = _free_port()
    app = create_app(Settings(data_dir=str(tmp_path), auth="off", port=port))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_measures_reach_the_twin_through_the_agents_http_southbound(
    tmp_path: Path,
) -> None:
    async with _serving(tmp_path) as base, httpx.AsyncClient(base_url=base) as client:
        light = {
            "id": LIGHT,
            "type": "Streetlight",
            "powerState": {"type": "Property", "value": "off"},
            "@context": STREETLIGHTING,
        }
        r = await client.post(
            "/ngsi-ld/v1/entities",
            json=light,
            headers={"Content-Type": "application/ld+json"},
        )
        assert r.status_code == 201, r.text
        _, devices = iot.provisioning([light])
        publisher = HttpPublisher(base)
        assert publisher.link is not None  # the measures go over the devices' own link
        try:
            await publisher.provision([iot.KINDS["light"].group()], devices)
            device = devices[0]["device_id"]
            rounds = [
                [{"TimeInstant": f"2026-06-21T04:{m:02d}:00.000Z", "p": state, "i": level}]
                for m, state, level in ((31, "on", 1.0), (32, "on", 0.5), (33, "off", 0.0))
            ]
            for measures in rounds:
                await publisher.send([Message("light", device, measures)])
            # A device the agent does not know is refused, and counted.
            await publisher.send([Message("light", "light-nowhere", rounds[0])])
        finally:
            await publisher.close()
        assert publisher.failures == 1
        r = await client.get(
            f"/ngsi-ld/v1/entities/{LIGHT}",
            headers={"Link": f'<{STREETLIGHTING}>; rel="http://www.w3.org/ns/json-ld#context"'},
        )
        entity = r.json()
        assert entity["powerState"]["value"] == "off"
        assert entity["powerState"]["observedAt"] == "2026-06-21T04:33:00.000Z"
        assert entity["illuminanceLevel"]["value"] == 0.0


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def _raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A server answering with ``handler``; yields its URL and a list that grows by one
    for each connection accepted."""
    accepted: list[int] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", accepted
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def _linked(handler: Handler, **options: Any) -> AsyncIterator[tuple[DeviceLink, list[int]]]:
    """A ``DeviceLink`` to a server answering with ``handler`` (closed after), and the
    list of the connections the server accepted (see ``_raw_server``)."""
    async with _raw_server(handler) as (base, accepted):
        link = DeviceLink(base, **options)
        try:
            yield link, accepted
        finally:
            await link.close()


async def _requests(reader: asyncio.StreamReader) -> AsyncIterator[tuple[str, bytes]]:
    """Each request on a connection, until the client closes it."""
    while True:
        try:
            yield await _request(reader)
        except asyncio.IncompleteReadError:
            return


async def _request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    length = next(
        int(line.split(":", 1)[1])
        for line in head.split("\r\n")
        if line.lower().startswith("content-length")
    )
    return head.split("\r\n", 1)[0], await reader.readexactly(length)


async def test_connections_are_kept_and_one_the_server_closed_is_opened_again() -> None:
    seen: list[Any] = []

    async def answer_twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):  # then the connection is closed, as after a keep-alive timeout
            line, body = await _request(reader)
            seen.append((line, body))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async with _linked(answer_twice, connections=1) as (link, accepted):
        for i in range(5):
            status, body = await link.post(f"/iot/d?i={i}", b"t|%d" % i, "text/plain")
            assert (status, body) == (200, b"ok")
    assert [line for line, _ in seen] == [f"POST /iot/d?i={i} HTTP/1.1" for i in range(5)]
    assert [body for _, body in seen] == [b"t|%d" % i for i in range(5)]
    assert len(accepted) == 3  # two requests a connection, none lost or sent twice


async def test_chunked_and_closing_answers_are_read_whole() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, _ = await _request(reader)
        if "chunked" in line:
            writer.write(
                b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
        else:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nno length")
        await writer.drain()

    async with _linked(answer, connections=2) as (link, accepted):
        assert await link.post("/chunked", b"x", "text/plain") == (404, b"hello world")
        assert await link.post("/close", b"x", "text/plain") == (400, b"no length")
    assert len(accepted) == 2


async def test_what_is_not_http_is_an_error_and_the_connection_is_dropped() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        await reader.read()  # the connection stays open until the link drops it

    async with _linked(answer, connections=1) as (link, accepted):
        with pytest.raises(SouthboundError, match=r"not a whole HTTP/1\.1 answer"):
            await link.post("/iot/d", b"x", "text/plain")
        with pytest.raises(SouthboundError):  # a new connection, the same answer
            await link.post("/iot/d", b"x", "text/plain")
    assert len(accepted) == 2


async def test_a_head_that_never_ends_is_an_error_not_a_wait() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Filler: " + b"x" * (southbound.MAX_HEAD + 1024))
        await writer.drain()
        await reader.read()

    async with _linked(answer, connections=1) as (link, _):  # the default timeout: two minutes
        with pytest.raises(SouthboundError, match="too long"):
            await asyncio.wait_for(link.post("/iot/d", b"x", "text/plain"), 10)


async def test_an_answer_cut_short_is_an_error_and_not_sent_again() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, _ = await _request(reader)
        if "cut" in line:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await writer.drain()
        # else: closed without a word, on a connection just opened

    async with _linked(answer, connections=1) as (link, accepted):
        with pytest.raises(SouthboundError, match="complete message body"):
            await link.post("/cut", b"x", "text/plain")
        with pytest.raises(SouthboundError, match="without answering"):
            await link.post("/silent", b"x", "text/plain")
    assert len(accepted) == 2  # neither request was sent a second time


async def test_no_answer_in_time_is_an_error_and_the_next_request_opens_a_connection() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async for line, _ in _requests(reader):
            if "slow" in line:
                await reader.read()  # never answers; returns when the link gives up
                return
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    async with _linked(answer, connections=1, timeout=0.3) as (link, accepted):
        assert await link.post("/fast", b"x", "text/plain") == (204, b"")
        with pytest.raises(SouthboundError, match=r"no answer from 127\.0\.0\.1:\d+ in 0\.3 s"):
            await link.post("/slow", b"x", "text/plain")
        assert await link.post("/fast", b"x", "text/plain") == (204, b"")
        assert await link.post("/fast", b"x", "text/plain") == (204, b"")
    assert len(accepted) == 2


async def test_a_cancelled_request_gives_its_connection_back_closed() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, _ = await _request(reader)
        if "slow" in line:
            await reader.read()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with _linked(answer, connections=1) as (link, accepted):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(link.post("/slow", b"x", "text/plain"), 0.3)
        assert await asyncio.wait_for(link.post("/", b"x", "text/plain"), 5) == (200, b"ok")
    assert len(accepted) == 2


async def test_http_1_0_answers_and_interim_answers() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async for line, _ in _requests(reader):
            if "old" in line:  # an HTTP/1.0 answer: the connection is not kept
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold")
            else:
                writer.write(
                    b"HTTP/1.1 100 Continue\r\n\r\n"
                    b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew"
                )
            await writer.drain()

    async with _linked(answer, connections=1) as (link, accepted):
        assert await link.post("/new", b"x", "text/plain") == (201, b"new")
        assert await link.post("/new", b"x", "text/plain") == (201, b"new")
        assert await link.post("/old", b"x", "text/plain") == (200, b"old")
        assert await link.post("/new", b"x", "text/plain") == (201, b"new")
    assert len(accepted) == 2


async def test_requests_in_flight_share_the_connections_and_get_their_own_answers() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async for line, body in _requests(reader):
            answer = line.split(" ")[1].encode() + b" " + body
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer))
            writer.write(answer)
            await writer.drain()

    async with _linked(echo, connections=4) as (link, accepted):
        answers = await asyncio.gather(
            *(link.post(f"/iot/d?i={i}", b"m|%d" % i, "text/plain") for i in range(200))
        )
    assert answers == [(200, b"/iot/d?i=%d m|%d" % (i, i)) for i in range(200)]
    assert len(accepted) == 4


async def test_a_request_http_cannot_carry_is_refused_before_it_is_sent() -> None:
    link = DeviceLink("http://127.0.0.1:9")  # nothing is opened: no server needed
    for target, content_type in (
        ("/iot/d?i=a b", "text/plain"),
        ("/iot/d?i=\u00e9", "text/plain"),
        ("/iot/d", "text/plain\r\nX-Injected: 1"),
        ("/iot/d", "text/\u2603"),
    ):
        with pytest.raises(ValueError):
            await link.post(target, b"x", content_type)
    await link.close()


def test_the_devices_speak_plain_http_only() -> None:
    with pytest.raises(ValueError):
        DeviceLink("https://city.example")
    with pytest.raises(ValueError):
        DeviceLink("http://city.example", connections=0)
    with pytest.raises(ValueError):
        DeviceLink("http://city.example", timeout=0)
    assert DeviceLink("http://[::1]:1026").authority == "[::1]:1026"
