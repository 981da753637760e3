"""The routes that serve the dashboard: the page at ``/`` and its bundled assets.

The page carries its configuration (the basemap tile URL) inline, so that the first
paint needs no second request. The assets are built from ``ui/web`` by esbuild and
shipped in ``ui/static``; nothing is fetched from outside the server at run time.

Each asset is read once (again when its file changes) and sent whole, with an ETag: the
page asks for its code while the server answers the map's first requests, and a file
read and sent a chunk at a time would wait for the event loop between chunks, behind
those answers (a megabyte of code: seventeen waits).
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from pathlib import Path
from stat import S_ISREG

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from cityverse.settings import Settings

STATIC = Path(str(resources.files("cityverse.ui").joinpath("static")))
"""The built dashboard: index.html, boot.js, app.js and their chunk, app.css and the map's
worker."""

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}

CONFIG_MARK = "<!--cityverse-config-->"


@cache
def _template() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


def page_config(settings: Settings) -> dict[str, str]:
    """What the page needs to know from the server's settings."""
    return {"tilesUrl": settings.tiles_url}


def render_page(settings: Settings) -> str:
    """The dashboard page with its configuration inline."""
    # "</" inside the JSON would close the script element early.
    config = orjson.dumps(page_config(settings)).decode().replace("</", "<\\/")
    script = f'<script id="cityverse-config" type="application/json">{config}</script>'
    return _template().replace(CONFIG_MARK, script)


async def dashboard(request: Request) -> Response:
    """GET / : the dashboard page."""
    settings: Settings = request.app.state.settings
    return HTMLResponse(
        render_page(settings),
        headers={
            "Cache-Control": "no-cache",
            # The page may load nothing from elsewhere: the policy makes that a rule.
            "Content-Security-Policy": _policy(settings.tiles_url),
        },
    )


def _policy(tiles_url: str) -> str:
    extra = " " + _origin(tiles_url) if tiles_url else ""
    return (
        "default-src 'self'; "
        f"img-src 'self' data: blob:{extra}; "
        "style-src 'self' 'unsafe-inline'; "
        "worker-src 'self' blob:; "
        f"connect-src 'self'{extra}; "
        "object-src 'none'; base-uri 'self'"
    )


class Asset:
    """A built file, as it is sent: its bytes, media type and entity tag."""

    def __init__(self, path: Path, stamp: tuple[int, int]) -> None:
        self.stamp = stamp
        self.body = path.read_bytes()
        self.media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
        self.etag = '"' + hashlib.blake2b(self.body, digest_size=12).hexdigest() + '"'


_assets: dict[str, Asset] = {}


def _asset(name: str) -> Asset:
    """The built file ``name`` (a file of ``STATIC``, not below it), read when it changed."""
    path = STATIC / name
    if "/" in name or "\\" in name or name.startswith("."):
        raise HTTPException(404)
    try:
        stat = path.stat()
    except OSError:
        raise HTTPException(404) from None
    if not S_ISREG(stat.st_mode):
        raise HTTPException(404)
    stamp = (stat.st_mtime_ns, stat.st_size)
    asset = _assets.get(name)
    if asset is None or asset.stamp != stamp:
        asset = _assets[name] = Asset(path, stamp)
    return asset


async def static_asset(request: Request) -> Response:
    """GET /ui/static/{path}: a built file, whole; 304 when the browser has it already."""
    asset = _asset(request.path_params["path"])
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else asset.body
    response = Response(body, media_type=asset.media_type, headers=headers)
    response.headers["Content-Length"] = str(len(asset.body))
    return response


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if rest else url


routes: list[BaseRoute] = [
    Route("/", dashboard, methods=["GET"]),
    Route("/ui/static/{path:path}", static_asset, methods=["GET", "HEAD"]),
]
"""The dashboard's routes, added to the app's routes list."""
