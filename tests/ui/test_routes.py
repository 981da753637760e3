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


async def _get(settings: Settings, path: str, headers: dict[str, str]) -> httpx.Response:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path, headers=headers)


def get_with(settings: Settings, path: str, headers: dict[str, str]) -> httpx.Response:
    """GET through the app in-process, on a loop of its own in another thread: the
    browser tests' Playwright holds the main thread's event loop for the whole session."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _get(settings, path, headers)).result()


def get(settings: Settings, path: str) -> httpx.Response:
    """GET through the app in-process (see get_with)."""
    return get_with(settings, path, {})


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
    chunks = sorted(path.name for path in STATIC.glob("chunk-*.js"))
    assert len(chunks) == 1, chunks  # boot.js and app.js share one, named in the page
    assert (
        f'<link rel="modulepreload" href="/ui/static/{chunks[0]}">'
        in (STATIC / "index.html").read_text()
    )
    for name in ("boot.js", chunks[0], "app.js", "app.css", "maplibre-gl-worker.mjs"):
        r = get(Settings(data_dir=str(tmp_path)), f"/ui/static/{name}")
        assert r.status_code == 200, name
        assert r.content == (STATIC / name).read_bytes()
        assert int(r.headers["content-length"]) == len(r.content)
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        assert r.headers["content-type"].startswith(kind), name


def test_an_asset_the_browser_has_is_not_sent_again(tmp_path: Path) -> None:
    first = get(Settings(data_dir=str(tmp_path)), "/ui/static/app.css")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"  # asked again, answered in a line
    again = get_with(
        Settings(data_dir=str(tmp_path)), "/ui/static/app.css", {"If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b""
    other = get_with(
        Settings(data_dir=str(tmp_path)), "/ui/static/app.css", {"If-None-Match": '"x"'}
    )
    assert other.status_code == 200 and other.content == first.content


def test_only_the_built_files_are_served(tmp_path: Path) -> None:
    for path in ("/ui/static/../routes.py", "/ui/static/%2e%2e/routes.py", "/ui/static/.hidden"):
        r = get(Settings(data_dir=str(tmp_path)), path)
        # 404, or refused before routing when the client resolved the dots itself
        assert r.status_code in (401, 404), path
        assert b"import" not in r.content, path


def test_a_missing_asset_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    r = get(Settings(data_dir=str(tmp_path)), "/ui/static/nothing.js")
    assert r.status_code == 404
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"


def test_the_bundle_names_no_outside_host() -> None:
    page = (STATIC / "index.html").read_text()
    assert "http://" not in page and "https://" not in page
