"""A real ``cityverse serve`` with a small city, and a real headless Chromium.

The server runs as a subprocess on a free port over a temporary data directory. The
browser is Debian's Chromium driven by Playwright; without it the tests skip, except
when ``CI=true``, where they fail. Screenshots go to a temporary directory whose path
is printed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.ui.city import seed

CHROMIUM = os.environ.get("CITYVERSE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _unavailable(message: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start ``cityverse serve`` and wait until it answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYVERSE_")}
    script = Path(sys.executable).with_name("cityverse")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cityverse.cli"]
    process = subprocess.Popen(
        [
            *command,
            "serve",
            "--insecure-open",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"cityverse serve exited with {process.returncode}: {err}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/ngsi-ld/v1/info/sourceIdentity", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("cityverse serve did not answer within 30 s")


@pytest.fixture(scope="session")
def artefacts() -> Path:
    """Where screenshots go (printed so that a person can look at them)."""
    path = Path(
        os.environ.get("CITYVERSE_UI_ARTEFACTS") or tempfile.mkdtemp(prefix="cityverse-ui-")
    )
    path.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots in {path}", file=sys.stderr)
    return path


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running CityVerse with the small city in it."""
    port = free_port()
    process = start_server(tmp_path_factory.mktemp("data"), port)
    base = f"http://127.0.0.1:{port}"
    try:
        seed(base)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        if process.stderr:
            process.stderr.close()


# Module scope: Playwright's sync API holds an event loop while it runs, which other
# modules' asyncio tests cannot share.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), launched once per test module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package playwright is not installed: pip install -e '.[test]'")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A dashboard page, with the URLs of every request it made."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))


@contextlib.contextmanager
def opened(browser: Any, base: str, timeout_ms: int) -> Iterator[Page]:
    """The dashboard at ``base``, once the layers that are on are drawn."""
    context = browser.new_context(viewport={"width": 1400, "height": 860}, locale="en-GB")
    page = context.new_page()
    wrapped = Page(page)
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready='true']", timeout=timeout_ms)
    try:
        yield wrapped
    finally:
        context.close()


@pytest.fixture
def dashboard(browser: Any, server: str) -> Iterator[Page]:
    """The dashboard open on the seeded city, once its layers have loaded."""
    with opened(browser, server, 30_000) as page:
        yield page
