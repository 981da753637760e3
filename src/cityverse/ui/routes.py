"""The routes that serve the dashboard: the page at ``/`` and its bundled assets.

The page carries its configuration (the basemap tile URL) inline, so that the first
paint needs no second request. The assets are built from ``ui/web`` by esbuild and
shipped in ``ui/static``; nothing is fetched from outside the server at run time.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from cityverse.settings import Settings

STATIC = Path(str(resources.files("cityverse.ui").joinpath("static")))
"""The built dashboard: index.html, app.js, app.css and the map's worker."""

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


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if rest else url


routes: list[BaseRoute] = [
    Route("/", dashboard, methods=["GET"]),
    Mount("/ui/static", app=StaticFiles(directory=STATIC, check_dir=False), name="ui-static"),
]
"""The dashboard's routes, added to the app's routes list."""
