"""The dashboard's routes, in-process: the page, its inline settings and its assets."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson

from cityverse.api.app import create_app
from cityverse.settings import Settings
from cityverse.ui.routes import STATIC


async def _get(settings: Settings, path: str) -> httpx.Response:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path)


def get(settings: Settings, path: str) -> httpx.Response:
    """GET through the app in-process, on a loop of its own in another thread: the
    browser tests' Playwright holds the main thread's event loop for the whole session."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _get(settings, path)).result()


def test_the_page_carries_its_settings(tmp_path: Path) -> None:
    tiles = "http://tiles.city.example:8080/{z}/{x}/{y}.png"
    r = get(Settings(data_dir=str(tmp_path), tiles_url=tiles), "/")
    assert r.status_code == 200
    start = r.text.index('type="application/json">') + len('type="application/json">')
    config = orjson.loads(r.text[start : r.text.index("</script>", start)])
    assert config == {"tilesUrl": tiles}
    policy = r.headers["content-security-policy"]
    assert "img-src 'self' data: blob: http://tiles.city.example:8080;" in policy


def test_without_tiles_the_page_may_reach_only_its_server(tmp_path: Path) -> None:
    r = get(Settings(data_dir=str(tmp_path)), "/")
    assert "connect-src 'self';" in r.headers["content-security-policy"]
    assert "http" not in r.headers["content-security-policy"]


def test_the_built_assets_are_served(tmp_path: Path) -> None:
    for name in ("app.js", "app.css", "maplibre-gl-worker.mjs"):
        r = get(Settings(data_dir=str(tmp_path)), f"/ui/static/{name}")
        assert r.status_code == 200, name
        assert r.content == (STATIC / name).read_bytes()


def test_a_missing_asset_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    r = get(Settings(data_dir=str(tmp_path)), "/ui/static/nothing.js")
    assert r.status_code == 404
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"


def test_the_bundle_names_no_outside_host() -> None:
    page = (STATIC / "index.html").read_text()
    assert "http://" not in page and "https://" not in page
