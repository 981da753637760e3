"""``cityverse demo``: the demo city on its own embedded store, served like ``cityverse serve``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from cityverse import __version__
from cityverse.api.server import GatheringHttpToolsProtocol
from cityverse.settings import ENV_PREFIX, Settings

DEFAULT_DATA_DIR = "./data/demo"
DEFAULT_SPEED = 60.0
"""One city minute per real second: the demo's morning plays in a few minutes."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand."""
    demo = commands.add_parser("demo", help="run the demo city (Berkane) with live devices")
    demo.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, help="port to listen on (default 1026)")
    demo.add_argument(
        "--speed",
        type=float,
        help=f"city seconds per real second (default {DEFAULT_SPEED:g})",
    )
    demo.add_argument(
        "--reset", action="store_true", help="empty the demo's store and load the city afresh"
    )
    demo.add_argument("--data-dir", help=f"data directory (default {DEFAULT_DATA_DIR})")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the demo city if needed and serve it until interrupted."""
    import uvicorn

    from cityverse.demo.load import reset_store

    if args.speed is not None and not args.speed > 0:
        print("cityverse: --speed must be greater than 0", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env(
            host=args.host,
            port=args.port,
            data_dir=args.data_dir or DEFAULT_DATA_DIR,
            store="",  # the demo always runs on its own embedded store
            workers=1,
            demo_speed=args.speed or DEFAULT_SPEED,
        )
    except ValueError as exc:
        print(f"cityverse: {exc}", file=sys.stderr)
        return 2
    try:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        if args.reset:
            reset_store(settings.store_url)
    except OSError as exc:
        print(f"cityverse: data directory {settings.data_dir}: {exc}", file=sys.stderr)
        return 2
    # The demo's numerical work (the hourly leak test) is on small matrices, for which
    # BLAS threads only contend with the server for a small machine's cores: on two
    # cores one thread halves the test's time.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # The server builds its app from the environment: hand the settings down.
    for name in ("store", "data_dir", "host", "port", "workers", "demo_speed"):
        os.environ[ENV_PREFIX + name.upper()] = str(getattr(settings, name))
    _show_story(settings.log_level)
    print(
        f"CityVerse {__version__} demo: Berkane at {settings.demo_speed:g}x on "
        f"http://{settings.host}:{settings.port}/ (store {settings.store_url})",
        file=sys.stderr,
    )
    uvicorn.run(
        "cityverse.api.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
        http=GatheringHttpToolsProtocol,
    )
    return 0


def _show_story(level: str) -> None:
    """Print the demo's own messages (the city loaded, the leak found) beside the server's."""
    logger = logging.getLogger("cityverse.demo")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(getattr(logging, level.upper(), logging.INFO))
    logger.propagate = False
