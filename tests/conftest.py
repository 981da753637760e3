"""Fixtures shared by every test: the ``store`` over each backend and PostgreSQL access.

PostgreSQL tests use the server at ``CITYVERSE_TEST_PG`` (default
postgresql://postgres@127.0.0.1:5432/postgres). The session creates its own database
there and drops it at the end; each test gets its own schema in it. Without a server
the tests skip, except when ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from cityverse.store.base import EntityStore
from cityverse.store.postgres import PostgresStore
from cityverse.store.sqlite import SqliteStore

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pg_unavailable(server: str, reason: object) -> NoReturn:
    message = f"PostgreSQL not reachable at {server}: {reason}; set CITYVERSE_TEST_PG"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of an empty database with PostGIS, created for this session and dropped after."""
    server = os.environ.get("CITYVERSE_TEST_PG", PG_DEFAULT)
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        _pg_unavailable(server, str(exc).strip() or type(exc).__name__)
    name = f"cityverse_test_{secrets.token_hex(4)}"
    url = urlunsplit(urlsplit(server)._replace(path="/" + name))
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                # Once here, so that each test's store finds the extension in place.
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.Error:
            pass  # the store's open() then reports what is missing
        try:
            yield url
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EntityStore]:
    """An open, empty store of each kind; closed after the test."""
    if request.param == "sqlite":
        sqlite = SqliteStore(tmp_path / "store.db")
        await sqlite.open()
        yield sqlite
        await sqlite.close()
        return
    # One schema for the session, emptied before each test: much cheaper than a schema
    # per test, and each test still starts from an empty store.
    postgres = PostgresStore.from_url(request.getfixturevalue("pg_url") + "?schema=store")
    await postgres.open()
    await postgres.clear()
    yield postgres
    await postgres.close()
